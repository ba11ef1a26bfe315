/** The public API (custody.v1 Keyset/Signing/Audit/Cluster services) and who may call what. */
import { status } from '@grpc/grpc-js';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { HDKey } from '@scure/bip32';
import { isScheme } from '../crypto/schemes.js';
import { schemeFromProto, schemeToProto } from '../proto/convert.js';
import {
  AuditService,
  ClusterService,
  KeysetSchema,
  KeysetService,
  NodeRewrapSchema,
  NodeState,
  SignRequestRecordSchema,
  SignResultSchema,
  SignStatus,
  SigningService,
} from '../proto/gen/custody/v1/api_pb.js';
import { RpcError, type CallContext, type Role, type ServiceImpl } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { VERSION } from '../runtime/version.js';
import { createKeyset, displayPublicKey, importKeyset, rerunSetup } from './keysets.js';
import { checkUuid } from './ids.js';
import { exportRecovery } from './recovery.js';
import { repairNode } from './repair.js';
import { planReshare } from './reshare-plan.js';
import type { Refreshes } from './refresh.js';
import type { NonceCache } from './nonce-cache.js';
import type { NodeRegistry } from './node-registry.js';
import type { Operations } from './operations.js';
import type { Accepted, RequestService, Submitter } from './requests.js';
import { appendAudit, listAudit, verifyAudit } from './store/audit.js';
import { errorMessage } from './node-registry.js';
import type { Db } from './store/db.js';
import { getKeyset, getSignRequest, listKeysets, nodeFaultCounts,
  listKeysetBans, type KeysetRow, type SignRequestRow, type SignStatus as RowStatus } from './store/repo.js';

export interface ApiContext {
  db: Db;
  registry: NodeRegistry;
  nonces: NonceCache;
  requests: RequestService;
  defaultThreshold: number;
  log: Logger;
  /** Lets the signing side forget bans and pooled presignatures of a keyset whose setup was re-run. */
  afterSetupRerun(keysetId: string): void;
  /** Node id -> X25519 identity key, from the coordinator's roster (recovery bundles name the box senders). */
  nodeKeys: ReadonlyMap<string, Uint8Array>;
  /** Ready root-key presignatures of an ecdsa keyset in this coordinator's pool. */
  poolLevel(keysetId: string): number;
  refreshes: Refreshes;
  /** The operator-quorum gate every lifecycle handler passes first (coordinator/operations.ts). */
  operations: Operations;
}

const READERS: readonly Role[] = ['payment', 'approver', 'operator', 'admin'];
const OPERATORS: readonly Role[] = ['operator', 'admin'];

export const ACCESS = {
  keyset: { createKeyset: OPERATORS, getKeyset: READERS, listKeysets: READERS, importKeyset: ['admin'] as readonly Role[], rerunSetup: ['admin'] as readonly Role[], exportRecovery: ['admin'] as readonly Role[], refreshKeyset: ['admin'] as readonly Role[], reshareKeyset: ['admin'] as readonly Role[] },
  signing: { sign: ['payment', 'admin'] as readonly Role[], signBatch: ['payment', 'admin'] as readonly Role[], getSignRequest: READERS },
  audit: OPERATORS,
  cluster: { health: READERS, listNodes: OPERATORS, rewrapNodes: ['admin'] as readonly Role[], repairNode: ['admin'] as readonly Role[] },
};

const actorOf = (ctx: CallContext) => `${ctx.role}:${ctx.subject}`;
const submitterOf = (ctx: CallContext): Submitter => ({ actor: actorOf(ctx), source: 'grpc', clientId: ctx.subject });
const MAX_BATCH = 1000;

export function keysetToProto(row: KeysetRow, presignaturesReady = 0): MessageInitShape<typeof KeysetSchema> {
  return {
    keysetId: row.keysetId,
    scheme: schemeToProto(row.scheme),
    publicKey: displayPublicKey(row.scheme, row.publicKey),
    threshold: row.threshold,
    members: row.members.map((m) => ({ index: m.index, nodeId: m.nodeId, verifyingShare: m.verifyingShare })),
    chainCode: row.chainCode,
    label: row.label,
    createdAt: timestampFromDate(row.createdAt),
    extendedPublicKey: row.scheme === 'ed25519' ? '' : new HDKey({ publicKey: row.publicKey, chainCode: row.chainCode }).publicExtendedKey,
    presignaturesReady,
    epoch: row.epoch,
  };
}

