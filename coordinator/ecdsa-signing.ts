/**
 * Making a threshold ECDSA (DKLs23) signature: a presignature for the chosen quorum, taken from the
 * coordinator's pool (presign-pool.ts, refilled in the background after signatures) or, when the
 * pool has none for that quorum, made on the request path by a presigning session (runSession; each
 * node seals its presignature in its single-use pool and reports the id and the public part); then
 * one SignShares round with a coordinator-signed authorization naming every signer's presignature
 * and the digest, then combine (which verifies).
 *
 * A presigning abort for a failed OT or multiplication check bans the blamed node for the keyset
 * (PROTOCOLS.md: retrying with it would let it run a selective-abort attack on the key).
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { combine } from '../crypto/ecdsa/sign.js';
import { NO_TWEAK } from '../crypto/hd/derive.js';
import type { DerivedKeyset } from '../crypto/hd/keyset.js';
import { ProtocolAbort } from '../crypto/protocol.js';
import { bytesEqual } from '../crypto/transcript.js';
import { instanceSessionId, MAX_PROTOCOL_BATCH } from '../crypto/protocol-batch.js';
import { schemeToProto } from '../proto/convert.js';
import { SignAuthorizationSchema, type PresignResult, type RunRoundResponse } from '../proto/gen/custody/v1/node_pb.js';
import type { Logger } from '../runtime/log.js';
import type { NodeRegistry } from './node-registry.js';
import type { AttemptResult, Quorum, QuorumKeyset, Quorums, SignOutcome } from './quorum.js';
import { NodeBatcher } from './node-batcher.js';
import { DEFAULT_POOL, PresignPool, setKey, type PoolOptions, type ReadyPresignature } from './presign-pool.js';
import { runSession, SessionFailed } from './session-driver.js';
import type { ShareBatcher } from './share-batcher.js';
import type { PolicyContext } from './signers.js';
import { AUTHORIZATION_TTL_MS } from './signing.js';
import type { KeysetRow } from './store/repo.js';

/** Abort reasons that ban the blamed counterparty for the keyset (crypto/protocol.ts). */
const BAN_REASONS = new Set(['ot-check-failed', 'mul-check-failed']);

export interface EcdsaKeyset extends QuorumKeyset {
  row: KeysetRow;
  /** The refill's own rotation, so background presigning does not shift request quorums. */
  refillTurn: number;
}

type Presigned = { ok: ReadyPresignature[] } | { fail: AttemptResult };

/** A request that found no pooled presignature: its keyset, quorum and key (root or wallet path). */
interface OnPath {
  ks: EcdsaKeyset;
  quorum: Quorum;
  key: DerivedKeyset;
}

/** A node's presignatures from a session's output, in instance order (undefined: not a presign output). */
function presignOutputs(o: RunRoundResponse['output'] | undefined, count: number): PresignResult[] | undefined {
  if (count === 1) return o?.case === 'presign' ? [o.value] : undefined;
  return o?.case === 'presignBatch' && o.value.presignatures.length === count ? o.value.presignatures : undefined;
}

/**
 * Request-path presigning sessions in flight per keyset, quorum and key. Under load, requests that
 * find the pool dry wait for one of these to end and then share the next session: a saturated
 * cluster presigns in batches instead of one session per request (two measured better than one).
 */
const ON_PATH_IN_FLIGHT = 2;

export class EcdsaSigning {
  private readonly keysets = new Map<string, EcdsaKeyset>();
  readonly pool: PresignPool;
  /**
   * Requests that found no pooled presignature, for the same keyset, quorum and key, share one
   * presigning session that makes one presignature each (keyed by quorum, not by node): those of
   * one event-loop turn, and those that arrive while ON_PATH_IN_FLIGHT sessions run. Under load the
   * pool runs dry, and each request would otherwise pay a session's relaying, envelopes and sealing
   * alone.
   */
  private readonly onPath = new NodeBatcher<OnPath, { ok: ReadyPresignature } | { fail: AttemptResult }>(
    async (_key, items) => {
      const { ks, quorum, key } = items[0]!;
      const r = await this.presign(ks, quorum, key, items.length);
      return items.map((_, i) => ({ status: 'fulfilled', value: 'ok' in r ? { ok: r.ok[i]! } : r }));
    },
    MAX_PROTOCOL_BATCH,
    ON_PATH_IN_FLIGHT,
  );

