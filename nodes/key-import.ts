/**
 * Sessions that give a node a share without a DKG: the import of an operator-dealt key, and the
 * re-run of an ecdsa keyset's DKLs23 pairwise setup on the shares it already has. Both end like a
 * DKG: the share is sealed as pending, reported as a DkgResult, and made active by FinishSession.
 */
import { create } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { checkDealtShare, dealtVerifyingShares, decodeCommitments } from '../crypto/dealer.js';
import { ecdsaSetup, type EcdsaSetupParams as CryptoSetupParams } from '../crypto/ecdsa/setup.js';
import type { EcdsaKeyShare } from '../crypto/ecdsa/keygen.js';
import { groupFor, InvalidEncoding } from '../crypto/group/index.js';
import { importShare, type ImportedShare, type ImportParams } from '../crypto/import.js';
import { openFromPeer, PeerBoxError } from '../crypto/peer-box.js';
import { curveOfScheme, isScheme, type Scheme } from '../crypto/schemes.js';
import { schemeFromProto } from '../proto/convert.js';
import { DkgResultSchema, type DkgResult, type EcdsaSetupParams, type KeyImportParams, type PeerMessage, type RefreshParams, type RepairParams } from '../proto/gen/custody/v1/node_pb.js';
import { shareRefresh, type RefreshOutput, type RefreshParams as CryptoRefreshParams } from '../crypto/refresh.js';
import type { ThresholdShare } from '../crypto/shamir.js';
import { shareRepair, type RepairOutput, type RepairParams as RepairParamsCrypto } from '../crypto/repair.js';
import { RpcError } from '../runtime/grpc.js';
import type { KeyShare } from './keyshares.js';
import type { Roster } from './roster.js';
import type { NodeContext } from './service.js';
import type { SessionKind } from './sessions.js';

/** Who sealed the import boxes (crypto/peer-box.ts context). */
export const IMPORT_DEALER = 'import-dealer';

type Participants = { index: number; nodeId: string }[];

/**
 * A session that gives this node a share (DKG, keygen, import, setup, refresh): it seals the share
 * as pending and reports the public result every node must agree on; FinishSession commits it.
 */
export function pendingKind<P, O extends { transcriptHash: Uint8Array }>(
  ctx: NodeContext,
  protocol: SessionKind<P, unknown, O, DkgResult>['protocol'],
  toShare: (out: O) => KeyShare,
): SessionKind<P, unknown, O, DkgResult> {
  return {
    protocol,
    async complete(sessionId, out) {
      const share = toShare(out);
      await ctx.shares.putPending(sessionId, share);
      const indices = share.participants.map((p) => p.index).sort((a, b) => a - b);
      return create(DkgResultSchema, {
        publicKey: share.groupPublicKey,
        verifyingShares: indices.map((i) => share.verifyingShares.get(i)!),
        chainCode: share.chainCode,
        transcriptHash: out.transcriptHash,
      });
    },
    commit: async (sessionId) => {
      if (!(await ctx.shares.commit(sessionId))) throw new RpcError(status.NOT_FOUND, `no pending output for session ${sessionId}`);
    },
    abort: (sessionId) => ctx.shares.abort(sessionId),
  };
}

/** The node's record of a share from a protocol output (an ecdsa output is kept whole, with its setups). */
export function keyShare(keysetId: string, scheme: Scheme, participants: Participants, out: ThresholdShare): KeyShare {
  return {
    keysetId,
    scheme,
    threshold: out.threshold,
    index: out.index,
    participants,
    secretShare: out.secretShare,
    groupPublicKey: out.publicKey,
    verifyingShares: new Map(out.verifyingShares),
    chainCode: out.chainCode,
    ...(scheme === 'ecdsa' && 'senderSetups' in out ? { ecdsa: out as EcdsaKeyShare } : {}),
  };
}

