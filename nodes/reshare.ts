/**
 * Round 0 of a reshare (crypto/reshare.ts) on a node: a dealer checks the keyset the coordinator
 * describes against its own record; a joining node takes it from the parameters (the protocol
 * checks that every dealer holds the same). A new member's output is its share of epoch + 1,
 * pending until FinishSession; a dealer that leaves gets a pending retirement, which deletes its
 * share at FinishSession.
 */
import { create } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { groupFor } from '../crypto/group/index.js';
import { shareReshare, type ReshareOutput, type ReshareParams as CryptoReshareParams } from '../crypto/reshare.js';
import { curveOfScheme, isScheme } from '../crypto/schemes.js';
import { schemeFromProto } from '../proto/convert.js';
import { DkgResultSchema, type DkgResult, type PeerMessage, type ReshareParams } from '../proto/gen/custody/v1/node_pb.js';
import { RpcError } from '../runtime/grpc.js';
import { checkParticipants, keyShare } from './key-import.js';
import type { Roster } from './roster.js';
import type { NodeContext } from './service.js';
import type { SessionKind } from './sessions.js';

const same = (a: Uint8Array, b: Uint8Array) => bytesToHex(a) === bytesToHex(b);

export async function startReshare(ctx: NodeContext, roster: Roster, sessionId: string, p: ReshareParams): Promise<PeerMessage[]> {
  const scheme = schemeFromProto(p.scheme);
  if (!scheme || !isScheme(scheme)) throw new RpcError(status.INVALID_ARGUMENT, 'reshare scheme is required');
  if (p.verifyingShares.length !== p.members.length) throw new RpcError(status.INVALID_ARGUMENT, `${p.verifyingShares.length} verifying shares for ${p.members.length} members`);
  const oldMembers = new Map(p.members.map((m) => [m.index, m.nodeId]));
  if (p.dealers.some((i) => !oldMembers.has(i))) throw new RpcError(status.INVALID_ARGUMENT, 'every dealer must be a current member');
  // One index per node: a member that stays keeps its index, a joining node takes an unused one.
  const indexOf = new Map(p.members.map((m) => [m.nodeId, m.index]));
  for (const m of p.newMembers) {
    const was = indexOf.get(m.nodeId);
    if (was === undefined ? oldMembers.has(m.index) : was !== m.index) {
      throw new RpcError(status.INVALID_ARGUMENT, `new member ${m.nodeId} at index ${m.index}: members keep their index and joining nodes take an unused one`);
    }
  }
  const union = new Map([...p.dealers.map((i): [number, string] => [i, oldMembers.get(i)!]), ...p.newMembers.map((m): [number, string] => [m.index, m.nodeId])]);
  const { nodeIds, self } = checkParticipants(ctx, roster, [...union].map(([index, nodeId]) => ({ index, nodeId })), p.newThreshold);
  const newMembers = p.newMembers.map((m) => ({ index: m.index, nodeId: m.nodeId }));
  const isDealer = p.dealers.includes(self);
  const key = ctx.shares.get(p.keysetId);
  const oldVerifying = new Map(p.members.map((m, i) => [m.index, p.verifyingShares[i]!]));

  if (isDealer) {
    if (!key) throw new RpcError(status.NOT_FOUND, `unknown keyset ${p.keysetId}`);
    const matches =
      key.scheme === scheme &&
      key.index === self &&
      key.threshold === p.threshold &&
      (key.epoch ?? 0) === p.epoch &&
      same(key.groupPublicKey, p.publicKey) &&
      same(key.chainCode, p.chainCode) &&
      key.participants.length === p.members.length &&
      p.members.every((m, i) => key.participants.some((x) => x.index === m.index && x.nodeId === m.nodeId) && key.verifyingShares.get(m.index) && same(key.verifyingShares.get(m.index)!, p.verifyingShares[i]!));
    if (!matches) throw new RpcError(status.FAILED_PRECONDITION, `the reshare describes keyset ${p.keysetId} differently from ${ctx.nodeId}'s record (epoch ${key.epoch ?? 0})`);
  } else if (key) {
    throw new RpcError(status.ALREADY_EXISTS, `${ctx.nodeId} already holds keyset ${p.keysetId}; a member that stays must deal`);
  }

  const kind: SessionKind<CryptoReshareParams, unknown, ReshareOutput, DkgResult> = {
    protocol: shareReshare as SessionKind<CryptoReshareParams, unknown, ReshareOutput, DkgResult>['protocol'],
    async complete(sid, out) {
      if (out.secretShare !== undefined) {
        const share = keyShare(p.keysetId, scheme, newMembers, { ...out, index: self, secretShare: out.secretShare, chainCode: p.chainCode });
        // ecdsa: no DKLs23 part yet; the setup that follows (refreshed_session = this session) adds it.
        await ctx.shares.putPending(sid, { ...share, epoch: p.epoch + 1 });
      } else {
        await ctx.shares.putRetiring(sid, p.keysetId);
      }
      return create(DkgResultSchema, {
        publicKey: out.publicKey,
        verifyingShares: out.participants.map((m) => out.verifyingShares.get(m)!),
        chainCode: p.chainCode,
        transcriptHash: out.transcriptHash,
      });
    },
    commit: async (sid) => {
      if (!(await ctx.shares.commit(sid))) throw new RpcError(status.NOT_FOUND, `no pending output for session ${sid}`);
    },
    abort: (sid) => ctx.shares.abort(sid),
  };
  const peers = { sessionId, selfIndex: self, selfNodeId: ctx.nodeId, nodeIds };
  try {
    return await ctx.sessions.start(roster, peers, kind, {
      sessionId,
      self,
      group: groupFor(curveOfScheme(scheme)),
      publicKey: p.publicKey,
      chainCode: p.chainCode,
      epoch: p.epoch,
      oldThreshold: p.threshold,
      oldVerifyingShares: oldVerifying,
      dealers: p.dealers,
      newThreshold: p.newThreshold,
      newMembers: newMembers.map((m) => m.index),
      ...(isDealer ? { secretShare: key!.secretShare } : {}),
    });
  } catch (e) {
    if (e instanceof Error && !(e instanceof RpcError)) throw new RpcError(status.FAILED_PRECONDITION, `reshare cannot start: ${e.message}`);
    throw e;
  }
}
