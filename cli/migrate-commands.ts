/**
 * `custody db export|import|verify`: moves the coordinator's database between engines (the embedded
 * PGlite default, PostgreSQL, CockroachDB) through a checksummed export folder. docs/migration.md.
 *
 *   custody db export --out DIR [--database-url URL | --dir CLUSTER_DIR] [--force]
 *   custody db import --from DIR (--database-url URL | --dir CLUSTER_DIR) [--force]
 *   custody db verify [--database-url URL | --dir CLUSTER_DIR] [--from DIR] [--force]
 *
 * Without --database-url the database is the cluster's embedded one, <dir>/coordinator/db (as
 * coordinator/main.ts opens it). PGlite is one process's folder and has no lock of its own: while a
 * coordinator has it open its postmaster.pid exists, and these commands refuse (--force overrides,
 * for a folder left behind by a coordinator that was killed).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { WalletDeriver } from '../coordinator/wallet-deriver.js';
import { openDb, type Db } from '../coordinator/store/db.js';
import {
  exportDatabase,
  importDatabase,
  MigrationError,
  readManifest,
  verifyDatabase,
  type Manifest,
  type MigrationErrorCode,
  type VerificationReport,
} from '../coordinator/store/migration.js';
import { CliError } from './client.js';
import { clusterDir, layout } from './layout.js';
import { progress } from './progress.js';

type Flags = Record<string, string | boolean | undefined>;
type Result = { out: unknown; text: string; exitCode?: number };

const USAGE = `usage:
  custody db export --out DIR [--database-url URL | --dir CLUSTER_DIR]
  custody db import --from DIR (--database-url URL | --dir CLUSTER_DIR)
  custody db verify [--database-url URL | --dir CLUSTER_DIR] [--from DIR]`;

const str = (v: string | boolean | undefined): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  }
}

interface Opened {
  db: Db;
  /** What was opened, for messages (no password). */
  where: string;
}

/**
 * Opens the coordinator's database named by the flags. `existing`: the embedded folder must already
 * hold a database (export, verify) instead of being created (import).
 */
async function openCoordinatorDb(flags: Flags, o: { migrate: boolean; existing: boolean; required: boolean }): Promise<Opened> {
  const url = str(flags['database-url']);
  const dirFlag = str(flags.dir);
  if (url && dirFlag) {
    throw new CliError('give either --database-url (PostgreSQL/CockroachDB) or --dir (the cluster with the embedded database), not both', 'INVALID_ARGUMENT');
  }
  if (o.required && !url && !dirFlag) {
    throw new CliError('name the target: --database-url URL for PostgreSQL/CockroachDB, or --dir CLUSTER_DIR for a cluster\'s embedded database', 'INVALID_ARGUMENT');
  }
  if (url) {
    const where = redactUrl(url);
    try {
      return { db: await openDb({ url, poolSize: 4, skipMigrations: !o.migrate }), where };
    } catch (err) {
      throw new CliError(`cannot open ${where}: ${(err as Error).message}. Check the URL, that the server is running and reachable, and the user's rights`, 'UNAVAILABLE');
    }
  }
  const dir = clusterDir(dirFlag);
  const dataDir = join(layout(dir).coordinatorData, 'db');
  if (o.existing && !existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new CliError(
      `no embedded coordinator database in ${dataDir}: pass the cluster's folder with --dir (or set CUSTODY_DIR); a cluster started with --database-url keeps its data in that server: pass the same --database-url`,
      'NOT_FOUND',
    );
  }
  if (existsSync(join(dataDir, 'postmaster.pid')) && flags.force !== true) {
    throw new CliError(
      `the embedded database ${dataDir} is in use (its postmaster.pid exists): PGlite allows one process at a time, so stop the cluster first (Ctrl-C the \`custody up\` process and wait for "stopped"), then run this again. ` +
        'If no coordinator is running (it was killed), pass --force.',
      'FAILED_PRECONDITION',
    );
  }
  try {
    return { db: await openDb({ dataDir, skipMigrations: !o.migrate }), where: dataDir };
  } catch (err) {
    throw new CliError(
      `cannot open the embedded database ${dataDir}: ${(err as Error).message}. PGlite allows one process at a time: if the database is locked or busy, stop the cluster (custody up) and try again`,
      'UNAVAILABLE',
    );
  }
}

const CODES: Record<MigrationErrorCode, string> = {
  OUTPUT_NOT_EMPTY: 'ALREADY_EXISTS',
  BAD_MANIFEST: 'INVALID_ARGUMENT',
  CHECKSUM_MISMATCH: 'DATA_LOSS',
  ROW_COUNT_MISMATCH: 'DATA_LOSS',
  BAD_ROW: 'DATA_LOSS',
  SCHEMA_TOO_NEW: 'FAILED_PRECONDITION',
  SCHEMA_TOO_OLD: 'FAILED_PRECONDITION',
  SCHEMA_UNKNOWN_COLUMN: 'FAILED_PRECONDITION',
  TARGET_NOT_EMPTY: 'FAILED_PRECONDITION',
  SOURCE_CHANGED: 'ABORTED',
  IMPORT_FAILED: 'ABORTED',
};

/** MigrationError -> CliError (its message already says what to do next); anything else unchanged. */
function asCliError(err: unknown): unknown {
  if (err instanceof MigrationError) return new CliError(err.message, CODES[err.code]);
  return err;
}

/** A progress bar per table on stderr. */
function tableProgress(verb: string, json: boolean): (table: string, rows: number, total?: number) => void {
  const quiet = json && !process.stderr.isTTY;
  let current = '';
  let show: (done: number) => void = () => undefined;
  return (table, rows, total) => {
    if (table !== current) {
      current = table;
      show = progress(`${verb} ${table}`.padEnd(28), total ?? rows, quiet);
    }
    show(rows);
  };
}

