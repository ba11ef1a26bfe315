/**
 * Repairing a node that lost its data folder: for every keyset it is a member of, the threshold
 * of other members rebuild its share (crypto/repair.ts) without revealing theirs; an ecdsa keyset
 * then re-runs its pairwise setup on every member (the node lost its OT setups too). The repaired
 * node must be running again with its new identity keys in every node's roster.
 */
import { status } from '@grpc/grpc-js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { schemeToProto } from '../proto/convert.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { agreedResult, commitEverywhere, requireUp } from './keysets.js';
import type { NodeRegistry } from './node-registry.js';
import { finishAll } from './session-driver.js';
import { appendAudit } from './store/audit.js';
import type { Db } from './store/db.js';
import { getKeyset, type KeysetRow } from './store/repo.js';

export async function repairNode(db: Db, registry: NodeRegistry, log: Logger, nodeId: string, actor: string): Promise<string[]> {
  if (!registry.nodes.has(nodeId)) throw new RpcError(status.INVALID_ARGUMENT, `unknown node ${nodeId}`);
  const rows = await db.query<{ keyset_id: string }>('SELECT keyset_id FROM keyset_members WHERE node_id = $1 ORDER BY keyset_id', [nodeId]);
  const repaired: string[] = [];
  for (const { keyset_id } of rows) {
    const row = (await getKeyset(db, keyset_id))!;
    await repairKeyset(registry, row, nodeId);
    repaired.push(keyset_id);
    log.info({ keysetId: keyset_id, nodeId }, 'share repaired');
  }
  await db.tx((q) => appendAudit(q, { actor, action: 'node.repaired', subject: nodeId, details: { keysets: repaired } }));
  return repaired;
}

async function repairKeyset(registry: NodeRegistry, row: KeysetRow, nodeId: string): Promise<void> {
  const lost = row.members.find((m) => m.nodeId === nodeId)!;
  const others = row.members.filter((m) => m.nodeId !== nodeId);
  const marked = others.filter((m) => !registry.nodes.get(m.nodeId)?.up).map((m) => m.nodeId);
  const back = await registry.reprobe(marked);
  const helpers = others.filter((m) => registry.nodes.get(m.nodeId)?.up || back.includes(m.nodeId)).slice(0, row.threshold);
  if (helpers.length < row.threshold) throw new RpcError(status.UNAVAILABLE, `repairing ${nodeId} in keyset ${row.keysetId} needs ${row.threshold} other members up, ${helpers.length} are`);
  await requireUp(registry, [nodeId], 'repair');
  const participants = [...helpers, lost].sort((a, b) => a.index - b.index).map((m) => ({ index: m.index, nodeId: m.nodeId }));
  const what = `repair of ${nodeId} in keyset ${row.keysetId}`;
  const repair = await agreedResult(
    registry,
    participants,
    {
      case: 'repair',
      value: {
        keysetId: row.keysetId,
        scheme: schemeToProto(row.scheme),
        threshold: row.threshold,
        members: row.members.map((m) => ({ index: m.index, nodeId: m.nodeId })),
        helpers: helpers.map((h) => h.index),
        lost: lost.index,
        publicKey: row.publicKey,
        verifyingShares: row.members.map((m) => m.verifyingShare),
        chainCode: row.chainCode,
        epoch: row.epoch,
      },
    },
    what,
    row.members.length,
  );
  if (bytesToHex(repair.result.publicKey) !== bytesToHex(row.publicKey)) {
    await finishAll(registry, participants, repair.sessionId, false);
    throw new RpcError(status.ABORTED, `${what} aborted: the nodes report a different key`);
  }
  if (row.scheme !== 'ecdsa') {
    await commitEverywhere(registry, participants, repair.sessionId, what);
    return;
  }
  // The repaired member lost its OT setups with its folder: a fresh pairwise setup for everyone,
  // the repaired member on its pending share, the others on their active ones.
  const everyone = row.members.map((m) => ({ index: m.index, nodeId: m.nodeId }));
  try {
    const setup = await agreedResult(registry, everyone, { case: 'setup', value: { keysetId: row.keysetId, refreshedSession: repair.sessionId } }, `${what} (pairwise setup)`);
    await commitEverywhere(registry, everyone, setup.sessionId, what);
  } finally {
    await finishAll(registry, participants, repair.sessionId, false);
  }
}