/** The participant list of a session's params: distinct indexes, nodes of this node's roster, this node among them. */
export function checkParticipants(ctx: NodeContext, roster: Roster, list: readonly { index: number; nodeId: string }[], threshold: number, minThreshold = 2) {
  const nodeIds = new Map<number, string>();
  for (const p of list) {
    if (p.index < 1 || nodeIds.has(p.index)) throw new RpcError(status.INVALID_ARGUMENT, 'participant indices must be distinct and >= 1');
    if (!roster.nodes.has(p.nodeId)) throw new RpcError(status.FAILED_PRECONDITION, `participant ${p.nodeId} is not in this node's roster`);
    nodeIds.set(p.index, p.nodeId);
  }
  const self = list.find((x) => x.nodeId === ctx.nodeId);
  if (!self) throw new RpcError(status.INVALID_ARGUMENT, `node ${ctx.nodeId} is not a participant`);
  if (threshold < minThreshold || threshold > list.length) throw new RpcError(status.INVALID_ARGUMENT, `threshold ${threshold} is not between ${minThreshold} and ${list.length}`);
  return { nodeIds, self: self.index, participants: list.map((p) => ({ index: p.index, nodeId: p.nodeId })) };
}

/** Round 0 of a key import: open this node's box, check it, start the agreement (or the ecdsa setup). */
export async function startKeyImport(ctx: NodeContext, roster: Roster, sessionId: string, p: KeyImportParams): Promise<PeerMessage[]> {
  const scheme = schemeFromProto(p.scheme);
  if (!scheme || !isScheme(scheme)) throw new RpcError(status.INVALID_ARGUMENT, 'import scheme must be ed25519, secp256k1, bip340 or ecdsa');
  if (ctx.shares.get(p.keysetId)) throw new RpcError(status.ALREADY_EXISTS, `keyset ${p.keysetId} already exists on this node`);
  const { nodeIds, self, participants } = checkParticipants(ctx, roster, p.participants, p.threshold);
  if (p.sealedShares.length !== participants.length) throw new RpcError(status.INVALID_ARGUMENT, `${p.sealedShares.length} sealed shares for ${participants.length} participants`);
  if (p.chainCode.length !== 32) throw new RpcError(status.INVALID_ARGUMENT, 'chain_code must be 32 bytes');
  if (p.commitments.length !== p.threshold) throw new RpcError(status.INVALID_ARGUMENT, `${p.commitments.length} commitments for threshold ${p.threshold}`);
  const g = groupFor(curveOfScheme(scheme));
  let commitments: unknown[];
  try {
    commitments = decodeCommitments(g, p.commitments);
  } catch (e) {
    if (e instanceof InvalidEncoding) throw new RpcError(status.INVALID_ARGUMENT, `invalid dealer commitment: ${e.message}`);
    throw e;
  }
  let share: bigint;
  try {
    const opened = openFromPeer({
      receiver: ctx.identity,
      senderPublic: p.dealerKey,
      context: { sessionId: p.keysetId, round: 0, from: IMPORT_DEALER, to: ctx.nodeId },
      box: p.sealedShares[participants.findIndex((x) => x.index === self)]!,
    });
    try {
      share = g.scalarFromBytes(opened);
    } finally {
      opened.fill(0);
    }
  } catch (e) {
    if (e instanceof PeerBoxError || e instanceof InvalidEncoding) throw new RpcError(status.INVALID_ARGUMENT, `this node's import box does not open: ${e.message}`);
    throw e;
  }
  const peers = { sessionId, selfIndex: self, selfNodeId: ctx.nodeId, nodeIds };
  const sorted = [...nodeIds.keys()].sort((a, b) => a - b);
  const agreement: ImportParams = { sessionId, self, participants: sorted, threshold: p.threshold, group: g, commitments, chainCode: p.chainCode, share };
  if (scheme !== 'ecdsa') {
    const kind = pendingKind<ImportParams, ImportedShare>(ctx, importShare as SessionKind<ImportParams, unknown, ImportedShare, DkgResult>['protocol'], (out) =>
      keyShare(p.keysetId, scheme, participants, out),
    );
    return ctx.sessions.start(roster, peers, kind, agreement);
  }
  // ecdsa: the Feldman check here, and agreement on the dealing from the setup's input binding.
  if (!checkDealtShare(g, commitments, self, share)) throw new RpcError(status.INVALID_ARGUMENT, "this node's imported share does not match the dealer's commitments");
  return startSetup(ctx, roster, peers, p.keysetId, participants, p.threshold, {
    secretShare: share,
    publicKey: g.encode(commitments[0]),
    verifyingShares: dealtVerifyingShares(g, commitments, sorted),
    chainCode: p.chainCode,
  });
}

