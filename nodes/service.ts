/** The node API (custody.v1.NodeService): what the coordinator may ask of a signer node. */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { ecdsaKeygen, type EcdsaKeygenParams, type EcdsaKeyShare } from '../crypto/ecdsa/keygen.js';
import { derivedKey } from './derivation.js';
import { encodePresignature, type PresignParams, type Presignature } from '../crypto/ecdsa/presign.js';
import { instanceSessionId, MAX_PROTOCOL_BATCH } from '../crypto/protocol-batch.js';
import type { ProtocolAbort } from '../crypto/protocol.js';
import { frostDkg, type DkgOutput, type DkgParams as CryptoDkgParams } from '../crypto/frost/dkg.js';
import { isScheme, type Scheme } from '../crypto/schemes.js';
import { curveFromProto, schemeFromProto } from '../proto/convert.js';
import {
  NodeService,
  PresignBatchResultSchema,
  PresignResultSchema,
  RunRoundResponseSchema,
  RunRoundResultSchema,
  SignShareResultSchema,
  type DkgParams,
  type DkgResult,
  type EcdsaPresignParams,
  type PresignBatchResult,
  type PresignResult,
  type RunRoundRequest,
} from '../proto/gen/custody/v1/node_pb.js';
import { RpcError, type ServiceImpl } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import type { IdentityKeys } from '../crypto/peer-box.js';
import type { KeyShares, KeyShare } from './keyshares.js';
import type { PeerBans } from './peer-bans.js';
import type { PolicyGuard } from './policy-guard.js';
import type { RosterSource } from './roster.js';
import type { SessionKind, Sessions } from './sessions.js';
import { presigPool } from './ecdsa-signer.js';
import { checkParticipants, keyShare, pendingKind, startKeyImport, startRefresh, startRepair, startSetupRerun } from './key-import.js';
import { startReshare } from './reshare.js';
import { exportRecoveryShare } from './recovery-export.js';
import { checkEpoch, type Fault, type FrostSigner } from './signer.js';
import type { NonceStore } from './store/nonce-store.js';
import { vaultRpcError, vaultSigningRefusal } from './vault-errors.js';
import { nextLoopTurn } from '../runtime/loop-turn.js';
import { presignProtocol } from './presign-protocol.js';
import { keyRef, type PresignThread } from './presign-thread.js';

export interface NodeContext {
  nodeId: string;
  version: string;
  identity: IdentityKeys;
  roster: RosterSource;
  sessions: Sessions;
  shares: KeyShares;
  bans: PeerBans;
  policy: PolicyGuard;
  nonces: NonceStore;
  signer: FrostSigner;
  shareStoreKind: string;
  /** Vault sealer only: rewraps every sealed record to the newest Transit key version. */
  rewrap?: () => Promise<{ transitKey: string; latestVersion: number; records: number; oldestVersion: number }>;
  /** Vault sealer only: rejects once Vault refuses this node's credentials (checked before signing). */
  checkVaultCredentials?: () => Promise<void>;
  /** Set by the node's own operator (CUSTODY_ALLOW_RECOVERY_EXPORT=1); off by default. */
  allowRecoveryExport?: boolean;
  fault?: Fault;
  /** Presigning's own thread (nodes/presign-thread.ts); without it presigning runs on this one. */
  presign?: PresignThread;
  log: Logger;
}

const MAX_RESERVE = 4096;
const MAX_SIGN_BATCH = 1024;
const MAX_ROUND_BATCH = 1024;

/** FROST DKG: the share of this node, pending until the coordinator stored the keyset. */
function dkgKind(ctx: NodeContext, params: DkgParams, scheme: Scheme, selfIndex: number): SessionKind<CryptoDkgParams, unknown, DkgOutput, DkgResult> {
  return pendingKind<CryptoDkgParams, DkgOutput>(ctx, frostDkg as SessionKind<CryptoDkgParams, unknown, DkgOutput, DkgResult>['protocol'], (out) => ({
    keysetId: params.keysetId,
    scheme,
    threshold: params.threshold,
    index: selfIndex,
    participants: params.participants.map((p) => ({ index: p.index, nodeId: p.nodeId })),
    secretShare: out.secretShare,
    groupPublicKey: out.groupPublicKey,
    verifyingShares: out.verifyingShares,
    chainCode: out.chainCode,
  }));
}