  constructor(
    private readonly registry: NodeRegistry,
    private readonly quorums: Quorums,
    private readonly batcher: ShareBatcher,
    private readonly log: Logger,
    poolOptions: PoolOptions = DEFAULT_POOL,
  ) {
    this.pool = new PresignPool(log, poolOptions);
  }

  /** Forgets a keyset (its shares were refreshed): the next use loads the new row, and its pool is dropped. */
  forget(keysetId: string): void {
    this.keysets.delete(keysetId);
    this.pool.dropKeyset(keysetId);
  }

  load(row: KeysetRow): EcdsaKeyset {
    let ks = this.keysets.get(row.keysetId);
    if (!ks) this.keysets.set(row.keysetId, (ks = { row, turn: 0, refillTurn: 0 }));
    return ks;
  }

  /** Starts filling the pools of these keysets (at coordinator start: the first signatures should not wait). */
  prefill(rows: readonly KeysetRow[]): void {
    for (const row of rows) {
      const ks = this.load(row);
      this.pool.maybeRefill(row.keysetId, (count) => this.produce(ks, count));
    }
  }

  async sign(ks: EcdsaKeyset, requestId: string, digest: Uint8Array, key: DerivedKeyset, policy: PolicyContext): Promise<SignOutcome> {
    try {
      return await this.quorums.run(ks, requestId, (quorum) => this.attempt(ks, requestId, digest, key, policy, quorum));
    } finally {
      // The pool starts filling after a keyset's first signature and is topped up as it drains.
      this.pool.maybeRefill(ks.row.keysetId, (count) => this.produce(ks, count));
    }
  }

  /** `count` background presignatures (one session) over the next quorum of the refill rotation; none to stop. */
  private async produce(ks: EcdsaKeyset, count: number): Promise<ReadyPresignature[]> {
    const view = { row: ks.row, turn: ks.refillTurn };
    const quorum = this.quorums.pick(view, new Set());
    ks.refillTurn = view.turn;
    if (!quorum) return [];
    const r = await this.presign(ks, quorum, this.root(ks), count);
    if ('ok' in r) return r.ok;
    const f = r.fail;
    this.log.warn({ keysetId: ks.row.keysetId, problem: f.problem }, 'background presigning failed');
    if (f.banned?.length) {
      await this.quorums.ban(ks, null, f.banned, f.problem!);
      this.pool.dropInvolving(ks.row.keysetId, f.banned);
    } else if (f.blamed.length) await this.quorums.blame(ks, null, f.blamed, f.problem!);
    return [];
  }

  /** The pool holds root-key presignatures only (see attempt). */
  private root(ks: EcdsaKeyset): DerivedKeyset {
    return { path: '', tweak: NO_TWEAK, groupPublicKey: ks.row.publicKey, publicKey: ks.row.publicKey };
  }

  /**
   * A presigning session over the quorum for one key (the root or a derived wallet key) that makes
   * `count` presignatures in lockstep: for each, every node's presignature id and the shared public part.
   */
  private async presign(ks: EcdsaKeyset, quorum: Quorum, key: DerivedKeyset, count = 1): Promise<Presigned> {
    const keysetId = ks.row.keysetId;
    const participants = quorum.map((m) => ({ index: m.index, nodeId: m.nodeId }));
    let session: Awaited<ReturnType<typeof runSession>>;
    try {
      session = await runSession(this.registry, participants, {
        case: 'presign',
        value: { keysetId, signers: participants.map((p) => p.index), derivationPath: key.path, keysetEpoch: ks.row.epoch, count },
      });
    } catch (e) {
      if (!(e instanceof SessionFailed)) throw e;
      for (const id of e.unreachable) this.registry.markDown(id, e);
      const banned = e.reason !== undefined && BAN_REASONS.has(e.reason) ? e.blamed : [];
      // Without blame nobody is excluded, so a retry picks a fresh quorum from the rotation.
      return { fail: { problem: `presigning failed: ${e.message}`, exclude: e.blamed, unreachable: e.unreachable, blamed: e.blamed, banned } };
    }
    // Per node, its presignatures in instance order.
    const outputs: PresignResult[][] = [];
    for (const p of participants) {
      const out = session.outputs.get(p.nodeId);
      const o = presignOutputs(out, count);
      if (!o) {
        // A node from before presignature batches ignores the count and makes one.
        const problem = out?.case === 'presign' ? `node ${p.nodeId} made one presignature where ${count} were asked (upgrade it: it predates presignature batches)` : `node ${p.nodeId} returned no presignature`;
        return { fail: { problem, exclude: [p.nodeId], unreachable: [], blamed: [] } };
      }
      outputs.push(o);
    }
    // Nothing to commit: the presignatures are sealed, and nodes forget a presign session once it
    // completes (no FinishSession call).
    const agree = (a: PresignResult, b: PresignResult) => bytesEqual(a.sid, b.sid) && bytesEqual(a.bigR, b.bigR) && bytesEqual(a.publicKey, b.publicKey);
    const ready: ReadyPresignature[] = [];
    for (let i = 0; i < count; i++) {
      const first = outputs[0]![i]!;
      if (outputs.some((o) => !agree(o[i]!, first)) || !bytesEqual(first.publicKey, key.groupPublicKey)) {
        return { fail: { problem: 'presigning aborted: nodes disagree on the presignature', exclude: [], unreachable: [], blamed: [] } };
      }
      ready.push({
        signers: participants.map((p, n) => ({ ...p, presignatureId: outputs[n]![i]!.presignatureId })),
        sessionId: instanceSessionId(session.sessionId, count, i),
        // Copies: a pooled entry waits seconds for its request, and a view would keep the whole
        // RunRounds response it was decoded from (other sessions' round messages) alive with it.
        sid: first.sid.slice(),
        bigR: first.bigR.slice(),
      });
    }
    return { ok: ready };
  }

