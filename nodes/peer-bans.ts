/**
 * The node's own record of peers that failed a DKLs23 OT-extension or multiplication check
 * against it. The coordinator bans them too, but it is not trusted: a compromised coordinator
 * could keep pairing an honest node with a cheater, which is exactly the selective-abort attack
 * the ban exists to stop. So each node refuses, on its own authority, to presign with a peer it
 * caught, for as long as the pairwise setup it caught it on is in use. A setup re-run (new
 * transcript hash) gives fresh correlations and ends the ban.
 */
import type { ShareStore } from './store/share-store.js';

interface BanRecord {
  /** Hex transcript hash of the pairwise setup the bans apply to. */
  setup: string;
  peers: number[];
}

const recordName = (keysetId: string) => `bans/${keysetId}`;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export class PeerBans {
  private readonly cache = new Map<string, BanRecord>();

  constructor(private readonly store: ShareStore) {}

  async load(): Promise<void> {
    for (const name of await this.store.list('bans/')) {
      const bytes = await this.store.get(name);
      if (bytes) this.cache.set(name.slice('bans/'.length), JSON.parse(decoder.decode(bytes)) as BanRecord);
    }
  }

  /** Peers banned under this setup (empty once the setup was re-run). */
  banned(keysetId: string, setupTranscript: Uint8Array): number[] {
    const r = this.cache.get(keysetId);
    return r && r.setup === hex(setupTranscript) ? r.peers : [];
  }

  /** Records peers caught cheating under this setup; durable before it returns. */
  async add(keysetId: string, setupTranscript: Uint8Array, peers: readonly number[]): Promise<void> {
    const setup = hex(setupTranscript);
    const current = this.cache.get(keysetId);
    const merged = new Set(current?.setup === setup ? current.peers : []);
    for (const p of peers) merged.add(p);
    const record: BanRecord = { setup, peers: [...merged].sort((a, b) => a - b) };
    await this.store.put(recordName(keysetId), encoder.encode(JSON.stringify(record)));
    this.cache.set(keysetId, record);
  }
}
