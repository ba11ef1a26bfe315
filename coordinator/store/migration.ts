/**
 * Moves the coordinator's metadata between databases (the embedded PGlite default, PostgreSQL,
 * CockroachDB) through a folder of JSON-lines files with checksums, then verifies the result.
 * docs/migration.md is the operator's guide; this is the library (no CLI parsing).
 *
 * Export format (formatVersion 1): one `<table>.jsonl` per table, one JSON object per line with the
 * columns in a fixed order, rows in primary-key order, every line ending in "\n"; then
 * `manifest.json` with the row count and SHA-256 of each file's bytes, the schema versions of the
 * source and the audit head. Values:
 *   uuid, text      -> string            int4, int8  -> number (int8 beyond 2^53 - 1 is refused by db.ts)
 *   bool            -> boolean           bytea       -> lowercase hex string, no prefix
 *   timestamptz     -> ISO-8601 UTC string with the database's full microsecond precision
 *                      ("...T12:00:00.123Z", or "...T12:00:00.123456Z" when the microseconds are not 0).
 *                      Timestamps are read as integer microseconds in SQL, not through db.ts's Date
 *                      (millisecond) mapping, so rows written by other tools keep their microseconds;
 *                      everything the coordinator writes has millisecond precision anyway.
 *   jsonb           -> the JSON value (parsed by the driver and re-serialised: exact for every value the
 *                      coordinator writes, i.e. node-id arrays and canonical audit details; a number with
 *                      more precision than a double would be rounded).
 *   NULL            -> null (the jsonb columns are NOT NULL, so a JSON null is never ambiguous).
 *
 * Export reads everything in one read-only transaction (a consistent snapshot; SERIALIZABLE READ
 * ONLY DEFERRABLE on PostgreSQL and PGlite, which cannot fail with a serialization error), in pages
 * by primary key (keyset pagination, never OFFSET), so a table of millions of rows streams through
 * constant memory. Import checks everything it can before it writes a row (manifest, schema
 * versions, checksums, row counts, that every line decodes, that the target is empty), then inserts
 * table by table in foreign-key order in chunks, each chunk one Db.tx with one unnest() INSERT, and
 * finally runs verifyDatabase against the manifest.
 *
 * Portable SQL only: row-value comparisons for paging, unnest() of typed arrays, decode(hex),
 * extract(epoch), information_schema.columns. No COPY (PGlite and pg differ), no sequences.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ExtendedPublicKey, HdScheme } from '../../crypto/hd/derive.js';
import { deriveWalletBatch, walletPath, type DerivedWallets } from '../../crypto/hd/wallets.js';
import { auditHead, verifyAudit } from './audit.js';
import type { Db, Dialect, Queryable } from './db.js';
import { MIGRATIONS, SCHEMES } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Tables

type ColumnType = 'uuid' | 'text' | 'int4' | 'int8' | 'bool' | 'bytea' | 'timestamptz' | 'jsonb';

interface TableSpec {
  readonly table: TableName;
  readonly pk: readonly string[];
  readonly columns: readonly (readonly [name: string, type: ColumnType])[];
}

export const TABLES = ['keysets', 'keyset_members', 'keyset_bans', 'keyset_refreshes', 'wallet_batches', 'wallets', 'sign_requests', 'operations', 'approvals', 'policies', 'node_faults', 'audit_log'] as const;
export type TableName = (typeof TABLES)[number];

/** In foreign-key order (parents first): export writes and import inserts in this order. */
const SPECS: readonly TableSpec[] = [
  {
    table: 'keysets',
    pk: ['keyset_id'],
    columns: [
      ['keyset_id', 'uuid'],
      ['scheme', 'text'],
      ['public_key', 'bytea'],
      ['threshold', 'int4'],
      ['chain_code', 'bytea'],
      ['label', 'text'],
      ['created_at', 'timestamptz'],
      ['next_wallet_index', 'int8'],
      ['epoch', 'int4'],
    ],
  },
  {
    table: 'keyset_members',
    pk: ['keyset_id', 'party_index'],
    columns: [
      ['keyset_id', 'uuid'],
      ['party_index', 'int4'],
      ['node_id', 'text'],
      ['verifying_share', 'bytea'],
    ],
  },
  {
    table: 'keyset_bans',
    pk: ['keyset_id', 'node_id'],
    columns: [
      ['keyset_id', 'uuid'],
      ['node_id', 'text'],
      ['reason', 'text'],
      ['request_id', 'uuid'],
      ['at', 'timestamptz'],
    ],
  },
  {
    table: 'keyset_refreshes',
    pk: ['refresh_id'],
    columns: [
      ['refresh_id', 'uuid'],
      ['keyset_id', 'uuid'],
      ['from_epoch', 'int4'],
      ['commit_session', 'text'],
      ['abort_session', 'text'],
      ['verifying_shares', 'jsonb'],
      ['status', 'text'],
      ['created_at', 'timestamptz'],
      ['updated_at', 'timestamptz'],
      ['new_threshold', 'int4'],
      ['new_members', 'jsonb'],
      ['retiring', 'jsonb'],
      ['retire_session', 'text'],
    ],
  },
  {
    table: 'wallet_batches',
    pk: ['batch_id'],
    columns: [
      ['batch_id', 'uuid'],
      ['keyset_id', 'uuid'],
      ['first_index', 'int8'],
      ['count', 'int4'],
      ['created', 'int4'],
      ['label', 'text'],
      ['user_id', 'text'],
      ['purpose', 'text'],
      ['idempotency_key', 'text'],
      ['request_hash', 'bytea'],
      ['created_by', 'text'],
      ['created_at', 'timestamptz'],
      ['completed_at', 'timestamptz'],
    ],
  },
  {
    table: 'wallets',
    pk: ['wallet_id'],
    columns: [
      ['wallet_id', 'uuid'],
      ['keyset_id', 'uuid'],
      ['wallet_index', 'int8'],
      ['path', 'text'],
      ['public_key', 'bytea'],
      ['eth_address', 'text'],
      ['btc_p2wpkh', 'text'],
      ['btc_p2tr', 'text'],
      ['sol_address', 'text'],
      ['label', 'text'],
      ['user_id', 'text'],
      ['purpose', 'text'],
      ['batch_id', 'uuid'],
      ['created_at', 'timestamptz'],
    ],
  },
  {
    table: 'sign_requests',
    pk: ['request_id'],
    columns: [
      ['request_id', 'uuid'],
      ['keyset_id', 'uuid'],
      ['scheme', 'text'],
      ['digest', 'bytea'],
      ['idempotency_key', 'text'],
      ['request_hash', 'bytea'],
      ['status', 'text'],
      ['signature', 'bytea'],
      ['public_key', 'bytea'],
      ['signers', 'jsonb'],
      ['error', 'text'],
      ['attempts', 'int4'],
      ['created_at', 'timestamptz'],
      ['updated_at', 'timestamptz'],
      ['created_by', 'text'],
      ['source', 'text'],
      ['client_id', 'text'],
      ['owner', 'text'],
      ['lease_until', 'timestamptz'],
      ['result_published', 'bool'],
      ['wallet_id', 'uuid'],
      ['derivation_path', 'text'],
      ['payload', 'bytea'],
      ['intent', 'jsonb'],
      ['intent_kind', 'text'],
      ['asset', 'text'],
      ['amount', 'text'],
      ['policy_version', 'int4'],
      ['rule', 'text'],
      ['requirements', 'jsonb'],
      ['approval_expires_at', 'timestamptz'],
      ['signed_tx', 'bytea'],
    ],
  },
  {
    table: 'operations',
    pk: ['operation_id'],
    columns: [
      ['operation_id', 'uuid'],
      ['kind', 'text'],
      ['subject', 'text'],
      ['params', 'jsonb'],
      ['status', 'text'],
      ['requirements', 'jsonb'],
      ['policy_version', 'int4'],
      ['policy_hash', 'bytea'],
      ['initiator', 'text'],
      ['requested_by', 'text'],
      ['error', 'text'],
      ['expires_at', 'timestamptz'],
      ['created_at', 'timestamptz'],
      ['updated_at', 'timestamptz'],
    ],
  },
  {
    table: 'approvals',
    pk: ['request_id', 'approver'],
    columns: [
      ['request_id', 'uuid'],
      ['approver', 'text'],
      ['decision', 'text'],
      ['expires_at', 'timestamptz'],
      ['signature', 'bytea'],
      ['reason', 'text'],
      ['created_at', 'timestamptz'],
    ],
  },
  {
    table: 'policies',
    pk: ['version'],
    columns: [
      ['version', 'int4'],
      ['hash', 'bytea'],
      ['signed', 'bytea'],
      ['applied_by', 'text'],
      ['applied_at', 'timestamptz'],
    ],
  },
  {
    table: 'node_faults',
    pk: ['fault_id'],
    columns: [
      ['fault_id', 'uuid'],
      ['node_id', 'text'],
      ['keyset_id', 'uuid'],
      ['request_id', 'uuid'],
      ['reason', 'text'],
      ['at', 'timestamptz'],
    ],
  },
  {
    table: 'audit_log',
    pk: ['seq'],
    columns: [
      ['seq', 'int8'],
      ['at', 'timestamptz'],
      ['actor', 'text'],
      ['action', 'text'],
      ['subject', 'text'],
      ['details', 'jsonb'],
      ['prev_hash', 'bytea'],
      ['hash', 'bytea'],
    ],
  },
];