/** ECDSA keygen: the same public result as the FROST DKG, so the coordinator's agreement checks apply unchanged. */
function ecdsaKeygenKind(ctx: NodeContext, params: DkgParams): SessionKind<EcdsaKeygenParams, unknown, EcdsaKeyShare, DkgResult> {
  return pendingKind<EcdsaKeygenParams, EcdsaKeyShare>(ctx, ecdsaKeygen as SessionKind<EcdsaKeygenParams, unknown, EcdsaKeyShare, DkgResult>['protocol'], (out) =>
    keyShare(params.keysetId, 'ecdsa', params.participants.map((p) => ({ index: p.index, nodeId: p.nodeId })), out),
  );
}

/** Seals presignatures into the single-use pool (one record for the lot) and returns their public parts. */
async function sealPresignatures(ctx: NodeContext, keysetId: string, outs: readonly Presignature[]): Promise<PresignResult[]> {
  const secrets = outs.map(encodePresignature);
  let ids: string[];
  try {
    ids = await ctx.nonces.add(presigPool(keysetId), secrets);
  } finally {
    for (const s of secrets) s.fill(0);
  }
  return outs.map((out, i) => create(PresignResultSchema, { presignatureId: ids[i]!, sid: out.sid, bigR: out.R, publicKey: out.publicKey }));
}

/**
 * DKLs23 presigning, one presignature per session or a batch of them in lockstep
 * (crypto/protocol-batch.ts: one message per peer and round for the whole batch). Presignatures
 * are sealed into the single-use pool as soon as they exist (before their public parts leave the
 * node); commit and abort have nothing left to do: an unused presignature is harmless and the pool
 * caps its size.
 */
function presignKind(ctx: NodeContext, key: KeyShare & { ecdsa: EcdsaKeyShare }, count: number): SessionKind<unknown, unknown, unknown, PresignResult | PresignBatchResult> {
  const keysetId = key.keysetId;
  const common = {
    protocol: presignProtocol(count, ctx.fault),
    ...(ctx.presign ? { runner: ctx.presign.runner(keyRef(keysetId, key.epoch ?? 0, key.ecdsa), key.ecdsa, count) } : {}),
    commit: async () => undefined,
    abort: async () => undefined,
    releaseOnCompletion: true,
    async onProtocolAbort(e: ProtocolAbort) {
      if ((e.reason === 'ot-check-failed' || e.reason === 'mul-check-failed') && e.blame.length) {
        await ctx.bans.add(key.keysetId, key.ecdsa.transcriptHash, e.blame);
        ctx.log.warn({ keysetId: key.keysetId, peers: e.blame, reason: e.reason }, 'peer failed a DKLs23 check: this node will not presign with it until the setup is re-run');
      }
    },
  };
  if (count === 1) {
    return { ...common, complete: async (_sessionId, out) => (await sealPresignatures(ctx, keysetId, [out as Presignature]))[0]! };
  }
  return {
    ...common,
    complete: async (_sessionId, outs) => create(PresignBatchResultSchema, { presignatures: await sealPresignatures(ctx, keysetId, outs as Presignature[]) }),
  };
}

