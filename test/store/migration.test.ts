/**
 * Export from the embedded PGlite database, import into a real PostgreSQL server, verify; then the
 * refusals and the failures verification must catch (coordinator/store/migration.ts).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { HdScheme } from '../../crypto/hd/derive.js';
import { deriveWalletBatch, walletPath } from '../../crypto/hd/wallets.js';
import { appendAudit, appendAuditMany } from '../../coordinator/store/audit.js';
import { openDb, type Db } from '../../coordinator/store/db.js';
import { MIGRATIONS } from '../../coordinator/store/schema.js';
import {
  exportDatabase,
  importDatabase,
  MANIFEST_FILE,
  MigrationError,
  readManifest,
  TABLES,
  verifyDatabase,
  type Manifest,
} from '../../coordinator/store/migration.js';
import { createSignRequest, insertKeyset, recordKeysetBan, recordNodeFault, updateSignRequest, type Scheme } from '../../coordinator/store/repo.js';
import {
  completeWalletBatch,
  insertWalletBatch,
  insertWallets,
  markWalletBatchProgress,
  reserveWalletIndexes,
  type WalletBatch,
} from '../../coordinator/store/wallets.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';

const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let root = '';
let server: PostgresServer;
let source: Db;
/** The export of `source` every test starts from (never modified: tests tamper with copies). */
let exportA = '';
let manifestA: Manifest;
let walletCount = 0;
let dbn = 0;

const newTarget = async (): Promise<Db> => openDb({ url: await server.createDatabase(`mig${process.pid}_${++dbn}`) });

/** Creates a batch of `count` wallets and persists the first `persist` of them, as coordinator/wallets.ts does. */
async function walletBatch(db: Db, keyset: { keysetId: string; scheme: HdScheme; publicKey: Uint8Array; chainCode: Uint8Array }, count: number, persist: number, meta: { label?: string; userId?: string } = {}): Promise<WalletBatch> {
  const batch = await db.tx(async (q) => {
    const first = (await reserveWalletIndexes(q, keyset.keysetId, count))!;
    return insertWalletBatch(q, {
      batchId: randomUUID(),
      keysetId: keyset.keysetId,
      firstIndex: first,
      count,
      label: meta.label ?? '',
      userId: meta.userId ?? '',
      purpose: 'deposit',
      idempotencyKey: `batch-${randomUUID()}`,
      requestHash: bytes(32),
      createdBy: 'operator',
      createdAt: new Date(),
    });
  });
  const keys = deriveWalletBatch(keyset.scheme, { publicKey: keyset.publicKey, chainCode: keyset.chainCode }, batch.firstIndex, persist);
  const indexes = Array.from({ length: persist }, (_, i) => batch.firstIndex + i);
  const pick = (f: 'ethereum' | 'bitcoinP2wpkh' | 'bitcoinP2tr' | 'solana') => keys.addresses.map((a) => a[f] ?? null);
  await db.tx(async (q) => {
    await insertWallets(q, batch, {
      walletIds: indexes.map(() => randomUUID()),
      indexes,
      paths: indexes.map(walletPath),
      publicKeys: keys.publicKeys,
      ethereum: pick('ethereum'),
      bitcoinP2wpkh: pick('bitcoinP2wpkh'),
      bitcoinP2tr: pick('bitcoinP2tr'),
      solana: pick('solana'),
    });
    await markWalletBatchProgress(q, batch.batchId, persist);
    if (persist === count) await completeWalletBatch(q, batch.batchId, new Date());
  });
  walletCount += persist;
  return batch;
}

async function keyset(db: Db, scheme: Scheme, publicKey: Uint8Array, label: string) {
  const members = [1, 2, 3].map((index) => ({ index, nodeId: `node-${'abc'[index - 1]}`, verifyingShare: bytes(33) }));
  return insertKeyset(db, { scheme, publicKey, threshold: 2, chainCode: bytes(32), label, members });
}

