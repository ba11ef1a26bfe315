/** The storage suite against a real PostgreSQL server started for this file, plus concurrency tests only a real server can run. */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openDb, sqlState, type Db } from '../../coordinator/store/db.js';
import { appendAudit, verifyAudit } from '../../coordinator/store/audit.js';
import { appliedMigrations, MIGRATIONS } from '../../coordinator/store/schema.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';
import { defineStoreSuite } from './suite.js';

let server: PostgresServer;
let n = 0;
const newDatabase = (): Promise<string> => server.createDatabase(`t${process.pid}_${++n}`);

beforeAll(async () => {
  server = await startPostgres();
  console.log(`PostgreSQL test server started in ${server.startMs} ms at ${server.url}`);
});

afterAll(async () => {
  await server?.stop();
});

defineStoreSuite({
  name: 'PostgreSQL',
  async fresh() {
    const url = await newDatabase();
    const db = await openDb({ url });
    return { db, reopen: () => openDb({ url }) };
  },
});

describe('PostgreSQL only', () => {
  test('dialect is detected from select version()', async () => {
    const db = await openDb({ url: server.url });
    expect(db.dialect).toBe('postgres');
    await db.close();
  });

  test('several coordinators migrating the same new database at once all succeed', async () => {
    const url = await newDatabase();
    const dbs = await Promise.all([1, 2, 3, 4].map(() => openDb({ url, poolSize: 2 })));
    try {
      expect((await appliedMigrations(dbs[0]!)).map((m) => m.version)).toEqual(MIGRATIONS.map((m) => m.version));
    } finally {
      await Promise.all(dbs.map((db) => db.close()));
    }
  });

  test('a real serialization conflict between two appenders is retried; both commit, chain contiguous', async () => {
    const url = await newDatabase();
    const codes: (string | undefined)[] = [];
    const db: Db = await openDb({ url, retry: { onRetry: ({ error }) => codes.push(sqlState(error)) } });
    try {
      // Both transactions read the head before either writes, so they must collide.
      let arrived = 0;
      let release!: () => void;
      const barrier = new Promise<void>((resolve) => (release = resolve));
      let runs = 0;
      const append = (actor: string): Promise<number> =>
        db.tx(async (q) => {
          runs += 1;
          const first = runs <= 2;
          await q.query('SELECT seq FROM audit_log ORDER BY seq DESC LIMIT 1');
          if (first) {
            if (++arrived === 2) release();
            await barrier;
          }
          return (await appendAudit(q, { actor, action: 'test.append', subject: 'conflict', details: {} })).seq;
        });
      const seqs = await Promise.all([append('a'), append('b')]);
      expect(seqs.sort()).toEqual([1, 2]);
      expect(runs).toBeGreaterThanOrEqual(3);
      expect(codes.length).toBeGreaterThanOrEqual(1);
      expect(codes.every((c) => c === '40001')).toBe(true);
      expect(await verifyAudit(db)).toEqual({ ok: true, records: 2 });
    } finally {
      await db.close();
    }
  });

  test('50 concurrent appends through a pool of 10 keep the chain contiguous', async () => {
    const url = await newDatabase();
    let retries = 0;
    const db = await openDb({ url, poolSize: 10, retry: { onRetry: () => void retries++ } });
    try {
      const started = Date.now();
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => db.tx((q) => appendAudit(q, { actor: 'load', action: 'test.append', subject: `s${i}`, details: { i } }))),
      );
      console.log(`50 contended appends: ${Date.now() - started} ms, ${retries} retries`);
      expect(await verifyAudit(db, { batchSize: 16 })).toEqual({ ok: true, records: 50 });
    } finally {
      await db.close();
    }
  });
});
