/**
 * The storage suite every backend must pass (PGlite and a real PostgreSQL server). A backend hands
 * out fresh, migrated databases; the suite closes whatever it opened after each test.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, test } from 'vitest';
import { DuplicateKeyError, type Db, type Queryable } from '../../coordinator/store/db.js';
import { appliedMigrations, migrate, MIGRATIONS } from '../../coordinator/store/schema.js';
import { appendAudit, appendAuditMany, listAudit, verifyAudit, type AuditEntry } from '../../coordinator/store/audit.js';
import {
  createSignRequest,
  createSignRequests,
  completeSignRequests,
  findSignRequestByIdempotencyKey,
  getKeyset,
  getSignRequest,
  insertKeyset,
  listKeysets,
  nodeFaultCounts,
  NotFoundError,
  recordNodeFault,
  updateSignRequest,
  type NewKeyset,
} from '../../coordinator/store/repo.js';

export interface FreshDb {
  db: Db;
  /** Opens the same database again (call after closing db). */
  reopen(): Promise<Db>;
}

export interface StoreBackend {
  name: string;
  fresh(): Promise<FreshDb>;
}

const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

/** A plain Uint8Array, not a Buffer: the drivers' differences must not leak. */
export function expectPlainBytes(v: unknown): void {
  expect(Object.getPrototypeOf(v)).toBe(Uint8Array.prototype);
}

export function sampleKeyset(over: Partial<NewKeyset> = {}): NewKeyset {
  return {
    scheme: 'ed25519',
    // Edge bytes (0x00, 0x5c backslash, 0xff) next to random ones.
    publicKey: Uint8Array.from([0x00, 0x5c, 0xff, ...bytes(29)]),
    threshold: 2,
    chainCode: bytes(32),
    label: 'treasury hot',
    members: [
      { index: 3, nodeId: 'node-c', verifyingShare: bytes(32) },
      { index: 1, nodeId: 'node-a', verifyingShare: bytes(32) },
      { index: 2, nodeId: 'node-b', verifyingShare: Uint8Array.from([0, 0, 0]) },
    ],
    ...over,
  };
}

function entry(i: number): AuditEntry {
  return {
    actor: `operator-${i % 3}`,
    action: 'keyset.created',
    subject: `keyset-${i}`,
    // Keys out of order, nesting, a float, 1.0, unicode and an omitted undefined: all must survive JSONB.
    details: { z: i, a: { y: [1, 2.5, 'x'], b: null, c: true }, one: 1.0, name: 'Zürich ✓ 🔑', skip: undefined },
  };
}

/** Wraps a Queryable so matching statements fail with SQLSTATE 40001 while `fail()` says so (after running nothing). */
export function injectSerializationFailures(q: Queryable, match: RegExp, fail: () => boolean): Queryable {
  return {
    query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]> {
      if (match.test(sql) && fail()) {
        return Promise.reject(Object.assign(new Error('could not serialize access (injected)'), { code: '40001' }));
      }
      return q.query<R>(sql, params);
    },
  };
}

export async function appendN(db: Db, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) await db.tx((q) => appendAudit(q, entry(i)));
}

