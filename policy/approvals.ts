/**
 * Approvals: approvers sign the canonical request with their own Ed25519 keys; coordinator and
 * nodes check those signatures against the approver keys in the admin-signed policy.
 *
 * What is signed (approvalPayload): `custody/approval/v1\0` || canonical JSON of
 *   { decision, requestId, keysetId, walletId, intent: intentJson(intent), digest: hex,
 *     policyVersion, policyHash: hex, expiresAt: ISO-8601 UTC }
 * The tag is the one crypto/ed25519-sig.ts uses, so
 * `ed25519Verify(pub, APPROVAL_DOMAIN, <the JSON bytes>, sig)` agrees, and so does any plain
 * Ed25519 implementation over approvalPayload(...). Binding every field means an approval cannot be
 * moved to another request, intent, digest, policy or decision, and cannot outlive its expiry.
 *
 * Operator lifecycle commands are approved the same way (policy/operations.ts defines their
 * subject and domain tag, `custody/operation-approval/v1\0`): signing, verification and the counting
 * rules below are this module's for both, so there is one implementation to audit.
 *
 * Counting rules (docs/policy.md):
 *   - the initiator never counts as an approver of its own request (names compare exactly: the
 *     initiator is the authenticated principal that submitted the request, the same namespace as
 *     approver names);
 *   - each approver counts at most once, and towards one requirement only: "2 treasury + 1
 *     compliance" needs three different people even if one of them holds both roles (the
 *     assignment is a maximum bipartite matching, so no valid assignment is missed);
 *   - requirements naming the same role are merged (the largest count);
 *   - a valid, unexpired 'reject' from an approver holding a required role rejects the request
 *     (the initiator's own rejection counts: rejecting can only stop a request).
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { verifyEd25519 } from './admin.js';
import { canonicalJson, domainTagged, toHex, utf8 } from './canonical.js';
import { PolicyError, policyHash, type ApprovalRequirement, type PolicyDocument } from './document.js';
import { mergeRequirements } from './evaluate.js';
import { intentJson, type Intent } from './intent.js';
import { checkOperationSubject, OPERATION_APPROVAL_DOMAIN, operationJson, type OperationSubject } from './operations.js';

export const APPROVAL_DOMAIN = 'approval';

export interface ApprovalSubject {
  requestId: string;
  keysetId: string;
  walletId: string | null;
  intent: Intent;
  digest: Uint8Array;
  policyVersion: number;
  policyHash: Uint8Array;
  expiresAt: Date;
}

/** What approvers sign: a sign request or an operator lifecycle command. */
export type Approvable = ApprovalSubject | OperationSubject;

export function isOperationSubject(s: Approvable): s is OperationSubject {
  return typeof s === 'object' && s !== null && 'operationId' in s;
}

export type ApprovalDecision = 'approve' | 'reject';

export interface SignedApproval {
  approver: string;
  decision: ApprovalDecision;
  /** always the subject's expiresAt (it is what the signature covers) */
  expiresAt: Date;
  signature: Uint8Array;
}

export interface ApprovalCheck {
  satisfied: boolean;
  counted: string[];
  /** what is still needed */
  missing: ApprovalRequirement[];
  rejectedBy: string[];
  /** approver '*' = a problem with the request itself (expired, another policy, unknown role) */
  invalid: { approver: string; reason: string }[];
}

function checkSubject(s: Approvable): void {
  if (isOperationSubject(s)) return checkOperationSubject(s);
  const str = (v: unknown, name: string) => {
    if (typeof v !== 'string' || v.length === 0) throw new PolicyError(`approval subject: ${name} must be a non-empty string`);
  };
  str(s.requestId, 'requestId');
  str(s.keysetId, 'keysetId');
  if (s.walletId !== null) str(s.walletId, 'walletId');
  if (!(s.digest instanceof Uint8Array) || s.digest.length === 0) throw new PolicyError('approval subject: digest must be non-empty bytes');
  if (!Number.isSafeInteger(s.policyVersion) || s.policyVersion < 1) throw new PolicyError('approval subject: policyVersion must be a positive integer');
  if (!(s.policyHash instanceof Uint8Array) || s.policyHash.length !== 32) throw new PolicyError('approval subject: policyHash must be 32 bytes');
  if (!(s.expiresAt instanceof Date) || Number.isNaN(s.expiresAt.getTime())) throw new PolicyError('approval subject: expiresAt must be a valid Date');
}

