/**
 * The coordinator's view of DKLs23 presignatures made ahead of time. The nodes keep the secret
 * halves sealed in their single-use pools; here we only track, per keyset, which signer set holds
 * which presignature ids and the public part the online round and combine need. Refills run in the
 * background, one at a time per keyset.
 */
import type { Logger } from '../runtime/log.js';

export interface PooledSigner {
  index: number;
  nodeId: string;
  presignatureId: string;
}

export interface ReadyPresignature {
  /** Sorted by party index, as the presigning session ran. */
  signers: PooledSigner[];
  sessionId: string;
  sid: Uint8Array;
  bigR: Uint8Array;
}

export interface PoolOptions {
  /** Presignatures to keep per keyset. */
  target: number;
  /** Refill when the level drops below this. */
  low: number;
}

export const DEFAULT_POOL: PoolOptions = { target: 8, low: 4 };

/** Makes one presignature, or says why not (the loop stops and waits for the next trigger). */
export type Produce = () => Promise<ReadyPresignature | undefined>;

const setKey = (nodeIds: readonly string[]) => [...nodeIds].sort().join('+');

export class PresignPool {
  private readonly ready = new Map<string, ReadyPresignature[]>();
  private readonly refilling = new Set<string>();

  constructor(
    private readonly log: Logger,
    readonly opts: PoolOptions = DEFAULT_POOL,
  ) {}

  level(keysetId: string): number {
    return this.ready.get(keysetId)?.length ?? 0;
  }

  /**
   * Removes and returns a presignature made by exactly this signer set (oldest first). It leaves
   * the pool before use, so whatever happens next it is never handed out twice.
   */
  take(keysetId: string, nodeIds: readonly string[]): ReadyPresignature | undefined {
    const list = this.ready.get(keysetId);
    if (!list) return undefined;
    const want = setKey(nodeIds);
    const i = list.findIndex((p) => setKey(p.signers.map((s) => s.nodeId)) === want);
    return i < 0 ? undefined : list.splice(i, 1)[0];
  }

  /** Drops every presignature of a keyset (its pairwise setup changed). */
  dropKeyset(keysetId: string): void {
    this.ready.delete(keysetId);
  }

  /** Drops presignatures involving any of these nodes (banned for the keyset: never used again). */
  dropInvolving(keysetId: string, nodeIds: readonly string[]): void {
    const list = this.ready.get(keysetId);
    if (!list || !nodeIds.length) return;
    const bad = new Set(nodeIds);
    this.ready.set(keysetId, list.filter((p) => !p.signers.some((s) => bad.has(s.nodeId))));
  }

  /** Starts a background refill if the keyset is below the low mark and none is running. */
  maybeRefill(keysetId: string, produce: Produce): void {
    if (this.refilling.has(keysetId) || this.level(keysetId) >= this.opts.low) return;
    this.refilling.add(keysetId);
    void this.refill(keysetId, produce).finally(() => this.refilling.delete(keysetId));
  }

  private async refill(keysetId: string, produce: Produce): Promise<void> {
    const started = Date.now();
    let made = 0;
    try {
      while (this.level(keysetId) < this.opts.target) {
        const p = await produce();
        if (!p) break;
        let list = this.ready.get(keysetId);
        if (!list) this.ready.set(keysetId, (list = []));
        list.push(p);
        made++;
      }
    } catch (e) {
      this.log.warn({ keysetId, err: e instanceof Error ? e.message : String(e) }, 'presignature refill failed');
    }
    this.log.info({ keysetId, made, level: this.level(keysetId), ms: Date.now() - started }, 'presignature pool refilled');
  }
}
