/**
 * Append-only, hash-chained audit log that anyone holding the rows can verify offline.
 *
 * Record n stores hash_n = SHA-256( "custody.audit.v1\n" || hash_{n-1} || canonicalJson({seq, at,
 * actor, action, subject, details}) ) with `at` as an ISO-8601 UTC string at millisecond precision
 * (Date.toISOString) and hash_0 = 32 zero bytes. Records are numbered 1, 2, 3... without gaps, so a
 * deleted, inserted, reordered or edited record breaks the chain at that point. Deleting records
 * from the end is only detectable against a head published elsewhere: pass it as `anchor` to
 * verifyAudit. (Production also revokes UPDATE and DELETE on audit_log from the coordinator's role.)
 *
 * `details` NEVER carries secrets: no key shares, nonces, seeds, passwords or tokens. The log is
 * meant to be handed to auditors.
 *
 * Canonical JSON (what is hashed, and exactly what is stored in the JSONB column, so a JSONB round
 * trip, which reorders keys and reformats numbers, hashes the same):
 *   - object keys sorted by UTF-16 code units; properties whose value is undefined are omitted
 *     (as JSON.stringify does); only plain objects (Date, Uint8Array, Map... are rejected: encode
 *     them explicitly as ISO or hex strings);
 *   - numbers must be finite, and integers must be safe integers (|n| <= 2^53 - 1); they are written
 *     in ECMAScript's shortest round-trip form (1.0 -> 1, -0 -> 0), which JSONB's decimal storage
 *     returns to the same double;
 *   - bigint is rejected, not silently stringified: pass amounts as decimal strings;
 *   - strings must be well-formed UTF-16 without U+0000 (JSONB and TEXT refuse NUL).
 *
 * Appends run inside the caller's transaction: read the head (seq, hash), insert seq + 1. Two
 * concurrent appends collide on the primary key or in SERIALIZABLE validation; either way the
 * loser surfaces as SQLSTATE 40001 and Db.tx re-runs it on top of the new head.
 */
import { createHash } from 'node:crypto';
import { canonicalJson, checkString } from '../../crypto/canonical-json.js';
import type { Queryable } from './db.js';
import { uniqueViolation } from './db.js';

export interface AuditEntry {
  actor: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
}

export interface AuditRecord extends AuditEntry {
  seq: number;
  at: Date;
  prevHash: Uint8Array;
  hash: Uint8Array;
}

export type AuditVerification =
  | { ok: true; records: number }
  | { ok: false; records: number; firstBadSeq: number; reason: string };

const DOMAIN = new TextEncoder().encode('custody.audit.v1\n');
export const GENESIS_HASH: Uint8Array = new Uint8Array(32);
const INSERT_CHUNK = 500;

/** Raised when the audit head moved under an append; carries 40001 so Db.tx retries it. */
export class AuditConflictError extends Error {
  readonly code = '40001';
  constructor(options?: { cause?: unknown }) {
    super('audit log head moved during append; the transaction must be retried', options);
    this.name = 'AuditConflictError';
  }
}

export { canonicalJson };

// ---------------------------------------------------------------------------------------------
// Hashing

/** SHA-256 over the domain tag, the previous hash and the canonical encoding of the record. */
export function recordHash(prevHash: Uint8Array, r: Omit<AuditRecord, 'hash' | 'prevHash'>): Uint8Array {
  if (prevHash.length !== 32) throw new TypeError(`prevHash must be 32 bytes, got ${prevHash.length}`);
  if (!Number.isSafeInteger(r.seq) || r.seq < 1) throw new TypeError(`seq must be a positive integer, got ${r.seq}`);
  const body = canonicalJson({
    seq: r.seq,
    at: r.at.toISOString(),
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    details: r.details,
  });
  const h = createHash('sha256');
  h.update(DOMAIN);
  h.update(prevHash);
  h.update(body, 'utf8');
  return new Uint8Array(h.digest());
}

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);

// ---------------------------------------------------------------------------------------------
// Rows

interface AuditRow {
  seq: number;
  at: Date;
  actor: string;
  action: string;
  subject: string;
  details: unknown;
  prev_hash: Uint8Array;
  hash: Uint8Array;
}

const SELECT = 'SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log';

