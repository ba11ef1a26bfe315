/**
 * Operator quorum: which lifecycle commands need approvals (the policy's `operations`), and what an
 * approver signs for one. The signing and counting are policy/approvals.ts's, shared with sign
 * requests; this module only defines the operation's subject.
 *
 * What is signed: `custody/operation-approval/v1\0` || canonical JSON of
 *   { decision, operationId, kind, subject, params, policyVersion, policyHash: hex, expiresAt: ISO }
 * `subject` is what the command acts on (a keyset id, a node id, "cluster"); `params` is the
 * command's arguments as a JSON object (canonical JSON: sorted keys, so only values matter). An
 * approval is therefore bound to one operation id, one command on one target with one set of
 * arguments, one policy version and one deadline.
 */
import { canonicalJson, toHex } from './canonical.js';
import { OPERATION_KINDS, PolicyError, type ApprovalRequirement, type OperationKind, type PolicyDocument } from './document.js';

export const OPERATION_APPROVAL_DOMAIN = 'operation-approval';

/** JSON values a command's parameters may hold (canonical JSON: no bigint, no unsafe integers, no Date). */
export type OperationParam = string | number | boolean | null | OperationParam[] | { [key: string]: OperationParam };
export type OperationParams = { [key: string]: OperationParam };

export interface OperationSubject {
  operationId: string;
  kind: OperationKind;
  /** what the command acts on: a keyset id, a node id, "cluster" */
  subject: string;
  params: OperationParams;
  policyVersion: number;
  policyHash: Uint8Array;
  expiresAt: Date;
}

export function isOperationKind(v: unknown): v is OperationKind {
  return typeof v === 'string' && (OPERATION_KINDS as readonly string[]).includes(v);
}

/** The approvals `kind` needs under `doc` (empty: none; the command runs at once). */
export function operationRequirements(doc: PolicyDocument, kind: OperationKind): ApprovalRequirement[] {
  if (!isOperationKind(kind)) throw new PolicyError(`unknown operation kind ${JSON.stringify(kind)} (known: ${OPERATION_KINDS.join(', ')})`);
  const rule = doc.operations?.find((o) => o.kinds.includes(kind));
  return rule ? rule.approvals.map((r) => ({ count: r.count, role: r.role })) : [];
}

/** Canonical JSON text of a command's parameters: equal text = the same arguments. */
export function canonicalOperationParams(params: OperationParams): string {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new PolicyError('operation params must be a JSON object');
  try {
    return canonicalJson(params);
  } catch (e) {
    throw new PolicyError(`operation params: ${(e as Error).message}`);
  }
}

export function checkOperationSubject(s: OperationSubject): void {
  const str = (v: unknown, name: string) => {
    if (typeof v !== 'string' || v.length === 0) throw new PolicyError(`operation subject: ${name} must be a non-empty string`);
  };
  str(s.operationId, 'operationId');
  if (!isOperationKind(s.kind)) throw new PolicyError(`operation subject: unknown kind ${JSON.stringify(s.kind)} (known: ${OPERATION_KINDS.join(', ')})`);
  str(s.subject, 'subject');
  canonicalOperationParams(s.params);
  if (!Number.isSafeInteger(s.policyVersion) || s.policyVersion < 1) throw new PolicyError('operation subject: policyVersion must be a positive integer');
  if (!(s.policyHash instanceof Uint8Array) || s.policyHash.length !== 32) throw new PolicyError('operation subject: policyHash must be 32 bytes');
  if (!(s.expiresAt instanceof Date) || Number.isNaN(s.expiresAt.getTime())) throw new PolicyError('operation subject: expiresAt must be a valid Date');
}

/** The JSON value an approver signs (without the decision, which policy/approvals.ts adds). */
export function operationJson(s: OperationSubject): Record<string, unknown> {
  checkOperationSubject(s);
  return {
    operationId: s.operationId,
    kind: s.kind,
    subject: s.subject,
    params: s.params,
    policyVersion: s.policyVersion,
    policyHash: toHex(s.policyHash),
    expiresAt: s.expiresAt.toISOString(),
  };
}
