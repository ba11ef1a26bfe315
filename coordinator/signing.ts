/**
 * Making a FROST signature: quorum choice among healthy nodes, one round of SignShares with pooled
 * commitments, aggregation and verification, and on a bad signature the per-share checks (RFC 9591
 * section 5.4) that name the cheating node, which is recorded, bypassed on the retry and quarantined.
 */
import { randomUUID } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { ciphersuite, type Ciphersuite, type FrostScheme } from '../crypto/frost/ciphersuite.js';
import { aggregate, type SignerCommitment } from '../crypto/frost/sign.js';
import { ProtocolAbort } from '../crypto/protocol.js';
import { curveOfScheme } from '../crypto/schemes.js';
import { schemeToProto } from '../proto/convert.js';
import { SignAuthorizationSchema } from '../proto/gen/custody/v1/node_pb.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { displayPublicKey } from './keysets.js';
import type { NonceCache } from './nonce-cache.js';
import { errorCode, errorMessage, isUnreachable, type NodeRegistry } from './node-registry.js';
import { ShareBatcher, ShareRefused } from './share-batcher.js';
import { appendAudit } from './store/audit.js';
import type { Db } from './store/db.js';
import { durably } from './store/durably.js';
import { getKeyset, recordNodeFault, type KeysetRow } from './store/repo.js';

const AUTHORIZATION_TTL_MS = 30_000;
const MAX_ATTEMPTS = 4;
/** How long a node caught with a bad share is left out of quorums, unless it is needed for one. */
const QUARANTINE_MS = 10 * 60_000;

export interface LoadedKeyset {
  row: KeysetRow;
  cs: Ciphersuite<unknown>;
  groupKey: unknown;
  verifyingShares: Map<number, unknown>;
  /** Rotates through the possible quorums to spread load. */
  turn: number;
}

export interface SignOutcome {
  signature?: Uint8Array;
  signers: string[];
  attempts: number;
  error?: string;
  /** The failure was only a lack of reachable nodes: trying again later may work. */
  transient?: boolean;
}

/**
 * Makes one FROST signature for a digest with a keyset: quorum choice, retries, blame. The request
 * lifecycle around it (idempotency, states, audit of transitions) lives in requests.ts.
 */
export class FrostSigning {
  private readonly keysets = new Map<string, LoadedKeyset>();
  private readonly batcher: ShareBatcher;
  /** Node id -> time until which it is avoided: a node that sent a bad share is probably compromised. */
  private readonly quarantined = new Map<string, number>();

  constructor(
    private readonly db: Db,
    private readonly registry: NodeRegistry,
    private readonly nonces: NonceCache,
    private readonly signAuthorization: (bytes: Uint8Array) => Uint8Array,
    private readonly log: Logger,
  ) {
    this.batcher = new ShareBatcher(registry);
  }

  /** The key a signature by this keyset verifies under, as clients use it. */
  publicKeyOf(ks: LoadedKeyset): Uint8Array {
    return displayPublicKey(ks.row.scheme, ks.row.publicKey);
  }