function startPresign(ctx: NodeContext, p: EcdsaPresignParams): { key: KeyShare & { ecdsa: EcdsaKeyShare }; nodeIds: Map<number, string> } {
  const key = ctx.shares.get(p.keysetId);
  if (!key) throw new RpcError(status.NOT_FOUND, `unknown keyset ${p.keysetId}`);
  if (key.scheme !== 'ecdsa' || !key.ecdsa) throw new RpcError(status.INVALID_ARGUMENT, `keyset ${p.keysetId} is ${key.scheme}, not ecdsa`);
  const members = new Map(key.participants.map((x) => [x.index, x.nodeId]));
  const nodeIds = new Map<number, string>();
  for (const i of p.signers) {
    const id = members.get(i);
    if (!id || nodeIds.has(i)) throw new RpcError(status.INVALID_ARGUMENT, `signer ${i} is not a distinct member of keyset ${p.keysetId}`);
    nodeIds.set(i, id);
  }
  if (!nodeIds.has(key.index)) throw new RpcError(status.INVALID_ARGUMENT, `node ${ctx.nodeId} is not in the signing set`);
  if (nodeIds.size < key.threshold) throw new RpcError(status.INVALID_ARGUMENT, `${nodeIds.size} signers is below the threshold ${key.threshold}`);
  checkEpoch(ctx.nodeId, key, p.keysetEpoch);
  const banned = ctx.bans.banned(p.keysetId, key.ecdsa.transcriptHash).filter((i) => nodeIds.has(i));
  if (banned.length) {
    throw new RpcError(status.FAILED_PRECONDITION, `node ${ctx.nodeId} will not presign with ${banned.map((i) => nodeIds.get(i)).join(', ')} for keyset ${p.keysetId}: it failed a DKLs23 check; re-run the setup (custody keyset rerun-setup)`);
  }
  return { key: key as KeyShare & { ecdsa: EcdsaKeyShare }, nodeIds };
}

/** What RunRound answers: outgoing messages, and the node's output once its part is complete. */
type RoundAnswer = MessageInitShape<typeof RunRoundResponseSchema>;

