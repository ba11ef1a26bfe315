/**
 * Approver decisions on requests the policy holds for approval, and their expiry.
 *
 * Each decision is checked like the nodes will check it (policy/approvals.ts: signature over this
 * exact request, approver known to the admin-signed policy, not the initiator, not twice, not
 * expired) before it is stored; a refused one is an audit record too. Enough approvals move the
 * request to signing, under this coordinator's lease, and it is signed at once; a valid rejection
 * ends it. Requests whose approval deadline passes become `expired`.
 */
import { status } from '@grpc/grpc-js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { checkApprovals, EthTxError, intentOfPayload, PolicyError, type ApprovalSubject, type SignedApproval } from '../policy/index.js';
import type { ApprovalProof } from '../proto/gen/custody/v1/common_pb.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { checkUuid } from './ids.js';
import type { Policies } from './policies.js';
import type { RequestService } from './requests.js';
import { insertApproval, listApprovals } from './store/approvals.js';
import { appendAudit, appendAuditMany, type AuditEntry } from './store/audit.js';
import type { Db } from './store/db.js';
import { durably } from './store/durably.js';
import { DuplicateKeyError, getSignRequest, listSignRequestsByStatus, updateSignRequest, type SignRequestRow } from './store/repo.js';

/** Every refused approval is on the record, with why (`subject`: the request or operation id). */
export function recordRefusal(db: Db, log: Logger, subject: string, proof: ApprovalProof, actor: string, reason: string): Promise<unknown> {
  return durably(log, 'audit refused approval', () =>
    db.tx((q) => appendAudit(q, { actor, action: 'approval.refused', subject, details: { approver: proof.approver, decision: proof.decision, reason } })),
  );
}

export class Approvals {
  constructor(
    private readonly db: Db,
    private readonly policies: Policies,
    private readonly requests: RequestService,
    private readonly log: Logger,
    private readonly owner: string,
    private readonly leaseMs = 120_000,
  ) {}

  pending(limit: number): Promise<SignRequestRow[]> {
    return listSignRequestsByStatus(this.db, 'awaiting_approvals', Math.min(Math.max(limit || 100, 1), 1000));
  }