function startSetup(
  ctx: NodeContext,
  roster: Roster,
  peers: { sessionId: string; selfIndex: number; selfNodeId: string; nodeIds: Map<number, string> },
  keysetId: string,
  participants: Participants,
  threshold: number,
  existing: CryptoSetupParams['existing'],
  epoch = 0,
): Promise<PeerMessage[]> {
  const kind = pendingKind<CryptoSetupParams, EcdsaKeyShare>(ctx, ecdsaSetup as SessionKind<CryptoSetupParams, unknown, EcdsaKeyShare, DkgResult>['protocol'], (out) => ({
    ...keyShare(keysetId, 'ecdsa', participants, out),
    ...(epoch ? { epoch } : {}),
  }));
  try {
    return ctx.sessions.start(roster, peers, kind, { sessionId: peers.sessionId, self: peers.selfIndex, participants: [...peers.nodeIds.keys()], threshold, existing });
  } catch (e) {
    // Bad local input (a share that does not match its verifying share): not the caller's to see in detail.
    if (e instanceof Error && !(e instanceof RpcError)) throw new RpcError(status.FAILED_PRECONDITION, `setup cannot start: ${e.message}`);
    throw e;
  }
}

/**
 * Round 0 of a setup re-run on an ecdsa keyset this node holds, or (refreshed_session) on the share
 * a refresh session left pending: a refreshed ecdsa share gets fresh OT setups before it is used.
 */
export async function startSetupRerun(ctx: NodeContext, roster: Roster, sessionId: string, p: EcdsaSetupParams): Promise<PeerMessage[]> {
  // A refresh leaves a pending share on every member, a repair only on the repaired one: the others
  // run the setup on their active share.
  const pending = p.refreshedSession ? await ctx.shares.pending(p.refreshedSession) : undefined;
  const key = pending ?? ctx.shares.get(p.keysetId);
  if (!key || key.keysetId !== p.keysetId) throw new RpcError(status.NOT_FOUND, `unknown keyset ${p.keysetId}`);
  if (key.scheme !== 'ecdsa') throw new RpcError(status.INVALID_ARGUMENT, `keyset ${p.keysetId} is ${key.scheme}; only ecdsa keysets have a pairwise setup`);
  const { nodeIds, self, participants } = checkParticipants(ctx, roster, key.participants, key.threshold);
  const peers = { sessionId, selfIndex: self, selfNodeId: ctx.nodeId, nodeIds };
  const existing = { secretShare: key.secretShare, publicKey: key.groupPublicKey, verifyingShares: key.verifyingShares, chainCode: key.chainCode };
  return startSetup(ctx, roster, peers, key.keysetId, participants, key.threshold, existing, key.epoch ?? 0);
}

/** Round 0 of a proactive refresh (crypto/refresh.ts): the pending output is the share of epoch + 1. */
export async function startRefresh(ctx: NodeContext, roster: Roster, sessionId: string, p: RefreshParams): Promise<PeerMessage[]> {
  const key = ctx.shares.get(p.keysetId);
  if (!key) throw new RpcError(status.NOT_FOUND, `unknown keyset ${p.keysetId}`);
  const epoch = key.epoch ?? 0;
  if (p.epoch !== epoch) throw new RpcError(status.FAILED_PRECONDITION, `keyset ${p.keysetId} is at epoch ${epoch} on ${ctx.nodeId}, the refresh names epoch ${p.epoch}`);
  const { nodeIds, self, participants } = checkParticipants(ctx, roster, key.participants, key.threshold);
  const peers = { sessionId, selfIndex: self, selfNodeId: ctx.nodeId, nodeIds };
  const kind = pendingKind<CryptoRefreshParams, RefreshOutput>(ctx, shareRefresh as SessionKind<CryptoRefreshParams, unknown, RefreshOutput, DkgResult>['protocol'], (out) => ({
    ...keyShare(key.keysetId, key.scheme, participants, { ...out, chainCode: key.chainCode }),
    // ecdsa: the new share in the DKLs23 record (never the old one); the setup that follows
    // (startSetupRerun with refreshed_session) replaces its OT setups before anything is committed.
    ...(key.ecdsa ? { ecdsa: { ...key.ecdsa, secretShare: out.secretShare, verifyingShares: out.verifyingShares, transcriptHash: out.transcriptHash } } : {}),
    epoch: epoch + 1,
  }));
  try {
    return await ctx.sessions.start(roster, peers, kind, {
      sessionId,
      self,
      participants: [...nodeIds.keys()].sort((a, b) => a - b),
      threshold: key.threshold,
      group: groupFor(curveOfScheme(key.scheme)),
      secretShare: key.secretShare,
      publicKey: key.groupPublicKey,
      verifyingShares: key.verifyingShares,
    });
  } catch (e) {
    if (e instanceof Error && !(e instanceof RpcError)) throw new RpcError(status.FAILED_PRECONDITION, `refresh cannot start: ${e.message}`);
    throw e;
  }
}