/** One round of one session (RunRound, and each item of RunRounds). */
async function runRound(ctx: NodeContext, req: RunRoundRequest): Promise<RoundAnswer> {
  if (!req.sessionId || req.sessionId.length > 128) throw new RpcError(status.INVALID_ARGUMENT, 'session_id must be 1 to 128 characters');
  if (req.round === 0) {
    // Presigning is on the signing hot path: the roster file is looked at most once a second there
    // (as for SignShares). Key ceremonies read it fresh, so a node just added to it is seen.
    const roster = await (req.params.case === 'presign' ? ctx.roster.getRecent() : ctx.roster.get());
    if (!roster) throw new RpcError(status.FAILED_PRECONDITION, 'cluster roster not configured on this node');
    if (req.params.case === 'presign') {
      const { key, nodeIds } = startPresign(ctx, req.params.value);
      const peers = { sessionId: req.sessionId, selfIndex: key.index, selfNodeId: ctx.nodeId, nodeIds };
      // The tweak is bound into the presignature before any nonce is sampled (PROTOCOLS.md).
      const { tweak } = derivedKey(key, req.params.value.derivationPath);
      const count = req.params.value.count || 1;
      if (count > MAX_PROTOCOL_BATCH) throw new RpcError(status.INVALID_ARGUMENT, `a presign session makes 1 to ${MAX_PROTOCOL_BATCH} presignatures, not ${count}`);
      // Each session id is bound into its presignature's sid together with the keyset and signer set.
      const params = (sessionId: string): PresignParams => ({ key: key.ecdsa, signers: [...nodeIds.keys()], tweak: tweak.add, sessionId });
      const outgoing = await ctx.sessions.start(
        roster,
        peers,
        presignKind(ctx, key, count),
        count === 1 ? params(req.sessionId) : Array.from({ length: count }, (_, i) => params(instanceSessionId(req.sessionId, count, i))),
      );
      return { outgoing };
    }
    if (req.params.case === 'keyImport') return { outgoing: await startKeyImport(ctx, roster, req.sessionId, req.params.value) };
    if (req.params.case === 'setup') return { outgoing: await startSetupRerun(ctx, roster, req.sessionId, req.params.value) };
    if (req.params.case === 'refresh') return { outgoing: await startRefresh(ctx, roster, req.sessionId, req.params.value) };
    if (req.params.case === 'repair') return { outgoing: await startRepair(ctx, roster, req.sessionId, req.params.value) };
    if (req.params.case === 'reshare') return { outgoing: await startReshare(ctx, roster, req.sessionId, req.params.value) };
    if (req.params.case !== 'dkg') throw new RpcError(status.INVALID_ARGUMENT, 'round 0 needs session params');
    const p = req.params.value;
    const scheme = schemeFromProto(p.scheme);
    if (!scheme || !isScheme(scheme)) throw new RpcError(status.INVALID_ARGUMENT, 'DKG scheme must be ed25519, secp256k1, bip340 or ecdsa');
    if (ctx.shares.get(p.keysetId)) throw new RpcError(status.ALREADY_EXISTS, `keyset ${p.keysetId} already exists on this node`);
    const { nodeIds, self } = checkParticipants(ctx, roster, p.participants, p.threshold, 1);
    const peers = { sessionId: req.sessionId, selfIndex: self, selfNodeId: ctx.nodeId, nodeIds };
    if (scheme === 'ecdsa') {
      // Keygen for DKLs23: the FROST DKG on secp256k1 plus pairwise OT setups (seconds of CPU).
      const outgoing = await ctx.sessions.start(roster, peers, ecdsaKeygenKind(ctx, p), {
        sessionId: req.sessionId,
        self,
        participants: [...nodeIds.keys()].sort((a, b) => a - b),
        threshold: p.threshold,
      });
      return { outgoing };
    }
    const outgoing = await ctx.sessions.start(roster, peers, dkgKind(ctx, p, scheme, self), {
      scheme: scheme as CryptoDkgParams['scheme'],
      sessionId: req.sessionId,
      self,
      participants: [...nodeIds.keys()],
      threshold: p.threshold,
    });
    return { outgoing };
  }
  // Later rounds use the roster their session started with.
  const { outgoing, result } = await ctx.sessions.step(req.sessionId, req.round, req.incoming);
  if (result) {
    // The session kind decides the output type; tell the two result messages apart by their schema.
    const r = result as DkgResult | PresignResult | PresignBatchResult;
    if (r.$typeName === 'custody.v1.PresignResult') return { outgoing, output: { case: 'presign', value: r } };
    if (r.$typeName === 'custody.v1.PresignBatchResult') return { outgoing, output: { case: 'presignBatch', value: r } };
    return { outgoing, output: { case: 'dkg', value: r } };
  }
  return { outgoing };
}