  /** Records one approver's decision; returns the request as it stands afterwards (signed, if this approval completed it). */
  async decide(requestId: string, proof: ApprovalProof, reason: string, actor: string): Promise<SignRequestRow> {
    checkUuid('request_id', requestId);
    if (proof.decision !== 'approve' && proof.decision !== 'reject') throw new RpcError(status.INVALID_ARGUMENT, 'decision must be "approve" or "reject"');
    if (reason.length > 500) throw new RpcError(status.INVALID_ARGUMENT, 'reason is longer than 500 characters');
    const row = await getSignRequest(this.db, requestId);
    if (!row) throw new RpcError(status.NOT_FOUND, `sign request ${requestId} not found`);
    if (row.status !== 'awaiting_approvals') throw new RpcError(status.FAILED_PRECONDITION, `request ${requestId} is ${row.status}, not awaiting approvals`);
    const now = new Date();
    if (row.approvalExpiresAt && row.approvalExpiresAt.getTime() <= now.getTime()) {
      await this.expire([row], now);
      throw new RpcError(status.FAILED_PRECONDITION, `request ${requestId} expired at ${row.approvalExpiresAt.toISOString()} before it had its approvals; submit it again`);
    }
    await this.policies.load();
    const policy = this.policies.get();
    if (!policy || policy.version !== row.policyVersion) {
      throw new RpcError(status.FAILED_PRECONDITION, `request ${requestId} was judged under policy ${row.policyVersion}; the policy is now ${policy?.version ?? 'none'}: submit it again`);
    }
    let subject: ApprovalSubject;
    try {
      subject = {
        requestId,
        keysetId: row.keysetId,
        walletId: row.walletId,
        intent: intentOfPayload(policy.doc, row.payload, row.digest),
        digest: row.digest,
        policyVersion: policy.version,
        policyHash: policy.hash,
        expiresAt: row.approvalExpiresAt!,
      };
    } catch (e) {
      if (e instanceof EthTxError || e instanceof PolicyError) throw new RpcError(status.FAILED_PRECONDITION, `request ${requestId} cannot be approved: ${e.message}`);
      throw e;
    }
    const fresh: SignedApproval = { approver: proof.approver, decision: proof.decision, expiresAt: new Date(Number(proof.expiresAtMs)), signature: proof.signature };
    const earlier = await listApprovals(this.db, requestId);
    if (earlier.some((a) => a.approver === proof.approver)) {
      await this.refused(requestId, proof, actor, 'already decided on this request');
      throw new RpcError(status.ALREADY_EXISTS, `${proof.approver} already decided on request ${requestId}`);
    }
    const all: SignedApproval[] = [...earlier.map((a) => ({ approver: a.approver, decision: a.decision, expiresAt: a.expiresAt, signature: a.signature })), fresh];
    const check = checkApprovals(policy.doc, subject, all, row.clientId, row.requirements ?? [], now);
    const problem = check.invalid.find((i) => i.approver === proof.approver || i.approver === '*');
    if (problem) {
      await this.refused(requestId, proof, actor, problem.reason);
      throw new RpcError(status.PERMISSION_DENIED, `approval by ${proof.approver} refused: ${problem.reason}`);
    }
    const next = check.rejectedBy.length ? 'rejected' : check.satisfied ? 'signing' : 'awaiting_approvals';
    let updated: SignRequestRow | undefined;
    try {
      updated = await durably(this.log, 'record approval', () =>
        this.db.tx(async (q) => {
          await insertApproval(q, { requestId, approver: proof.approver, decision: proof.decision as 'approve' | 'reject', expiresAt: fresh.expiresAt, signature: proof.signature, reason, createdAt: now });
          const audits: AuditEntry[] = [{ actor, action: 'approval.recorded', subject: requestId, details: { approver: proof.approver, decision: proof.decision, reason: reason || null, signature: bytesToHex(proof.signature) } }];
          let u: SignRequestRow | undefined = row;
          if (next === 'rejected') {
            u = await updateSignRequest(q, requestId, { status: 'rejected', rule: `approver:${proof.approver}`, error: `rejected by ${proof.approver}${reason ? `: ${reason}` : ''}`, expectedStatus: 'awaiting_approvals', updatedAt: now });
            audits.push({ actor: 'coordinator', action: 'sign.rejected', subject: requestId, details: { approver: proof.approver, reason: reason || null } });
          } else if (next === 'signing') {
            u = await updateSignRequest(q, requestId, { status: 'signing', owner: this.owner, leaseUntil: new Date(now.getTime() + this.leaseMs), expectedStatus: 'awaiting_approvals', updatedAt: now });
            audits.push({ actor: 'coordinator', action: 'sign.signing', subject: requestId, details: { owner: this.owner, approvedBy: check.counted } });
          }
          if (!u) throw new RpcError(status.FAILED_PRECONDITION, `request ${requestId} changed while the approval was recorded; look at it again`);
          await appendAuditMany(q, audits, now);
          return u;
        }),
      );
    } catch (e) {
      if (e instanceof DuplicateKeyError) throw new RpcError(status.ALREADY_EXISTS, `${proof.approver} already decided on request ${requestId}`);
      throw e;
    }
    this.log.info({ requestId, approver: proof.approver, decision: proof.decision, status: updated!.status }, 'approval recorded');
    return updated!.status === 'signing' || updated!.status === 'rejected' ? this.requests.execute(updated!) : updated!;
  }

  private refused(requestId: string, proof: ApprovalProof, actor: string, reason: string): Promise<unknown> {
    return recordRefusal(this.db, this.log, requestId, proof, actor, reason);
  }

  /** Marks requests whose approval deadline passed as expired (each an audit record). */
  async expire(rows?: SignRequestRow[], now = new Date()): Promise<number> {
    const due = rows ?? (await this.db.query<{ request_id: string }>("SELECT request_id FROM sign_requests WHERE status = 'awaiting_approvals' AND approval_expires_at <= $1 LIMIT 500", [now])).map((r) => ({ requestId: r.request_id }) as SignRequestRow);
    let n = 0;
    for (const r of due) {
      const done = await durably(this.log, 'expire request', () =>
        this.db.tx(async (q) => {
          const u = await updateSignRequest(q, r.requestId, { status: 'expired', error: 'approvals did not arrive before the deadline', expectedStatus: 'awaiting_approvals', updatedAt: now });
          if (u) await appendAudit(q, { actor: 'coordinator', action: 'sign.expired', subject: r.requestId, details: { approvalExpiresAt: u.approvalExpiresAt?.toISOString() ?? null } });
          return u;
        }),
      );
      if (done) {
        n++;
        this.requests.finished(done);
      }
    }
    return n;
  }
}
