/**
 * Typed repository functions. Each takes a Queryable so callers compose several of them with an
 * audit append inside one Db.tx:
 *
 *   await db.tx(async (q) => {
 *     const req = await createSignRequest(q, {...});
 *     await appendAudit(q, { actor, action: 'sign_request.received', subject: req.requestId, details: {...} });
 *   });
 *
 * Unique violations surface as DuplicateKeyError. On PostgreSQL a failed statement aborts the whole
 * transaction, so handle a duplicate idempotency key outside the tx: catch DuplicateKeyError, then
 * findSignRequestByIdempotencyKey in a new transaction and compare request_hash.
 */
import { randomUUID } from 'node:crypto';
import { DuplicateKeyError, uniqueViolation, type Queryable } from './db.js';
import { SCHEMES, SIGN_STATUSES } from './schema.js';

export { DuplicateKeyError } from './db.js';

export type Scheme = (typeof SCHEMES)[number];
export type SignStatus = (typeof SIGN_STATUSES)[number];

export const isScheme = (s: unknown): s is Scheme => typeof s === 'string' && (SCHEMES as readonly string[]).includes(s);
export const isSignStatus = (s: unknown): s is SignStatus =>
  typeof s === 'string' && (SIGN_STATUSES as readonly string[]).includes(s);

export interface KeysetMember {
  /** Protocol party index (1-based, the x-coordinate of the share). */
  index: number;
  nodeId: string;
  verifyingShare: Uint8Array;
}

export interface Keyset {
  keysetId: string;
  scheme: Scheme;
  publicKey: Uint8Array;
  threshold: number;
  chainCode: Uint8Array;
  label: string;
  createdAt: Date;
  /** Ordered by index. */
  members: KeysetMember[];
  /** Share epoch: one more after every committed refresh. */
  epoch: number;
}

export interface NewKeyset {
  keysetId?: string;
  scheme: Scheme;
  publicKey: Uint8Array;
  threshold: number;
  chainCode: Uint8Array;
  label?: string;
  createdAt?: Date;
  members: KeysetMember[];
}

export interface SignRequest {
  requestId: string;
  keysetId: string;
  scheme: Scheme;
  digest: Uint8Array;
  idempotencyKey: string | null;
  /** Hash of the request content; a retried request with the same idempotency key must match it. */
  requestHash: Uint8Array;
  status: SignStatus;
  signature: Uint8Array | null;
  publicKey: Uint8Array | null;
  /** Node ids of the quorum that produced the signature (as in the public API). */
  signers: string[];
  error: string | null;
  attempts: number;
  createdAt: Date;
  updatedAt: Date;
  createdBy: string;
  /** 'grpc' or 'nats'. */
  source: string;
  /** Who gets the result: the NATS client id (results subject), or the gRPC caller. */
  clientId: string;
  owner: string | null;
  leaseUntil: Date | null;
  resultPublished: boolean;
  /** HD wallet requests: the wallet and its path relative to the keyset root ('' for the root key). */
  walletId: string | null;
  derivationPath: string;
  /** Policy fields (null before a policy is installed); see PolicyFields. */
  payload: Uint8Array | null;
  intent: Record<string, string> | null;
  policyVersion: number | null;
  rule: string | null;
  requirements: { count: number; role: string }[] | null;
  approvalExpiresAt: Date | null;
  signedTx: Uint8Array | null;
}

/** What the policy made of a request, stored with it at acceptance. */
export interface PolicyFields {
  payload?: Uint8Array | null;
  /** intentJson(intent). */
  intent?: Record<string, string> | null;
  policyVersion?: number | null;
  rule?: string | null;
  requirements?: { count: number; role: string }[] | null;
  approvalExpiresAt?: Date | null;
}

export interface NewSignRequest {
  requestId?: string;
  keysetId: string;
  scheme: Scheme;
  digest: Uint8Array;
  idempotencyKey?: string | null;
  requestHash: Uint8Array;
  status?: SignStatus;
  createdBy: string;
  createdAt?: Date;
  source?: string;
  clientId?: string;
  owner?: string | null;
  leaseUntil?: Date | null;
  walletId?: string | null;
  derivationPath?: string;
  policy?: PolicyFields;
}

