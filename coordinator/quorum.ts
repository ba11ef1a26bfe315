/**
 * What every signing scheme shares on the coordinator: quorum choice among healthy members (rotating
 * so every node does its share), attempts with retries on another quorum, re-probing nodes marked
 * down before giving up, blame with quarantine, and (DKLs23) per-keyset bans. A scheme supplies
 * one attempt with a given quorum.
 */
import type { Logger } from '../runtime/log.js';
import type { NodeRegistry } from './node-registry.js';
import { appendAudit } from './store/audit.js';
import type { Db } from './store/db.js';
import { durably } from './store/durably.js';
import { listKeysetBans, recordKeysetBan, recordNodeFault, type KeysetRow } from './store/repo.js';

const MAX_ATTEMPTS = 4;
/** How long a node caught with a bad share is left out of quorums, unless it is needed for one. */
const QUARANTINE_MS = 10 * 60_000;

export interface SignOutcome {
  signature?: Uint8Array;
  signers: string[];
  attempts: number;
  error?: string;
  /** The failure was only a lack of reachable nodes: trying again later may work. */
  transient?: boolean;
  /** DKLs23: the signature used a presignature from the coordinator's pool (no presigning on the request path). */
  presigned?: boolean;
}

/** A keyset as quorum choice sees it. */
export interface QuorumKeyset {
  row: KeysetRow;
  /** Rotates through the possible quorums to spread load. */
  turn: number;
}

export type Quorum = KeysetRow['members'];

export interface AttemptResult {
  signature?: Uint8Array;
  problem?: string;
  /** Refused or blamed: sits out the rest of this request. */
  exclude: string[];
  unreachable: string[];
  /** Caught by a verifiable check: recorded as a fault and quarantined. */
  blamed: string[];
  /** Failed a DKLs23 OT or multiplication check: banned for the keyset until an operator acts. */
  banned?: string[];
  presigned?: boolean;
}

export class Quorums {
  /** Node id -> time until which it is avoided: a node that sent a bad share is probably compromised. */
  private readonly quarantined = new Map<string, number>();
  /** Keyset id -> banned node ids (mirrors keyset_bans; never used for that keyset's quorums). */
  private readonly bans = new Map<string, Set<string>>();

  constructor(
    private readonly db: Db,
    private readonly registry: NodeRegistry,
    private readonly log: Logger,
  ) {}

  /** Loads the bans recorded in the database (at start). */
  async load(): Promise<void> {
    for (const b of await listKeysetBans(this.db)) this.bannedFor(b.keysetId).add(b.nodeId);
  }

  /** Keyset ids a node is banned from. */
  bansOf(nodeId: string): string[] {
    return [...this.bans].filter(([, nodes]) => nodes.has(nodeId)).map(([k]) => k).sort();
  }

  /** Forgets a keyset's bans (its pairwise setup was re-run; the database rows are gone too). */
  clearBans(keysetId: string): void {
    this.bans.delete(keysetId);
  }

  isBanned(keysetId: string, nodeId: string): boolean {
    return this.bans.get(keysetId)?.has(nodeId) ?? false;
  }

  private bannedFor(keysetId: string): Set<string> {
    let s = this.bans.get(keysetId);
    if (!s) this.bans.set(keysetId, (s = new Set()));
    return s;
  }

