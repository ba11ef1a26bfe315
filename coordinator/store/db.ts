/**
 * One database interface over three engines: CockroachDB and PostgreSQL through a `pg` pool, and
 * PGlite (Postgres in WASM, persisted to a folder) for the embedded default.
 *
 * Every transaction runs at SERIALIZABLE and goes through a retry loop for SQLSTATE 40001
 * (CockroachDB's serialization failure; PostgreSQL raises it under SERIALIZABLE too) and 40P01.
 * The whole transaction body is re-run, so it must be safe to re-run: no side effects outside the
 * database inside `tx`.
 *
 * Value mapping is the same on every engine:
 *   int8        -> number (a RangeError beyond Number.MAX_SAFE_INTEGER rather than a silent rounding)
 *   bytea       -> plain Uint8Array (never a Buffer: pg returns Buffers that compare unequal to Uint8Array)
 *   timestamptz -> Date (millisecond precision; write Dates from JS so values round-trip exactly)
 *   jsonb       -> parsed JSON. Bind JSONB parameters as JSON text (`JSON.stringify`) with a `::jsonb`
 *                  cast: pg turns a JS array parameter into a Postgres array literal, not JSON.
 *   uuid        -> string
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdirSync } from 'node:fs';
import pg from 'pg';
import type { Transaction as PGliteTransaction } from '@electric-sql/pglite';
import { pgliteWorkerFile, startPgliteThread, type PgliteEngine } from './pglite-thread.js';
import { migrate } from './schema.js';

export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
}

export type Dialect = 'postgres' | 'cockroach' | 'pglite';

export interface Db extends Queryable {
  readonly dialect: Dialect;
  /** Runs fn in one SERIALIZABLE transaction, retrying on 40001 with jittered backoff (bounded attempts); fn must be safe to re-run. */
  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface OpenDbOptions {
  /** postgres:// URL (PostgreSQL or CockroachDB). When absent, PGlite is used. */
  url?: string;
  /** PGlite data folder; `memory://` for a throwaway in-memory database. Required without url. */
  dataDir?: string;
  /** pg pool size (ignored for PGlite, which always has exactly one connection). */
  poolSize?: number;
  /** Retry policy for `tx`. */
  retry?: RetryOptions;
  /** Skip migrations (tools that only read). */
  skipMigrations?: boolean;
  /** PGlite on its own thread (default when the compiled worker exists; store/pglite-thread.ts). */
  pgliteThread?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Errors and retries

/** SQLSTATE of an error from pg or PGlite (or anything carrying a `code`), following `cause`. */
export function sqlState(err: unknown): string | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    // Five characters with a digit: SQLSTATE, not a Node code such as EPIPE.
    if (typeof code === 'string' && /^(?=.*\d)[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Serialization failure (40001) or deadlock (40P01): the transaction did not commit and can be re-run. */
export function isRetryable(err: unknown): boolean {
  const code = sqlState(err);
  return code === '40001' || code === '40P01';
}

/** A unique constraint was violated (SQLSTATE 23505). Repository functions throw this instead of the driver error. */
export class DuplicateKeyError extends Error {
  readonly code = '23505';
  constructor(
    /** Constraint or index name when the driver reports it. */
    readonly constraint: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DuplicateKeyError';
  }
}

/** Constraint name of a unique violation, or undefined when err is not one. */
export function uniqueViolation(err: unknown): { constraint: string | undefined } | undefined {
  if (sqlState(err) !== '23505') return undefined;
  const e = err as { constraint?: unknown; message?: unknown };
  if (typeof e.constraint === 'string' && e.constraint !== '') return { constraint: e.constraint };
  // CockroachDB does not always fill the constraint field; its message names it.
  const m = typeof e.message === 'string' ? /constraint "([^"]+)"/.exec(e.message) : null;
  return { constraint: m?.[1] };
}

export interface RetryOptions {
  /** Total attempts including the first (default 25). */
  maxAttempts?: number;
  /** First backoff ceiling in ms (default 4); doubles per attempt. */
  baseDelayMs?: number;
  /** Backoff ceiling in ms (default 500). */
  maxDelayMs?: number;
  /** Which errors are retried (default isRetryable). */
  retryable?: (err: unknown) => boolean;
  /** Observes each retry (metrics, logs). */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls fn(attempt) until it resolves, retrying retryable errors with full-jitter exponential
 * backoff (random in [0, min(max, base * 2^(attempt-1))]) so that contenders spread out. After the
 * last attempt the last error is rethrown unchanged, so callers still see its SQLSTATE.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 25);
  const base = opts.baseDelayMs ?? 4;
  const cap = opts.maxDelayMs ?? 500;
  const retryable = opts.retryable ?? isRetryable;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= maxAttempts || !retryable(error)) throw error;
      const delayMs = Math.random() * Math.min(cap, base * 2 ** (attempt - 1));
      opts.onRetry?.({ attempt, delayMs, error });
      await sleep(delayMs);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Value parsing shared by both drivers (they hand us the text format)

