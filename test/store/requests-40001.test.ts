/**
 * CockroachDB semantics: every transaction of the request lifecycle runs in the retry loop, so
 * serialization failures (SQLSTATE 40001) change nothing about the outcome. A Db wrapper fails a
 * third of all transactions with 40001 after their writes (CockroachDB can do that at COMMIT); the
 * request service on a real PostgreSQL server must still accept, sign and complete every request
 * exactly once.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesToHex } from '@noble/hashes/utils.js';
import { createLogger } from '../../runtime/log.js';
import { RequestService } from '../../coordinator/requests.js';
import type { SignOutcome } from '../../coordinator/quorum.js';
import type { LoadedKeyset, Signers } from '../../coordinator/signers.js';
import { verifyAudit } from '../../coordinator/store/audit.js';
import { openDb, type Db } from '../../coordinator/store/db.js';
import { insertKeyset, type KeysetRow } from '../../coordinator/store/repo.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';

describe('request lifecycle under injected 40001 failures', () => {
  let pg: PostgresServer;
  let db: Db;
  let flaky: Db;
  let injected = 0;

  beforeAll(async () => {
    pg = await startPostgres();
    db = await openDb({ url: pg.url });
    flaky = {
      dialect: db.dialect,
      query: (sql, params) => db.query(sql, params),
      close: () => db.close(),
      tx: (fn) =>
        db.tx(async (q) => {
          const result = await fn(q);
          if (Math.random() < 0.33) {
            injected++;
            throw Object.assign(new Error('injected serialization failure'), { code: '40001' });
          }
          return result;
        }),
    };
  }, 60_000);
  afterAll(async () => {
    await db?.close();
    await pg?.stop();
  });

  it('accepts, signs and completes every request exactly once', async () => {
    const keyset: KeysetRow = {
      keysetId: crypto.randomUUID(),
      scheme: 'ed25519',
      publicKey: randomBytes(32),
      threshold: 2,
      chainCode: randomBytes(32),
      label: '',
      createdAt: new Date(),
      epoch: 0,
      members: [1, 2, 3].map((index) => ({ index, nodeId: `node-${index}`, verifyingShare: randomBytes(32) })),
    };
    await insertKeyset(db, keyset);
    // The threshold protocol is outside this test: a stand-in signer records what it produced.
    const produced = new Map<string, Uint8Array[]>();
    const signing = {
      loadKeyset: async () => ({ row: keyset }) as unknown as LoadedKeyset,
      publicKeyOf: () => keyset.publicKey,
      sign: async (_ks: LoadedKeyset, requestId: string): Promise<SignOutcome> => {
        const signature = randomBytes(64);
        produced.set(requestId, [...(produced.get(requestId) ?? []), signature]);
        return { signature, signers: ['node-1', 'node-2'], attempts: 1 };
      },
    } as unknown as Signers;
    const requests = new RequestService(flaky, signing, createLogger('test', { level: 'silent' }), { owner: 'test' });
    const who = { actor: 'payment:test', source: 'grpc' as const, clientId: 'test' };

    const items = Array.from({ length: 200 }, (_, i) => ({ keysetId: keyset.keysetId, digest: randomBytes(32), idempotencyKey: `k-${i}` }));
    // Small sequential batches: grouped writes would otherwise make only a handful of transactions.
    const first = [];
    for (let i = 0; i < items.length; i += 5) first.push(await requests.signMany(items.slice(i, i + 5), who));
    // Every item retried: the originals come back, nothing is signed again.
    const again = await requests.signMany(items, who);
    expect(injected).toBeGreaterThan(10);

    const ids = first.flat().map((a) => ('request' in a ? a.request.requestId : 'error'));
    expect(new Set(ids).size).toBe(200);
    expect(again.map((a) => ('request' in a ? a.request.requestId : 'error'))).toEqual(ids);
    expect(again.every((a) => 'request' in a && !a.fresh && a.request.status === 'signed')).toBe(true);
    // One signature produced per request, and it is the stored one.
    expect(produced.size).toBe(200);
    for (const a of again) {
      if (!('request' in a)) throw new Error('refused');
      const made = produced.get(a.request.requestId)!;
      expect(made).toHaveLength(1);
      expect(bytesToHex(a.request.signature!)).toBe(bytesToHex(made[0]!));
    }
    const rows = await db.query<{ n: number }>('SELECT count(*) AS n FROM sign_requests');
    expect(rows[0]!.n).toBe(200);
    const perRequest = await db.query<{ action: string; n: number }>(
      `SELECT action, count(*) AS n FROM audit_log GROUP BY action ORDER BY action`,
    );
    expect(perRequest).toEqual([
      { action: 'sign.completed', n: 200 },
      { action: 'sign.policy_checked', n: 200 },
      { action: 'sign.received', n: 200 },
      { action: 'sign.signing', n: 200 },
    ]);
    expect(await verifyAudit(db)).toEqual({ ok: true, records: 800 });
  });
});