const SPEC = new Map(SPECS.map((s) => [s.table, s]));
const typeOf = (spec: TableSpec, column: string): ColumnType => spec.columns.find(([c]) => c === column)![1];

// ---------------------------------------------------------------------------------------------
// Manifest, report, errors

export const MANIFEST_FILE = 'manifest.json';
export const EXPORT_FORMAT = 'custody-coordinator-export';
export const EXPORT_FORMAT_VERSION = 1;

export interface ManifestFile {
  table: TableName;
  /** `<table>.jsonl`, relative to the export folder. */
  file: string;
  rows: number;
  /** Size of the file in bytes. */
  bytes: number;
  /** SHA-256 of the file's bytes, lowercase hex. */
  sha256: string;
  /** The columns of every line, in order. */
  columns: string[];
}

export interface Manifest {
  format: typeof EXPORT_FORMAT;
  formatVersion: number;
  /** ISO-8601 time the export's snapshot was taken. */
  exportedAt: string;
  sourceDialect: Dialect;
  /** schema_migrations of the source. */
  schemaVersions: { version: number; name: string }[];
  files: ManifestFile[];
  /** The last audit record (hash as lowercase hex), or null for an empty log. */
  auditHead: { seq: number; hash: string } | null;
}

export interface VerificationReport {
  ok: boolean;
  /** expected is the manifest's count (null without a manifest); imported is what the database holds. */
  tables: { table: TableName; expected: number | null; imported: number }[];
  audit: { ok: boolean; records: number; head: { seq: number; hash: string } | null };
  /** mismatches: the first 100 (wallet, field) pairs that differ from the derivation; mismatched: wallets affected in all. */
  wallets: { checked: number; mismatched: number; mismatches: { walletId: string; field: string }[] };
  /** Every reason ok is false, one sentence each. */
  problems: string[];
}

