/**
 * Operator quorum for lifecycle commands (docs/policy.md, "Operator quorum"). A handler calls
 * `authorize` before it does anything:
 *
 *   - the policy requires no approvals for the command: it returns at once;
 *   - an approved, unused, unexpired operation of this initiator for the same command, target and
 *     arguments exists under the policy in force: it is consumed, in the transaction that writes
 *     `operation.authorized`, and the handler proceeds (one approval, one run);
 *   - otherwise it records a pending operation (`operation.requested`; a rerun before the approvals
 *     arrive names the same one) and throws FAILED_PRECONDITION with the operation id in the
 *     message and in the `custody-operation-id` trailer.
 *
 * Approvers decide through ApprovalService (coordinator/operation-approvals.ts). The approval is
 * checked by the same code as sign-request approvals (policy/approvals.ts). Unlike sign requests,
 * the nodes do not see these approvals: the coordinator enforces them (docs/policy.md says what
 * that means).
 */
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { bytesToHex } from '@noble/hashes/utils.js';
import {
  canonicalOperationParams,
  checkApprovals,
  operationRequirements,
  type ApprovalRequirement,
  type OperationKind,
  type OperationParams,
  type OperationSubject,
  type SignedApproval,
} from '../policy/index.js';
import { RpcError, type CallContext } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import type { CurrentPolicy, Policies } from './policies.js';
import { listApprovals } from './store/approvals.js';
import { appendAudit } from './store/audit.js';
import type { Db, Queryable } from './store/db.js';
import { durably } from './store/durably.js';
import { dueOperations, insertOperation, liveOperations, moveOperation, type OperationRow } from './store/operations.js';

export const OPERATION_ID_TRAILER = 'custody-operation-id';

export interface OperationCall {
  /** The caller: `subject` is the initiator (never an approver of its own operation). */
  caller: Pick<CallContext, 'role' | 'subject'>;
  kind: OperationKind;
  /** What the command acts on: a keyset id, a node id, "cluster". */
  subject: string;
  /** The command's arguments that change what it does (canonical JSON decides equality); default {}. */
  params?: OperationParams;
}

/** What approvers sign for an operation row. */
export function operationSubject(row: OperationRow): OperationSubject {
  return { operationId: row.operationId, kind: row.kind, subject: row.subject, params: row.params, policyVersion: row.policyVersion, policyHash: row.policyHash, expiresAt: row.expiresAt };
}

/** Whether a row was requested under exactly the policy in force (a new version voids its approvals). */
export function underPolicy(row: OperationRow, policy: CurrentPolicy): boolean {
  return row.policyVersion === policy.version && bytesToHex(row.policyHash) === bytesToHex(policy.hash);
}

export async function storedApprovals(q: Queryable, operationId: string): Promise<SignedApproval[]> {
  return (await listApprovals(q, operationId)).map((a) => ({ approver: a.approver, decision: a.decision, expiresAt: a.expiresAt, signature: a.signature }));
}

const describe = (reqs: readonly ApprovalRequirement[]) => reqs.map((r) => `${r.count} of role ${r.role}`).join(', ');

type Outcome = { authorized: OperationRow; approvedBy: string[] } | { pending: OperationRow; missing: ApprovalRequirement[]; created: boolean };

export class Operations {
  constructor(
    private readonly db: Db,
    private readonly policies: Policies,
    private readonly log: Logger,
  ) {}

  /** The gate (header). Resolves when the command may run now; otherwise throws FAILED_PRECONDITION naming the operation. */
  async authorize({ caller, kind, subject, params = {} }: OperationCall): Promise<void> {
    await this.policies.load();
    const policy = this.policies.get();
    const requirements = policy ? operationRequirements(policy.doc, kind) : [];
    if (!policy || requirements.length === 0) return;
    const canonical = canonicalOperationParams(params);
    const actor = `${caller.role}:${caller.subject}`;
    const outcome = await durably(this.log, 'authorize operation', () =>
      this.db.tx(async (q): Promise<Outcome> => {
        const now = new Date();
        const live = (await liveOperations(q, { kind, subject, initiator: caller.subject, now })).filter(
          (o) => underPolicy(o, policy) && canonicalOperationParams(o.params) === canonical,
        );
        for (const o of live.filter((x) => x.status === 'approved')) {
          // Checked again from the stored signatures: the status column alone is not the authority.
          const check = checkApprovals(policy.doc, operationSubject(o), await storedApprovals(q, o.operationId), o.initiator, o.requirements, now);
          if (!check.satisfied) continue;
          const used = await moveOperation(q, o.operationId, ['approved'], 'consumed', now);
          if (!used) continue;
          await appendAudit(q, { actor, action: 'operation.authorized', subject: o.operationId, details: { kind, subject, params, approvedBy: check.counted, policyVersion: policy.version } }, now);
          return { authorized: used, approvedBy: check.counted };
        }
        const waiting = live.find((x) => x.status === 'pending');
        if (waiting) {
          const check = checkApprovals(policy.doc, operationSubject(waiting), await storedApprovals(q, waiting.operationId), waiting.initiator, waiting.requirements, now);
          return { pending: waiting, missing: check.missing, created: false };
        }
        const row = await insertOperation(q, {
          operationId: randomUUID(),
          kind,
          subject,
          params,
          status: 'pending',
          requirements,
          policyVersion: policy.version,
          policyHash: policy.hash,
          initiator: caller.subject,
          requestedBy: actor,
          expiresAt: new Date(now.getTime() + policy.doc.approvalTtlSeconds * 1000),
          createdAt: now,
        });
        await appendAudit(
          q,
          {
            actor,
            action: 'operation.requested',
            subject: row.operationId,
            details: { kind, subject, params, requirements, initiator: caller.subject, policyVersion: policy.version, policyHash: bytesToHex(policy.hash), expiresAt: row.expiresAt.toISOString() },
          },
          now,
        );
        return { pending: row, missing: requirements, created: true };
      }),
    );
    if ('authorized' in outcome) {
      this.log.info({ operationId: outcome.authorized.operationId, kind, subject, approvedBy: outcome.approvedBy }, 'operation authorized');
      return;
    }
    const id = outcome.pending.operationId;
    if (outcome.created) this.log.info({ operationId: id, kind, subject }, 'operation awaits approvals');
    throw new RpcError(
      status.FAILED_PRECONDITION,
      `${kind} of ${subject} ${outcome.created ? 'needs' : 'still needs'} approvals (${describe(outcome.missing)}): operation ${id}; approvers run \`custody approve ${id}\`, then run this command again`,
      { [OPERATION_ID_TRAILER]: id },
    );
  }

  /** Pending or approved operations past their deadline become `expired` (each an audit record). */
  async expire(now = new Date()): Promise<number> {
    let n = 0;
    for (const id of await dueOperations(this.db, now, 500)) {
      const done = await durably(this.log, 'expire operation', () =>
        this.db.tx(async (q) => {
          const o = await moveOperation(q, id, ['pending', 'approved'], 'expired', now, 'not approved and run before the deadline');
          if (o) await appendAudit(q, { actor: 'coordinator', action: 'operation.expired', subject: id, details: { kind: o.kind, subject: o.subject, expiresAt: o.expiresAt.toISOString() } }, now);
          return o;
        }),
      );
      if (done) n++;
    }
    return n;
  }
}