  private async attempt(ks: EcdsaKeyset, requestId: string, digest: Uint8Array, key: DerivedKeyset, policy: PolicyContext, quorum: Quorum): Promise<AttemptResult> {
    const keysetId = ks.row.keysetId;
    const started = Date.now();
    // Presignatures made with a node since banned are never used (the ban may come from a request).
    this.pool.dropInvolving(keysetId, ks.row.members.map((m) => m.nodeId).filter((id) => this.quorums.isBanned(keysetId, id)));
    // Only an exact match for the quorum chosen (healthy, unbanned, rotating): quorum choice stays
    // in one place, and the pool is filled from the same rotation so matches are the rule.
    // Wallet keys presign on the request path: a presignature binds its derivation path before any
    // nonce exists (PROTOCOLS.md), and one pool per wallet would not pay off.
    let pre = key.path === '' ? this.pool.take(keysetId, quorum.map((m) => m.nodeId)) : undefined;
    const presigned = pre !== undefined;
    if (!pre) {
      const r = await this.onPath.request(`${keysetId}|${setKey(quorum.map((m) => m.nodeId))}|${key.path}`, { ks, quorum, key });
      if ('fail' in r) return r.fail;
      pre = r.ok;
    }
    const presignMs = Date.now() - started;

    const authorization = toBinary(
      SignAuthorizationSchema,
      create(SignAuthorizationSchema, {
        requestId,
        sessionId: pre.sessionId,
        keysetId,
        scheme: schemeToProto('ecdsa'),
        digest,
        derivationPath: key.path,
        ecdsaSigners: pre.signers,
        presignSid: pre.sid,
        expiresAtMs: BigInt(Date.now() + AUTHORIZATION_TTL_MS),
        keysetEpoch: ks.row.epoch,
        ...policy,
      }),
    );
    const got = await this.batcher.collect(pre.signers.map((s) => s.nodeId), { authorization });
    // A refused pooled presignature (e.g. already consumed) is gone either way: the node sits out and we retry.
    if ('problem' in got) return { problem: got.problem, exclude: got.refused, unreachable: got.unreachable, blamed: [], presigned };

    const shares = new Map(pre.signers.map((s, i) => [s.index, got.shares[i]!.share]));
    try {
      const sig = combine({ sid: pre.sid, signers: pre.signers.map((s) => s.index), R: pre.bigR, publicKey: key.groupPublicKey }, digest, shares);
      const signature = new Uint8Array(65);
      signature.set(sig.signature, 0);
      signature[64] = sig.recovery;
      this.log.debug({ requestId, keysetId, presigned, poolLevel: this.pool.level(keysetId), presignMs, ms: Date.now() - started }, 'ecdsa signature');
      return { signature, exclude: [], unreachable: [], blamed: [], presigned };
    } catch (e) {
      if (!(e instanceof ProtocolAbort)) throw e;
      const byIndex = new Map(pre.signers.map((s) => [s.index, s.nodeId]));
      const blamed = e.blame.map((i) => byIndex.get(i)).filter((id): id is string => id !== undefined);
      return { problem: e.message, exclude: blamed, unreachable: [], blamed, presigned };
    }
  }
}