  async run(ks: QuorumKeyset, requestId: string, attempt: (quorum: Quorum) => Promise<AttemptResult>): Promise<SignOutcome> {
    // Blamed or refusing nodes sit out the rest of this request; unreachable ones are re-probed
    // once before giving up, since a node that just restarted fails its first call on a stale channel.
    const excluded = new Set<string>();
    const unreachable = new Set<string>();
    const problems: string[] = [];
    let reprobed = false;
    for (let n = 1; n <= MAX_ATTEMPTS; n++) {
      let quorum = this.pick(ks, new Set([...excluded, ...unreachable]));
      if (!quorum && !reprobed) {
        reprobed = true;
        const down = ks.row.members.map((m) => m.nodeId).filter((id) => !excluded.has(id) && (unreachable.has(id) || !this.registry.nodes.get(id)?.up));
        for (const id of await this.registry.reprobe(down)) unreachable.delete(id);
        quorum = this.pick(ks, new Set([...excluded, ...unreachable]));
      }
      if (!quorum) {
        problems.push(`not enough healthy nodes for threshold ${ks.row.threshold}`);
        return { signers: [], attempts: n - 1, error: `signing failed: ${problems.join('; ')}`, transient: excluded.size === 0 };
      }
      const outcome = await attempt(quorum);
      if (outcome.signature) {
        const done: SignOutcome = { signature: outcome.signature, signers: quorum.map((m) => m.nodeId), attempts: n };
        if (outcome.presigned !== undefined) done.presigned = outcome.presigned;
        return done;
      }
      problems.push(outcome.problem!);
      for (const id of outcome.exclude) excluded.add(id);
      for (const id of outcome.unreachable) unreachable.add(id);
      if (outcome.banned?.length) await this.ban(ks, requestId, outcome.banned, outcome.problem!);
      else if (outcome.blamed.length) await this.blame(ks, requestId, outcome.blamed, outcome.problem!);
    }
    return { signers: [], attempts: MAX_ATTEMPTS, error: `signing failed: ${problems.join('; ')}` };
  }

  /** Records blame and quarantines; requestId is null for background work (presignature refills). */
  async blame(ks: QuorumKeyset, requestId: string | null, nodeIds: string[], reason: string): Promise<void> {
    this.log.warn({ requestId, keysetId: ks.row.keysetId, blamed: nodeIds }, 'node blamed for an invalid signature share');
    for (const id of nodeIds) this.quarantined.set(id, Date.now() + QUARANTINE_MS);
    await durably(this.log, 'record blame', () => this.db.tx(async (q) => {
      for (const nodeId of nodeIds) {
        await recordNodeFault(q, { nodeId, keysetId: ks.row.keysetId, requestId, reason });
        await appendAudit(q, { actor: 'coordinator', action: 'node.blamed', subject: nodeId, details: { keysetId: ks.row.keysetId, requestId, reason } });
      }
    }));
  }

  /** Bans for the keyset (durably first: a restarted coordinator must not use the node again), and records the fault. */
  async ban(ks: QuorumKeyset, requestId: string | null, nodeIds: string[], reason: string): Promise<void> {
    const keysetId = ks.row.keysetId;
    this.log.warn({ requestId, keysetId, banned: nodeIds }, 'node banned for the keyset after a failed OT or multiplication check');
    await durably(this.log, 'record ban', () => this.db.tx(async (q) => {
      for (const nodeId of nodeIds) {
        await recordNodeFault(q, { nodeId, keysetId, requestId, reason });
        if (await recordKeysetBan(q, { keysetId, nodeId, reason, requestId })) {
          await appendAudit(q, { actor: 'coordinator', action: 'node.banned', subject: nodeId, details: { keysetId, requestId, reason } });
        }
      }
    }));
    for (const id of nodeIds) this.bannedFor(keysetId).add(id);
  }

  /**
   * Healthy, unbanned members not excluded, leaving out quarantined nodes when the rest still make
   * a quorum; the quorum rotates across requests so every node does its share.
   */
  pick(ks: QuorumKeyset, excluded: Set<string>): Quorum | undefined {
    const banned = this.bans.get(ks.row.keysetId);
    const healthy = ks.row.members.filter((m) => !excluded.has(m.nodeId) && !banned?.has(m.nodeId) && this.registry.nodes.get(m.nodeId)?.up);
    const t = ks.row.threshold;
    const now = Date.now();
    const trusted = healthy.filter((m) => (this.quarantined.get(m.nodeId) ?? 0) < now);
    const candidates = trusted.length >= t ? trusted : healthy;
    if (candidates.length < t) return undefined;
    const combos = combinations(candidates.length, t);
    const pick = combos[ks.turn++ % combos.length]!;
    return pick.map((i) => candidates[i]!);
  }
}

/** All k-subsets of {0..n-1}, in lexicographic order. */
function combinations(n: number, k: number): number[][] {
  const out: number[][] = [];
  const rec = (start: number, acc: number[]) => {
    if (acc.length === k) {
      out.push([...acc]);
      return;
    }
    for (let i = start; i < n; i++) rec(i + 1, [...acc, i]);
  };
  rec(0, []);
  return out;
}