/** The JSON value inside the payload, for display to approvers. */
export function approvalJson(s: Approvable, decision: ApprovalDecision = 'approve'): Record<string, unknown> {
  checkSubject(s);
  if (decision !== 'approve' && decision !== 'reject') throw new PolicyError(`approval decision must be "approve" or "reject", got ${JSON.stringify(decision)}`);
  if (isOperationSubject(s)) return { decision, ...operationJson(s) };
  return {
    decision,
    requestId: s.requestId,
    keysetId: s.keysetId,
    walletId: s.walletId,
    intent: intentJson(s.intent),
    digest: toHex(s.digest),
    policyVersion: s.policyVersion,
    policyHash: toHex(s.policyHash),
    expiresAt: s.expiresAt.toISOString(),
  };
}

/**
 * The canonical bytes an approver signs (domain-separated canonical JSON). `decision` defaults to
 * 'approve'; a rejection signs the same subject with decision 'reject' (so neither can be relabelled
 * as the other).
 */
export function approvalPayload(s: Approvable, decision: ApprovalDecision = 'approve'): Uint8Array {
  return domainTagged(isOperationSubject(s) ? OPERATION_APPROVAL_DOMAIN : APPROVAL_DOMAIN, utf8(canonicalJson(approvalJson(s, decision))));
}

/** `secretKey` is the approver's 32-byte Ed25519 seed. */
export function signApproval(s: Approvable, approver: string, decision: ApprovalDecision, secretKey: Uint8Array): SignedApproval {
  if (secretKey.length !== 32) throw new PolicyError(`approver secret key must be a 32-byte Ed25519 seed, got ${secretKey.length} bytes`);
  return { approver, decision, expiresAt: new Date(s.expiresAt.getTime()), signature: ed25519.sign(approvalPayload(s, decision), secretKey) };
}

/** Maximum matching of approvers (each with the set of requirement indexes they can fill) onto requirement slots. */
function assign(candidates: { name: string; fits: Set<number> }[], reqs: ApprovalRequirement[]): { counted: string[]; filled: number[] } {
  const slots: number[] = []; // slot -> requirement index
  reqs.forEach((r, i) => {
    for (let k = 0; k < r.count; k++) slots.push(i);
  });
  const slotOwner = new Array<number>(slots.length).fill(-1); // slot -> candidate index
  const tryCandidate = (c: number, seen: boolean[]): boolean => {
    for (let s = 0; s < slots.length; s++) {
      if (seen[s] || !candidates[c]!.fits.has(slots[s]!)) continue;
      seen[s] = true;
      if (slotOwner[s] === -1 || tryCandidate(slotOwner[s]!, seen)) {
        slotOwner[s] = c;
        return true;
      }
    }
    return false;
  };
  for (let c = 0; c < candidates.length; c++) tryCandidate(c, new Array<boolean>(slots.length).fill(false));
  const filled = reqs.map(() => 0);
  const countedIdx = new Set<number>();
  slotOwner.forEach((c, s) => {
    if (c >= 0) {
      filled[slots[s]!]!++;
      countedIdx.add(c);
    }
  });
  return { counted: candidates.filter((_, i) => countedIdx.has(i)).map((c) => c.name), filled };
}