export interface SignRequestUpdate {
  status?: SignStatus;
  signature?: Uint8Array | null;
  publicKey?: Uint8Array | null;
  signers?: string[];
  error?: string | null;
  attempts?: number;
  owner?: string | null;
  leaseUntil?: Date | null;
  resultPublished?: boolean;
  rule?: string | null;
  signedTx?: Uint8Array | null;
  /** Compare-and-set: only update while the current status is one of these (two coordinators resuming the same request). */
  expectedStatus?: SignStatus | readonly SignStatus[];
  /** Compare-and-set: only update while this coordinator owns the request. */
  expectedOwner?: string;
  updatedAt?: Date;
}

export interface NodeFault {
  faultId: string;
  nodeId: string;
  keysetId: string | null;
  requestId: string | null;
  reason: string;
  at: Date;
}

export interface NewNodeFault {
  nodeId: string;
  keysetId?: string | null;
  requestId?: string | null;
  reason: string;
  at?: Date;
}

/** Names the coordinator services use for the same shapes. */
export type KeysetRow = Keyset;
export type SignRequestRow = SignRequest;

/** The row to update does not exist. */
export class NotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Rethrows a unique violation as DuplicateKeyError; anything else unchanged. */
function mapError(err: unknown, what: string): never {
  const uv = uniqueViolation(err);
  if (uv) throw new DuplicateKeyError(uv.constraint, `${what}: duplicate key${uv.constraint ? ` (${uv.constraint})` : ''}`, { cause: err });
  throw err;
}

function checkScheme(s: unknown): Scheme {
  if (!isScheme(s)) throw new Error(`unknown scheme in database: ${String(s)}`);
  return s;
}

function checkStatus(s: unknown): SignStatus {
  if (!isSignStatus(s)) throw new Error(`unknown sign request status in database: ${String(s)}`);
  return s;
}

function checkSigners(v: unknown): string[] {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new Error('signers column is not a JSON array of node ids');
  return v as string[];
}

const signersJson = (signers: readonly string[]): string => {
  if (!signers.every((s) => typeof s === 'string')) throw new TypeError('signers must be node ids');
  return JSON.stringify(signers);
};

// ---------------------------------------------------------------------------------------------
// Keysets

interface KeysetDbRow {
  keyset_id: string;
  scheme: string;
  public_key: Uint8Array;
  threshold: number;
  chain_code: Uint8Array;
  label: string;
  created_at: Date;
  epoch: number;
}

interface MemberDbRow {
  keyset_id: string;
  party_index: number;
  node_id: string;
  verifying_share: Uint8Array;
}

const KEYSET_COLUMNS = 'keyset_id, scheme, public_key, threshold, chain_code, label, created_at, epoch';

function toKeyset(r: KeysetDbRow, members: MemberDbRow[]): Keyset {
  return {
    keysetId: r.keyset_id,
    scheme: checkScheme(r.scheme),
    publicKey: r.public_key,
    threshold: r.threshold,
    chainCode: r.chain_code,
    label: r.label,
    createdAt: r.created_at,
    epoch: r.epoch,
    members: members
      .map((m) => ({ index: m.party_index, nodeId: m.node_id, verifyingShare: m.verifying_share }))
      .sort((a, b) => a.index - b.index),
  };
}