const OID_INT8 = 20;
const OID_BYTEA = 17;

function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value ${text} does not fit a JS number exactly`);
  return n;
}

function parseBytea(text: string): Uint8Array {
  if (text.startsWith('\\x')) return new Uint8Array(Buffer.from(text.slice(2), 'hex'));
  // Escape format (bytea_output = 'escape'): octal escapes and doubled backslashes.
  const out: number[] = [];
  for (let i = 0; i < text.length; ) {
    if (text[i] === '\\') {
      if (text[i + 1] === '\\') {
        out.push(0x5c);
        i += 2;
      } else {
        out.push(parseInt(text.slice(i + 1, i + 4), 8));
        i += 4;
      }
    } else {
      out.push(text.charCodeAt(i));
      i += 1;
    }
  }
  return Uint8Array.from(out);
}

const parsers: Record<number, (text: string) => unknown> = { [OID_INT8]: parseInt8, [OID_BYTEA]: parseBytea };
/** For the database thread (store/pglite-worker.ts), which opens PGlite itself. */
export const pgliteParsers = parsers;

// ---------------------------------------------------------------------------------------------
// Transaction scoping

interface TxState {
  active: boolean;
}

/** Wraps a driver query so it refuses to run once its transaction has ended (a stray un-awaited query). */
function scopedQueryable(state: TxState, run: (sql: string, params: unknown[]) => Promise<unknown[]>): Queryable {
  return {
    async query<R>(sql: string, params: unknown[] = []): Promise<R[]> {
      if (!state.active) throw new Error('query on a transaction that has already ended');
      return (await run(sql, params)) as R[];
    },
  };
}

abstract class BaseDb implements Db {
  abstract readonly dialect: Dialect;
  // Detects db.query/db.tx from inside a tx body: on PGlite it would deadlock on the single
  // connection, on pg it would run outside the transaction (and may wait on its own locks).
  protected readonly txContext = new AsyncLocalStorage<TxState>();
  protected closed = false;

  constructor(protected readonly retry: RetryOptions) {}

  protected guard(what: string): void {
    if (this.closed) throw new Error(`database is closed (${what})`);
    if (this.txContext.getStore()?.active) {
      throw new Error(`db.${what} called inside a transaction; use the Queryable passed to tx`);
    }
  }

  abstract query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  abstract tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  abstract close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// pg (PostgreSQL, CockroachDB)

class PgDb extends BaseDb {
  constructor(
    private readonly pool: pg.Pool,
    readonly dialect: 'postgres' | 'cockroach',
    retry: RetryOptions,
  ) {
    super(retry);
  }

  async query<R = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    this.guard('query');
    const res = await this.pool.query(sql, params);
    return res.rows as R[];
  }

  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    this.guard('tx');
    return withRetry(() => this.attempt(fn), this.retry);
  }

  private async attempt<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    const state: TxState = { active: true };
    try {
      await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE');
      try {
        const q = scopedQueryable(state, async (sql, params) => (await client.query(sql, params)).rows);
        const result = await this.txContext.run(state, () => fn(q));
        state.active = false;
        const commit = await client.query('COMMIT');
        // PostgreSQL answers COMMIT of an aborted transaction (fn swallowed an error) with ROLLBACK, not an error.
        if (commit.command === 'ROLLBACK') throw new Error('transaction was aborted by an earlier error; COMMIT rolled back');
        return result;
      } catch (err) {
        state.active = false;
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
        }
        throw err;
      }
    } finally {
      state.active = false;
      // A connection whose ROLLBACK failed is in an unknown state: destroy it instead of pooling it.
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}

// ---------------------------------------------------------------------------------------------
// PGlite

class PgliteDb extends BaseDb {
  readonly dialect = 'pglite' as const;
  // PGlite has one backend: every query and transaction takes its turn on this queue.
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly pg: PgliteEngine,
    retry: RetryOptions,
  ) {
    super(retry);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  query<R = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
    this.guard('query');
    return this.exclusive(async () => (await this.pg.query(sql, params)) as R[]);
  }

  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    this.guard('tx');
    // The backoff sleep happens outside the queue so a retrying tx does not hold up everyone else.
    return withRetry(() => this.exclusive(() => this.attempt(fn)), this.retry);
  }

  private async attempt<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    const state: TxState = { active: true };
    try {
      // PGlite's transaction() rolls back on error and rejects a COMMIT that turned into ROLLBACK.
      return await this.pg.transaction(async (t) => {
        const q = scopedQueryable(state, (sql, params) => t.query(sql, params));
        const result = await this.txContext.run(state, () => fn(q));
        state.active = false;
        return result;
      });
    } finally {
      state.active = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    await this.pg.close();
  }
}

/**
 * PGlite's one session runs every transaction at SERIALIZABLE: set once when it opens, instead of a
 * SET TRANSACTION statement in every transaction (a statement costs PGlite about 0.2 ms of CPU).
 */
export const SERIALIZABLE_SESSION = 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE';

/** PGlite in this thread, behind the same surface as the database thread. */
async function inThreadPglite(dataDir: string): Promise<PgliteEngine> {
  const { PGlite } = await import('@electric-sql/pglite');
  const pg = await PGlite.create(dataDir, { parsers });
  await pg.query(SERIALIZABLE_SESSION);
  return {
    query: async (sql, params) => (await pg.query(sql, params)).rows,
    transaction: (fn) => pg.transaction(async (t: PGliteTransaction) => fn({ query: async (sql, params) => (await t.query(sql, params)).rows })),
    close: () => pg.close(),
  };
}

// ---------------------------------------------------------------------------------------------

/**
 * Opens the database and runs migrations. With `url`, a pg pool (CockroachDB is detected from
 * `select version()`); otherwise PGlite persisted at `dataDir`.
 */
export async function openDb(opts: OpenDbOptions): Promise<Db> {
  const retry = opts.retry ?? {};
  let db: Db;
  if (opts.url) {
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 10,
      application_name: 'custody-coordinator',
      types: { getTypeParser: (oid, format) => parsers[oid] ?? pg.types.getTypeParser(oid, format) },
    });
    // An idle client that loses its connection emits here; the pool drops it and the next query reconnects.
    pool.on('error', () => undefined);
    try {
      const [row] = (await pool.query<{ version: string }>('select version() as version')).rows;
      const dialect = /cockroach/i.test(row?.version ?? '') ? 'cockroach' : 'postgres';
      db = new PgDb(pool, dialect, retry);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  } else if (opts.dataDir) {
    if (!opts.dataDir.includes('://')) mkdirSync(opts.dataDir, { recursive: true });
    const worker = opts.pgliteThread === false ? undefined : pgliteWorkerFile();
    db = new PgliteDb(worker ? await startPgliteThread(worker, opts.dataDir) : await inThreadPglite(opts.dataDir), retry);
  } else {
    // An unintended in-memory custody database would lose everything on restart: make it explicit.
    throw new Error('openDb needs a url or a dataDir (use dataDir "memory://" for a throwaway database)');
  }
  if (!opts.skipMigrations) {
    try {
      await migrate(db);
    } catch (err) {
      await db.close().catch(() => undefined);
      throw err;
    }
  }
  return db;
}
