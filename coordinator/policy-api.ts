/** The public PolicyService (admins set the signed policy) and ApprovalService (approvers decide). */
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { status } from '@grpc/grpc-js';
import { canonicalOperationParams } from '../policy/index.js';
import { OperationRecordSchema, OperationStatus, type ApprovalService, type PolicyService } from '../proto/gen/custody/v1/api_pb.js';
import { RpcError, type Role, type ServiceImpl } from '../runtime/grpc.js';
import { signRequestToProto } from './api.js';
import type { Approvals } from './approvals.js';
import { checkUuid } from './ids.js';
import type { OperationApprovals, OperationView } from './operation-approvals.js';
import type { Policies } from './policies.js';
import type { Db } from './store/db.js';
import { getOperation, type OperationStatus as RowStatus } from './store/operations.js';

export const POLICY_ACCESS = { setPolicy: ['admin'] as readonly Role[], getPolicy: ['payment', 'approver', 'operator', 'admin'] as readonly Role[] };
export const APPROVAL_ACCESS = {
  listPending: ['approver', 'admin'] as readonly Role[],
  decide: ['approver'] as readonly Role[],
  getOperation: ['approver', 'operator', 'admin'] as readonly Role[],
};

const OPERATION_STATUS: Record<RowStatus, OperationStatus> = {
  pending: OperationStatus.PENDING,
  approved: OperationStatus.APPROVED,
  rejected: OperationStatus.REJECTED,
  expired: OperationStatus.EXPIRED,
  consumed: OperationStatus.CONSUMED,
};

export function operationToProto({ row, approvedBy, missing }: OperationView) {
  return create(OperationRecordSchema, {
    operationId: row.operationId,
    kind: row.kind,
    subject: row.subject,
    paramsJson: canonicalOperationParams(row.params),
    status: OPERATION_STATUS[row.status],
    initiator: row.initiator,
    policyVersion: row.policyVersion,
    policyHash: row.policyHash,
    requiredApprovals: row.requirements,
    missingApprovals: missing,
    approvedBy,
    expiresAt: timestampFromDate(row.expiresAt),
    createdAt: timestampFromDate(row.createdAt),
    error: row.error ?? '',
  });
}

export function policyApi(policies: Policies): ServiceImpl<typeof PolicyService> {
  return {
    async setPolicy(req, ctx) {
      if (!req.policy) throw new RpcError(status.INVALID_ARGUMENT, 'policy is required');
      const r = await policies.set(req.policy, `${ctx.role}:${ctx.subject}`);
      return { version: r.version, hash: r.hash, pendingNodes: r.pendingNodes };
    },
    async getPolicy() {
      await policies.load();
      const p = policies.get();
      return p ? { policy: p.signed, version: p.version, hash: p.hash } : {};
    },
  };
}

export function approvalApi(db: Db, approvals: Approvals, operations: OperationApprovals): ServiceImpl<typeof ApprovalService> {
  return {
    async listPending(req) {
      return { requests: (await approvals.pending(req.limit)).map(signRequestToProto), operations: (await operations.pending(req.limit)).map(operationToProto) };
    },
    async decide(req, ctx) {
      if (!req.approval) throw new RpcError(status.INVALID_ARGUMENT, 'approval is required');
      checkUuid('request_id', req.requestId);
      const actor = `${ctx.role}:${ctx.subject}`;
      // One id space for approvers: a sign request's id, else an operation's.
      if (await getOperation(db, req.requestId)) {
        return { operation: operationToProto(await operations.decide(req.requestId, req.approval, req.reason, actor)) };
      }
      const row = await approvals.decide(req.requestId, req.approval, req.reason, actor);
      return { request: signRequestToProto(row) };
    },
    async getOperation(req) {
      const view = await operations.get(req.operationId);
      if (!view) throw new RpcError(status.NOT_FOUND, `operation ${req.operationId} not found`);
      return { operation: operationToProto(view) };
    },
  };
}