export async function insertKeyset(q: Queryable, k: NewKeyset): Promise<Keyset> {
  if (!isScheme(k.scheme)) throw new TypeError(`unknown scheme ${String(k.scheme)}`);
  if (k.members.length === 0) throw new TypeError('a keyset needs members');
  if (!Number.isInteger(k.threshold) || k.threshold < 1 || k.threshold > k.members.length) {
    throw new TypeError(`threshold ${k.threshold} must be within 1..${k.members.length}`);
  }
  if (new Set(k.members.map((m) => m.index)).size !== k.members.length) throw new TypeError('member indices must be distinct');
  if (new Set(k.members.map((m) => m.nodeId)).size !== k.members.length) throw new TypeError('member node ids must be distinct');

  const keysetId = k.keysetId ?? randomUUID();
  const createdAt = k.createdAt ?? new Date();
  const label = k.label ?? '';
  try {
    await q.query(`INSERT INTO keysets (${KEYSET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)`, [
      keysetId,
      k.scheme,
      k.publicKey,
      k.threshold,
      k.chainCode,
      label,
      createdAt,
    ]);
    const params: unknown[] = [];
    const values = k.members.map((m, i) => {
      params.push(keysetId, m.index, m.nodeId, m.verifyingShare);
      return `($${i * 4 + 1}, $${i * 4 + 2}, $${i * 4 + 3}, $${i * 4 + 4})`;
    });
    await q.query(`INSERT INTO keyset_members (keyset_id, party_index, node_id, verifying_share) VALUES ${values.join(', ')}`, params);
  } catch (err) {
    mapError(err, 'insertKeyset');
  }
  const members = [...k.members].map((m) => ({ ...m })).sort((a, b) => a.index - b.index);
  return { keysetId, scheme: k.scheme, publicKey: k.publicKey, threshold: k.threshold, chainCode: k.chainCode, label, createdAt, members, epoch: 0 };
}

export async function getKeyset(q: Queryable, keysetId: string): Promise<Keyset | undefined> {
  const [row] = await q.query<KeysetDbRow>(`SELECT ${KEYSET_COLUMNS} FROM keysets WHERE keyset_id = $1`, [keysetId]);
  if (!row) return undefined;
  const members = await q.query<MemberDbRow>(
    'SELECT keyset_id, party_index, node_id, verifying_share FROM keyset_members WHERE keyset_id = $1 ORDER BY party_index',
    [keysetId],
  );
  return toKeyset(row, members);
}

/**
 * Keysets ordered by (created_at, keyset_id), `limit` per page, starting after `afterKeysetId`.
 * The cursor is resolved in SQL so microsecond timestamps written by other tools page correctly.
 */
export async function listKeysets(q: Queryable, opts: { limit: number; afterKeysetId?: string }): Promise<Keyset[]> {
  const limit = Math.max(1, Math.floor(opts.limit));
  let rows: KeysetDbRow[];
  if (opts.afterKeysetId === undefined) {
    rows = await q.query<KeysetDbRow>(`SELECT ${KEYSET_COLUMNS} FROM keysets ORDER BY created_at, keyset_id LIMIT $1`, [limit]);
  } else {
    rows = await q.query<KeysetDbRow>(
      `SELECT ${KEYSET_COLUMNS.split(', ').map((c) => `k.${c}`).join(', ')}
         FROM keysets k, (SELECT created_at, keyset_id FROM keysets WHERE keyset_id = $1) c
        WHERE (k.created_at, k.keyset_id) > (c.created_at, c.keyset_id)
        ORDER BY k.created_at, k.keyset_id LIMIT $2`,
      [opts.afterKeysetId, limit],
    );
    if (rows.length === 0) {
      const known = await q.query('SELECT 1 FROM keysets WHERE keyset_id = $1', [opts.afterKeysetId]);
      if (known.length === 0) throw new RangeError(`unknown keyset cursor ${opts.afterKeysetId}`);
    }
  }
  if (rows.length === 0) return [];
  const members = await q.query<MemberDbRow>(
    `SELECT keyset_id, party_index, node_id, verifying_share FROM keyset_members
      WHERE keyset_id = ANY($1::uuid[]) ORDER BY keyset_id, party_index`,
    [rows.map((r) => r.keyset_id)],
  );
  const byKeyset = new Map<string, MemberDbRow[]>();
  for (const m of members) {
    const list = byKeyset.get(m.keyset_id) ?? [];
    list.push(m);
    byKeyset.set(m.keyset_id, list);
  }
  return rows.map((r) => toKeyset(r, byKeyset.get(r.keyset_id) ?? []));
}

