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
}

export interface RosterFile {
  coordinator: { signingKey: string };
  nodes: { nodeId: string; address: string; encryptionKey: string; signingKey: string }[];
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
  return { coordinatorKey: hexToBytes(json.coordinator.signingKey), nodes };
}

/** Reads the roster file, re-reading it only when it changed on disk. */
export class RosterSource {
  private cached?: { mtimeMs: number; roster: Roster };
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
}