export function nodeService(ctx: NodeContext): ServiceImpl<typeof NodeService> {
  return {
    async getNodeInfo() {
      return {
        nodeId: ctx.nodeId,
        pid: process.pid,
        version: ctx.version,
        encryptionKey: ctx.identity.encryptionPublic,
        signingKey: ctx.identity.signingPublic,
        keysets: ctx.shares.size,
        ed25519Nonces: ctx.nonces.count('ed25519'),
        secp256k1Nonces: ctx.nonces.count('secp256k1'),
        shareStore: ctx.shareStoreKind,
      };
    },

    runRound: (req) => runRound(ctx, req),

    async runRounds(req) {
      if (req.items.length === 0 || req.items.length > MAX_ROUND_BATCH) throw new RpcError(status.INVALID_ARGUMENT, `items must be 1 to ${MAX_ROUND_BATCH}`);
      const one = async (item: RunRoundRequest) => {
        try {
          return create(RunRoundResultSchema, { result: { case: 'response', value: create(RunRoundResponseSchema, await runRound(ctx, item)) } });
        } catch (e) {
          const err = e instanceof RpcError ? e : vaultRpcError(ctx.nodeId, e);
          if (!err) ctx.log.error({ err: e, sessionId: item.sessionId }, 'round failed');
          const error = err
            ? { code: err.code, message: err.message, blame: err.trailers?.['custody-blame'] ?? '', abortReason: err.trailers?.['custody-abort-reason'] ?? '' }
            : { code: status.INTERNAL, message: 'internal error' };
          return create(RunRoundResultSchema, { result: { case: 'error', value: error } });
        }
      };
      // A presign round is milliseconds of synchronous arithmetic. Between items the node lets
      // waiting I/O in (two turns of the loop: past the poll phase), so a batch of background
      // presigning does not hold up a SignShares call that completes a signature now. Each item
      // still starts before the previous one's disk writes finish.
      const results = [];
      for (const [i, item] of req.items.entries()) {
        if (i > 0) await nextLoopTurn();
        results.push(one(item));
      }
      return { results: await Promise.all(results) };
    },

    async finishSession(req) {
      if (ctx.sessions.has(req.sessionId)) {
        await ctx.sessions.finish(req.sessionId, req.commit);
      } else if (req.commit) {
        // The node restarted between DKG and commit: the pending share is still sealed on disk.
        if (!(await ctx.shares.commit(req.sessionId))) throw new RpcError(status.NOT_FOUND, `unknown session ${req.sessionId}`);
      } else {
        await ctx.shares.abort(req.sessionId);
      }
      ctx.log.info({ sessionId: req.sessionId, commit: req.commit }, 'session finished');
      return {};
    },

    async reserveNonces(req) {
      const curve = curveFromProto(req.curve);
      if (!curve) throw new RpcError(status.INVALID_ARGUMENT, 'curve must be ed25519 or secp256k1');
      if (req.count < 1 || req.count > MAX_RESERVE) throw new RpcError(status.INVALID_ARGUMENT, `count must be 1 to ${MAX_RESERVE}`);
      const commitments = await ctx.signer.reserve(curve, req.count);
      return { commitments: commitments.map((c) => ({ commitmentId: c.id, hiding: c.hiding, binding: c.binding })) };
    },

    exportRecoveryShare: (req) => exportRecoveryShare(ctx, req),

    async rewrapSealed() {
      if (!ctx.rewrap) throw new RpcError(status.FAILED_PRECONDITION, `${ctx.nodeId} seals with the ${ctx.shareStoreKind} keystore, not Vault: nothing to rewrap`);
      const r = await ctx.rewrap();
      ctx.log.info(r, 'sealed records rewrapped');
      return r;
    },

    async setPolicy(req) {
      if (!req.policy) throw new RpcError(status.INVALID_ARGUMENT, 'policy is required');
      const version = await ctx.policy.install(req.policy);
      ctx.log.info({ version }, 'policy installed');
      return { version };
    },

    async signShares(req) {
      if (req.items.length === 0 || req.items.length > MAX_SIGN_BATCH) throw new RpcError(status.INVALID_ARGUMENT, `items must be 1 to ${MAX_SIGN_BATCH}`);
      const refused = await vaultSigningRefusal(ctx.nodeId, ctx.checkVaultCredentials, req.items.length, ctx.log);
      if (refused) return refused;
      const batchSigned = await ctx.signer.batchSigned(
        req.items.map((i) => i.authorization),
        req.batchSignature,
      );
      const results = await Promise.all(
        req.items.map(async (item) => {
          try {
            const { share, groupCommitment } = await ctx.signer.signItem(item, batchSigned);
            return create(SignShareResultSchema, { result: { case: 'share', value: share }, ...(groupCommitment ? { groupCommitment } : {}) });
          } catch (e) {
            if (!(e instanceof RpcError)) ctx.log.error({ err: e }, 'sign item failed');
            const code = e instanceof RpcError ? e.code : status.INTERNAL;
            const message = e instanceof RpcError ? e.message : 'internal error';
            return create(SignShareResultSchema, { result: { case: 'error', value: { code, message } } });
          }
        }),
      );
      return { results };
    },
  };
}