export type MigrationErrorCode =
  | 'OUTPUT_NOT_EMPTY'
  | 'BAD_MANIFEST'
  | 'CHECKSUM_MISMATCH'
  | 'ROW_COUNT_MISMATCH'
  | 'BAD_ROW'
  | 'SCHEMA_TOO_NEW'
  | 'SCHEMA_TOO_OLD'
  | 'SCHEMA_UNKNOWN_COLUMN'
  | 'TARGET_NOT_EMPTY'
  | 'SOURCE_CHANGED'
  | 'IMPORT_FAILED';

/** Every refusal of export and import: `code` says which, `file` names the export file concerned. */
export class MigrationError extends Error {
  override readonly name = 'MigrationError';
  constructor(
    readonly code: MigrationErrorCode,
    message: string,
    readonly file?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export type Progress = (table: string, rows: number, total?: number) => void;
export type DeriveFn = (scheme: HdScheme, root: ExtendedPublicKey, from: number, count: number) => Promise<DerivedWallets> | DerivedWallets;

export interface ExportOptions {
  /** Called after every page with the rows of the table written so far and the table's total. */
  onProgress?: Progress;
  /** Rows per query (default 10,000). */
  pageSize?: number;
}

export interface VerifyOptions {
  /** Called while wallets are checked (table 'wallets'). */
  onProgress?: Progress;
  /** Wallets per query (default 10,000). */
  pageSize?: number;
  /** Wallet derivation (default: deriveWalletBatch inline); the CLI passes the worker-thread WalletDeriver. */
  derive?: DeriveFn;
}

export interface ImportOptions {
  /** Called after every inserted chunk with the rows of the table imported so far and the manifest's count. */
  onProgress?: Progress;
  /** Progress of the verification that follows the inserts (table 'wallets'). */
  onVerifyProgress?: Progress;
  /** Rows per INSERT transaction (default 5,000; a chunk is also cut at about 8 MB of input). */
  chunkRows?: number;
  /** Passed to verifyDatabase. */
  pageSize?: number;
  derive?: DeriveFn;
}

const DEFAULT_PAGE = 10_000;
const DEFAULT_CHUNK = 5_000;
const CHUNK_BYTES = 8 << 20;
const MAX_MISMATCHES = 100;

// ---------------------------------------------------------------------------------------------
// Value encoding

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEX_RE = /^(?:[0-9a-f]{2})*$/;
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$/;

const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const equalBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** Integer microseconds since the epoch -> ISO-8601 UTC; millisecond form when the microseconds are 0 (as Date.toISOString). */
export function isoFromMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  const rest = us - ms * 1000;
  const iso = new Date(ms).toISOString();
  return rest === 0 ? iso : `${iso.slice(0, -1)}${String(rest).padStart(3, '0')}Z`;
}

/** Select expression of a column: timestamps as exact integer microseconds (double-rounding safe: see below). */
function selectExpr(column: string, type: ColumnType): string {
  // extract(epoch) is numeric on PostgreSQL 14+ and PGlite (exact); where it is a double, the error is
  // under 0.25 us for dates near now, so round() still lands on the stored microsecond.
  return type === 'timestamptz' ? `round(extract(epoch FROM ${column}) * 1000000)::int8 AS ${column}` : column;
}

function encodeValue(v: unknown, type: ColumnType, where: string): unknown {
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'bytea':
      if (!(v instanceof Uint8Array)) throw new TypeError(`${where}: expected bytes from the driver`);
      return toHex(v);
    case 'timestamptz':
      if (typeof v !== 'number') throw new TypeError(`${where}: expected epoch microseconds`);
      return isoFromMicros(v);
    case 'int4':
    case 'int8':
      if (typeof v !== 'number') throw new TypeError(`${where}: expected a number`);
      return v;
    default:
      return v;
  }
}

/** Param element for an unnest() array, from one JSON value of an export line; throws a message on a bad value. */
function decodeValue(v: unknown, type: ColumnType): unknown {
  if (v === null) return null;
  switch (type) {
    case 'uuid':
      if (typeof v !== 'string' || !UUID_RE.test(v)) throw new Error('is not a lowercase UUID');
      return v;
    case 'text':
      if (typeof v !== 'string') throw new Error('is not a string');
      if (v.includes('\u0000')) throw new Error('contains NUL');
      return v;
    case 'int4':
      if (!Number.isSafeInteger(v) || (v as number) < -(2 ** 31) || (v as number) >= 2 ** 31) throw new Error('is not a 32-bit integer');
      return v;
    case 'int8':
      if (!Number.isSafeInteger(v)) throw new Error('is not a safe integer');
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw new Error('is not a boolean');
      return v;
    case 'bytea':
      if (typeof v !== 'string' || !HEX_RE.test(v)) throw new Error('is not lowercase hex');
      return v;
    case 'timestamptz':
      if (typeof v !== 'string' || !ISO_RE.test(v) || Number.isNaN(Date.parse(v))) throw new Error('is not an ISO-8601 UTC timestamp');
      return v;
    case 'jsonb':
      return JSON.stringify(v);
  }
}

const arrayType: Record<ColumnType, string> = {
  uuid: 'uuid[]',
  text: 'text[]',
  int4: 'int4[]',
  int8: 'int8[]',
  bool: 'bool[]',
  bytea: 'text[]',
  timestamptz: 'text[]',
  jsonb: 'text[]',
};

