/**
 * Operator operations held for an approval quorum (docs/policy.md, "Operator quorum"):
 * `custody operation show ID`, and the operation half of `custody approve|reject ID`, which shows
 * and signs exactly the operation's canonical subject (policy/operations.ts) with the approver's key.
 */
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { canonicalOperationParams, isOperationKind, policyHash, signApproval, type OperationParams, type OperationSubject } from '../policy/index.js';
import { ApprovalService, OperationStatus, type OperationRecord } from '../proto/gen/custody/v1/api_pb.js';
import { loadApprover } from './approver-key.js';
import { CliError, connect } from './client.js';
import { operationRecordJson } from './request-json.js';

type Result = { out: unknown; text: string; exitCode?: number };

/** The parameters exactly as the coordinator will check the signature: refused unless already canonical. */
function paramsOf(o: OperationRecord): OperationParams {
  let params: unknown;
  try {
    params = JSON.parse(o.paramsJson);
    if (typeof params !== 'object' || params === null || Array.isArray(params) || canonicalOperationParams(params as OperationParams) !== o.paramsJson) throw new Error('not canonical');
  } catch (e) {
    throw new CliError(`operation ${o.operationId} has malformed parameters (${(e as Error).message}); not signing`);
  }
  return params as OperationParams;
}

const summary = (o: OperationRecord) => `${o.kind} of ${o.subject}${o.paramsJson && o.paramsJson !== '{}' ? ` with ${o.paramsJson}` : ''}, requested by ${o.initiator}`;

export async function operationCommand(sub: string | undefined, id: string | undefined, dir: string, role: string): Promise<Result> {
  if (sub !== 'show' || !id) throw new CliError('usage: custody operation show ID', 'INVALID_ARGUMENT');
  const c = await connect(ApprovalService, dir, role);
  const o = (await c.getOperation({ operationId: id })).operation!;
  const out = operationRecordJson(o);
  return { out, text: `operation ${id}: ${summary(o)}\n${JSON.stringify(out, null, 2)}` };
}

export async function decideOperation(decision: 'approve' | 'reject', operationId: string, keyFile: string, reason: string, dir: string, role: string): Promise<Result> {
  const approvals = await connect(ApprovalService, dir, role);
  const o = (await approvals.getOperation({ operationId })).operation!;
  if (o.status !== OperationStatus.PENDING) throw new CliError(`operation ${operationId} is ${operationRecordJson(o).status}, not awaiting approvals`);
  if (!isOperationKind(o.kind)) throw new CliError(`operation ${operationId} has kind ${JSON.stringify(o.kind)}, which this custody CLI does not know; not signing`);
  if (!o.expiresAt) throw new CliError(`operation ${operationId} has no deadline; not signing`);
  const { doc, name, secretKey } = await loadApprover(keyFile, dir, role);
  if (doc.version !== o.policyVersion) throw new CliError(`operation ${operationId} was requested under policy ${o.policyVersion}, the current one is ${doc.version}; its initiator must run the command again`);
  const subject: OperationSubject = {
    operationId,
    kind: o.kind,
    subject: o.subject,
    params: paramsOf(o),
    policyVersion: doc.version,
    policyHash: policyHash(doc),
    expiresAt: timestampDate(o.expiresAt),
  };
  const signed = signApproval(subject, name, decision, secretKey);
  secretKey.fill(0);
  const res = await approvals.decide({
    requestId: operationId,
    approval: { approver: name, decision, expiresAtMs: BigInt(signed.expiresAt.getTime()), signature: signed.signature },
    reason,
  });
  const out = { approver: name, decision, ...operationRecordJson(res.operation!) };
  return { out, text: `${name} ${decision === 'approve' ? 'approved' : 'rejected'} operation ${operationId}: ${summary(o)} (now ${out.status})` };
}
