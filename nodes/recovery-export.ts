/**
 * Disaster-recovery export of one share. Two controls the coordinator cannot get around: the node's
 * own operator must have enabled it on this node (CUSTODY_ALLOW_RECOVERY_EXPORT=1), so a recovery
 * needs at least t node operators to agree; and the share is sealed only to the recovery key in the
 * node's own roster, never to a key named in the request.
 */
import { status } from '@grpc/grpc-js';
import { groupFor } from '../crypto/group/index.js';
import { sealToPeer } from '../crypto/peer-box.js';
import { curveOfScheme } from '../crypto/schemes.js';
import type { ExportRecoveryShareRequest } from '../proto/gen/custody/v1/node_pb.js';
import { RpcError } from '../runtime/grpc.js';
import type { NodeContext } from './service.js';

/** The receiver name in the recovery box's context. */
export const RECOVERY_RECEIVER = 'recovery';

export async function exportRecoveryShare(ctx: NodeContext, req: ExportRecoveryShareRequest) {
  if (!ctx.allowRecoveryExport) {
    throw new RpcError(status.FAILED_PRECONDITION, `recovery export is disabled on ${ctx.nodeId}; its operator enables it by starting the node with CUSTODY_ALLOW_RECOVERY_EXPORT=1`);
  }
  const roster = await ctx.roster.get();
  if (!roster?.recoveryKey) {
    throw new RpcError(status.FAILED_PRECONDITION, `no recovery key in ${ctx.nodeId}'s roster; add "recovery": {"encryptionKey": HEX} (custody recovery keygen)`);
  }
  const key = ctx.shares.get(req.keysetId);
  if (!key) throw new RpcError(status.NOT_FOUND, `unknown keyset ${req.keysetId}`);
  const plaintext = groupFor(curveOfScheme(key.scheme)).scalarToBytes(key.secretShare);
  try {
    const sealedShare = sealToPeer({
      sender: ctx.identity,
      receiverPublic: roster.recoveryKey,
      context: { sessionId: key.keysetId, round: 0, from: ctx.nodeId, to: RECOVERY_RECEIVER },
      plaintext,
    });
    ctx.log.warn({ keysetId: key.keysetId }, 'share exported for disaster recovery (sealed to the roster recovery key)');
    return { index: key.index, sealedShare, recoveryKey: roster.recoveryKey };
  } finally {
    plaintext.fill(0);
  }
}
