/**
 * Disaster-recovery export: collects each member's share, sealed by the node itself to the recovery
 * key in its own roster. The coordinator only relays boxes it cannot open; whether a node answers
 * is its operator's decision (nodes/recovery-export.ts). Every attempt is an audit record.
 */
import { status } from '@grpc/grpc-js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { errorMessage, type NodeRegistry } from './node-registry.js';
import { appendAudit } from './store/audit.js';
import type { Db } from './store/db.js';
import { getKeyset, type KeysetRow } from './store/repo.js';

export interface RecoveryShareOut {
  index: number;
  nodeId: string;
  nodeKey: Uint8Array;
  sealedShare: Uint8Array;
}

export async function exportRecovery(
  db: Db,
  registry: NodeRegistry,
  log: Logger,
  nodeKeys: ReadonlyMap<string, Uint8Array>,
  keysetId: string,
  actor: string,
): Promise<{ row: KeysetRow; shares: RecoveryShareOut[]; refused: string[] }> {
  const row = await getKeyset(db, keysetId);
  if (!row) throw new RpcError(status.NOT_FOUND, `keyset ${keysetId} not found`);
  const answers = await Promise.allSettled(row.members.map((m) => registry.get(m.nodeId).client.exportRecoveryShare({ keysetId }, { deadlineMs: 15_000 })));
  const shares: RecoveryShareOut[] = [];
  const refused: string[] = [];
  const recoveryKeys = new Set<string>();
  answers.forEach((a, i) => {
    const m = row.members[i]!;
    if (a.status === 'rejected') return refused.push(`${m.nodeId}: ${errorMessage(a.reason)}`);
    if (a.value.index !== m.index) return refused.push(`${m.nodeId}: reported party index ${a.value.index}, expected ${m.index}`);
    recoveryKeys.add(Buffer.from(a.value.recoveryKey).toString('hex'));
    shares.push({ index: m.index, nodeId: m.nodeId, nodeKey: nodeKeys.get(m.nodeId) ?? new Uint8Array(), sealedShare: a.value.sealedShare });
  });
  const ok = shares.length >= row.threshold && recoveryKeys.size === 1;
  await db.tx((q) =>
    appendAudit(q, {
      actor,
      action: ok ? 'keyset.recovery_exported' : 'keyset.recovery_export_failed',
      subject: keysetId,
      details: { exported: shares.map((s) => s.nodeId), refused, recoveryKeys: [...recoveryKeys] },
    }),
  );
  log.warn({ keysetId, exported: shares.map((s) => s.nodeId), refused: refused.length }, 'recovery export requested');
  if (recoveryKeys.size > 1) throw new RpcError(status.FAILED_PRECONDITION, 'the nodes sealed to different recovery keys: their rosters disagree; fix the rosters and retry');
  if (!ok) {
    throw new RpcError(status.FAILED_PRECONDITION, `only ${shares.length} of the ${row.threshold} shares needed were exported; refused: ${refused.join('; ')}`);
  }
  return { row, shares, refused };
}