/** Fills a database with every kind of row the coordinator writes. */
async function fill(db: Db): Promise<void> {
  const ecdsa = await keyset(db, 'ecdsa', secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), true), 'hot "wallets" \\ ✓');
  const bip340 = await keyset(db, 'bip340', secp256k1.getPublicKey(secp256k1.utils.randomSecretKey(), true), 'taproot');
  const ed = await keyset(db, 'ed25519', ed25519.getPublicKey(ed25519.utils.randomSecretKey()), 'solana');
  // A keyset with edge bytes and no wallets (its key need not be a point: nothing derives from it).
  await keyset(db, 'secp256k1', Uint8Array.from([0x00, 0x5c, 0xff, ...bytes(30)]), 'NULL');

  await walletBatch(db, { ...ecdsa, scheme: 'ecdsa' }, 300, 300, { label: 'customers' });
  // An unfinished batch: 100 of 150 persisted.
  await walletBatch(db, { ...ecdsa, scheme: 'ecdsa' }, 150, 100, { userId: 'user-7' });
  await walletBatch(db, { ...bip340, scheme: 'bip340' }, 25, 25);
  await walletBatch(db, { ...ed, scheme: 'ed25519' }, 25, 25);

  const requests = [];
  for (let i = 0; i < 6; i++) {
    requests.push(
      await createSignRequest(db, {
        keysetId: i % 2 ? ecdsa.keysetId : ed.keysetId,
        scheme: i % 2 ? 'ecdsa' : 'ed25519',
        digest: bytes(32),
        idempotencyKey: i === 3 ? null : `k-${i}`,
        requestHash: bytes(32),
        createdBy: 'payments',
        source: i === 4 ? 'nats' : 'grpc',
        clientId: i === 4 ? 'client-1' : '',
        walletId: null,
        derivationPath: i === 1 ? 'm/0/5' : '',
      }),
    );
  }
  await updateSignRequest(db, requests[1]!.requestId, { status: 'signed', signature: bytes(64), publicKey: bytes(33), signers: ['node-a', 'node-c'], attempts: 1 });
  // Text that array literals must quote ("NULL", quotes, backslashes, braces, empty) and an empty bytea.
  const odd = await createSignRequest(db, { keysetId: ed.keysetId, scheme: 'ed25519', digest: new Uint8Array(0), idempotencyKey: '', requestHash: bytes(32), createdBy: 'NULL' });
  await updateSignRequest(db, odd.requestId, { signers: ['x"y', 'z\\w', 'NULL', '{a,b}'], error: '' });
  await updateSignRequest(db, requests[4]!.requestId, { status: 'failed', error: 'quorum lost: node-b "timeout"', resultPublished: true, owner: 'coord-1', leaseUntil: new Date(Date.now() + 30_000) });

  await recordKeysetBan(db, { keysetId: ecdsa.keysetId, nodeId: 'node-b', reason: 'OT check failed', requestId: requests[1]!.requestId });
  await recordKeysetBan(db, { keysetId: ed.keysetId, nodeId: 'node-a', reason: 'multiplication check' });
  // Written by SQL, not JS: microsecond timestamps must survive the move.
  await db.query(`INSERT INTO keyset_bans (keyset_id, node_id, reason) VALUES ($1, 'node-c', 'operator')`, [bip340.keysetId]);
  await recordNodeFault(db, { nodeId: 'node-b', keysetId: ecdsa.keysetId, requestId: requests[1]!.requestId, reason: 'bad share' });
  await recordNodeFault(db, { nodeId: 'node-c', reason: 'timeout' });
  await db.query(`INSERT INTO node_faults (fault_id, node_id, reason, at) VALUES (gen_random_uuid(), 'node-a', 'micro', '2024-02-29T23:59:59.123456Z')`);

  await db.tx((q) => appendAudit(q, { actor: 'operator', action: 'keyset.created', subject: ecdsa.keysetId, details: { scheme: 'ecdsa', threshold: 2, note: 'Zürich ✓ 🔑', f: 2.5, nested: { z: [1, null, true], a: '' } } }));
  await db.tx((q) => appendAuditMany(q, Array.from({ length: 40 }, (_, i) => ({ actor: 'payments', action: 'sign_request.received', subject: `r-${i}`, details: { i, big: 2 ** 53 - 1 - i } }))));
  await db.tx((q) => appendAudit(q, { actor: 'coordinator', action: 'wallet.batch_completed', subject: 'b', details: {} }));
}