const STATUS: Record<RowStatus, SignStatus> = {
  received: SignStatus.RECEIVED,
  policy_checked: SignStatus.POLICY_CHECKED,
  awaiting_approvals: SignStatus.AWAITING_APPROVALS,
  signing: SignStatus.SIGNING,
  signed: SignStatus.SIGNED,
  rejected: SignStatus.REJECTED,
  failed: SignStatus.FAILED,
  expired: SignStatus.EXPIRED,
};

export function signRequestToProto(r: SignRequestRow) {
  return create(SignRequestRecordSchema, {
    requestId: r.requestId,
    keysetId: r.keysetId,
    scheme: schemeToProto(r.scheme),
    digest: r.digest,
    status: STATUS[r.status],
    signature: r.signature ?? new Uint8Array(),
    publicKey: r.publicKey ?? new Uint8Array(),
    signers: r.signers,
    error: r.error ?? '',
    idempotencyKey: r.idempotencyKey ?? '',
    attempts: r.attempts,
    walletId: r.walletId ?? '',
    derivationPath: r.derivationPath,
    intentJson: r.intent ? JSON.stringify(r.intent) : '',
    policyVersion: r.policyVersion ?? 0,
    rule: r.rule ?? '',
    missingApprovals: r.status === 'awaiting_approvals' ? (r.requirements ?? []) : [],
    approvalExpiresAt: r.approvalExpiresAt ? timestampFromDate(r.approvalExpiresAt) : undefined,
    signedTx: r.signedTx ?? new Uint8Array(),
    ethTx: r.payload ?? new Uint8Array(),
    createdAt: timestampFromDate(r.createdAt),
    updatedAt: timestampFromDate(r.updatedAt),
  });
}

export function signResultToProto(a: Accepted, idempotencyKey: string): MessageInitShape<typeof SignResultSchema> {
  return 'error' in a
    ? { errorCode: a.error.code, errorMessage: a.error.message, idempotencyKey }
    : { request: signRequestToProto(a.request), idempotencyKey };
}

