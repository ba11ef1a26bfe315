/**
 * The embedded database on its own thread (store/pglite-thread.ts is the other end): PGlite's
 * WASM engine takes a large share of the coordinator's CPU under load, and here it runs beside the
 * event loop that serves gRPC and drives the nodes instead of inside it.
 *
 * Messages, one at a time in arrival order (the client serializes access like the in-thread
 * backend): query, begin / tq (a query inside the open transaction) / end {commit}, close.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { PGlite, Transaction } from '@electric-sql/pglite';
import { pgliteParsers, SERIALIZABLE_SESSION } from './db.js';
import type { ThreadReply, ThreadRequest } from './pglite-thread.js';

const port = parentPort!;
const { dataDir } = workerData as { dataDir: string };

/** What crosses the thread boundary of an error: enough for sqlState() and uniqueViolation(). */
function plainError(e: unknown): ThreadReply['error'] {
  const x = e as { message?: unknown; code?: unknown; constraint?: unknown; detail?: unknown };
  return {
    message: typeof x?.message === 'string' ? x.message : String(e),
    ...(typeof x?.code === 'string' ? { code: x.code } : {}),
    ...(typeof x?.constraint === 'string' ? { constraint: x.constraint } : {}),
    ...(typeof x?.detail === 'string' ? { detail: x.detail } : {}),
  };
}

class Rollback extends Error {}

async function main(): Promise<void> {
  const { PGlite } = await import('@electric-sql/pglite');
  let pg: PGlite;
  try {
    pg = await PGlite.create(dataDir, { parsers: pgliteParsers });
    await pg.query(SERIALIZABLE_SESSION);
  } catch (e) {
    port.postMessage({ id: 0, error: plainError(e) } satisfies ThreadReply);
    return;
  }
  port.postMessage({ id: 0, rows: [] } satisfies ThreadReply);

  // Messages for the open transaction, consumed by its body below.
  let txInbox: ((m: ThreadRequest) => void) | undefined;
  const txQueue: ThreadRequest[] = [];
  const nextTxMessage = () => new Promise<ThreadRequest>((resolve) => {
    const m = txQueue.shift();
    if (m) resolve(m);
    else txInbox = resolve;
  });

  // Set when a transaction failed to start: its statements (sent without waiting for the BEGIN)
  // get this error, up to and including its 'end'.
  let notStarted: ThreadReply['error'] | undefined;
  const answerNotStarted = (m: ThreadRequest) => {
    port.postMessage({ id: m.id, ...(m.kind === 'end' ? { rows: [] } : { error: notStarted }) } satisfies ThreadReply);
    if (m.kind === 'end') notStarted = undefined;
  };

  port.on('message', (m: ThreadRequest) => {
    if (m.kind === 'tq' || m.kind === 'end') {
      if (notStarted) answerNotStarted(m);
      else if (txInbox) {
        const r = txInbox;
        txInbox = undefined;
        r(m);
      } else txQueue.push(m);
      return;
    }
    if (m.kind === 'query') {
      pg.query(m.sql!, m.params).then(
        (res) => port.postMessage({ id: m.id, rows: res.rows } satisfies ThreadReply),
        (e: unknown) => port.postMessage({ id: m.id, error: plainError(e) } satisfies ThreadReply),
      );
      return;
    }
    if (m.kind === 'begin') {
      let endId = 0;
      let started = false;
      pg.transaction(async (t: Transaction) => {
        started = true;
        port.postMessage({ id: m.id, rows: [] } satisfies ThreadReply);
        for (;;) {
          const next = await nextTxMessage();
          if (next.kind === 'end') {
            endId = next.id;
            if (!next.commit) throw new Rollback();
            return;
          }
          try {
            port.postMessage({ id: next.id, rows: (await t.query(next.sql!, next.params)).rows } satisfies ThreadReply);
          } catch (e) {
            port.postMessage({ id: next.id, error: plainError(e) } satisfies ThreadReply);
          }
        }
      }).then(
        () => port.postMessage({ id: endId, rows: [] } satisfies ThreadReply),
        (e: unknown) => {
          if (started) {
            port.postMessage({ id: endId, ...(e instanceof Rollback ? { rows: [] } : { error: plainError(e) }) } satisfies ThreadReply);
            return;
          }
          notStarted = plainError(e);
          port.postMessage({ id: m.id, error: notStarted } satisfies ThreadReply);
          while (notStarted && txQueue.length) answerNotStarted(txQueue.shift()!);
        },
      );
      return;
    }
    if (m.kind === 'close') {
      pg.close().then(
        () => port.postMessage({ id: m.id, rows: [] } satisfies ThreadReply),
        (e: unknown) => port.postMessage({ id: m.id, error: plainError(e) } satisfies ThreadReply),
      );
    }
  });
}

void main();
