/**
 * The client end of store/pglite-worker.ts: the same query / transaction surface as a PGlite
 * instance, each call a message to the database thread. Values cross by structured clone
 * (Uint8Array, Date, bigint and parsed JSON survive as they are); errors keep their SQLSTATE.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

export interface ThreadRequest {
  id: number;
  kind: 'query' | 'begin' | 'tq' | 'end' | 'close';
  sql?: string;
  params?: unknown[];
  commit?: boolean;
}

export interface ThreadReply {
  id: number;
  rows?: unknown[];
  error?: { message: string; code?: string; constraint?: string; detail?: string };
}

/** What the database needs from a PGlite engine, in this thread or another. */
export interface PgliteEngine {
  query(sql: string, params?: unknown[]): Promise<unknown[]>;
  /** A SERIALIZABLE transaction (the session's default level, set when the engine opens). */
  transaction<T>(fn: (t: { query(sql: string, params?: unknown[]): Promise<unknown[]> }) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The compiled worker, or undefined when running from the TypeScript sources (tests use PGlite in-thread). */
export function pgliteWorkerFile(): string | undefined {
  const file = fileURLToPath(new URL('./pglite-worker.js', import.meta.url));
  return existsSync(file) ? file : undefined;
}

function toError(e: NonNullable<ThreadReply['error']>): Error {
  return Object.assign(new Error(e.message), e.code ? { code: e.code } : {}, e.constraint ? { constraint: e.constraint } : {}, e.detail ? { detail: e.detail } : {});
}

export async function startPgliteThread(file: string, dataDir: string): Promise<PgliteEngine> {
  const worker = new Worker(file, { workerData: { dataDir } });
  const waiting = new Map<number, { resolve: (rows: unknown[]) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let failed: Error | undefined;
  const ready = new Promise<void>((resolve, reject) => waiting.set(0, { resolve: () => resolve(), reject }));
  worker.on('message', (r: ThreadReply) => {
    const w = waiting.get(r.id);
    if (!w) return;
    waiting.delete(r.id);
    if (r.error) w.reject(toError(r.error));
    else w.resolve(r.rows ?? []);
  });
  const failAll = (e: Error) => {
    failed = e;
    for (const w of waiting.values()) w.reject(e);
    waiting.clear();
  };
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`the database thread exited (code ${code})`)));
  const call = (m: Omit<ThreadRequest, 'id'>): Promise<unknown[]> => {
    if (failed) return Promise.reject(failed);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      worker.postMessage({ ...m, id });
    });
  };
  await ready;
  return {
    query: (sql, params = []) => call({ kind: 'query', sql, params }),
    async transaction(fn) {
      // The body's first statement goes out with the BEGIN instead of waiting for it: one round
      // trip to the thread fewer. A transaction that could not start answers its statements with
      // that error, and fails with it.
      const begun = call({ kind: 'begin' });
      begun.catch(() => undefined);
      let result;
      try {
        result = await fn({ query: (sql, params = []) => call({ kind: 'tq', sql, params }) });
        await begun;
      } catch (e) {
        await call({ kind: 'end', commit: false }).catch(() => undefined);
        throw await begun.then(() => e, (notStarted: unknown) => notStarted);
      }
      await call({ kind: 'end', commit: true });
      return result;
    },
    async close() {
      await call({ kind: 'close' });
      await worker.terminate();
    },
  };
}