function files(dir: string): Record<string, Buffer> {
  return Object.fromEntries(TABLES.map((t) => [t, readFileSync(join(dir, `${t}.jsonl`))]));
}

/** A copy of export A with one table's lines rewritten; with `fixManifest` the checksum (and size) follow the edit. */
function tampered(name: string, table: string, edit: (lines: string[]) => string[], fixManifest: boolean): string {
  const dir = join(root, name);
  cpSync(exportA, dir, { recursive: true });
  const path = join(dir, `${table}.jsonl`);
  const lines = readFileSync(path, 'utf8').split('\n').slice(0, -1);
  const text = edit(lines).map((l) => l + '\n').join('');
  writeFileSync(path, text);
  if (fixManifest) {
    const m = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as Manifest;
    const f = m.files.find((x) => x.table === table)!;
    f.sha256 = sha256(Buffer.from(text));
    f.bytes = Buffer.byteLength(text);
    writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(m, null, 2));
  }
  return dir;
}

async function rowCounts(db: Db): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of TABLES) out[t] = (await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${t}`))[0]!.n;
  return out;
}

const empty = Object.fromEntries(TABLES.map((t) => [t, 0]));

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'custody-migration-'));
  server = await startPostgres();
  source = await openDb({ dataDir: join(root, 'pglite') });
  await fill(source);
  exportA = join(root, 'export-a');
  // Small pages: every table, composite keys included, crosses page boundaries.
  manifestA = await exportDatabase(source, exportA, { pageSize: 7 });
});

afterAll(async () => {
  await source?.close();
  await server?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('export', () => {
  test('writes one 0600 JSON-lines file per table and a manifest with checksums', () => {
    expect(manifestA.sourceDialect).toBe('pglite');
    expect(manifestA.files.map((f) => f.table)).toEqual([...TABLES]);
    expect(manifestA.schemaVersions.map((v) => v.version)).toEqual(MIGRATIONS.map((m) => m.version));
    expect(manifestA.auditHead?.seq).toBe(42);
    const rows = Object.fromEntries(manifestA.files.map((f) => [f.table, f.rows]));
    expect(rows).toMatchObject({ keysets: 4, keyset_members: 12, keyset_bans: 3, wallet_batches: 4, wallets: walletCount, sign_requests: 7, node_faults: 3, audit_log: 42 });
    for (const f of manifestA.files) {
      const buf = readFileSync(join(exportA, f.file));
      expect(sha256(buf)).toBe(f.sha256);
      expect(buf.length).toBe(f.bytes);
      expect(statSync(join(exportA, f.file)).mode & 0o777).toBe(0o600);
    }
    expect(statSync(join(exportA, MANIFEST_FILE)).mode & 0o777).toBe(0o600);
  });

  test('rows in primary-key order; bytea as hex, timestamps with microseconds, jsonb as JSON', () => {
    const parse = (t: string) => readFileSync(join(exportA, `${t}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const wallets = parse('wallets');
    const ids = wallets.map((w) => w.wallet_id as string);
    expect(ids).toEqual([...ids].sort());
    expect(wallets[0]!.public_key).toMatch(/^[0-9a-f]{64,66}$/);
    expect(parse('audit_log').map((r) => r.seq)).toEqual(Array.from({ length: 42 }, (_, i) => i + 1));
    expect(parse('node_faults').find((f) => f.reason === 'micro')!.at).toBe('2024-02-29T23:59:59.123456Z');
    const keysets = parse('keysets');
    expect(keysets.map((k) => k.next_wallet_index).sort()).toEqual([0, 25, 25, 450]);
    const signed = parse('sign_requests').find((r) => r.status === 'signed')!;
    expect(signed.signers).toEqual(['node-a', 'node-c']);
    const odd = parse('sign_requests').find((r) => r.created_by === 'NULL')!;
    expect(odd).toMatchObject({ digest: '', idempotency_key: '', error: '', signers: ['x"y', 'z\\w', 'NULL', '{a,b}'], signature: null });
  });

  test('refuses a folder that is not empty', async () => {
    const dir = join(root, 'not-empty');
    mkdirSync(dir);
    writeFileSync(join(dir, 'keep.txt'), 'mine');
    await expect(exportDatabase(source, dir)).rejects.toMatchObject({ code: 'OUTPUT_NOT_EMPTY' });
    expect(readFileSync(join(dir, 'keep.txt'), 'utf8')).toBe('mine');
  });

  test('the embedded source verifies on its own', async () => {
    const r = await verifyDatabase(source);
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.wallets.checked).toBe(walletCount);
    expect(r.tables.every((t) => t.expected === null)).toBe(true);
  });
});

