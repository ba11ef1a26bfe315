/**
 * Keeps retrying a database operation while the database is unreachable (restarting, failing over):
 * a coordinator must wait the outage out, not turn accepted requests into failures. Serialization
 * conflicts (40001) are retried inside Db.tx already; this is for the connection itself.
 */
import type { Logger } from '../../runtime/log.js';
import { sqlState } from './db.js';

const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN', 'EHOSTUNREACH']);

export function isTransientDbError(err: unknown): boolean {
  const state = sqlState(err);
  if (state && (state.startsWith('08') || state === '57P01' || state === '57P02' || state === '57P03')) return true;
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|connection error|terminating connection|the database system is (starting up|shutting down)/i.test(message);
}

export async function durably<T>(log: Logger, what: string, fn: () => Promise<T>, opts: { signal?: AbortSignal } = {}): Promise<T> {
  let delay = 100;
  for (let tries = 1; ; tries++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientDbError(err) || opts.signal?.aborted) throw err;
      if (tries === 1 || tries % 20 === 0) log.warn({ what, tries, err: err instanceof Error ? err.message : String(err) }, 'database unavailable, retrying');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2_000);
    }
  }
}