// ---------------------------------------------------------------------------------------------
// Sign requests

interface SignRequestDbRow {
  request_id: string;
  keyset_id: string;
  scheme: string;
  digest: Uint8Array;
  idempotency_key: string | null;
  request_hash: Uint8Array;
  status: string;
  signature: Uint8Array | null;
  public_key: Uint8Array | null;
  signers: unknown;
  error: string | null;
  attempts: number;
  created_at: Date;
  updated_at: Date;
  created_by: string;
  source: string;
  client_id: string;
  owner: string | null;
  lease_until: Date | null;
  result_published: boolean;
  wallet_id: string | null;
  derivation_path: string;
  payload: Uint8Array | null;
  intent: Record<string, string> | null;
  policy_version: number | null;
  rule: string | null;
  requirements: { count: number; role: string }[] | null;
  approval_expires_at: Date | null;
  signed_tx: Uint8Array | null;
}

const SIGN_REQUEST_COLUMNS =
  'request_id, keyset_id, scheme, digest, idempotency_key, request_hash, status, signature, public_key, signers, error, attempts, created_at, updated_at, created_by, source, client_id, owner, lease_until, result_published, wallet_id, derivation_path, payload, intent, policy_version, rule, requirements, approval_expires_at, signed_tx';

function toSignRequest(r: SignRequestDbRow): SignRequest {
  return {
    requestId: r.request_id,
    keysetId: r.keyset_id,
    scheme: checkScheme(r.scheme),
    digest: r.digest,
    idempotencyKey: r.idempotency_key,
    requestHash: r.request_hash,
    status: checkStatus(r.status),
    signature: r.signature,
    publicKey: r.public_key,
    signers: checkSigners(r.signers),
    error: r.error,
    attempts: r.attempts,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    createdBy: r.created_by,
    source: r.source,
    clientId: r.client_id,
    owner: r.owner,
    leaseUntil: r.lease_until,
    resultPublished: r.result_published,
    walletId: r.wallet_id,
    derivationPath: r.derivation_path,
    payload: r.payload,
    intent: r.intent,
    policyVersion: r.policy_version,
    rule: r.rule,
    requirements: r.requirements,
    approvalExpiresAt: r.approval_expires_at,
    signedTx: r.signed_tx,
  };
}

/** The row createSignRequests writes, as a read would return it. */
function insertedSignRequest(r: NewSignRequest & { requestId: string; createdAt: Date }): SignRequest {
  return {
    requestId: r.requestId,
    keysetId: r.keysetId,
    scheme: r.scheme,
    digest: r.digest,
    idempotencyKey: r.idempotencyKey ?? null,
    requestHash: r.requestHash,
    status: r.status ?? 'received',
    signature: null,
    publicKey: null,
    signers: [],
    error: null,
    attempts: 0,
    createdAt: r.createdAt,
    updatedAt: r.createdAt,
    createdBy: r.createdBy,
    source: r.source ?? 'grpc',
    clientId: r.clientId ?? '',
    owner: r.owner ?? null,
    leaseUntil: r.leaseUntil ?? null,
    resultPublished: false,
    walletId: r.walletId ?? null,
    derivationPath: r.derivationPath ?? '',
    payload: r.policy?.payload ?? null,
    intent: r.policy?.intent ?? null,
    policyVersion: r.policy?.policyVersion ?? null,
    rule: r.policy?.rule ?? null,
    requirements: r.policy?.requirements ?? null,
    approvalExpiresAt: r.policy?.approvalExpiresAt ?? null,
    signedTx: null,
  };
}

/** Inserts a request (status 'received' unless given). A reused idempotency key throws DuplicateKeyError. */
export async function createSignRequest(q: Queryable, r: NewSignRequest): Promise<SignRequest> {
  return (await createSignRequests(q, [r]))[0]!;
}

