/** How the CLI prints a sign request (`sign`, `request show`, `approve`) and an operator operation: one shape everywhere. */
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { bytesToHex } from '@noble/hashes/utils.js';
import { schemeFromProto } from '../proto/convert.js';
import { OperationStatus, SignStatus, type OperationRecord, type SignRequestRecord } from '../proto/gen/custody/v1/api_pb.js';

/** Status names as users see them; a request waiting for approvals is `pending_approval`. */
export function statusName(s: SignStatus): string {
  if (s === SignStatus.AWAITING_APPROVALS) return 'pending_approval';
  return SignStatus[s]?.toLowerCase() ?? 'unspecified';
}

export function requestJson(r: SignRequestRecord) {
  const hex = bytesToHex;
  return {
    requestId: r.requestId,
    status: statusName(r.status),
    keysetId: r.keysetId,
    scheme: schemeFromProto(r.scheme) ?? 'unspecified',
    digest: hex(r.digest),
    ...(r.signature.length ? { signature: hex(r.signature), publicKey: hex(r.publicKey) } : {}),
    ...(r.signedTx.length ? { signedTx: '0x' + hex(r.signedTx) } : {}),
    signers: r.signers,
    attempts: r.attempts,
    ...(r.error ? { error: r.error } : {}),
    ...(r.idempotencyKey ? { idempotencyKey: r.idempotencyKey } : {}),
    ...(r.walletId ? { walletId: r.walletId, path: r.derivationPath } : {}),
    ...(r.intentJson ? { intent: JSON.parse(r.intentJson) as Record<string, string>, policyVersion: r.policyVersion } : {}),
    ...(r.rule ? { rule: r.rule } : {}),
    ...(r.missingApprovals.length ? { missing: r.missingApprovals.map((m) => ({ count: m.count, role: m.role })) } : {}),
  };
}

export function operationRecordJson(o: OperationRecord) {
  return {
    operationId: o.operationId,
    status: OperationStatus[o.status]?.toLowerCase() ?? 'unspecified',
    kind: o.kind,
    subject: o.subject,
    params: JSON.parse(o.paramsJson || '{}') as Record<string, unknown>,
    initiator: o.initiator,
    policyVersion: o.policyVersion,
    required: o.requiredApprovals.map((m) => ({ count: m.count, role: m.role })),
    ...(o.missingApprovals.length ? { missing: o.missingApprovals.map((m) => ({ count: m.count, role: m.role })) } : {}),
    approvedBy: o.approvedBy,
    ...(o.expiresAt ? { expiresAt: timestampDate(o.expiresAt).toISOString() } : {}),
    ...(o.error ? { error: o.error } : {}),
  };
}