function insertExpr(column: string, type: ColumnType): string {
  switch (type) {
    case 'bytea':
      return `decode(u.${column}, 'hex')`;
    case 'timestamptz':
      return `u.${column}::timestamptz`;
    case 'jsonb':
      return `u.${column}::jsonb`;
    default:
      return `u.${column}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Schema checks

async function schemaVersions(q: Queryable): Promise<{ version: number; name: string }[]> {
  return q.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');
}

const knownVersions = (): Set<number> => new Set(MIGRATIONS.map((m) => m.version));

/** Versions the code does not know (a newer coordinator migrated the database). */
const unknownVersions = (versions: readonly { version: number }[]): number[] => {
  const known = knownVersions();
  return versions.map((v) => v.version).filter((v) => !known.has(v));
};

/** Refuses a source whose columns differ from what this code exports (a forgotten column would be lost silently). */
async function checkColumns(q: Queryable): Promise<void> {
  const rows = await q.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = ANY($1::text[])`,
    [[...TABLES]],
  );
  const present = new Map<string, Set<string>>();
  for (const r of rows) {
    // CockroachDB's hidden columns (hash-sharded index shards; rowid never exists here: every table has a primary key).
    if (r.column_name.startsWith('crdb_internal_') || r.column_name === 'rowid') continue;
    const set = present.get(r.table_name) ?? new Set<string>();
    set.add(r.column_name);
    present.set(r.table_name, set);
  }
  for (const spec of SPECS) {
    const cols = present.get(spec.table) ?? new Set<string>();
    const missing = spec.columns.map(([c]) => c).filter((c) => !cols.has(c));
    if (missing.length) {
      throw new MigrationError('SCHEMA_TOO_OLD', `table ${spec.table} lacks column(s) ${missing.join(', ')}: start this version's coordinator once on the database (it migrates on start), stop it, then export`);
    }
    const extra = [...cols].filter((c) => !spec.columns.some(([k]) => k === c));
    if (extra.length) {
      throw new MigrationError('SCHEMA_UNKNOWN_COLUMN', `table ${spec.table} has column(s) ${extra.join(', ')} this version does not know: export with the coordinator version that added them`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Export

/** Creates `dir` (0700) or accepts an existing empty folder; refuses anything else. Returns whether it created it. */
async function prepareOutputDir(dir: string): Promise<boolean> {
  try {
    const s = await stat(dir);
    if (!s.isDirectory()) throw new MigrationError('OUTPUT_NOT_EMPTY', `${dir} exists and is not a folder: choose a new folder for the export`);
    if ((await readdir(dir)).length > 0) {
      throw new MigrationError('OUTPUT_NOT_EMPTY', `${dir} is not empty: export into a new (or empty) folder; an export never overwrites files`);
    }
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return true;
  }
}

/** Paged read of one table in primary-key order. */
async function* pages(q: Queryable, spec: TableSpec, pageSize: number): AsyncGenerator<Record<string, unknown>[]> {
  const select = `SELECT ${spec.columns.map(([c, t]) => selectExpr(c, t)).join(', ')} FROM ${spec.table}`;
  const order = `ORDER BY ${spec.pk.join(', ')} LIMIT ${pageSize}`;
  const keyCols = `(${spec.pk.join(', ')})`;
  const keyParams = `(${spec.pk.map((c, i) => `$${i + 1}::${typeOf(spec, c)}`).join(', ')})`;
  let cursor: unknown[] | undefined;
  for (;;) {
    const rows = cursor
      ? await q.query<Record<string, unknown>>(`${select} WHERE ${keyCols} > ${keyParams} ${order}`, cursor)
      : await q.query<Record<string, unknown>>(`${select} ${order}`);
    if (rows.length > 0) yield rows;
    if (rows.length < pageSize) return;
    const last = rows[rows.length - 1]!;
    cursor = spec.pk.map((c) => last[c]);
  }
}

/**
 * Writes every table of `db` to a new folder `outDir` (files 0600, manifest.json last). Refuses a
 * folder that exists and is not empty. On failure the files it wrote are removed again.
 */
export async function exportDatabase(db: Db, outDir: string, opts: ExportOptions = {}): Promise<Manifest> {
  const dir = resolve(outDir);
  const pageSize = Math.max(1, Math.floor(opts.pageSize ?? DEFAULT_PAGE));
  const createdDir = await prepareOutputDir(dir);
  const written = new Set<string>();
  try {
    const manifest = await db.tx(async (q) => {
      // A consistent snapshot. DEFERRABLE (PostgreSQL, PGlite) waits for a snapshot that can never
      // fail serialization; CockroachDB does not implement it and reads at one timestamp anyway.
      await q.query(db.dialect === 'cockroach' ? 'SET TRANSACTION READ ONLY' : 'SET TRANSACTION READ ONLY, DEFERRABLE');
      // Db.tx may re-run this body (40001): start from no files each time.
      for (const f of written) await rm(join(dir, f), { force: true });
      written.clear();

      const exportedAt = new Date().toISOString();
      const versions = await schemaVersions(q);
      const newer = unknownVersions(versions);
      if (newer.length) {
        throw new MigrationError('SCHEMA_TOO_NEW', `the database was migrated by a newer coordinator (schema version(s) ${newer.join(', ')}): export with that version's custody`);
      }
      const missing = MIGRATIONS.map((m) => m.version).filter((v) => !versions.some((x) => x.version === v));
      if (missing.length) {
        throw new MigrationError('SCHEMA_TOO_OLD', `the database lacks schema version(s) ${missing.join(', ')}: start this version's coordinator once on it (it migrates on start), stop it, then export`);
      }
      await checkColumns(q);

      const files: ManifestFile[] = [];
      for (const spec of SPECS) {
        const [{ n: total } = { n: 0 }] = await q.query<{ n: number }>(`SELECT count(*) AS n FROM ${spec.table}`);
        const file = `${spec.table}.jsonl`;
        const fh = await open(join(dir, file), 'wx', 0o600);
        written.add(file);
        const hash = createHash('sha256');
        let rows = 0;
        let bytes = 0;
        try {
          opts.onProgress?.(spec.table, 0, total);
          for await (const page of pages(q, spec, pageSize)) {
            let text = '';
            for (const r of page) {
              const o: Record<string, unknown> = {};
              for (const [c, t] of spec.columns) o[c] = encodeValue(r[c], t, `${spec.table}.${c}`);
              text += JSON.stringify(o) + '\n';
            }
            const buf = Buffer.from(text, 'utf8');
            await fh.write(buf);
            hash.update(buf);
            rows += page.length;
            bytes += buf.length;
            opts.onProgress?.(spec.table, rows, total);
          }
          await fh.sync();
        } finally {
          await fh.close();
        }
        if (rows !== total) {
          throw new MigrationError('SOURCE_CHANGED', `${spec.table}: read ${rows} rows but the table has ${total}: stop every coordinator using the database and export again`, file);
        }
        files.push({ table: spec.table, file, rows, bytes, sha256: hash.digest('hex'), columns: spec.columns.map(([c]) => c) });
      }
      const head = await auditHead(q);
      const m: Manifest = {
        format: EXPORT_FORMAT,
        formatVersion: EXPORT_FORMAT_VERSION,
        exportedAt,
        sourceDialect: db.dialect,
        schemaVersions: versions.map((v) => ({ version: v.version, name: v.name })),
        files,
        auditHead: head ? { seq: head.seq, hash: toHex(head.hash) } : null,
      };
      return m;
    });
    const fh = await open(join(dir, MANIFEST_FILE), 'wx', 0o600);
    written.add(MANIFEST_FILE);
    try {
      await fh.writeFile(JSON.stringify(manifest, null, 2) + '\n', 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    return manifest;
  } catch (err) {
    for (const f of written) await rm(join(dir, f), { force: true }).catch(() => undefined);
    if (createdDir) await rmdir(dir).catch(() => undefined);
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Reading an export

/** Reads and validates manifest.json of an export folder (structure only; checksums are checked by import). */
export async function readManifest(inDir: string): Promise<Manifest> {
  const path = join(resolve(inDir), MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new MigrationError('BAD_MANIFEST', `no ${MANIFEST_FILE} in ${resolve(inDir)}: not an export folder, or the export did not finish (export again)`, MANIFEST_FILE);
    }
    throw err;
  }
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    throw new MigrationError('BAD_MANIFEST', `${path} is not JSON: the export is damaged`, MANIFEST_FILE);
  }
  return checkManifest(m);
}

function checkManifest(raw: unknown): Manifest {
  const bad = (why: string): never => {
    throw new MigrationError('BAD_MANIFEST', `${MANIFEST_FILE}: ${why}`, MANIFEST_FILE);
  };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return bad('not a JSON object');
  const m = raw as Record<string, unknown>;
  if (m.format !== EXPORT_FORMAT) bad(`format is ${JSON.stringify(m.format)}, expected "${EXPORT_FORMAT}"`);
  if (m.formatVersion !== EXPORT_FORMAT_VERSION) bad(`formatVersion ${JSON.stringify(m.formatVersion)} is not supported (this version reads ${EXPORT_FORMAT_VERSION})`);
  if (typeof m.exportedAt !== 'string') bad('exportedAt is missing');
  if (m.sourceDialect !== 'postgres' && m.sourceDialect !== 'cockroach' && m.sourceDialect !== 'pglite') bad('sourceDialect is not postgres, cockroach or pglite');
  if (!Array.isArray(m.schemaVersions) || !m.schemaVersions.every((v) => Number.isSafeInteger((v as { version?: unknown })?.version) && typeof (v as { name?: unknown }).name === 'string')) {
    bad('schemaVersions is not a list of {version, name}');
  }
  if (!Array.isArray(m.files)) bad('files is not a list');
  const seen = new Set<string>();
  for (const f of m.files as unknown[]) {
    const x = f as Record<string, unknown>;
    const spec = SPEC.get(x?.table as TableName);
    if (!spec) bad(`unknown table ${JSON.stringify(x?.table)}`);
    if (seen.has(spec!.table)) bad(`table ${spec!.table} is listed twice`);
    seen.add(spec!.table);
    // Fixed names: a manifest cannot point outside its folder.
    if (x.file !== `${spec!.table}.jsonl`) bad(`file of ${spec!.table} must be ${spec!.table}.jsonl`);
    if (!Number.isSafeInteger(x.rows) || (x.rows as number) < 0) bad(`rows of ${spec!.table} is not a count`);
    if (!Number.isSafeInteger(x.bytes) || (x.bytes as number) < 0) bad(`bytes of ${spec!.table} is not a size`);
    if (typeof x.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(x.sha256)) bad(`sha256 of ${spec!.table} is not a lowercase hex SHA-256`);
    if (!Array.isArray(x.columns) || !x.columns.every((c) => typeof c === 'string')) bad(`columns of ${spec!.table} is not a list of names`);
    const cols = x.columns as string[];
    if (new Set(cols).size !== cols.length) bad(`columns of ${spec!.table} repeat a name`);
    const unknown = cols.filter((c) => !spec!.columns.some(([k]) => k === c));
    if (unknown.length) bad(`${spec!.table} has column(s) ${unknown.join(', ')} this version does not know: import with the coordinator version that exported it`);
    const noKey = spec!.pk.filter((c) => !cols.includes(c));
    if (noKey.length) bad(`${spec!.table} lacks its primary key column(s) ${noKey.join(', ')}`);
  }
  const absent = TABLES.filter((t) => !seen.has(t));
  if (absent.length) bad(`table(s) ${absent.join(', ')} missing`);
  const head = m.auditHead as { seq?: unknown; hash?: unknown } | null | undefined;
  if (head !== null && (typeof head !== 'object' || !Number.isSafeInteger(head?.seq) || (head.seq as number) < 1 || typeof head.hash !== 'string' || !/^[0-9a-f]{64}$/.test(head.hash))) {
    bad('auditHead is neither null nor {seq, hash (64 hex)}');
  }
  return m as unknown as Manifest;
}

/** Lines of a file (without "\n"), hashing every byte read. A last line without "\n" is an error. */
async function* lines(path: string, hash: Hash, onBytes?: (n: number) => void): AsyncGenerator<{ text: string; bytes: number }> {
  let carry: Buffer | undefined;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    onBytes?.(chunk.length);
    const buf: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
      yield { text: buf.toString('utf8', start, nl), bytes: nl - start + 1 };
      start = nl + 1;
    }
    carry = start < buf.length ? buf.subarray(start) : undefined;
  }
  if (carry && carry.length > 0) throw new Error('the last line does not end with a newline (file truncated?)');
}

/** One line -> the unnest() param element of each manifest column; throws a message naming the column. */
function decodeLine(spec: TableSpec, columns: readonly string[], types: readonly ColumnType[], text: string): unknown[] {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    throw new Error('is not JSON');
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new Error('is not a JSON object');
  const row = o as Record<string, unknown>;
  const keys = Object.keys(row);
  if (keys.length !== columns.length || !keys.every((k) => columns.includes(k))) {
    throw new Error(`has keys ${keys.join(',')}, expected ${columns.join(',')}`);
  }
  return columns.map((c, i) => {
    try {
      return decodeValue(row[c], types[i]!);
    } catch (err) {
      throw new Error(`column ${c} ${(err as Error).message}`);
    }
  });
}

interface CheckedFile {
  spec: TableSpec;
  entry: ManifestFile;
  path: string;
}

/** Checksum, row count and decodability of every file, before anything is written. */
async function checkFiles(dir: string, manifest: Manifest): Promise<CheckedFile[]> {
  const checked: CheckedFile[] = [];
  for (const spec of SPECS) {
    const entry = manifest.files.find((f) => f.table === spec.table)!;
    const path = join(dir, entry.file);
    try {
      await stat(path);
    } catch {
      throw new MigrationError('CHECKSUM_MISMATCH', `${entry.file} is missing from ${dir}: the export is incomplete`, entry.file);
    }
    const types = entry.columns.map((c) => typeOf(spec, c));
    const hash = createHash('sha256');
    let rows = 0;
    let bytes = 0;
    let firstBad: string | undefined;
    let readError: string | undefined;
    try {
      for await (const line of lines(path, hash, (n) => (bytes += n))) {
        rows += 1;
        if (firstBad === undefined) {
          try {
            decodeLine(spec, entry.columns, types, line.text);
          } catch (err) {
            firstBad = `line ${rows} ${(err as Error).message}`;
          }
        }
      }
    } catch (err) {
      readError = (err as Error).message;
    }
    const sha = hash.digest('hex');
    // The checksum speaks first: a flipped byte is damage, whatever it does to the JSON.
    if (sha !== entry.sha256) {
      throw new MigrationError(
        'CHECKSUM_MISMATCH',
        `checksum mismatch in ${entry.file}: manifest says sha256 ${entry.sha256}, the file (${bytes} bytes, manifest ${entry.bytes}) has ${sha}; the export was damaged or edited: export again from the source`,
        entry.file,
      );
    }
    if (readError) throw new MigrationError('BAD_ROW', `${entry.file}: ${readError}`, entry.file);
    if (rows !== entry.rows) {
      throw new MigrationError('ROW_COUNT_MISMATCH', `row count mismatch in ${entry.file}: manifest says ${entry.rows}, the file has ${rows} lines: export again from the source`, entry.file);
    }
    if (firstBad) throw new MigrationError('BAD_ROW', `${entry.file}: ${firstBad}`, entry.file);
    checked.push({ spec, entry, path });
  }
  return checked;
}

/** Refuses a target that holds rows in any of the exported tables. */
async function checkEmpty(db: Queryable): Promise<void> {
  for (const t of TABLES) {
    const rows = await db.query(`SELECT 1 AS x FROM ${t} LIMIT 1`);
    if (rows.length > 0) {
      throw new MigrationError('TARGET_NOT_EMPTY', `the target database is not empty (table ${t} has rows): import only into a new, empty database; rows are never merged`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Import

/**
 * Loads an export into `db` (migrated, empty), then verifies it. Throws MigrationError before
 * writing anything when the export or the target is unsuitable; returns the verification report
 * (check `ok`) once the rows are in.
 */
export async function importDatabase(db: Db, inDir: string, opts: ImportOptions = {}): Promise<VerificationReport> {
  const dir = resolve(inDir);
  const manifest = await readManifest(dir);
  const newer = unknownVersions(manifest.schemaVersions);
  if (newer.length) {
    throw new MigrationError('SCHEMA_TOO_NEW', `the export comes from a newer coordinator (schema version(s) ${newer.join(', ')}; this version knows up to ${Math.max(...knownVersions())}): import with that version's custody`, MANIFEST_FILE);
  }
  const targetNewer = unknownVersions(await schemaVersions(db));
  if (targetNewer.length) {
    throw new MigrationError('SCHEMA_TOO_NEW', `the target database was migrated by a newer coordinator (schema version(s) ${targetNewer.join(', ')}): import with that version's custody`);
  }
  await checkEmpty(db);
  const files = await checkFiles(dir, manifest);

  const chunkRows = Math.max(1, Math.floor(opts.chunkRows ?? DEFAULT_CHUNK));
  for (const { spec, entry, path } of files) {
    const types = entry.columns.map((c) => typeOf(spec, c));
    const sql =
      `INSERT INTO ${spec.table} (${entry.columns.join(', ')}) ` +
      `SELECT ${entry.columns.map((c, i) => insertExpr(c, types[i]!)).join(', ')} ` +
      `FROM unnest(${entry.columns.map((_, i) => `$${i + 1}::${arrayType[types[i]!]}`).join(', ')}) AS u(${entry.columns.join(', ')})`;
    let arrays: unknown[][] = entry.columns.map(() => []);
    let pending = 0;
    let pendingBytes = 0;
    let done = 0;
    const flush = async (): Promise<void> => {
      if (pending === 0) return;
      const params = arrays;
      try {
        await db.tx((q) => q.query(sql, params));
      } catch (err) {
        throw new MigrationError(
          'IMPORT_FAILED',
          `inserting ${entry.file} rows ${done + 1}..${done + pending} failed: ${(err as Error).message}. The target now holds a partial copy ` +
            `(${done} rows of ${spec.table} and every table before it): drop and recreate the target database, then import again`,
          entry.file,
          { cause: err },
        );
      }
      done += pending;
      arrays = entry.columns.map(() => []);
      pending = 0;
      pendingBytes = 0;
      opts.onProgress?.(spec.table, done, entry.rows);
    };
    opts.onProgress?.(spec.table, 0, entry.rows);
    const hash = createHash('sha256');
    for await (const line of lines(path, hash)) {
      const values = decodeLine(spec, entry.columns, types, line.text);
      for (let i = 0; i < values.length; i++) arrays[i]!.push(values[i]);
      pending += 1;
      pendingBytes += line.bytes;
      if (pending >= chunkRows || pendingBytes >= CHUNK_BYTES) await flush();
    }
    await flush();
    if (hash.digest('hex') !== entry.sha256) {
      throw new MigrationError('SOURCE_CHANGED', `${entry.file} changed while it was imported: leave the export folder alone, drop and recreate the target database, then import again`, entry.file);
    }
  }
  return verifyDatabase(db, manifest, { pageSize: opts.pageSize, derive: opts.derive, onProgress: opts.onVerifyProgress });
}

// ---------------------------------------------------------------------------------------------
// Verification

interface WalletRow {
  wallet_id: string;
  keyset_id: string;
  wallet_index: number;
  path: string;
  public_key: Uint8Array;
  eth_address: string | null;
  btc_p2wpkh: string | null;
  btc_p2tr: string | null;
  sol_address: string | null;
}

const ADDRESS_FIELDS = [
  ['eth_address', 'ethereum'],
  ['btc_p2wpkh', 'bitcoinP2wpkh'],
  ['btc_p2tr', 'bitcoinP2tr'],
  ['sol_address', 'solana'],
] as const;

const WALLET_SELECT = 'SELECT wallet_id, keyset_id, wallet_index, path, public_key, eth_address, btc_p2wpkh, btc_p2tr, sol_address FROM wallets';

/**
 * Checks a database on its own or against an export's manifest: row counts (with a manifest), the
 * audit chain (anchored at the manifest's head, whose seq and hash must also be the database's
 * head), every wallet's key, path and addresses re-derived from its keyset's root key and chain
 * code, and that every wallet lies inside its batch's index range. Read-only; runs on a live
 * database too (then compare counts and head only against a fresh export).
 */
export async function verifyDatabase(db: Queryable, manifest?: Manifest, opts: VerifyOptions = {}): Promise<VerificationReport> {
  const problems: string[] = [];
  const pageSize = Math.max(1, Math.floor(opts.pageSize ?? DEFAULT_PAGE));

  // Row counts.
  const tables: VerificationReport['tables'] = [];
  for (const t of TABLES) {
    const [{ n } = { n: 0 }] = await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${t}`);
    const expected = manifest ? manifest.files.find((f) => f.table === t)?.rows ?? 0 : null;
    tables.push({ table: t, expected, imported: n });
    if (expected !== null && expected !== n) problems.push(`${t}: the export has ${expected} rows, the database ${n}`);
  }
  if (manifest) {
    const have = new Set((await schemaVersions(db)).map((v) => v.version));
    const lacking = manifest.schemaVersions.map((v) => v.version).filter((v) => !have.has(v));
    if (lacking.length) problems.push(`the database lacks schema version(s) ${lacking.join(', ')} that the export's source had`);
  }

  // Audit chain.
  const anchor = manifest?.auditHead ? { seq: manifest.auditHead.seq, hash: fromHex(manifest.auditHead.hash) } : undefined;
  const chain = await verifyAudit(db, { batchSize: pageSize, ...(anchor ? { anchor } : {}) });
  const headRow = await auditHead(db);
  const head = headRow ? { seq: headRow.seq, hash: toHex(headRow.hash) } : null;
  let auditOk = chain.ok;
  if (!chain.ok) problems.push(`audit log broken at record ${chain.firstBadSeq}: ${chain.reason}`);
  if (manifest) {
    const want = manifest.auditHead;
    if ((want === null) !== (head === null) || (want && head && (want.seq !== head.seq || want.hash !== head.hash))) {
      auditOk = false;
      const show = (h: { seq: number; hash: string } | null) => (h ? `seq ${h.seq} hash ${h.hash}` : 'empty');
      problems.push(`audit head differs from the export's: export ${show(want)}, database ${show(head)}`);
    }
  }

  // Wallets inside their batches.
  const [{ n: outside } = { n: 0 }] = await db.query<{ n: number }>(
    `SELECT count(*) AS n FROM wallets w LEFT JOIN wallet_batches b ON b.batch_id = w.batch_id
      WHERE b.batch_id IS NULL OR b.keyset_id <> w.keyset_id OR w.wallet_index < b.first_index OR w.wallet_index >= b.first_index + b.count`,
  );
  if (outside > 0) problems.push(`${outside} wallet(s) have no batch or lie outside their batch's keyset and index range`);

  const wallets = await verifyWallets(db, pageSize, opts);
  if (wallets.mismatched > 0) {
    const first = wallets.mismatches[0]!;
    problems.push(`${wallets.mismatched} wallet(s) differ from their keyset's derivation (first: wallet ${first.walletId}, ${first.field})`);
  }

  return { ok: problems.length === 0, tables, audit: { ok: auditOk, records: chain.records, head }, wallets, problems };
}

async function verifyWallets(db: Queryable, pageSize: number, opts: VerifyOptions): Promise<VerificationReport['wallets']> {
  const derive: DeriveFn = opts.derive ?? ((scheme, root, from, count) => deriveWalletBatch(scheme, root, from, count));
  const keysets = new Map<string, { scheme: string; root: ExtendedPublicKey }>();
  for (const k of await db.query<{ keyset_id: string; scheme: string; public_key: Uint8Array; chain_code: Uint8Array }>(
    'SELECT keyset_id, scheme, public_key, chain_code FROM keysets',
  )) {
    keysets.set(k.keyset_id, { scheme: k.scheme, root: { publicKey: k.public_key, chainCode: k.chain_code } });
  }
  const [{ n: total } = { n: 0 }] = await db.query<{ n: number }>('SELECT count(*) AS n FROM wallets');

  const mismatches: { walletId: string; field: string }[] = [];
  let mismatched = 0;
  let checked = 0;
  const flag = (w: WalletRow, fields: string[]): void => {
    if (fields.length === 0) return;
    mismatched += 1;
    for (const field of fields) if (mismatches.length < MAX_MISMATCHES) mismatches.push({ walletId: w.wallet_id, field });
  };

  const fetch = (after?: WalletRow): Promise<WalletRow[]> =>
    after
      ? db.query<WalletRow>(`${WALLET_SELECT} WHERE (keyset_id, wallet_index) > ($1::uuid, $2::int8) ORDER BY keyset_id, wallet_index LIMIT $3`, [
          after.keyset_id,
          after.wallet_index,
          pageSize,
        ])
      : db.query<WalletRow>(`${WALLET_SELECT} ORDER BY keyset_id, wallet_index LIMIT $1`, [pageSize]);

  opts.onProgress?.('wallets', 0, total);
  let page = await fetch();
  while (page.length > 0) {
    // Read the next page while this one is derived.
    const next = page.length === pageSize ? fetch(page[page.length - 1]) : Promise.resolve([] as WalletRow[]);
    next.catch(() => undefined);
    // Runs of one keyset with consecutive indexes: one derivation call each.
    const runs: WalletRow[][] = [];
    for (const w of page) {
      const run = runs[runs.length - 1];
      const prev = run?.[run.length - 1];
      if (run && prev && prev.keyset_id === w.keyset_id && prev.wallet_index + 1 === w.wallet_index) run.push(w);
      else runs.push([w]);
    }
    const results = await Promise.all(
      runs.map(async (run): Promise<DerivedWallets | Error> => {
        const k = keysets.get(run[0]!.keyset_id);
        if (!k) return new Error('unknown keyset');
        if (!(SCHEMES as readonly string[]).includes(k.scheme)) return new Error(`unknown scheme ${k.scheme}`);
        try {
          return await derive(k.scheme as HdScheme, k.root, run[0]!.wallet_index, run.length);
        } catch (err) {
          return err instanceof Error ? err : new Error(String(err));
        }
      }),
    );
    runs.forEach((run, r) => {
      const keys = results[r]!;
      run.forEach((w, i) => {
        if (keys instanceof Error) {
          flag(w, [keysets.has(w.keyset_id) ? 'derivation' : 'keyset_id']);
          return;
        }
        const fields: string[] = [];
        const pk = keys.publicKeys[i];
        if (!pk || !equalBytes(pk, w.public_key)) fields.push('public_key');
        if (w.path !== walletPath(w.wallet_index)) fields.push('path');
        const a = keys.addresses[i] ?? {};
        for (const [column, key] of ADDRESS_FIELDS) if ((a[key] ?? null) !== w[column]) fields.push(column);
        flag(w, fields);
      });
    });
    checked += page.length;
    opts.onProgress?.('wallets', checked, total);
    page = await next;
  }
  return { checked, mismatched, mismatches };
}
