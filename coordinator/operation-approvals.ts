/**
 * Approver decisions on operator lifecycle operations (coordinator/operations.ts holds the gate).
 * The same checks as for sign requests (policy/approvals.ts): signature over this exact operation,
 * approver known to the admin-signed policy, not the initiator, once each, not expired. Refusals
 * are audit records too. Enough approvals make the operation `approved` (the initiator's next run
 * of the command consumes it); a valid rejection ends it.
 */
import { status } from '@grpc/grpc-js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { checkApprovals, type ApprovalRequirement, type SignedApproval } from '../policy/index.js';
import type { ApprovalProof } from '../proto/gen/custody/v1/common_pb.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { recordRefusal } from './approvals.js';
import { checkUuid } from './ids.js';
import { operationSubject, storedApprovals, underPolicy, type Operations } from './operations.js';
import type { Policies } from './policies.js';
import { insertApproval } from './store/approvals.js';
import { appendAuditMany, type AuditEntry } from './store/audit.js';
import type { Db } from './store/db.js';
import { DuplicateKeyError } from './store/db.js';
import { durably } from './store/durably.js';
import { getOperation, listOperationsByStatus, moveOperation, type OperationRow } from './store/operations.js';

/** An operation as approvers see it: the row, who approved, what is still missing. */
export interface OperationView {
  row: OperationRow;
  approvedBy: string[];
  missing: ApprovalRequirement[];
}

export class OperationApprovals {
  constructor(
    private readonly db: Db,
    private readonly policies: Policies,
    private readonly operations: Operations,
    private readonly log: Logger,
  ) {}

  async get(operationId: string): Promise<OperationView | undefined> {
    checkUuid('operation_id', operationId);
    const row = await getOperation(this.db, operationId);
    return row ? this.view(row) : undefined;
  }

  async pending(limit: number): Promise<OperationView[]> {
    const rows = await listOperationsByStatus(this.db, 'pending', Math.min(Math.max(limit || 100, 1), 1000));
    const now = Date.now();
    return Promise.all(rows.filter((r) => r.expiresAt.getTime() > now).map((r) => this.view(r)));
  }

  /** Records one approver's decision; returns the operation as it stands afterwards. */
  async decide(operationId: string, proof: ApprovalProof, reason: string, actor: string): Promise<OperationView> {
    checkUuid('operation_id', operationId);
    if (proof.decision !== 'approve' && proof.decision !== 'reject') throw new RpcError(status.INVALID_ARGUMENT, 'decision must be "approve" or "reject"');
    if (reason.length > 500) throw new RpcError(status.INVALID_ARGUMENT, 'reason is longer than 500 characters');
    const row = await getOperation(this.db, operationId);
    if (!row) throw new RpcError(status.NOT_FOUND, `operation ${operationId} not found`);
    if (row.status !== 'pending') throw new RpcError(status.FAILED_PRECONDITION, `operation ${operationId} is ${row.status}, not awaiting approvals`);
    const now = new Date();
    if (row.expiresAt.getTime() <= now.getTime()) {
      await this.operations.expire(now);
      throw new RpcError(status.FAILED_PRECONDITION, `operation ${operationId} expired at ${row.expiresAt.toISOString()} before it had its approvals; run the command again for a new one`);
    }
    await this.policies.load();
    const policy = this.policies.get();
    if (!policy || !underPolicy(row, policy)) {
      throw new RpcError(status.FAILED_PRECONDITION, `operation ${operationId} was requested under policy ${row.policyVersion}; the policy is now ${policy?.version ?? 'none'}: run the command again for a new one`);
    }
    const earlier = await storedApprovals(this.db, operationId);
    if (earlier.some((a) => a.approver === proof.approver)) {
      await recordRefusal(this.db, this.log, operationId, proof, actor, 'already decided on this operation');
      throw new RpcError(status.ALREADY_EXISTS, `${proof.approver} already decided on operation ${operationId}`);
    }
    const fresh: SignedApproval = { approver: proof.approver, decision: proof.decision, expiresAt: new Date(Number(proof.expiresAtMs)), signature: proof.signature };
    const check = checkApprovals(policy.doc, operationSubject(row), [...earlier, fresh], row.initiator, row.requirements, now);
    const problem = check.invalid.find((i) => i.approver === proof.approver || i.approver === '*');
    if (problem) {
      await recordRefusal(this.db, this.log, operationId, proof, actor, problem.reason);
      throw new RpcError(status.PERMISSION_DENIED, `approval by ${proof.approver} refused: ${problem.reason}`);
    }
    const next = check.rejectedBy.length ? 'rejected' : check.satisfied ? 'approved' : 'pending';
    try {
      await durably(this.log, 'record operation approval', () =>
        this.db.tx(async (q) => {
          await insertApproval(q, { requestId: operationId, approver: proof.approver, decision: proof.decision as 'approve' | 'reject', expiresAt: fresh.expiresAt, signature: proof.signature, reason, createdAt: now });
          const audits: AuditEntry[] = [{ actor, action: 'approval.recorded', subject: operationId, details: { approver: proof.approver, decision: proof.decision, reason: reason || null, signature: bytesToHex(proof.signature) } }];
          if (next !== 'pending') {
            const error = next === 'rejected' ? `rejected by ${proof.approver}${reason ? `: ${reason}` : ''}` : undefined;
            const moved = await moveOperation(q, operationId, ['pending'], next, now, error);
            if (!moved) throw new RpcError(status.FAILED_PRECONDITION, `operation ${operationId} changed while the approval was recorded; look at it again`);
            audits.push(
              next === 'approved'
                ? { actor: 'coordinator', action: 'operation.approved', subject: operationId, details: { kind: row.kind, subject: row.subject, approvedBy: check.counted } }
                : { actor: 'coordinator', action: 'operation.rejected', subject: operationId, details: { kind: row.kind, subject: row.subject, approver: proof.approver, reason: reason || null } },
            );
          }
          await appendAuditMany(q, audits, now);
        }),
      );
    } catch (e) {
      if (e instanceof DuplicateKeyError) throw new RpcError(status.ALREADY_EXISTS, `${proof.approver} already decided on operation ${operationId}`);
      throw e;
    }
    this.log.info({ operationId, approver: proof.approver, decision: proof.decision, status: next }, 'operation approval recorded');
    return this.view((await getOperation(this.db, operationId))!);
  }

  private async view(row: OperationRow): Promise<OperationView> {
    const stored = await storedApprovals(this.db, row.operationId);
    const approvedBy = stored.filter((a) => a.decision === 'approve').map((a) => a.approver);
    if (row.status !== 'pending') return { row, approvedBy, missing: [] };
    const policy = this.policies.get();
    if (!policy || !underPolicy(row, policy)) return { row, approvedBy, missing: row.requirements };
    return { row, approvedBy, missing: checkApprovals(policy.doc, operationSubject(row), stored, row.initiator, row.requirements, new Date()).missing };
  }
}
