/**
 * Policy enforcement on the node (DESIGN.md section 2): the node holds the policy its admins signed
 * (checked against the admin keys in its own roster) and, before it releases a share, decodes the
 * transaction itself, checks that it hashes to the digest it is asked to sign, evaluates the
 * per-transaction rules and checks every approval signature. A compromised coordinator can refuse
 * to sign; it cannot get a share for what the policy forbids. Velocity limits need the shared
 * history and stay with the coordinator (docs/policy.md).
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import {
  checkApprovals,
  decodePolicyBytes,
  evaluate,
  EthTxError,
  intentOfPayload,
  mergeRequirements,
  PolicyError,
  policyHash,
  verifyPolicySignatures,
  type Intent,
  type PolicyDocument,
  type SignedApproval,
} from '../policy/index.js';
import { SignedPolicySchema, type SignedPolicy } from '../proto/gen/custody/v1/common_pb.js';
import type { SignAuthorization } from '../proto/gen/custody/v1/node_pb.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import type { RosterSource } from './roster.js';
import type { ShareStore } from './store/share-store.js';

const RECORD = 'policy/current';

interface Installed {
  doc: PolicyDocument;
  hash: Uint8Array;
}

export class PolicyGuard {
  private current?: Installed;

  constructor(
    private readonly store: ShareStore,
    private readonly roster: RosterSource,
    private readonly log: Logger,
  ) {}

  async load(): Promise<void> {
    const bytes = await this.store.get(RECORD);
    if (bytes) this.current = await this.verify(fromBinary(SignedPolicySchema, bytes));
  }

  get version(): number {
    return this.current?.doc.version ?? 0;
  }

  /** Installs a newer policy after checking its admin signatures against this node's roster. */
  async install(signed: SignedPolicy): Promise<number> {
    const next = await this.verify(signed);
    if (this.current && next.doc.version <= this.current.doc.version) {
      if (next.doc.version === this.current.doc.version && Buffer.from(next.hash).equals(Buffer.from(this.current.hash))) return next.doc.version;
      throw new RpcError(status.FAILED_PRECONDITION, `policy version ${next.doc.version} is not newer than the installed version ${this.current.doc.version}`);
    }
    await this.store.put(RECORD, toBinary(SignedPolicySchema, create(SignedPolicySchema, signed)));
    this.current = next;
    return next.doc.version;
  }

  private async verify(signed: SignedPolicy): Promise<Installed> {
    const roster = await this.roster.get();
    if (!roster?.admins.length) throw new RpcError(status.FAILED_PRECONDITION, 'this node has no policy admins in its roster, so it cannot accept a policy');
    try {
      const doc = decodePolicyBytes(signed.document);
      verifyPolicySignatures(doc, signed.signatures, roster.admins, roster.adminQuorum);
      return { doc, hash: policyHash(doc) };
    } catch (e) {
      if (e instanceof PolicyError) throw new RpcError(status.PERMISSION_DENIED, `policy refused: ${e.message}`);
      throw e;
    }
  }

  /**
   * Throws unless the installed policy lets this authorization through. Without an installed policy
   * the node signs what its coordinator authorizes (a cluster that never set a policy).
   */
  check(auth: SignAuthorization, now: Date): void {
    try {
      this.enforce(auth, now);
    } catch (e) {
      // A refusal here means the coordinator asked for something the policy forbids: worth a loud line.
      if (e instanceof RpcError) this.log.warn({ requestId: auth.requestId, keysetId: auth.keysetId, code: e.code, reason: e.message }, 'policy refused a signing request');
      throw e;
    }
  }

  private enforce(auth: SignAuthorization, now: Date): void {
    const p = this.current;
    if (!p) {
      if (auth.policyVersion !== 0) throw new RpcError(status.FAILED_PRECONDITION, `request was evaluated under policy ${auth.policyVersion}, which this node does not have yet`);
      return;
    }
    if (auth.policyVersion !== p.doc.version) {
      throw new RpcError(status.FAILED_PRECONDITION, `request was evaluated under policy ${auth.policyVersion}; this node enforces version ${p.doc.version}`);
    }
    const intent = this.intentOf(auth, p.doc);
    const walletId = auth.walletId || null;
    const decision = evaluate(p.doc, { intent, keysetId: auth.keysetId, walletId, now });
    if (decision.effect === 'deny') throw new RpcError(status.PERMISSION_DENIED, `policy ${p.doc.version} rule ${decision.ruleId} denies this request: ${decision.reason}`);
    const requirements = mergeRequirements(
      decision.effect === 'require_approvals' ? decision.requirements : [],
      auth.requiredApprovals.map((r) => ({ count: r.count, role: r.role })),
    );
    if (requirements.length === 0) return;
    const approvals: SignedApproval[] = auth.approvals.map((a) => ({
      approver: a.approver,
      decision: a.decision === 'reject' ? 'reject' : 'approve',
      expiresAt: new Date(Number(a.expiresAtMs)),
      signature: a.signature,
    }));
    const subject = {
      requestId: auth.requestId,
      keysetId: auth.keysetId,
      walletId,
      intent,
      digest: auth.digest,
      policyVersion: p.doc.version,
      policyHash: p.hash,
      expiresAt: new Date(Number(auth.approvalExpiresAtMs)),
    };
    let result;
    try {
      result = checkApprovals(p.doc, subject, approvals, auth.initiator, requirements, now);
    } catch (e) {
      if (e instanceof PolicyError) throw new RpcError(status.PERMISSION_DENIED, `approvals refused: ${e.message}`);
      throw e;
    }
    if (result.rejectedBy.length) throw new RpcError(status.PERMISSION_DENIED, `request ${auth.requestId} was rejected by ${result.rejectedBy.join(', ')}`);
    if (!result.satisfied) {
      const missing = result.missing.map((m) => `${m.count} from ${m.role}`).join(', ');
      const invalid = result.invalid.map((i) => `${i.approver}: ${i.reason}`).join('; ');
      throw new RpcError(status.PERMISSION_DENIED, `policy ${p.doc.version} needs approvals (${missing})${invalid ? `; not counted: ${invalid}` : ''}`);
    }
  }

  /** What the request does, decoded here from the bytes, never taken from the coordinator. */
  private intentOf(auth: SignAuthorization, doc: PolicyDocument): Intent {
    try {
      return intentOfPayload(doc, auth.payload, auth.digest);
    } catch (e) {
      if (e instanceof EthTxError) throw new RpcError(status.INVALID_ARGUMENT, `transaction refused: ${e.message}`);
      throw e;
    }
  }
}
