/**
 * The cluster roster: which nodes exist, their identity public keys, and the coordinator's
 * request-signing key. Operators distribute it out of band (`custody up` writes it for a local
 * cluster); nodes pin it, so a coordinator cannot substitute a peer's key to read its messages.
 */
import { readFile, stat } from 'node:fs/promises';
import { hexToBytes } from '@noble/hashes/utils.js';

export interface RosterNode {
  nodeId: string;
  address: string;
  encryptionKey: Uint8Array;
  signingKey: Uint8Array;
}

export interface Roster {
  coordinatorKey: Uint8Array;
  nodes: Map<string, RosterNode>;
  /** The operators' offline X25519 recovery key, if they set one: the only key a node seals a recovery export to. */
  recoveryKey?: Uint8Array;
  /** Policy admins (Ed25519) and how many must sign a policy; none means no policy can be installed. */
  admins: { name: string; publicKey: Uint8Array }[];
  adminQuorum: number;
}

export interface RosterFile {
  coordinator: { signingKey: string };
  nodes: { nodeId: string; address: string; encryptionKey: string; signingKey: string }[];
  recovery?: { encryptionKey: string };
  admins?: { name: string; signingKey: string }[];
  adminQuorum?: number;
}

export function parseRoster(json: RosterFile): Roster {
  const nodes = new Map<string, RosterNode>();
  for (const n of json.nodes) {
    nodes.set(n.nodeId, {
      nodeId: n.nodeId,
      address: n.address,
      encryptionKey: hexToBytes(n.encryptionKey),
      signingKey: hexToBytes(n.signingKey),
    });
  }
  const admins = (json.admins ?? []).map((a) => ({ name: a.name, publicKey: hexToBytes(a.signingKey) }));
  if (admins.some((a) => a.publicKey.length !== 32)) throw new Error('roster admins[].signingKey must be 32-byte Ed25519 public keys in hex');
  const adminQuorum = json.adminQuorum ?? (admins.length ? 1 : 0);
  if (admins.length && (adminQuorum < 1 || adminQuorum > admins.length)) throw new Error(`roster adminQuorum ${adminQuorum} must be between 1 and ${admins.length}`);
  const roster: Roster = { coordinatorKey: hexToBytes(json.coordinator.signingKey), nodes, admins, adminQuorum };
  if (json.recovery) {
    const key = hexToBytes(json.recovery.encryptionKey);
    if (key.length !== 32) throw new Error('roster recovery.encryptionKey must be a 32-byte X25519 public key in hex');
    roster.recoveryKey = key;
  }
  return roster;
}

/** Reads the roster file, re-reading it only when it changed on disk. */
export class RosterSource {
  private cached?: { mtimeMs: number; roster: Roster };
  private recent?: { at: number; result: Promise<Roster | undefined> };
  constructor(private readonly path: string) {}

  async get(): Promise<Roster | undefined> {
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(this.path)).mtimeMs;
    } catch {
      return undefined;
    }
    if (this.cached?.mtimeMs !== mtimeMs) {
      const roster = parseRoster(JSON.parse(await readFile(this.path, 'utf8')) as RosterFile);
      this.cached = { mtimeMs, roster };
    }
    return this.cached.roster;
  }

  /**
   * get(), looking at the file at most once per `maxAgeMs`: for the signing hot path, which needs
   * the coordinator's key for every batch. A change of that key takes effect within `maxAgeMs`.
   */
  getRecent(maxAgeMs = 1_000): Promise<Roster | undefined> {
    const now = Date.now();
    if (!this.recent || now - this.recent.at >= maxAgeMs) {
      const result = this.get();
      this.recent = { at: now, result };
      // A missing or unreadable roster is looked for again on the next call.
      const forget = () => {
        if (this.recent?.result === result) this.recent = undefined;
      };
      result.then((r) => r === undefined && forget(), forget);
    }
    return this.recent.result;
  }
}