/** Rows per INSERT: 24 parameters each, well under PostgreSQL's 65535. */
const INSERT_ROWS = 1000;

/**
 * Inserts requests with one statement per INSERT_ROWS rows: on PGlite a statement costs far more
 * than a row, so a group of requests accepted together is written at once. Results in input order.
 */
export async function createSignRequests(q: Queryable, rs: readonly NewSignRequest[]): Promise<SignRequest[]> {
  const out: SignRequest[] = [];
  for (let start = 0; start < rs.length; start += INSERT_ROWS) {
    const chunk = rs.slice(start, start + INSERT_ROWS).map((r) => ({ ...r, requestId: r.requestId ?? randomUUID(), createdAt: r.createdAt ?? new Date() }));
    const params: unknown[] = [];
    const values = chunk.map((r) => {
      if (!isScheme(r.scheme)) throw new TypeError(`unknown scheme ${String(r.scheme)}`);
      const status = r.status ?? 'received';
      if (!isSignStatus(status)) throw new TypeError(`unknown status ${String(status)}`);
      const b = params.length;
      params.push(
        r.requestId,
        r.keysetId,
        r.scheme,
        r.digest,
        r.idempotencyKey ?? null,
        r.requestHash,
        status,
        r.createdAt,
        r.createdBy,
        r.source ?? 'grpc',
        r.clientId ?? '',
        r.owner ?? null,
        r.leaseUntil ?? null,
        r.walletId ?? null,
        r.derivationPath ?? '',
        r.policy?.payload ?? null,
        r.policy?.intent ? JSON.stringify(r.policy.intent) : null,
        r.policy?.intent?.kind ?? null,
        r.policy?.intent?.asset ?? null,
        r.policy?.intent?.amount ?? null,
        r.policy?.policyVersion ?? null,
        r.policy?.rule ?? null,
        r.policy?.requirements ? JSON.stringify(r.policy.requirements) : null,
        r.policy?.approvalExpiresAt ?? null,
      );
      const p = (i: number) => `$${b + i}`;
      return `(${p(1)}::uuid, ${p(2)}::uuid, ${p(3)}, ${p(4)}::bytea, ${p(5)}, ${p(6)}::bytea, ${p(7)}, '[]'::jsonb, 0, ${p(8)}::timestamptz, ${p(8)}::timestamptz, ${p(9)}, ${p(10)}, ${p(11)}, ${p(12)}, ${p(13)}::timestamptz, ${p(14)}::uuid, ${p(15)},
               ${p(16)}::bytea, ${p(17)}::jsonb, ${p(18)}, ${p(19)}, ${p(20)}, ${p(21)}::int, ${p(22)}, ${p(23)}::jsonb, ${p(24)}::timestamptz)`;
    });
    try {
      // Only the ids come back: on PGlite returning every column of every row cost about three
      // times the insert itself, and each column is what was just written or its default.
      const rows = await q.query<{ request_id: string }>(
        `INSERT INTO sign_requests (request_id, keyset_id, scheme, digest, idempotency_key, request_hash, status, signers, attempts, created_at, updated_at, created_by, source, client_id, owner, lease_until, wallet_id, derivation_path,
                                    payload, intent, intent_kind, asset, amount, policy_version, rule, requirements, approval_expires_at)
         VALUES ${values.join(', ')}
         RETURNING request_id`,
        params,
      );
      if (rows.length !== chunk.length) throw new Error(`inserted ${rows.length} sign requests of ${chunk.length}`);
      for (const r of chunk) out.push(insertedSignRequest(r));
    } catch (err) {
      mapError(err, 'createSignRequest');
    }
  }
  return out;
}

/** A finished request's outcome (CompletionWriter): unset optional fields keep their value. */
export interface SignRequestCompletion {
  /** The request as this coordinator holds it (accepted or claimed by it, still signing). */
  before: SignRequest;
  status: SignStatus;
  signature?: Uint8Array;
  publicKey?: Uint8Array;
  signers?: readonly string[];
  attempts?: number;
  error: string | null;
  signedTx?: Uint8Array;
}