function reportText(title: string, r: VerificationReport): string {
  const out = [`${title}: ${r.ok ? 'OK' : 'FAILED'}`];
  const width = Math.max(...r.tables.map((t) => t.table.length));
  for (const t of r.tables) {
    const mark = t.expected === null ? '' : t.expected === t.imported ? '  ok' : `  MISMATCH (export has ${t.expected})`;
    out.push(`  ${t.table.padEnd(width)}  ${String(t.imported).padStart(10)} rows${mark}`);
  }
  const head = r.audit.head ? `head seq ${r.audit.head.seq} ${r.audit.head.hash}` : 'empty';
  out.push(`  audit log  ${r.audit.ok ? 'verified' : 'NOT VERIFIED'}: ${r.audit.records} records, ${head}`);
  out.push(`  wallets    ${r.wallets.checked} re-derived, ${r.wallets.mismatched} mismatched`);
  for (const m of r.wallets.mismatches.slice(0, 10)) out.push(`    wallet ${m.walletId}: ${m.field} differs`);
  if (r.wallets.mismatches.length > 10) out.push(`    ... (--json lists up to 100)`);
  for (const p of r.problems) out.push(`  problem: ${p}`);
  return out.join('\n');
}

async function withDeriver<T>(fn: (derive: WalletDeriver) => Promise<T>): Promise<T> {
  const deriver = new WalletDeriver();
  try {
    return await fn(deriver);
  } finally {
    await deriver.close();
  }
}

export async function migrateCommand(sub: string | undefined, flags: Flags, json: boolean): Promise<Result> {
  try {
    switch (sub) {
      case 'export':
        return await exportCommand(flags, json);
      case 'import':
        return await importCommand(flags, json);
      case 'verify':
        return await verifyCommand(flags, json);
      default:
        throw new CliError(USAGE, 'INVALID_ARGUMENT');
    }
  } catch (err) {
    throw asCliError(err);
  }
}

async function exportCommand(flags: Flags, json: boolean): Promise<Result> {
  const out = str(flags.out);
  if (!out) throw new CliError('--out is required: a new folder for the export files (it must not exist or be empty)', 'INVALID_ARGUMENT');
  const outDir = resolve(out);
  const { db, where } = await openCoordinatorDb(flags, { migrate: false, existing: true, required: false });
  const started = Date.now();
  let manifest: Manifest;
  try {
    manifest = await exportDatabase(db, outDir, { onProgress: tableProgress('export', json) });
  } finally {
    await db.close();
  }
  const ms = Date.now() - started;
  const rows = manifest.files.reduce((n, f) => n + f.rows, 0);
  const result = { ok: true, out: outDir, source: where, ms, manifest };
  const lines = [
    `exported ${rows} rows from ${where} to ${outDir} in ${(ms / 1000).toFixed(1)} s`,
    ...manifest.files.map((f) => `  ${f.file.padEnd(22)} ${String(f.rows).padStart(10)} rows  sha256 ${f.sha256}`),
    `  audit head ${manifest.auditHead ? `seq ${manifest.auditHead.seq} ${manifest.auditHead.hash}` : 'empty'}`,
    `next: custody db import --from ${outDir} --database-url URL`,
  ];
  return { out: result, text: lines.join('\n') };
}

async function importCommand(flags: Flags, json: boolean): Promise<Result> {
  const from = str(flags.from);
  if (!from) throw new CliError('--from is required: the folder `custody db export --out` wrote', 'INVALID_ARGUMENT');
  const inDir = resolve(from);
  // Fail on a bad export before touching (or creating) the target.
  await readManifest(inDir);
  const { db, where } = await openCoordinatorDb(flags, { migrate: true, existing: false, required: true });
  const started = Date.now();
  let report: VerificationReport;
  try {
    report = await withDeriver((deriver) =>
      importDatabase(db, inDir, {
        onProgress: tableProgress('import', json),
        onVerifyProgress: tableProgress('verify', json),
        derive: (s, r, f, c) => deriver.derive(s, r, f, c),
      }),
    );
  } finally {
    await db.close();
  }
  const ms = Date.now() - started;
  const next = report.ok
    ? `next: start the cluster on it, e.g. custody up --database-url URL (keep ${inDir} until the new setup has run for a while)`
    : 'the target does not match the export: do not start a coordinator on it; drop and recreate the target database and import again, or keep using the source';
  return {
    out: { ...report, target: where, ms },
    text: `${reportText(`imported ${inDir} into ${where} in ${(ms / 1000).toFixed(1)} s; verification`, report)}\n${next}`,
    exitCode: report.ok ? 0 : 1,
  };
}

async function verifyCommand(flags: Flags, json: boolean): Promise<Result> {
  const from = str(flags.from);
  const manifest = from ? await readManifest(resolve(from)) : undefined;
  const { db, where } = await openCoordinatorDb(flags, { migrate: false, existing: true, required: false });
  const started = Date.now();
  let report: VerificationReport;
  try {
    const show = tableProgress('verify', json);
    report = await withDeriver((deriver) => verifyDatabase(db, manifest, { onProgress: show, derive: (s, r, f, c) => deriver.derive(s, r, f, c) }));
  } finally {
    await db.close();
  }
  const ms = Date.now() - started;
  return {
    out: { ...report, database: where, ...(from ? { against: resolve(from) } : {}), ms },
    text: reportText(`verification of ${where}${from ? ` against ${resolve(from)}` : ''} (${(ms / 1000).toFixed(1)} s)`, report),
    exitCode: report.ok ? 0 : 1,
  };
}
