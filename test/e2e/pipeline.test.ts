/**
 * The NATS JetStream pipeline end to end: a real nats-server (JetStream) and a real PostgreSQL
 * server started here, the coordinator and nodes as real processes. 1,000 requests with 10%
 * duplicates must yield exactly 900 verified signatures, each reported once, also when the
 * coordinator is killed, nats-server restarted or the database restarted in the middle, and with
 * two coordinators consuming together.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { SignRequestSchema, SignResultSchema, SignStatus, type SignResult } from '../../proto/gen/custody/v1/api_pb.js';
import { openDb, type Db } from '../../coordinator/store/db.js';
import { verifyAudit } from '../../coordinator/store/audit.js';
import { startNats, type NatsServer } from '../support/nats.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

const UNIQUE = 900;
const DUPLICATES = 100;

describe('NATS pipeline', () => {
  let pg: PostgresServer;
  let nats: NatsServer;
  let t: TestCluster;
  let db: Db;
  let nc: NatsConnection;
  let keysetId = '';
  let publicKey = new Uint8Array();

  beforeAll(async () => {
    [pg, nats] = await Promise.all([startPostgres(), startNats()]);
    t = await startTestCluster({ nodes: 3, threshold: 2, databaseUrl: pg.url, natsUrl: nats.url });
    const ks = await t.cli('keyset', 'create', '--scheme', 'ed25519');
    expect(ks.code, ks.stderr).toBe(0);
    keysetId = ks.json.keysetId as string;
    publicKey = hexToBytes(ks.json.publicKey as string);
    db = await openDb({ url: pg.url, skipMigrations: true });
    nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  }, 180_000);

  afterAll(async () => {
    await nc?.close();
    await db?.close();
    await t?.stop();
    await nats?.stop();
    await pg?.stop();
  });

  /** Publishes UNIQUE requests plus DUPLICATES repeats (same body, same Nats-Msg-Id), shuffled. */
  async function publish(client: string): Promise<Map<string, Uint8Array>> {
    const js = jetstream(nc);
    const digests = new Map<string, Uint8Array>();
    const order: string[] = [];
    for (let i = 0; i < UNIQUE; i++) {
      const key = `${client}-${i}`;
      digests.set(key, randomBytes(32));
      order.push(key);
    }
    for (let i = 0; i < DUPLICATES; i++) order.splice(UNIQUE / 2 + Math.floor(Math.random() * UNIQUE / 2), 0, order[Math.floor(Math.random() * (UNIQUE / 2))]!);
    await Promise.all(
      order.map((key) =>
        js.publish(`custody.requests.${client}`, toBinary(SignRequestSchema, create(SignRequestSchema, { keysetId, digest: digests.get(key)!, idempotencyKey: key })), { msgID: key }),
      ),
    );
    return digests;
  }

  /** Every result published so far for a client, read from the start of the results stream. */
  async function readResults(client: string): Promise<SignResult[]> {
    // A string filter is filter_subject, which the nats-server 2.9 of Debian supports (an array needs 2.10).
    for (let tries = 1; ; tries++) {
      try {
        const js = jetstream(nc);
        const consumer = await js.consumers.get('CUSTODY_RESULTS', { filter_subjects: `custody.results.${client}`, deliver_policy: DeliverPolicy.All });
        const out: SignResult[] = [];
        for (;;) {
          const before = out.length;
          for await (const m of await consumer.fetch({ max_messages: 1000, expires: 1_000 })) out.push(fromBinary(SignResultSchema, m.data));
          if (out.length === before) break;
        }
        return out;
      } catch (e) {
        if (tries > 60) throw e;
        await new Promise((r) => setTimeout(r, 500)); // nats-server restarting
      }
    }
  }

  async function waitForResults(client: string, atLeast: number, timeoutMs = 240_000): Promise<SignResult[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const results = await readResults(client);
      if (new Set(results.map((r) => r.request?.requestId)).size >= atLeast || Date.now() > deadline) return results;
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }

  /** The pipeline's promises: 900 distinct signatures, all valid, each reported once, each signed once. */
  async function check(client: string, digests: Map<string, Uint8Array>): Promise<void> {
    const results = await waitForResults(client, UNIQUE);
    await new Promise((r) => setTimeout(r, 1_500)); // anything published twice would show up now
    const final = await readResults(client);
    expect(final.every((r) => r.errorCode === 0)).toBe(true);
    const ids = final.map((r) => r.request!.requestId);
    expect(new Set(ids).size).toBe(UNIQUE);
    expect(final.length).toBe(UNIQUE); // each reported once
    expect(results.length).toBeLessThanOrEqual(UNIQUE);
    for (const r of final) {
      expect(r.request!.status).toBe(SignStatus.SIGNED);
      const digest = digests.get(r.idempotencyKey)!;
      expect(bytesToHex(r.request!.digest)).toBe(bytesToHex(digest));
      expect(ed25519.verify(r.request!.signature, digest, publicKey)).toBe(true);
    }
    const rows = await db.query<{ n: number; signed: number }>(
      `SELECT count(*) AS n, count(*) FILTER (WHERE status = 'signed') AS signed FROM sign_requests WHERE client_id = $1`,
      [client],
    );
    expect(rows[0]).toEqual({ n: UNIQUE, signed: UNIQUE });
    // Signed once: exactly one completion record per request, never two.
    const twice = await db.query<{ subject: string }>(
      `SELECT subject FROM audit_log WHERE action = 'sign.completed' AND subject IN (SELECT request_id::text FROM sign_requests WHERE client_id = $1)
       GROUP BY subject HAVING count(*) <> 1`,
      [client],
    );
    expect(twice).toEqual([]);
    const completed = await db.query<{ n: number }>(
      `SELECT count(*) AS n FROM audit_log WHERE action = 'sign.completed' AND subject IN (SELECT request_id::text FROM sign_requests WHERE client_id = $1)`,
      [client],
    );
    expect(completed[0]!.n).toBe(UNIQUE);
  }

  it('1,000 requests with 10% duplicates give 900 signatures, each verified and reported once', { timeout: 300_000 }, async () => {
    const digests = await publish('shop-a');
    await check('shop-a', digests);
    expect(await verifyAudit(db)).toMatchObject({ ok: true });
  });

  it('survives the coordinator being killed in the middle of the run', { timeout: 300_000 }, async () => {
    const digests = await publish('shop-b');
    await waitForResults('shop-b', 150);
    await t.cluster.stopProcess(t.cluster.coordinator!, 'SIGKILL');
    await t.cluster.startCoordinator();
    await check('shop-b', digests);
  });

  it('survives nats-server restarting in the middle of the run', { timeout: 300_000 }, async () => {
    const digests = await publish('shop-c');
    await waitForResults('shop-c', 150);
    await nats.restart(1_000);
    await check('shop-c', digests);
  });

  it('survives the database restarting in the middle of the run', { timeout: 300_000 }, async () => {
    const digests = await publish('shop-d');
    await waitForResults('shop-d', 150);
    await pg.restart(1_000);
    await check('shop-d', digests);
  });

  it('two coordinators consuming together never sign a request twice', { timeout: 300_000 }, async () => {
    await t.cluster.startExtraCoordinator('coordinator-b');
    const digests = await publish('shop-e');
    await check('shop-e', digests);
    const owners = await db.query<{ owner: string; n: number }>(
      `SELECT details->>'owner' AS owner, count(*) AS n FROM audit_log WHERE action = 'sign.signing'
       AND subject IN (SELECT request_id::text FROM sign_requests WHERE client_id = 'shop-e') GROUP BY 1 ORDER BY 1`,
    );
    expect(owners.map((o) => o.owner)).toEqual(['coordinator', 'coordinator-b']);
    expect(await verifyAudit(db)).toMatchObject({ ok: true });
  });
});