export function keysetApi(c: ApiContext): ServiceImpl<typeof KeysetService> {
  return {
    async createKeyset(req, ctx) {
      const scheme = schemeFromProto(req.scheme);
      if (!scheme || !isScheme(scheme)) throw new RpcError(status.INVALID_ARGUMENT, 'scheme is required: ed25519, secp256k1 or bip340');
      const nodeIds = req.nodeIds.length ? req.nodeIds : [...c.registry.nodes.keys()];
      for (const id of nodeIds) if (!c.registry.nodes.has(id)) throw new RpcError(status.INVALID_ARGUMENT, `unknown node ${id}`);
      if (new Set(nodeIds).size !== nodeIds.length) throw new RpcError(status.INVALID_ARGUMENT, 'node ids must be distinct');
      if (req.label.length > 200) throw new RpcError(status.INVALID_ARGUMENT, 'label is longer than 200 characters');
      const row = await createKeyset(c.db, c.registry, c.log, {
        scheme,
        threshold: req.threshold || Math.min(c.defaultThreshold, nodeIds.length),
        nodeIds,
        label: req.label,
        actor: actorOf(ctx),
      });
      return { keyset: keysetToProto(row) };
    },
    async importKeyset(req, ctx) {
      const scheme = schemeFromProto(req.scheme);
      if (!scheme || !isScheme(scheme)) throw new RpcError(status.INVALID_ARGUMENT, 'scheme is required: ed25519, secp256k1, bip340 or ecdsa');
      checkUuid('keyset_id (chosen by the import ceremony)', req.keysetId);
      for (const id of req.nodeIds) if (!c.registry.nodes.has(id)) throw new RpcError(status.INVALID_ARGUMENT, `unknown node ${id}`);
      if (new Set(req.nodeIds).size !== req.nodeIds.length || req.nodeIds.length < 2) throw new RpcError(status.INVALID_ARGUMENT, 'node ids must be at least two distinct nodes');
      if (req.label.length > 200 || req.source.length > 200) throw new RpcError(status.INVALID_ARGUMENT, 'label and source are at most 200 characters');
      const row = await importKeyset(c.db, c.registry, c.log, {
        keysetId: req.keysetId.toLowerCase(),
        scheme,
        threshold: req.threshold,
        nodeIds: req.nodeIds,
        label: req.label,
        actor: actorOf(ctx),
        commitments: req.commitments,
        chainCode: req.chainCode,
        dealerKey: req.dealerKey,
        sealedShares: req.sealedShares,
        source: req.source,
      });
      return { keyset: keysetToProto(row) };
    },
    async rerunSetup(req, ctx) {
      const row = await loadKeysetRow(c.db, req.keysetId);
      await c.operations.authorize({ caller: ctx, kind: 'keyset.rerun_setup', subject: row.keysetId });
      const { cleared } = await rerunSetup(c.db, c.registry, c.log, row.keysetId, actorOf(ctx));
      c.afterSetupRerun(row.keysetId);
      return { keyset: keysetToProto(row), clearedBans: cleared };
    },
    async refreshKeyset(req, ctx) {
      const row = await loadKeysetRow(c.db, req.keysetId);
      await c.operations.authorize({ caller: ctx, kind: 'keyset.refresh', subject: row.keysetId });
      const r = await c.refreshes.refresh(row.keysetId, actorOf(ctx));
      return { keyset: keysetToProto(r.row), epoch: r.epoch, pendingNodes: r.pending };
    },
    async reshareKeyset(req, ctx) {
      const row = await loadKeysetRow(c.db, req.keysetId);
      const request = { threshold: req.threshold, add: req.addNodes, remove: req.removeNodes };
      // A request that cannot work is refused before it asks approvers for anything.
      const target = planReshare(row, new Set(c.registry.nodes.keys()), request);
      await c.operations.authorize({
        caller: ctx,
        kind: 'keyset.reshare',
        subject: row.keysetId,
        params: { threshold: target.threshold, addNodes: [...req.addNodes].sort(), removeNodes: [...req.removeNodes].sort() },
      });
      const r = await c.refreshes.reshare(row.keysetId, request, actorOf(ctx));
      return { keyset: keysetToProto(r.row), epoch: r.epoch, pendingNodes: r.pending, unretiredNodes: r.unretired };
    },
    async exportRecovery(req, ctx) {
      const row = await loadKeysetRow(c.db, req.keysetId);
      await c.operations.authorize({ caller: ctx, kind: 'keyset.export_recovery', subject: row.keysetId });
      const r = await exportRecovery(c.db, c.registry, c.log, c.nodeKeys, row.keysetId, actorOf(ctx));
      return { keyset: keysetToProto(r.row), shares: r.shares, refused: r.refused };
    },
    async getKeyset(req) {
      const row = await loadKeysetRow(c.db, req.keysetId);
      return { keyset: keysetToProto(row, c.poolLevel(row.keysetId)) };
    },
    async listKeysets(req) {
      const limit = Math.min(req.limit || 100, 1000);
      const rows = await listKeysets(c.db, { limit, afterKeysetId: req.afterKeysetId || undefined });
      return { keysets: rows.map((r) => keysetToProto(r, c.poolLevel(r.keysetId))) };
    },
  };
}

async function loadKeysetRow(db: Db, keysetId: string): Promise<KeysetRow> {
  if (!/^[0-9a-f-]{36}$/i.test(keysetId)) throw new RpcError(status.INVALID_ARGUMENT, 'keyset_id must be a UUID');
  const row = await getKeyset(db, keysetId);
  if (!row) throw new RpcError(status.NOT_FOUND, `keyset ${keysetId} not found`);
  return row;
}

export function signingApi(c: ApiContext): ServiceImpl<typeof SigningService> {
  return {
    async sign(req, ctx) {
      const row = await c.requests.signOne({ keysetId: req.keysetId, walletId: req.walletId, digest: req.digest, ethTx: req.ethTx, idempotencyKey: req.idempotencyKey }, submitterOf(ctx));
      return { request: signRequestToProto(row) };
    },
    async signBatch(req, ctx) {
      if (req.requests.length === 0 || req.requests.length > MAX_BATCH) throw new RpcError(status.INVALID_ARGUMENT, `a batch holds 1 to ${MAX_BATCH} requests`);
      const items = req.requests.map((r) => ({ keysetId: r.keysetId, walletId: r.walletId, digest: r.digest, ethTx: r.ethTx, idempotencyKey: r.idempotencyKey }));
      const results = await c.requests.signMany(items, submitterOf(ctx));
      return { results: results.map((a, i) => signResultToProto(a, items[i]!.idempotencyKey)) };
    },
    async getSignRequest(req) {
      if (!/^[0-9a-f-]{36}$/i.test(req.requestId)) throw new RpcError(status.INVALID_ARGUMENT, 'request_id must be a UUID');
      const row = await getSignRequest(c.db, req.requestId);
      if (!row) throw new RpcError(status.NOT_FOUND, `sign request ${req.requestId} not found`);
      return { request: signRequestToProto(row) };
    },
  };
}