/**
 * Moves requests still in `signing` and owned by `owner` to their outcome and releases their
 * lease, with one statement for the lot. Results in input order: undefined where the
 * compare-and-set failed (another coordinator took the request over).
 */
export async function completeSignRequests(q: Queryable, owner: string, items: readonly SignRequestCompletion[], at = new Date()): Promise<(SignRequest | undefined)[]> {
  if (items.length === 0) return [];
  const params: unknown[] = [owner, at];
  const values = items.map((c) => {
    if (!isSignStatus(c.status)) throw new TypeError(`unknown status ${String(c.status)}`);
    const b = params.length;
    params.push(c.before.requestId, c.status, c.signature ?? null, c.publicKey ?? null, c.signers ? signersJson(c.signers) : null, c.attempts ?? null, c.error, c.signedTx ?? null);
    const p = (i: number) => `$${b + i}`;
    return `(${p(1)}::uuid, ${p(2)}, ${p(3)}::bytea, ${p(4)}::bytea, ${p(5)}::jsonb, ${p(6)}::int, ${p(7)}, ${p(8)}::bytea)`;
  });
  const rows = await q.query<SignRequestDbRow>(
    `UPDATE sign_requests AS s
        SET status = v.status, signature = COALESCE(v.signature, s.signature), public_key = COALESCE(v.public_key, s.public_key),
            signers = COALESCE(v.signers, s.signers), attempts = COALESCE(v.attempts, s.attempts), error = v.error,
            signed_tx = COALESCE(v.signed_tx, s.signed_tx), owner = NULL, lease_until = NULL, updated_at = $2
       FROM (VALUES ${values.join(', ')}) AS v (request_id, status, signature, public_key, signers, attempts, error, signed_tx)
      WHERE s.request_id = v.request_id AND s.status = 'signing' AND s.owner = $1
      RETURNING s.request_id`,
    params,
  );
  // Only the ids of the rows that moved come back (returning whole rows cost several times the
  // update on PGlite); the rest is the update applied to the row the caller holds. While a request
  // is signing under our lease nothing else changes it.
  const moved = new Set(rows.map((row) => row.request_id));
  return items.map((c) =>
    moved.has(c.before.requestId)
      ? {
          ...c.before,
          status: c.status,
          signature: c.signature ?? c.before.signature,
          publicKey: c.publicKey ?? c.before.publicKey,
          signers: c.signers ? [...c.signers] : c.before.signers,
          attempts: c.attempts ?? c.before.attempts,
          error: c.error,
          signedTx: c.signedTx ?? c.before.signedTx,
          owner: null,
          leaseUntil: null,
          updatedAt: at,
        }
      : undefined,
  );
}

export async function getSignRequest(q: Queryable, requestId: string): Promise<SignRequest | undefined> {
  const [row] = await q.query<SignRequestDbRow>(`SELECT ${SIGN_REQUEST_COLUMNS} FROM sign_requests WHERE request_id = $1`, [requestId]);
  return row ? toSignRequest(row) : undefined;
}

/** Requests in one status, oldest first (e.g. those waiting for approvals). */
export async function listSignRequestsByStatus(q: Queryable, status: SignStatus, limit: number): Promise<SignRequest[]> {
  const rows = await q.query<SignRequestDbRow>(`SELECT ${SIGN_REQUEST_COLUMNS} FROM sign_requests WHERE status = $1 ORDER BY created_at LIMIT $2`, [status, limit]);
  return rows.map(toSignRequest);
}

export async function findSignRequestByIdempotencyKey(q: Queryable, key: string): Promise<SignRequest | undefined> {
  const [row] = await q.query<SignRequestDbRow>(`SELECT ${SIGN_REQUEST_COLUMNS} FROM sign_requests WHERE idempotency_key = $1`, [key]);
  return row ? toSignRequest(row) : undefined;
}

