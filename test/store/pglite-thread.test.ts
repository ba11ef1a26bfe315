/**
 * PGlite on its own thread (coordinator/store/pglite-thread.ts), through the compiled worker that
 * `npm test` builds: the same values, SQLSTATEs, rollbacks and serial transactions as in-thread.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../coordinator/store/db.js';

const compiled = join(process.cwd(), 'dist', 'coordinator', 'store', 'db.js');

describe('PGlite on the database thread', () => {
  let db: Db;
  beforeAll(async () => {
    expect(existsSync(join(process.cwd(), 'dist', 'coordinator', 'store', 'pglite-worker.js')), 'run npm run build first').toBe(true);
    const { openDb } = (await import(pathToFileURL(compiled).href)) as typeof import('../../coordinator/store/db.js');
    db = await openDb({ dataDir: 'memory://', skipMigrations: true });
    await db.query('CREATE TABLE t (a INT PRIMARY KEY, b BYTEA, n INT8, j JSONB, at TIMESTAMPTZ)');
  });
  afterAll(async () => {
    await db?.close();
  });

  it('maps values like the in-thread engine', async () => {
    const at = new Date(1_700_000_000_123);
    await db.query('INSERT INTO t VALUES (1, $1, $2, $3::jsonb, $4)', [new Uint8Array([0, 255]), 2 ** 40, JSON.stringify({ x: [1] }), at]);
    const [row] = await db.query<{ b: Uint8Array; n: number; j: unknown; at: Date }>('SELECT b, n, j, at FROM t WHERE a = 1');
    expect(row!.b).toEqual(new Uint8Array([0, 255]));
    expect(row!.n).toBe(2 ** 40);
    expect(row!.j).toEqual({ x: [1] });
    expect(row!.at.getTime()).toBe(at.getTime());
  });

  it('runs every transaction at SERIALIZABLE', async () => {
    expect(await db.tx((q) => q.query('SHOW transaction_isolation'))).toEqual([{ transaction_isolation: 'serializable' }]);
  });

  it('a unique violation keeps its SQLSTATE and constraint; a failed body rolls back', async () => {
    const dup = await db.tx((q) => q.query('INSERT INTO t (a) VALUES (1)')).catch((e: unknown) => e as { code?: string; constraint?: string });
    expect(dup).toMatchObject({ code: '23505', constraint: 't_pkey' });
    await expect(db.tx(async (q) => {
      await q.query('INSERT INTO t (a) VALUES (2)');
      throw new Error('body failed');
    })).rejects.toThrow('body failed');
    expect(await db.query('SELECT a FROM t WHERE a = 2')).toEqual([]);
  });

  it('statements sent together in a transaction (and with its BEGIN) run in order; one failing rolls back all', async () => {
    const [, seen, count] = await db.tx((q) =>
      Promise.all([
        q.query('INSERT INTO t (a) VALUES (50)'),
        q.query<{ a: number }>('SELECT a FROM t WHERE a = 50'),
        q.query<{ c: number }>('SELECT count(*)::int AS c FROM t WHERE a >= 50 AND a < 60'),
      ]),
    );
    expect(seen).toEqual([{ a: 50 }]);
    expect(count).toEqual([{ c: 1 }]);
    const failed = db.tx((q) => Promise.all([q.query('INSERT INTO t (a) VALUES (51)'), q.query('INSERT INTO t (a) VALUES (50)'), q.query('INSERT INTO t (a) VALUES (52)')]));
    await expect(failed).rejects.toMatchObject({ code: '23505' });
    expect(await db.query('SELECT a FROM t WHERE a > 50 AND a < 60')).toEqual([]);
    // The connection is usable afterwards, with nothing left over from the failed transaction.
    expect(await db.tx((q) => q.query<{ a: number }>('SELECT a FROM t WHERE a >= 50 AND a < 60'))).toEqual([{ a: 50 }]);
  });

  it('concurrent transactions run one after another and all commit', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => db.tx(async (q) => {
      const [{ c }] = (await q.query<{ c: number }>('SELECT count(*)::int AS c FROM t')) as [{ c: number }];
      await q.query('INSERT INTO t (a) VALUES ($1)', [100 + i]);
      return c;
    })));
    expect((await db.query<{ c: number }>('SELECT count(*)::int AS c FROM t WHERE a >= 100'))[0]!.c).toBe(20);
  });
});
