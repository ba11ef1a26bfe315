/**
 * The coordinator's copy of the policy: versions as the admins signed them (table `policies`), the
 * current one decoded for evaluation, and its delivery to every node, which checks the admin
 * signatures again against its own roster before it enforces it. Nodes that are down get it when
 * they are back (checked every few seconds); other coordinators pick up a new version the same way.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { decodePolicyBytes, PolicyError, policyHash, verifyPolicySignatures, type AdminKey, type PolicyDocument } from '../policy/index.js';
import { SignedPolicySchema, type SignedPolicy } from '../proto/gen/custody/v1/common_pb.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { errorMessage, type NodeRegistry } from './node-registry.js';
import { appendAudit } from './store/audit.js';
import type { Db } from './store/db.js';
import { uniqueViolation } from './store/db.js';

export interface CurrentPolicy {
  version: number;
  doc: PolicyDocument;
  hash: Uint8Array;
  signed: SignedPolicy;
}

const PUSH_INTERVAL_MS = 5_000;

export class Policies {
  private current?: CurrentPolicy;
  /** node id -> the version it confirmed. */
  private readonly delivered = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly db: Db,
    private readonly registry: NodeRegistry,
    private readonly log: Logger,
    private readonly admins: readonly AdminKey[],
    private readonly quorum: number,
  ) {}

  get(): CurrentPolicy | undefined {
    return this.current;
  }

  /** Reads the newest version from the database (at start, and to see what another coordinator set). */
  async load(): Promise<void> {
    const [row] = await this.db.query<{ version: number; signed: Uint8Array }>('SELECT version, signed FROM policies ORDER BY version DESC LIMIT 1');
    if (!row || row.version === this.current?.version) return;
    const signed = fromBinary(SignedPolicySchema, row.signed);
    const doc = decodePolicyBytes(signed.document);
    this.current = { version: doc.version, doc, hash: policyHash(doc), signed };
  }

  async set(signed: SignedPolicy, actor: string): Promise<{ version: number; hash: Uint8Array; pendingNodes: string[] }> {
    let doc: PolicyDocument;
    try {
      doc = decodePolicyBytes(signed.document);
      verifyPolicySignatures(doc, signed.signatures, this.admins, this.quorum);
    } catch (e) {
      if (e instanceof PolicyError) throw new RpcError(status.PERMISSION_DENIED, `policy refused: ${e.message}`);
      throw e;
    }
    await this.load();
    if (this.current && doc.version <= this.current.version) {
      throw new RpcError(status.FAILED_PRECONDITION, `policy version ${doc.version} is not newer than the current version ${this.current.version}`);
    }
    const hash = policyHash(doc);
    try {
      await this.db.tx(async (q) => {
        await q.query('INSERT INTO policies (version, hash, signed, applied_by, applied_at) VALUES ($1, $2, $3, $4, $5)', [
          doc.version,
          hash,
          toBinary(SignedPolicySchema, create(SignedPolicySchema, signed)),
          actor,
          new Date(),
        ]);
        await appendAudit(q, {
          actor,
          action: 'policy.set',
          subject: `policy:${doc.version}`,
          details: { version: doc.version, hash: bytesToHex(hash), signedBy: signed.signatures.map((s) => s.admin), approvers: doc.approvers.map((a) => ({ name: a.name, roles: a.roles })) },
        });
      });
    } catch (e) {
      if (uniqueViolation(e)) throw new RpcError(status.FAILED_PRECONDITION, `policy version ${doc.version} was just set by someone else; fetch it and retry`);
      throw e;
    }
    this.current = { version: doc.version, doc, hash, signed };
    const pendingNodes = await this.deliver();
    this.log.info({ version: doc.version, pendingNodes }, 'policy set');
    return { version: doc.version, hash, pendingNodes };
  }

  /** Hands the current version to every up node that has not confirmed it; returns the nodes still without it. */
  async deliver(): Promise<string[]> {
    const p = this.current;
    if (!p) return [];
    const pending: string[] = [];
    await Promise.all(
      [...this.registry.nodes.values()].map(async (n) => {
        if (!n.up) this.delivered.delete(n.nodeId);
        if ((this.delivered.get(n.nodeId) ?? 0) >= p.version) return;
        try {
          const r = await this.registry.get(n.nodeId).client.setPolicy({ policy: p.signed }, { deadlineMs: 10_000 });
          this.delivered.set(n.nodeId, r.version);
        } catch (e) {
          pending.push(n.nodeId);
          if (n.up) this.log.warn({ nodeId: n.nodeId, err: errorMessage(e) }, 'policy delivery failed');
        }
      }),
    );
    return pending;
  }

  start(): void {
    const tick = () => void this.load().then(() => this.deliver()).catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, 'policy refresh failed'));
    tick();
    this.timer = setInterval(tick, PUSH_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