/**
 * Round 0 of a share repair (crypto/repair.ts). A helper checks the keyset data against its own
 * record; the lost member has none (its folder is gone) and takes the data from the parameters,
 * which the protocol checks against every helper's view and its rebuilt share.
 */
export async function startRepair(ctx: NodeContext, roster: Roster, sessionId: string, p: RepairParams): Promise<PeerMessage[]> {
  const scheme = schemeFromProto(p.scheme);
  if (!scheme || !isScheme(scheme)) throw new RpcError(status.INVALID_ARGUMENT, 'repair scheme is required');
  const { self, participants } = checkParticipants(ctx, roster, p.members, p.threshold);
  if (p.verifyingShares.length !== participants.length) throw new RpcError(status.INVALID_ARGUMENT, `${p.verifyingShares.length} verifying shares for ${participants.length} members`);
  const nodeIds = new Map(participants.filter((x) => x.index === p.lost || p.helpers.includes(x.index)).map((x) => [x.index, x.nodeId]));
  const verifyingShares = new Map(participants.map((x, i) => [x.index, p.verifyingShares[i]!]));
  const g = groupFor(curveOfScheme(scheme));
  const base = { sessionId, self, helpers: p.helpers, lost: p.lost, threshold: p.threshold, group: g, publicKey: p.publicKey, verifyingShares, chainCode: p.chainCode };
  let params: RepairParamsCrypto;
  if (self === p.lost) {
    if (ctx.shares.get(p.keysetId)) throw new RpcError(status.ALREADY_EXISTS, `${ctx.nodeId} still holds keyset ${p.keysetId}: nothing to repair`);
    params = base;
  } else {
    const key = ctx.shares.get(p.keysetId);
    if (!key) throw new RpcError(status.NOT_FOUND, `unknown keyset ${p.keysetId}`);
    const same =
      Buffer.from(key.groupPublicKey).equals(Buffer.from(p.publicKey)) &&
      Buffer.from(key.chainCode).equals(Buffer.from(p.chainCode)) &&
      (key.epoch ?? 0) === p.epoch &&
      participants.every((x, i) => key.verifyingShares.get(x.index) && Buffer.from(key.verifyingShares.get(x.index)!).equals(Buffer.from(p.verifyingShares[i]!)));
    if (!same) throw new RpcError(status.FAILED_PRECONDITION, `the repair describes keyset ${p.keysetId} differently from ${ctx.nodeId}'s record`);
    params = { ...base, secretShare: key.secretShare };
  }
  const peers = { sessionId, selfIndex: self, selfNodeId: ctx.nodeId, nodeIds };
  const kind: SessionKind<RepairParamsCrypto, unknown, RepairOutput, DkgResult> = {
    protocol: shareRepair as SessionKind<RepairParamsCrypto, unknown, RepairOutput, DkgResult>['protocol'],
    async complete(sid, out) {
      if (out.role === 'receiver') {
        await ctx.shares.putPending(sid, {
          keysetId: p.keysetId,
          scheme,
          threshold: p.threshold,
          index: self,
          participants,
          secretShare: out.secretShare,
          groupPublicKey: p.publicKey,
          verifyingShares,
          chainCode: p.chainCode,
          ...(p.epoch ? { epoch: p.epoch } : {}),
        });
      }
      return create(DkgResultSchema, { publicKey: p.publicKey, verifyingShares: p.verifyingShares, chainCode: p.chainCode, transcriptHash: out.transcriptHash });
    },
    // Helpers hold nothing new; the lost member's pending share becomes active.
    commit: async (sid) => {
      if (self === p.lost && !(await ctx.shares.commit(sid))) throw new RpcError(status.NOT_FOUND, `no pending output for session ${sid}`);
    },
    abort: (sid) => ctx.shares.abort(sid),
  };
  try {
    return await ctx.sessions.start(roster, peers, kind, params);
  } catch (e) {
    if (e instanceof Error && !(e instanceof RpcError)) throw new RpcError(status.FAILED_PRECONDITION, `repair cannot start: ${e.message}`);
    throw e;
  }
}