/**
 * Updates the given fields and updated_at, returning the new row. Without expectedStatus a missing
 * request throws NotFoundError; with it (compare-and-set), undefined means the request is missing or
 * no longer in an expected status.
 */
export async function updateSignRequest(
  q: Queryable,
  requestId: string,
  u: SignRequestUpdate & { expectedStatus: SignStatus | readonly SignStatus[] },
): Promise<SignRequest | undefined>;
export async function updateSignRequest(q: Queryable, requestId: string, u: Omit<SignRequestUpdate, 'expectedStatus'>): Promise<SignRequest>;
export async function updateSignRequest(q: Queryable, requestId: string, u: SignRequestUpdate): Promise<SignRequest | undefined> {
  if (u.status !== undefined && !isSignStatus(u.status)) throw new TypeError(`unknown status ${String(u.status)}`);
  const params: unknown[] = [requestId];
  const sets: string[] = [];
  const set = (column: string, value: unknown, cast = ''): void => {
    params.push(value);
    sets.push(`${column} = $${params.length}${cast}`);
  };
  if (u.status !== undefined) set('status', u.status);
  if (u.signature !== undefined) set('signature', u.signature);
  if (u.publicKey !== undefined) set('public_key', u.publicKey);
  if (u.signers !== undefined) set('signers', signersJson(u.signers), '::jsonb');
  if (u.error !== undefined) set('error', u.error);
  if (u.attempts !== undefined) set('attempts', u.attempts);
  if (u.owner !== undefined) set('owner', u.owner);
  if (u.leaseUntil !== undefined) set('lease_until', u.leaseUntil);
  if (u.resultPublished !== undefined) set('result_published', u.resultPublished);
  if (u.rule !== undefined) set('rule', u.rule);
  if (u.signedTx !== undefined) set('signed_tx', u.signedTx);
  set('updated_at', u.updatedAt ?? new Date());
  let where = 'request_id = $1';
  if (u.expectedStatus !== undefined) {
    const expected = typeof u.expectedStatus === 'string' ? [u.expectedStatus] : [...u.expectedStatus];
    params.push(expected);
    where += ` AND status = ANY($${params.length}::text[])`;
  }
  if (u.expectedOwner !== undefined) {
    params.push(u.expectedOwner);
    where += ` AND owner = $${params.length}`;
  }
  const [row] = await q.query<SignRequestDbRow>(
    `UPDATE sign_requests SET ${sets.join(', ')} WHERE ${where} RETURNING ${SIGN_REQUEST_COLUMNS}`,
    params,
  );
  if (row) return toSignRequest(row);
  if (u.expectedStatus === undefined && u.expectedOwner === undefined) throw new NotFoundError(`sign request ${requestId} not found`);
  return undefined;
}

/** States a request passes through before it is finished; a coordinator resumes requests in them. */
export const UNFINISHED: readonly SignStatus[] = ['received', 'policy_checked', 'signing'];

/**
 * Claims up to `limit` unfinished requests for `owner` until `leaseUntil`: those whose lease expired
 * (their coordinator died), and with `includeOwn` those this owner held before it restarted.
 * Concurrent claimers conflict under SERIALIZABLE and the retry loop sorts them out, so every
 * request is claimed by one coordinator at a time.
 */
export async function claimUnfinished(
  q: Queryable,
  opts: { owner: string; leaseUntil: Date; now: Date; limit: number; includeOwn: boolean; statuses?: readonly SignStatus[] },
): Promise<SignRequest[]> {
  const rows = await q.query<SignRequestDbRow>(
    `UPDATE sign_requests SET owner = $1, lease_until = $2
     WHERE request_id IN (
       SELECT request_id FROM sign_requests
       WHERE status = ANY($3::text[]) AND (lease_until IS NULL OR lease_until < $4 OR ($5 AND owner = $1))
       ORDER BY created_at LIMIT $6)
     RETURNING ${SIGN_REQUEST_COLUMNS}`,
    [opts.owner, opts.leaseUntil, [...(opts.statuses ?? UNFINISHED)], opts.now, opts.includeOwn, opts.limit],
  );
  return rows.map(toSignRequest);
}

