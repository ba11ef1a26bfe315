/** Operator lifecycle operations awaiting (or holding) an operator quorum's approval: table `operations`. */
import type { ApprovalRequirement, OperationKind, OperationParams } from '../../policy/index.js';
import type { Queryable } from './db.js';

export type OperationStatus = 'pending' | 'approved' | 'rejected' | 'expired' | 'consumed';

export interface OperationRow {
  operationId: string;
  kind: OperationKind;
  /** what the command acts on: a keyset id, a node id, "cluster" */
  subject: string;
  params: OperationParams;
  status: OperationStatus;
  requirements: ApprovalRequirement[];
  policyVersion: number;
  policyHash: Uint8Array;
  /** the principal (certificate subject) who asked: never counts as an approver, and the only one who may run it */
  initiator: string;
  /** role:subject, for the audit log */
  requestedBy: string;
  error: string | null;
  expiresAt: Date;
  createdAt: Date;
  updatedAt: Date;
}

interface OperationDbRow {
  operation_id: string;
  kind: OperationKind;
  subject: string;
  params: OperationParams;
  status: OperationStatus;
  requirements: ApprovalRequirement[];
  policy_version: number;
  policy_hash: Uint8Array;
  initiator: string;
  requested_by: string;
  error: string | null;
  expires_at: Date;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'operation_id, kind, subject, params, status, requirements, policy_version, policy_hash, initiator, requested_by, error, expires_at, created_at, updated_at';

const toRow = (r: OperationDbRow): OperationRow => ({
  operationId: r.operation_id,
  kind: r.kind,
  subject: r.subject,
  params: r.params,
  status: r.status,
  requirements: r.requirements,
  policyVersion: r.policy_version,
  policyHash: r.policy_hash,
  initiator: r.initiator,
  requestedBy: r.requested_by,
  error: r.error,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export async function insertOperation(q: Queryable, o: Omit<OperationRow, 'updatedAt' | 'error'>): Promise<OperationRow> {
  const [row] = await q.query<OperationDbRow>(
    `INSERT INTO operations (${COLUMNS}) VALUES ($1, $2, $3, $4::jsonb, $5, $6::jsonb, $7, $8, $9, $10, NULL, $11, $12, $12) RETURNING ${COLUMNS}`,
    [o.operationId, o.kind, o.subject, JSON.stringify(o.params), o.status, JSON.stringify(o.requirements), o.policyVersion, o.policyHash, o.initiator, o.requestedBy, o.expiresAt, o.createdAt],
  );
  return toRow(row!);
}

export async function getOperation(q: Queryable, operationId: string): Promise<OperationRow | undefined> {
  const [row] = await q.query<OperationDbRow>(`SELECT ${COLUMNS} FROM operations WHERE operation_id = $1`, [operationId]);
  return row ? toRow(row) : undefined;
}

/** Live (pending or approved, unexpired) operations of one initiator for one command on one target. */
export async function liveOperations(q: Queryable, k: { kind: OperationKind; subject: string; initiator: string; now: Date }): Promise<OperationRow[]> {
  const rows = await q.query<OperationDbRow>(
    `SELECT ${COLUMNS} FROM operations WHERE kind = $1 AND subject = $2 AND status IN ('pending', 'approved') AND initiator = $3 AND expires_at > $4 ORDER BY created_at`,
    [k.kind, k.subject, k.initiator, k.now],
  );
  return rows.map(toRow);
}

export async function listOperationsByStatus(q: Queryable, status: OperationStatus, limit: number): Promise<OperationRow[]> {
  const rows = await q.query<OperationDbRow>(`SELECT ${COLUMNS} FROM operations WHERE status = $1 ORDER BY created_at LIMIT $2`, [status, limit]);
  return rows.map(toRow);
}

/** Ids of pending or approved operations whose deadline passed. */
export async function dueOperations(q: Queryable, now: Date, limit: number): Promise<string[]> {
  const rows = await q.query<{ operation_id: string }>("SELECT operation_id FROM operations WHERE status IN ('pending', 'approved') AND expires_at <= $1 LIMIT $2", [now, limit]);
  return rows.map((r) => r.operation_id);
}

/** Moves an operation from one of `from` to `to`; undefined when it was no longer in `from` (someone else moved it). */
export async function moveOperation(q: Queryable, operationId: string, from: readonly OperationStatus[], to: OperationStatus, at: Date, error?: string): Promise<OperationRow | undefined> {
  const [row] = await q.query<OperationDbRow>(
    `UPDATE operations SET status = $2, error = COALESCE($3, error), updated_at = $4 WHERE operation_id = $1 AND status = ANY($5::text[]) RETURNING ${COLUMNS}`,
    [operationId, to, error ?? null, at, [...from]],
  );
  return row ? toRow(row) : undefined;
}