/** Checks every approval against the subject and the approver keys in the policy (rules in the header). */
export function checkApprovals(
  doc: PolicyDocument,
  subject: Approvable,
  approvals: readonly SignedApproval[],
  initiator: string,
  requirements: readonly ApprovalRequirement[],
  now: Date,
): ApprovalCheck {
  checkSubject(subject);
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new PolicyError('checkApprovals: now must be a valid Date');
  const reqs = mergeRequirements(requirements);
  const what = isOperationSubject(subject) ? 'operation' : 'request';
  const invalid: ApprovalCheck['invalid'] = [];
  const fail = (reason: string): ApprovalCheck => ({
    satisfied: false,
    counted: [],
    missing: reqs,
    rejectedBy: [],
    invalid: [{ approver: '*', reason }, ...approvals.map((a) => ({ approver: String(a?.approver), reason }))],
  });

  const hash = policyHash(doc);
  if (subject.policyVersion !== doc.version || toHex(subject.policyHash) !== toHex(hash)) {
    return fail(`the ${what} was ${what === 'request' ? 'evaluated' : 'requested'} under policy v${subject.policyVersion} (${toHex(subject.policyHash).slice(0, 16)}…), the policy in force is v${doc.version} (${toHex(hash).slice(0, 16)}…); approvals must be collected again`);
  }
  let requestOk = true;
  for (const r of reqs) {
    if (!doc.approvers.some((a) => a.roles.includes(r.role))) {
      invalid.push({ approver: '*', reason: `required role ${JSON.stringify(r.role)} is held by no approver in policy v${doc.version}` });
      requestOk = false;
    }
  }
  if (subject.expiresAt.getTime() <= now.getTime()) {
    invalid.push({ approver: '*', reason: `the ${what}'s approval window closed at ${subject.expiresAt.toISOString()}` });
    requestOk = false;
  }

  const required = new Set(reqs.map((r) => r.role));
  const payloads = new Map<ApprovalDecision, Uint8Array>();
  const payload = (d: ApprovalDecision) => {
    let p = payloads.get(d);
    if (!p) payloads.set(d, (p = approvalPayload(subject, d)));
    return p;
  };
  const approved = new Set<string>();
  const rejected = new Set<string>();
  const candidates: { name: string; fits: Set<number> }[] = [];

  for (const a of approvals) {
    const who = typeof a?.approver === 'string' ? a.approver : String(a?.approver);
    const bad = (reason: string) => invalid.push({ approver: who, reason });
    if (
      typeof a?.approver !== 'string' ||
      (a.decision !== 'approve' && a.decision !== 'reject') ||
      !(a.expiresAt instanceof Date) ||
      Number.isNaN(a.expiresAt.getTime()) ||
      !(a.signature instanceof Uint8Array)
    ) {
      bad('malformed approval record');
      continue;
    }
    const spec = doc.approvers.find((x) => x.name === a.approver);
    if (!spec) {
      bad(`approver ${JSON.stringify(a.approver)} is not an approver in policy v${doc.version}`);
      continue;
    }
    if (a.expiresAt.getTime() !== subject.expiresAt.getTime()) {
      bad(`approval expiry ${a.expiresAt.toISOString()} differs from the ${what}'s ${subject.expiresAt.toISOString()}`);
      continue;
    }
    if (a.expiresAt.getTime() <= now.getTime()) {
      bad(`approval expired at ${a.expiresAt.toISOString()}`);
      continue;
    }
    if (a.decision === 'approve' && a.approver === initiator) {
      bad(`the initiator of ${what === 'request' ? 'a request' : 'an operation'} never counts as its approver`);
      continue;
    }
    if (a.signature.length !== 64) {
      bad(`signature must be 64 bytes, got ${a.signature.length}`);
      continue;
    }
    if (!verifyEd25519(spec.publicKey, payload(a.decision), a.signature)) {
      bad(`signature does not verify under ${a.approver}'s key over this ${what}'s ${a.decision} payload (forged, or made for another ${what === 'request' ? 'request, intent, digest' : 'operation, kind, subject, parameters'}, policy or decision)`);
      continue;
    }
    const seen = a.decision === 'approve' ? approved : rejected;
    if (seen.has(a.approver)) {
      bad(`duplicate ${a.decision} from ${a.approver} (each approver counts once)`);
      continue;
    }
    const fits = new Set<number>();
    reqs.forEach((r, i) => {
      if (spec.roles.includes(r.role)) fits.add(i);
    });
    if (reqs.length > 0 && fits.size === 0) {
      bad(`approver ${a.approver} holds none of the required roles (${[...required].join(', ')}); their roles: ${spec.roles.join(', ')}`);
      continue;
    }
    seen.add(a.approver);
    if (a.decision === 'approve') candidates.push({ name: a.approver, fits });
  }

  const rejectedBy = [...rejected];
  const { counted, filled } = assign(candidates, reqs);
  const missing = reqs.map((r, i) => ({ count: r.count - filled[i]!, role: r.role })).filter((r) => r.count > 0);
  return { satisfied: requestOk && rejectedBy.length === 0 && missing.length === 0, counted, missing, rejectedBy, invalid };
}