/** Finished NATS requests whose result has not been published yet (the outbox). */
export async function unpublishedResults(q: Queryable, limit: number): Promise<SignRequest[]> {
  const rows = await q.query<SignRequestDbRow>(
    `SELECT ${SIGN_REQUEST_COLUMNS} FROM sign_requests
     WHERE source = 'nats' AND result_published = false AND status IN ('signed', 'failed', 'rejected', 'expired')
     ORDER BY updated_at LIMIT $1`,
    [limit],
  );
  return rows.map(toSignRequest);
}

export async function markResultsPublished(q: Queryable, requestIds: readonly string[]): Promise<void> {
  if (requestIds.length === 0) return;
  await q.query(`UPDATE sign_requests SET result_published = true WHERE request_id = ANY($1::uuid[])`, [[...requestIds]]);
}

// ---------------------------------------------------------------------------------------------
// Node faults

interface NodeFaultDbRow {
  fault_id: string;
  node_id: string;
  keyset_id: string | null;
  request_id: string | null;
  reason: string;
  at: Date;
}

export async function recordNodeFault(q: Queryable, f: NewNodeFault): Promise<NodeFault> {
  const [row] = await q.query<NodeFaultDbRow>(
    `INSERT INTO node_faults (fault_id, node_id, keyset_id, request_id, reason, at) VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING fault_id, node_id, keyset_id, request_id, reason, at`,
    [randomUUID(), f.nodeId, f.keysetId ?? null, f.requestId ?? null, f.reason, f.at ?? new Date()],
  );
  const r = row!;
  return { faultId: r.fault_id, nodeId: r.node_id, keysetId: r.keyset_id, requestId: r.request_id, reason: r.reason, at: r.at };
}

/** Fault count per node, optionally only faults at or after `since`. */
export async function nodeFaultCounts(q: Queryable, opts: { since?: Date } = {}): Promise<Map<string, number>> {
  const rows =
    opts.since === undefined
      ? await q.query<{ node_id: string; n: number }>('SELECT node_id, count(*) AS n FROM node_faults GROUP BY node_id')
      : await q.query<{ node_id: string; n: number }>('SELECT node_id, count(*) AS n FROM node_faults WHERE at >= $1 GROUP BY node_id', [
          opts.since,
        ]);
  return new Map(rows.map((r) => [r.node_id, r.n]));
}

export interface KeysetBan {
  keysetId: string;
  nodeId: string;
  reason: string;
  requestId: string | null;
  at: Date;
}

/** Records a ban; a node already banned for the keyset keeps its first record. Returns whether it is new. */
export async function recordKeysetBan(q: Queryable, b: { keysetId: string; nodeId: string; reason: string; requestId?: string | null; at?: Date }): Promise<boolean> {
  const rows = await q.query<{ node_id: string }>(
    `INSERT INTO keyset_bans (keyset_id, node_id, reason, request_id, at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (keyset_id, node_id) DO NOTHING RETURNING node_id`,
    [b.keysetId, b.nodeId, b.reason, b.requestId ?? null, b.at ?? new Date()],
  );
  return rows.length > 0;
}

/** Clears every ban of a keyset (after its pairwise setup was re-run). */
export async function clearKeysetBans(q: Queryable, keysetId: string): Promise<void> {
  await q.query('DELETE FROM keyset_bans WHERE keyset_id = $1', [keysetId]);
}

export async function listKeysetBans(q: Queryable): Promise<KeysetBan[]> {
  const rows = await q.query<{ keyset_id: string; node_id: string; reason: string; request_id: string | null; at: Date }>(
    'SELECT keyset_id, node_id, reason, request_id, at FROM keyset_bans ORDER BY keyset_id, node_id',
  );
  return rows.map((r) => ({ keysetId: r.keyset_id, nodeId: r.node_id, reason: r.reason, requestId: r.request_id, at: r.at }));
}
