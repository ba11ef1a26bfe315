/** Approvals of sign requests, pending and expired requests, and velocity usage for the policy. */
import { DuplicateKeyError, uniqueViolation, type Queryable } from './db.js';

export interface ApprovalRow {
  requestId: string;
  approver: string;
  decision: 'approve' | 'reject';
  expiresAt: Date;
  signature: Uint8Array;
  reason: string;
  createdAt: Date;
}

interface ApprovalDbRow {
  request_id: string;
  approver: string;
  decision: 'approve' | 'reject';
  expires_at: Date;
  signature: Uint8Array;
  reason: string;
  created_at: Date;
}

const toApproval = (r: ApprovalDbRow): ApprovalRow => ({
  requestId: r.request_id,
  approver: r.approver,
  decision: r.decision,
  expiresAt: r.expires_at,
  signature: r.signature,
  reason: r.reason,
  createdAt: r.created_at,
});

/** One decision per approver and request: a second one is DuplicateKeyError. */
export async function insertApproval(q: Queryable, a: ApprovalRow): Promise<void> {
  try {
    await q.query('INSERT INTO approvals (request_id, approver, decision, expires_at, signature, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      a.requestId,
      a.approver,
      a.decision,
      a.expiresAt,
      a.signature,
      a.reason,
      a.createdAt,
    ]);
  } catch (e) {
    const uv = uniqueViolation(e);
    if (uv) throw new DuplicateKeyError(uv.constraint, `approver ${a.approver} already decided on request ${a.requestId}`, { cause: e });
    throw e;
  }
}

export async function listApprovals(q: Queryable, requestId: string): Promise<ApprovalRow[]> {
  const rows = await q.query<ApprovalDbRow>(
    'SELECT request_id, approver, decision, expires_at, signature, reason, created_at FROM approvals WHERE request_id = $1 ORDER BY created_at, approver',
    [requestId],
  );
  return rows.map(toApproval);
}

/** Requests that count towards a velocity limit: signed, being signed, or waiting for approvals. */
const COUNTED = ['signing', 'signed', 'awaiting_approvals'];

/**
 * Sum and count of amounts of a wallet's or keyset's requests since `since` (exact: amounts are
 * decimal strings summed as NUMERIC). `asset` '*' counts every asset. Run it in the transaction that
 * accepts the request: under SERIALIZABLE two requests racing past a limit conflict and one retries.
 */
export async function velocityUsage(
  q: Queryable,
  /** scope 'root': the keyset's requests made with its root key (no wallet), which a wallet rule treats as one wallet. */
  k: { scope: 'wallet' | 'keyset' | 'root'; id: string; asset: string; kinds: readonly string[]; since: Date },
): Promise<{ amount: bigint; count: number }> {
  const params: unknown[] = [k.id, k.since, COUNTED, [...k.kinds]];
  let assetClause = '';
  if (k.asset !== '*') {
    params.push(k.asset);
    assetClause = ` AND asset = $${params.length}`;
  }
  const [row] = await q.query<{ amount: string; count: number }>(
    `SELECT COALESCE(SUM(CAST(amount AS NUMERIC)), 0)::TEXT AS amount, COUNT(*)::INT AS count FROM sign_requests
      WHERE ${k.scope === 'wallet' ? 'wallet_id = $1' : k.scope === 'keyset' ? 'keyset_id = $1' : 'keyset_id = $1 AND wallet_id IS NULL'} AND created_at > $2
        AND status = ANY($3::text[]) AND intent_kind = ANY($4::text[])${assetClause}`,
    params,
  );
  // NUMERIC sums print as integers here (every amount is an integer), possibly with ".0" on some engines.
  return { amount: BigInt(row!.amount.replace(/\.0*$/, '')), count: Number(row!.count) };
}