describe('import into PostgreSQL', () => {
  let target: Db;

  beforeAll(async () => {
    target = await newTarget();
  });

  afterAll(async () => {
    await target?.close();
  });

  test('imports, verifies, and a re-export is byte-identical', async () => {
    const progress: string[] = [];
    const report = await importDatabase(target, exportA, { chunkRows: 64, pageSize: 50, onProgress: (t, n) => progress.push(`${t}:${n}`) });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.tables).toEqual(manifestA.files.map((f) => ({ table: f.table, expected: f.rows, imported: f.rows })));
    expect(report.audit).toEqual({ ok: true, records: 42, head: manifestA.auditHead });
    expect(report.wallets).toEqual({ checked: walletCount, mismatched: 0, mismatches: [] });
    expect(progress).toContain(`wallets:${walletCount}`);

    const exportB = join(root, 'export-b');
    const manifestB = await exportDatabase(target, exportB);
    expect(manifestB.sourceDialect).toBe('postgres');
    const a = files(exportA);
    const b = files(exportB);
    for (const t of TABLES) expect(b[t]!.equals(a[t]!), `${t}.jsonl differs between the databases`).toBe(true);
    expect(manifestB.files).toEqual(manifestA.files);
    expect(manifestB.auditHead).toEqual(manifestA.auditHead);
    expect(manifestB.schemaVersions).toEqual(manifestA.schemaVersions);
  });

  test('a target that is not empty is refused and left as it was', async () => {
    const before = await rowCounts(target);
    await expect(importDatabase(target, exportA)).rejects.toMatchObject({ code: 'TARGET_NOT_EMPTY' });
    expect(await rowCounts(target)).toEqual(before);
  });

  test('verifyDatabase against the manifest on the imported database', async () => {
    const r = await verifyDatabase(target, await readManifest(exportA), { pageSize: 33 });
    expect(r.ok).toBe(true);
  });
});