export function auditApi(c: ApiContext): ServiceImpl<typeof AuditService> {
  return {
    async verifyAudit() {
      const r = await verifyAudit(c.db);
      return r.ok
        ? { ok: true, records: BigInt(r.records) }
        : { ok: false, records: BigInt(r.records), firstBadSeq: BigInt(r.firstBadSeq), reason: r.reason };
    },
    async listAudit(req) {
      const rows = await listAudit(c.db, Number(req.afterSeq), Math.min(req.limit || 100, 1000));
      return {
        records: rows.map((r) => ({
          seq: BigInt(r.seq),
          at: timestampFromDate(r.at),
          actor: r.actor,
          action: r.action,
          subject: r.subject,
          detailsJson: JSON.stringify(r.details),
          prevHash: r.prevHash,
          hash: r.hash,
        })),
      };
    },
  };
}

export function clusterApi(c: ApiContext): ServiceImpl<typeof ClusterService> {
  return {
    async health() {
      const up = c.registry.upNodes().length;
      return { serving: true, version: VERSION, nodesUp: up, nodesTotal: c.registry.nodes.size, defaultThreshold: c.defaultThreshold };
    },
    async repairNode(req, ctx) {
      if (!c.registry.nodes.has(req.nodeId)) throw new RpcError(status.INVALID_ARGUMENT, `unknown node ${req.nodeId}`);
      await c.operations.authorize({ caller: ctx, kind: 'node.repair', subject: req.nodeId });
      return { keysetIds: await repairNode(c.db, c.registry, c.log, req.nodeId, actorOf(ctx)) };
    },
    async rewrapNodes(_req, ctx) {
      await c.operations.authorize({ caller: ctx, kind: 'vault.rotate', subject: 'cluster' });
      // One node at a time: rewrapping is Vault traffic on top of signing, and nothing is gained by rushing.
      const nodes: MessageInitShape<typeof NodeRewrapSchema>[] = [];
      for (const n of c.registry.nodes.values()) {
        try {
          const r = await c.registry.get(n.nodeId).client.rewrapSealed({}, { deadlineMs: 300_000 });
          nodes.push({ nodeId: n.nodeId, transitKey: r.transitKey, latestVersion: r.latestVersion, records: r.records, oldestVersion: r.oldestVersion });
        } catch (e) {
          nodes.push({ nodeId: n.nodeId, error: errorMessage(e) });
        }
      }
      await c.db.tx((q) => appendAudit(q, { actor: actorOf(ctx), action: 'vault.rewrapped', subject: 'cluster', details: { nodes: nodes.map((x) => ({ ...x })) } }));
      return { nodes };
    },
    async listNodes() {
      const faults = await nodeFaultCounts(c.db);
      // From the database, not this coordinator's memory: another coordinator may have recorded the ban.
      const bans = await listKeysetBans(c.db);
      return {
        nodes: [...c.registry.nodes.values()].map((n) => ({
          nodeId: n.nodeId,
          address: n.address,
          pid: n.pid,
          state: n.up ? NodeState.UP : NodeState.DOWN,
          version: n.version,
          lastSeen: n.lastSeen ? timestampFromDate(n.lastSeen) : undefined,
          ed25519Nonces: c.nonces.size(n.nodeId, 'ed25519'),
          secp256k1Nonces: c.nonces.size(n.nodeId, 'secp256k1'),
          faults: faults.get(n.nodeId) ?? 0,
          bannedKeysets: bans.filter((b) => b.nodeId === n.nodeId).map((b) => b.keysetId),
          lastError: n.up ? '' : (n.lastError ?? ''),
        })),
      };
    },
  };
}