function fromRow(r: AuditRow): AuditRecord {
  return {
    seq: r.seq,
    at: r.at,
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    details: r.details as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** Current head of the chain, or undefined when empty. Publish it elsewhere to anchor verification. */
export async function auditHead(q: Queryable): Promise<{ seq: number; hash: Uint8Array } | undefined> {
  const [row] = await q.query<{ seq: number; hash: Uint8Array }>('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1');
  return row ? { seq: row.seq, hash: row.hash } : undefined;
}

function checkEntry(e: AuditEntry, i: number): string {
  for (const field of ['actor', 'action', 'subject'] as const) {
    if (typeof e[field] !== 'string' || e[field] === '') throw new TypeError(`audit entry ${i}: ${field} must be a non-empty string`);
    checkString(e[field], `audit entry ${i} ${field}`);
  }
  if (e.details === null || typeof e.details !== 'object' || Array.isArray(e.details)) {
    throw new TypeError(`audit entry ${i}: details must be an object`);
  }
  return canonicalJson(e.details);
}

/** Appends one record inside the caller's transaction. `at` defaults to now (ms precision). */
export async function appendAudit(q: Queryable, entry: AuditEntry, at?: Date): Promise<AuditRecord> {
  const [record] = await appendAuditMany(q, [entry], at);
  return record!;
}

/** Appends several records with one read of the head and batched inserts; all share one timestamp. */
export async function appendAuditMany(q: Queryable, entries: AuditEntry[], at: Date = new Date()): Promise<AuditRecord[]> {
  return entries.length === 0 ? [] : appendAuditAfter(q, await auditHead(q), entries, at);
}

/**
 * appendAuditMany with the head already read in this transaction (auditHead, before any append in
 * it): a caller can send that read together with its other statements.
 */
export async function appendAuditAfter(q: Queryable, head: { seq: number; hash: Uint8Array } | undefined, entries: AuditEntry[], at: Date = new Date()): Promise<AuditRecord[]> {
  if (Number.isNaN(at.getTime())) throw new TypeError('audit timestamp is an invalid Date');
  if (entries.length === 0) return [];
  const texts = entries.map(checkEntry);
  const when = new Date(at.getTime());
  let prevHash = head?.hash ?? GENESIS_HASH;
  let seq = head?.seq ?? 0;

  const records: AuditRecord[] = entries.map((e, i) => {
    seq += 1;
    // Parse back the canonical text: the returned record equals what verification will read.
    const details = JSON.parse(texts[i]!) as Record<string, unknown>;
    const r = { seq, at: when, actor: e.actor, action: e.action, subject: e.subject, details };
    const hash = recordHash(prevHash, r);
    const record: AuditRecord = { ...r, prevHash, hash };
    prevHash = hash;
    return record;
  });

  for (let start = 0; start < records.length; start += INSERT_CHUNK) {
    const chunk = records.slice(start, start + INSERT_CHUNK);
    const params: unknown[] = [];
    const values = chunk.map((r, i) => {
      params.push(r.seq, r.at, r.actor, r.action, r.subject, texts[start + i], r.prevHash, r.hash);
      const b = i * 8;
      return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}::jsonb, $${b + 7}, $${b + 8})`;
    });
    try {
      await q.query(
        `INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) VALUES ${values.join(', ')}`,
        params,
      );
    } catch (err) {
      // Another transaction took this seq first (PostgreSQL may say 23505 rather than 40001).
      if (uniqueViolation(err)) throw new AuditConflictError({ cause: err });
      throw err;
    }
  }
  return records;
}

/** Records with seq > afterSeq, in order. */
export async function listAudit(q: Queryable, afterSeq: number, limit: number): Promise<AuditRecord[]> {
  const rows = await q.query<AuditRow>(`${SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2`, [afterSeq, limit]);
  return rows.map(fromRow);
}

/**
 * Streams the whole chain in pages and checks: seq runs 1, 2, 3... without gaps; each prev_hash is
 * the previous record's hash (zeros for record 1); each hash recomputes from the record's contents.
 * `firstBadSeq` is the first seq at which the chain is not intact (for a gap: the missing seq);
 * `records` counts the records verified before it. With `anchor`, the chain must also contain that
 * (seq, hash), which detects truncation of the tail.
 */
export async function verifyAudit(
  q: Queryable,
  opts: { batchSize?: number; anchor?: { seq: number; hash: Uint8Array } } = {},
): Promise<AuditVerification> {
  const batchSize = Math.max(1, opts.batchSize ?? 1000);
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let records = 0;
  const bad = (firstBadSeq: number, reason: string): AuditVerification => ({ ok: false, records, firstBadSeq, reason });

  for (;;) {
    const rows = await q.query<AuditRow>(`${SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2`, [expectedSeq - 1, batchSize]);
    for (const row of rows) {
      if (row.seq !== expectedSeq) return bad(expectedSeq, `seq ${expectedSeq} is missing (next record is ${row.seq})`);
      if (!equalBytes(row.prev_hash, prevHash)) {
        return bad(row.seq, `prev_hash of ${row.seq} does not match the hash of record ${row.seq - 1}`);
      }
      let computed: Uint8Array;
      try {
        if (row.details === null || typeof row.details !== 'object' || Array.isArray(row.details)) {
          throw new TypeError('details is not a JSON object');
        }
        computed = recordHash(prevHash, fromRow(row));
      } catch (err) {
        return bad(row.seq, `record ${row.seq} cannot be encoded: ${(err as Error).message}`);
      }
      if (!equalBytes(computed, row.hash)) return bad(row.seq, `hash of record ${row.seq} does not match its contents`);
      if (opts.anchor && opts.anchor.seq === row.seq && !equalBytes(opts.anchor.hash, row.hash)) {
        return bad(row.seq, `record ${row.seq} differs from the anchor`);
      }
      prevHash = row.hash;
      expectedSeq += 1;
      records += 1;
    }
    if (rows.length < batchSize) break;
  }
  if (opts.anchor && records < opts.anchor.seq) {
    return bad(records + 1, `chain ends at ${records}, before the anchor at ${opts.anchor.seq}`);
  }
  return { ok: true, records };
}