describe('damaged exports', () => {
  test('a changed byte fails the checksum naming the file, before anything is written', async () => {
    const dir = tampered('flipped', 'wallets', (lines) => {
      const l = lines[10]!;
      const at = l.indexOf('"public_key":"') + 20;
      return lines.map((x, i) => (i === 10 ? l.slice(0, at) + (l[at] === 'a' ? 'b' : 'a') + l.slice(at + 1) : x));
    }, false);
    const db = await newTarget();
    try {
      const err = await importDatabase(db, dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MigrationError);
      expect(err).toMatchObject({ code: 'CHECKSUM_MISMATCH', file: 'wallets.jsonl' });
      expect((err as Error).message).toMatch(/checksum mismatch in wallets\.jsonl/);
      expect(await rowCounts(db)).toEqual(empty);
    } finally {
      await db.close();
    }
  });

  test('a wallet key swapped with the checksum recomputed: the import report names the wallet', async () => {
    let victim = '';
    const dir = tampered('swapped-key', 'wallets', (lines) => {
      const rows = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const w = rows.findIndex((r) => r.eth_address !== null);
      const other = rows.findIndex((r, i) => i !== w && r.eth_address !== null);
      victim = rows[w]!.wallet_id as string;
      rows[w]!.public_key = rows[other]!.public_key;
      return rows.map((r) => JSON.stringify(r));
    }, true);
    const db = await newTarget();
    try {
      const report = await importDatabase(db, dir);
      expect(report.ok).toBe(false);
      expect(report.wallets.mismatched).toBe(1);
      expect(report.wallets.mismatches).toEqual([{ walletId: victim, field: 'public_key' }]);
      expect(report.problems.join('\n')).toContain(victim);
      expect(report.audit.ok).toBe(true);
    } finally {
      await db.close();
    }
  });

  test('an edited audit detail with the checksum recomputed: audit verification fails', async () => {
    const dir = tampered('audit-edit', 'audit_log', (lines) =>
      lines.map((l) => {
        const r = JSON.parse(l) as { seq: number; details: Record<string, unknown> };
        if (r.seq === 7) r.details = { ...r.details, i: 999 };
        return JSON.stringify(r);
      }), true);
    const db = await newTarget();
    try {
      const report = await importDatabase(db, dir);
      expect(report.ok).toBe(false);
      expect(report.audit.ok).toBe(false);
      expect(report.audit.records).toBe(6);
      expect(report.problems.join('\n')).toMatch(/audit log broken at record 7/);
      expect(report.wallets.mismatched).toBe(0);
    } finally {
      await db.close();
    }
  });

  test('a dropped audit record with counts and checksum fixed: the anchored head catches it', async () => {
    const dir = tampered('audit-truncated', 'audit_log', (lines) => lines.slice(0, -1), true);
    const m = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as Manifest;
    m.files.find((f) => f.table === 'audit_log')!.rows -= 1;
    writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(m));
    const db = await newTarget();
    try {
      const report = await importDatabase(db, dir);
      expect(report.ok).toBe(false);
      expect(report.audit.ok).toBe(false);
      expect(report.problems.join('\n')).toMatch(/before the anchor at 42/);
    } finally {
      await db.close();
    }
  });

  test('an export from a newer schema is refused before anything is written', async () => {
    const dir = join(root, 'newer');
    cpSync(exportA, dir, { recursive: true });
    const m = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as Manifest;
    m.schemaVersions.push({ version: 999, name: 'from the future' });
    writeFileSync(join(dir, MANIFEST_FILE), JSON.stringify(m));
    const db = await newTarget();
    try {
      await expect(importDatabase(db, dir)).rejects.toMatchObject({ code: 'SCHEMA_TOO_NEW', message: expect.stringMatching(/999/) });
      expect(await rowCounts(db)).toEqual(empty);
    } finally {
      await db.close();
    }
  });

  test('a row count that disagrees with the manifest is refused naming the file', async () => {
    const dir = tampered('extra-row', 'node_faults', (lines) => [...lines, lines[0]!.replace(/"fault_id":"[^"]+"/, `"fault_id":"${randomUUID()}"`)], true);
    const db = await newTarget();
    try {
      await expect(importDatabase(db, dir)).rejects.toMatchObject({ code: 'ROW_COUNT_MISMATCH', file: 'node_faults.jsonl' });
      expect(await rowCounts(db)).toEqual(empty);
    } finally {
      await db.close();
    }
  });
});