export function defineStoreSuite(backend: StoreBackend): void {
  describe(`store on ${backend.name}`, () => {
    const opened: Db[] = [];
    const fresh = async (): Promise<FreshDb> => {
      const f = await backend.fresh();
      opened.push(f.db);
      return {
        db: f.db,
        reopen: async () => {
          const db = await f.reopen();
          opened.push(db);
          return db;
        },
      };
    };
    afterEach(async () => {
      for (const db of opened.splice(0)) await db.close();
    });

    test('migrations are idempotent and checksummed', async () => {
      const { db, reopen } = await fresh();
      expect((await appliedMigrations(db)).map((m) => m.version)).toEqual(MIGRATIONS.map((m) => m.version));
      await insertKeyset(db, sampleKeyset());
      await db.close();
      const again = await reopen();
      expect(await migrate(again)).toEqual({ applied: [] });
      expect((await appliedMigrations(again)).map((m) => m.version)).toEqual(MIGRATIONS.map((m) => m.version));
      expect(await listKeysets(again, { limit: 10 })).toHaveLength(1);
      // An applied migration whose text changed is refused.
      const changed = [{ ...MIGRATIONS[0]!, statements: () => ['CREATE TABLE IF NOT EXISTS x (id INT PRIMARY KEY)'] }];
      await expect(migrate(again, changed)).rejects.toThrow(/checksum/);
    });

    test('data persists across close and reopen', async () => {
      const { db, reopen } = await fresh();
      const k = await db.tx((q) => insertKeyset(q, sampleKeyset()));
      await appendN(db, 3);
      await db.close();
      const again = await reopen();
      expect(await getKeyset(again, k.keysetId)).toEqual(k);
      expect(await verifyAudit(again)).toEqual({ ok: true, records: 3 });
    });

    test('value mapping: int8 -> number, bytea -> Uint8Array, timestamptz -> Date', async () => {
      const { db } = await fresh();
      const [row] = await db.query<{ n: unknown; b: unknown; t: unknown; c: unknown }>(
        "SELECT 9007199254740991::int8 AS n, $1::bytea AS b, '2024-05-06 07:08:09.123456+02'::timestamptz AS t, count(*) AS c FROM keysets",
        [Buffer.from([1, 2, 3])],
      );
      expect(row!.n).toBe(Number.MAX_SAFE_INTEGER);
      expect(row!.c).toBe(0);
      expectPlainBytes(row!.b);
      expect(row!.b).toEqual(Uint8Array.from([1, 2, 3]));
      expect(row!.t).toEqual(new Date('2024-05-06T05:08:09.123Z'));
      await expect(db.query('SELECT 9007199254740993::int8 AS n')).rejects.toThrow(RangeError);
      // The pool/connection is still usable after a parse failure.
      expect(await db.query('SELECT 1::int8 AS one')).toEqual([{ one: 1 }]);
    });

    test('keysets and members round trip with bytes intact', async () => {
      const { db } = await fresh();
      const input = sampleKeyset();
      const created = await db.tx((q) => insertKeyset(q, input));
      const got = await getKeyset(db, created.keysetId);
      expect(got).toBeDefined();
      expect(got!.publicKey).toEqual(input.publicKey);
      expect(got!.chainCode).toEqual(input.chainCode);
      expect(got!.members.map((m) => m.index)).toEqual([1, 2, 3]);
      expect(got!.members.find((m) => m.nodeId === 'node-b')!.verifyingShare).toEqual(Uint8Array.from([0, 0, 0]));
      for (const b of [got!.publicKey, got!.chainCode, ...got!.members.map((m) => m.verifyingShare)]) expectPlainBytes(b);
      expect(got!.createdAt).toBeInstanceOf(Date);
      expect(got).toEqual(created);
      expect(await getKeyset(db, '00000000-0000-4000-8000-000000000000')).toBeUndefined();
      // Same id twice: typed error.
      await expect(insertKeyset(db, { ...sampleKeyset(), keysetId: created.keysetId })).rejects.toBeInstanceOf(DuplicateKeyError);
      await expect(insertKeyset(db, { ...sampleKeyset(), threshold: 4 })).rejects.toThrow(/threshold/);
    });

    test('listKeysets pages by (created_at, keyset_id)', async () => {
      const { db } = await fresh();
      const base = Date.UTC(2025, 0, 1);
      const ids: { id: string; at: number }[] = [];
      for (let i = 0; i < 7; i++) {
        // Three share a timestamp: the id breaks the tie.
        const at = base + (i < 3 ? 0 : i * 1000);
        const k = await insertKeyset(db, sampleKeyset({ createdAt: new Date(at), label: `k${i}` }));
        ids.push({ id: k.keysetId, at });
      }
      const expected = [...ids].sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1)).map((x) => x.id);
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await listKeysets(db, { limit: 3, ...(after ? { afterKeysetId: after } : {}) });
        if (page.length === 0) break;
        expect(page.length).toBeLessThanOrEqual(3);
        for (const k of page) expect(k.members).toHaveLength(3);
        seen.push(...page.map((k) => k.keysetId));
        after = page[page.length - 1]!.keysetId;
      }
      expect(seen).toEqual(expected);
      await expect(listKeysets(db, { limit: 3, afterKeysetId: '00000000-0000-4000-8000-000000000000' })).rejects.toThrow(/cursor/);
    });

    test('sign requests: create, find, update, idempotency key unique', async () => {
      const { db } = await fresh();
      const k = await insertKeyset(db, sampleKeyset());
      const digest = bytes(32);
      const requestHash = bytes(32);
      const req = await db.tx((q) =>
        createSignRequest(q, { keysetId: k.keysetId, scheme: 'ed25519', digest, idempotencyKey: 'pay-1', requestHash, createdBy: 'svc-payments' }),
      );
      expect(req.status).toBe('received');
      expect(req.attempts).toBe(0);
      expect(req.signers).toEqual([]);
      expect(req.signature).toBeNull();
      expectPlainBytes(req.digest);
      expect(await getSignRequest(db, req.requestId)).toEqual(req);
      expect(await findSignRequestByIdempotencyKey(db, 'pay-1')).toEqual(req);
      expect(await findSignRequestByIdempotencyKey(db, 'nope')).toBeUndefined();

      const dup = await db
        .tx((q) => createSignRequest(q, { keysetId: k.keysetId, scheme: 'ed25519', digest, idempotencyKey: 'pay-1', requestHash, createdBy: 'x' }))
        .catch((e: unknown) => e);
      expect(dup).toBeInstanceOf(DuplicateKeyError);
      expect((dup as DuplicateKeyError).constraint).toBe('sign_requests_idempotency_key_uq');
      // Requests without a key never collide.
      await createSignRequest(db, { keysetId: k.keysetId, scheme: 'ed25519', digest, requestHash, createdBy: 'x' });
      await createSignRequest(db, { keysetId: k.keysetId, scheme: 'ed25519', digest, requestHash, createdBy: 'x' });

      const signature = bytes(64);
      const updated = await db.tx((q) =>
        updateSignRequest(q, req.requestId, {
          status: 'signed',
          signature,
          publicKey: k.publicKey,
          signers: ['node-a', 'node-c'],
          attempts: 2,
          expectedStatus: ['received', 'signing'],
        }),
      );
      expect(updated!.status).toBe('signed');
      expect(updated!.signature).toEqual(signature);
      expect(updated!.signers).toEqual(['node-a', 'node-c']);
      expect(updated!.attempts).toBe(2);
      expect(updated!.updatedAt.getTime()).toBeGreaterThanOrEqual(req.updatedAt.getTime());
      expect(await getSignRequest(db, req.requestId)).toEqual(updated);
      // Compare-and-set refuses a stale transition.
      expect(await updateSignRequest(db, req.requestId, { status: 'failed', expectedStatus: 'signing' })).toBeUndefined();
      await expect(updateSignRequest(db, '00000000-0000-4000-8000-000000000000', { status: 'failed' })).rejects.toBeInstanceOf(NotFoundError);
      expect(
        await updateSignRequest(db, '00000000-0000-4000-8000-000000000000', { status: 'failed', expectedStatus: 'signing' }),
      ).toBeUndefined();
      expect((await getSignRequest(db, req.requestId))!.status).toBe('signed');
    });

    test('sign requests in groups: one INSERT keeps input order, one UPDATE completes only what this owner holds in signing', async () => {
      const { db } = await fresh();
      const k = await insertKeyset(db, sampleKeyset());
      const digests = Array.from({ length: 5 }, () => bytes(32));
      const created = await db.tx((q) =>
        createSignRequests(q, digests.map((digest, i) => ({ keysetId: k.keysetId, scheme: 'ed25519' as const, digest, requestHash: bytes(32), createdBy: `svc-${i}`, status: 'signing' as const, owner: i === 4 ? 'other' : 'coord-1' }))),
      );
      expect(created.map((r) => r.digest)).toEqual(digests);
      expect(created.map((r) => r.createdBy)).toEqual(['svc-0', 'svc-1', 'svc-2', 'svc-3', 'svc-4']);
      for (const r of created) expect(await getSignRequest(db, r.requestId)).toEqual(r);
      // With every optional field set too (policy fields, wallet, lease).
      const full = await db.tx((q) =>
        createSignRequests(q, [
          {
            keysetId: k.keysetId,
            scheme: 'ecdsa' as const,
            digest: bytes(32),
            idempotencyKey: 'order-77',
            requestHash: bytes(32),
            status: 'awaiting_approvals' as const,
            createdBy: 'svc-x',
            createdAt: new Date(Date.UTC(2026, 10, 24, 12, 0, 0, 123)),
            source: 'nats',
            clientId: 'shop-1',
            owner: 'coord-1',
            leaseUntil: new Date(Date.UTC(2026, 10, 24, 12, 2, 0, 456)),
            walletId: '00000000-0000-4000-8000-0000000000aa',
            derivationPath: '0/7',
            policy: {
              payload: bytes(40),
              intent: { kind: 'native', asset: 'ETH', amount: '5000000000000000000', to: '0x' + 'ab'.repeat(20) },
              policyVersion: 3,
              rule: 'eth-approve-above-1',
              requirements: [{ count: 2, role: 'treasury' }],
              approvalExpiresAt: new Date(Date.UTC(2026, 10, 24, 13, 0, 0, 789)),
            },
          },
        ]),
      );
      expect(await getSignRequest(db, full[0]!.requestId)).toEqual(full[0]);

      await db.tx((q) => updateSignRequest(q, created[3]!.requestId, { status: 'failed', expectedStatus: 'signing' }));
      const signature = bytes(64);
      const done = await db.tx((q) =>
        completeSignRequests(q, 'coord-1', [
          { before: created[0]!, status: 'signed', signature, publicKey: k.publicKey, signers: ['node-a', 'node-b'], attempts: 1, error: null },
          { before: created[1]!, status: 'failed', attempts: 3, error: 'not enough nodes' },
          { before: created[3]!, status: 'signed', signature, error: null },
          { before: created[4]!, status: 'signed', signature, error: null },
        ]),
      );
      // The rows it returns (built from what the caller holds and the update) are what a read returns.
      for (const d of done.slice(0, 2)) expect(await getSignRequest(db, d!.requestId)).toEqual(d);
      expect(done[0]).toMatchObject({ status: 'signed', signature, signers: ['node-a', 'node-b'], attempts: 1, error: null, owner: null, leaseUntil: null });
      expect(done[1]).toMatchObject({ status: 'failed', signature: null, signers: [], attempts: 3, error: 'not enough nodes' });
      // No longer signing, or another coordinator's: left as they are.
      expect(done[2]).toBeUndefined();
      expect(done[3]).toBeUndefined();
      expect((await getSignRequest(db, created[3]!.requestId))!.status).toBe('failed');
      expect((await getSignRequest(db, created[4]!.requestId))!).toMatchObject({ status: 'signing', owner: 'other', signature: null });
      expect((await getSignRequest(db, created[2]!.requestId))!.status).toBe('signing');
    });

    test('node faults are counted per node', async () => {
      const { db } = await fresh();
      const old = new Date(Date.UTC(2020, 0, 1));
      await recordNodeFault(db, { nodeId: 'node-a', reason: 'timeout', at: old });
      await recordNodeFault(db, { nodeId: 'node-a', reason: 'bad share', keysetId: '00000000-0000-4000-8000-000000000001' });
      const f = await recordNodeFault(db, { nodeId: 'node-b', reason: 'timeout', requestId: '00000000-0000-4000-8000-000000000002' });
      expect(f.requestId).toBe('00000000-0000-4000-8000-000000000002');
      expect(f.keysetId).toBeNull();
      expect(await nodeFaultCounts(db)).toEqual(new Map([['node-a', 2], ['node-b', 1]]));
      expect(await nodeFaultCounts(db, { since: new Date(Date.UTC(2021, 0, 1)) })).toEqual(new Map([['node-a', 1], ['node-b', 1]]));
    });

    describe('audit chain', () => {
      test('append N, verify in pages, list', async () => {
        const { db } = await fresh();
        expect(await verifyAudit(db)).toEqual({ ok: true, records: 0 });
        await appendN(db, 12);
        const batch = await db.tx((q) => appendAuditMany(q, [entry(100), entry(101), entry(102)]));
        expect(batch.map((r) => r.seq)).toEqual([13, 14, 15]);
        expect(await verifyAudit(db, { batchSize: 4 })).toEqual({ ok: true, records: 15 });
        const listed = await listAudit(db, 10, 3);
        expect(listed.map((r) => r.seq)).toEqual([11, 12, 13]);
        expect(listed[2]).toEqual(batch[0]);
        expect(listed[1]!.hash).toEqual(listed[2]!.prevHash);
        expect(listed[0]!.details).toEqual({ z: 11, a: { y: [1, 2.5, 'x'], b: null, c: true }, one: 1, name: 'Zürich ✓ 🔑' });
        expectPlainBytes(listed[0]!.hash);
      });

      test('canonical details survive the JSONB round trip', async () => {
        const { db } = await fresh();
        const details = {
          zeta: { b: [], a: {} },
          'ключ': 'значение',
          '': 'empty key',
          aa: 0.1,
          a: 1e-7,
          big: Number.MAX_SAFE_INTEGER,
          neg: -0,
          f: 123456789.123,
          e: 1.5e-300,
          s: 'quote " backslash \\ tab \t newline \n',
        };
        const appended = await db.tx((q) => appendAudit(q, { actor: 'a', action: 'b', subject: 'c', details }));
        const [stored] = await listAudit(db, 0, 1);
        expect(stored).toEqual(appended);
        expect(await verifyAudit(db)).toEqual({ ok: true, records: 1 });
        await expect(db.tx((q) => appendAudit(q, { actor: 'a', action: 'b', subject: 'c', details: { n: 10n } }))).rejects.toThrow(/bigint/);
      });

      test('tampered details are reported at that seq', async () => {
        const { db } = await fresh();
        await appendN(db, 10);
        await db.query(`UPDATE audit_log SET details = $1::jsonb WHERE seq = 7`, [JSON.stringify({ z: 7, amount: '1000000' })]);
        expect(await verifyAudit(db, { batchSize: 3 })).toMatchObject({ ok: false, records: 6, firstBadSeq: 7 });
      });

      test('tampered hash and prev_hash are reported', async () => {
        const { db } = await fresh();
        await appendN(db, 8);
        await db.query(`UPDATE audit_log SET hash = $1 WHERE seq = 4`, [bytes(32)]);
        const r = await verifyAudit(db);
        expect(r).toMatchObject({ ok: false, firstBadSeq: 4 });
        expect(r.ok === false && r.reason).toMatch(/hash/);
      });

      test('a deleted middle row is reported as the missing seq', async () => {
        const { db } = await fresh();
        await appendN(db, 9);
        await db.query('DELETE FROM audit_log WHERE seq = 5');
        const r = await verifyAudit(db, { batchSize: 2 });
        expect(r).toMatchObject({ ok: false, records: 4, firstBadSeq: 5 });
        expect(r.ok === false && r.reason).toMatch(/missing/);
      });

      test('truncation of the tail is caught against an anchor', async () => {
        const { db } = await fresh();
        await appendN(db, 5);
        const [head] = await listAudit(db, 4, 1);
        await db.query('DELETE FROM audit_log WHERE seq = 5');
        expect(await verifyAudit(db)).toEqual({ ok: true, records: 4 });
        expect(await verifyAudit(db, { anchor: { seq: 5, hash: head!.hash } })).toMatchObject({ ok: false, firstBadSeq: 5 });
      });

      test('20 concurrent appends produce seq 1..20 and a valid chain', async () => {
        const { db } = await fresh();
        const records = await Promise.all(Array.from({ length: 20 }, (_, i) => db.tx((q) => appendAudit(q, entry(i)))));
        expect(records.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
        expect(await verifyAudit(db)).toEqual({ ok: true, records: 20 });
      });
    });

    describe('transactions', () => {
      test('every transaction runs at SERIALIZABLE', async () => {
        const { db } = await fresh();
        const rows = await db.tx((q) => q.query<{ transaction_isolation: string }>('SHOW transaction_isolation'));
        expect(rows).toEqual([{ transaction_isolation: 'serializable' }]);
      });

      test('a body failing with 40001 twice runs 3 times and commits once', async () => {
        const { db } = await fresh();
        let runs = 0;
        const result = await db.tx(async (q) => {
          runs += 1;
          await recordNodeFault(q, { nodeId: 'retry-node', reason: `attempt ${runs}` });
          if (runs < 3) throw Object.assign(new Error('injected serialization failure'), { code: '40001' });
          return 'done';
        });
        expect(result).toBe('done');
        expect(runs).toBe(3);
        const rows = await db.query<{ reason: string }>("SELECT reason FROM node_faults WHERE node_id = 'retry-node'");
        expect(rows).toEqual([{ reason: 'attempt 3' }]);
      });

      test('40001 raised by the database mid-transaction re-runs the whole body', async () => {
        const { db } = await fresh();
        let runs = 0;
        let injected = 0;
        const record = await db.tx(async (q) => {
          runs += 1;
          await recordNodeFault(q, { nodeId: 'mid-node', reason: `attempt ${runs}` });
          // The third statement of the first two attempts fails as a serialization failure would.
          return appendAudit(injectSerializationFailures(q, /INSERT INTO audit_log/, () => injected++ < 2), entry(1));
        });
        expect(runs).toBe(3);
        expect(record.seq).toBe(1);
        expect(await db.query("SELECT reason FROM node_faults WHERE node_id = 'mid-node'")).toEqual([{ reason: 'attempt 3' }]);
        expect(await verifyAudit(db)).toEqual({ ok: true, records: 1 });
      });

      test('a non-retryable error rolls back and is not retried', async () => {
        const { db } = await fresh();
        let runs = 0;
        await expect(
          db.tx(async (q) => {
            runs += 1;
            await recordNodeFault(q, { nodeId: 'boom-node', reason: 'x' });
            await appendAudit(q, entry(1));
            throw new Error('boom');
          }),
        ).rejects.toThrow('boom');
        expect(runs).toBe(1);
        expect(await db.query("SELECT 1 FROM node_faults WHERE node_id = 'boom-node'")).toEqual([]);
        expect(await verifyAudit(db)).toEqual({ ok: true, records: 0 });
      });

      test('a body that swallows a database error does not commit', async () => {
        const { db } = await fresh();
        await expect(
          db.tx(async (q) => {
            await recordNodeFault(q, { nodeId: 'swallow-node', reason: 'x' });
            await q.query('SELECT 1 / 0').catch(() => undefined);
          }),
        ).rejects.toThrow();
        expect(await db.query("SELECT 1 FROM node_faults WHERE node_id = 'swallow-node'")).toEqual([]);
      });

      test('db.query inside a tx body is refused instead of deadlocking', async () => {
        const { db } = await fresh();
        await expect(db.tx(async () => db.query('SELECT 1'))).rejects.toThrow(/inside a transaction/);
        await expect(db.tx(async () => db.tx(async () => 1))).rejects.toThrow(/inside a transaction/);
        // and the database still works afterwards
        expect(await db.query('SELECT 1::int8 AS one')).toEqual([{ one: 1 }]);
      });
    });
  });
}
