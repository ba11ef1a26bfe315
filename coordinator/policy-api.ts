/** The public PolicyService (admins set the signed policy) and ApprovalService (approvers decide). */
import { status } from '@grpc/grpc-js';
import type { ApprovalService, PolicyService } from '../proto/gen/custody/v1/api_pb.js';
import { RpcError, type Role, type ServiceImpl } from '../runtime/grpc.js';
import { signRequestToProto } from './api.js';
import type { Approvals } from './approvals.js';
import type { Policies } from './policies.js';

export const POLICY_ACCESS = { setPolicy: ['admin'] as readonly Role[], getPolicy: ['payment', 'approver', 'operator', 'admin'] as readonly Role[] };
export const APPROVAL_ACCESS = { listPending: ['approver', 'admin'] as readonly Role[], decide: ['approver'] as readonly Role[] };

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

export function approvalApi(approvals: Approvals): ServiceImpl<typeof ApprovalService> {
  return {
    async listPending(req) {
      return { requests: (await approvals.pending(req.limit)).map(signRequestToProto) };
    },
    async decide(req, ctx) {
      if (!req.approval) throw new RpcError(status.INVALID_ARGUMENT, 'approval is required');
      const row = await approvals.decide(req.requestId, req.approval, req.reason, `${ctx.role}:${ctx.subject}`);
      return { request: signRequestToProto(row) };
    },
  };
}