  async sign(ks: LoadedKeyset, requestId: string, digest: Uint8Array): Promise<SignOutcome> {
    // Blamed or refusing nodes sit out the rest of this request; unreachable ones are re-probed
    // once before giving up, since a node that just restarted fails its first call on a stale channel.
    const excluded = new Set<string>();
    const unreachable = new Set<string>();
    const problems: string[] = [];
    let reprobed = false;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      let quorum = this.pickQuorum(ks, new Set([...excluded, ...unreachable]));
      if (!quorum && !reprobed) {
        reprobed = true;
        const down = ks.row.members.map((m) => m.nodeId).filter((id) => !excluded.has(id) && (unreachable.has(id) || !this.registry.nodes.get(id)?.up));
        for (const id of await this.registry.reprobe(down)) unreachable.delete(id);
        quorum = this.pickQuorum(ks, new Set([...excluded, ...unreachable]));
      }
      if (!quorum) {
        problems.push(`not enough healthy nodes for threshold ${ks.row.threshold}`);
        return { signers: [], attempts: attempt - 1, error: `signing failed: ${problems.join('; ')}`, transient: excluded.size === 0 };
      }
      const outcome = await this.attempt(ks, requestId, digest, quorum);
      if (outcome.signature) return { signature: outcome.signature, signers: quorum.map((m) => m.nodeId), attempts: attempt };
      problems.push(outcome.problem!);
      for (const id of outcome.exclude) excluded.add(id);
      for (const id of outcome.unreachable) unreachable.add(id);
      if (outcome.blamed.length) await this.blame(ks, requestId, outcome.blamed, outcome.problem!);
    }
    return { signers: [], attempts: MAX_ATTEMPTS, error: `signing failed: ${problems.join('; ')}` };
  }

  /** One signing round with one quorum. */
  private async attempt(
    ks: LoadedKeyset,
    requestId: string,
    digest: Uint8Array,
    quorum: KeysetRow['members'],
  ): Promise<{ signature?: Uint8Array; problem?: string; exclude: string[]; unreachable: string[]; blamed: string[] }> {
    const curve = curveOfScheme(ks.row.scheme);
    const taken = await Promise.allSettled(quorum.map((m) => this.nonces.take(m.nodeId, curve)));
    const noNonces = quorum.filter((_, i) => taken[i]!.status === 'rejected').map((m) => m.nodeId);
    if (noNonces.length) {
      for (const id of noNonces) this.registry.markDown(id, 'nonce commitments unavailable');
      return { problem: `no nonce commitments from ${noNonces.join(', ')}`, exclude: [], unreachable: noNonces, blamed: [] };
    }
    const picked = taken.map((t) => (t as PromiseFulfilledResult<Awaited<ReturnType<NonceCache['take']>>>).value);
    const authorization = toBinary(
      SignAuthorizationSchema,
      create(SignAuthorizationSchema, {
        requestId,
        sessionId: randomUUID(),
        keysetId: ks.row.keysetId,
        scheme: schemeToProto(ks.row.scheme),
        digest,
        derivationPath: '',
        commitments: quorum.map((m, i) => ({ index: m.index, nodeId: m.nodeId, commitmentId: picked[i]!.id, hiding: picked[i]!.hiding, binding: picked[i]!.binding })),
        expiresAtMs: BigInt(Date.now() + AUTHORIZATION_TTL_MS),
      }),
    );
    const item = { authorization, coordinatorSignature: this.signAuthorization(authorization) };
    const results = await Promise.allSettled(quorum.map((m) => this.batcher.request(m.nodeId, item)));

    const exclude: string[] = [];
    const gone: string[] = [];
    const reasons: string[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      const nodeId = quorum[i]!.nodeId;
      reasons.push(`${nodeId}: ${errorMessage(r.reason)}`);
      if (!(r.reason instanceof ShareRefused) && isUnreachable(errorCode(r.reason))) {
        gone.push(nodeId);
        this.registry.markDown(nodeId, r.reason);
      } else {
        exclude.push(nodeId);
        this.nonces.forget(nodeId);
      }
    });
    if (reasons.length) return { problem: reasons.join('; '), exclude, unreachable: gone, blamed: [] };

    const commitments: SignerCommitment<unknown>[] = quorum.map((m, i) => ({ index: m.index, hiding: picked[i]!.hidingPoint, binding: picked[i]!.bindingPoint }));
    const shares = new Map<number, bigint>();
    const malformed: string[] = [];
    results.forEach((r, i) => {
      try {
        shares.set(quorum[i]!.index, ks.cs.group.scalarFromBytes((r as PromiseFulfilledResult<Uint8Array>).value));
      } catch {
        malformed.push(quorum[i]!.nodeId);
      }
    });
    if (malformed.length) return { problem: `malformed signature shares from ${malformed.join(', ')}`, exclude: malformed, unreachable: [], blamed: malformed };

    // aggregate verifies the signature once and, only if that fails, checks every share to name the cheater.
    try {
      const signature = aggregate(ks.cs, { groupPublicKey: ks.groupKey, commitments, shares, message: digest, verifyingShares: ks.verifyingShares });
      return { signature, exclude: [], unreachable: [], blamed: [] };
    } catch (e) {
      if (!(e instanceof ProtocolAbort)) throw e;
      const byIndex = new Map(quorum.map((m) => [m.index, m.nodeId]));
      const blamed = e.blame.map((i) => byIndex.get(i)).filter((id): id is string => id !== undefined);
      // Without blame nobody is excluded, so a retry picks a fresh quorum from the rotation.
      return { problem: e.message, exclude: blamed, unreachable: [], blamed };
    }
  }

  private async blame(ks: LoadedKeyset, requestId: string, nodeIds: string[], reason: string): Promise<void> {
    this.log.warn({ requestId, keysetId: ks.row.keysetId, blamed: nodeIds }, 'node blamed for an invalid signature share');
    for (const id of nodeIds) this.quarantined.set(id, Date.now() + QUARANTINE_MS);
    await durably(this.log, 'record blame', () => this.db.tx(async (q) => {
      for (const nodeId of nodeIds) {
        await recordNodeFault(q, { nodeId, keysetId: ks.row.keysetId, requestId, reason });
        await appendAudit(q, { actor: 'coordinator', action: 'node.blamed', subject: nodeId, details: { keysetId: ks.row.keysetId, requestId, reason } });
      }
    }));
  }

  /**
   * Healthy members not excluded, leaving out quarantined nodes when the rest still make a quorum;
   * the quorum rotates across requests so every node does its share.
   */
  private pickQuorum(ks: LoadedKeyset, excluded: Set<string>): KeysetRow['members'] | undefined {
    const healthy = ks.row.members.filter((m) => !excluded.has(m.nodeId) && this.registry.nodes.get(m.nodeId)?.up);
    const t = ks.row.threshold;
    const now = Date.now();
    const trusted = healthy.filter((m) => (this.quarantined.get(m.nodeId) ?? 0) < now);
    const candidates = trusted.length >= t ? trusted : healthy;
    if (candidates.length < t) return undefined;
    const combos = combinations(candidates.length, t);
    const pick = combos[ks.turn++ % combos.length]!;
    return pick.map((i) => candidates[i]!);
  }

  async loadKeyset(keysetId: string): Promise<LoadedKeyset> {
    const cached = this.keysets.get(keysetId);
    if (cached) return cached;
    if (!/^[0-9a-f-]{36}$/i.test(keysetId)) throw new RpcError(status.INVALID_ARGUMENT, `keyset id ${JSON.stringify(keysetId.slice(0, 64))} is not a UUID`);
    const row = await getKeyset(this.db, keysetId);
    if (!row) throw new RpcError(status.NOT_FOUND, `keyset ${keysetId} not found`);
    if (row.scheme === 'ecdsa') throw new RpcError(status.UNIMPLEMENTED, 'ecdsa signing is not available yet');
    const cs = ciphersuite(row.scheme as FrostScheme);
    const loaded: LoadedKeyset = {
      row,
      cs,
      groupKey: cs.group.decode(row.publicKey),
      verifyingShares: new Map(row.members.map((m) => [m.index, cs.group.decode(m.verifyingShare)])),
      turn: 0,
    };
    this.keysets.set(keysetId, loaded);
    return loaded;
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

