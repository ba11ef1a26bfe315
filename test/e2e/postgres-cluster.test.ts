/** The coordinator on a real PostgreSQL server (`--database-url`) instead of the embedded PGlite. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schnorr } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { startPostgres } from '../support/postgres.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

describe('cluster on PostgreSQL', () => {
  let pg: Awaited<ReturnType<typeof startPostgres>>;
  let t: TestCluster;
  beforeAll(async () => {
    pg = await startPostgres();
    t = await startTestCluster({ nodes: 3, threshold: 2, databaseUrl: pg.url });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    await pg?.stop();
  });

  it('creates a keyset, signs, keeps it across a restart, and verifies the audit log', async () => {
    const ks = await t.cli('keyset', 'create', '--scheme', 'bip340');
    expect(ks.code, ks.stderr).toBe(0);
    const digest = randomBytes(32);
    const signed = await t.cli('sign', '--keyset', ks.json.keysetId as string, '--digest', bytesToHex(digest));
    expect(signed.json.status).toBe('signed');
    expect(schnorr.verify(hexToBytes(signed.json.signature as string), digest, hexToBytes(ks.json.publicKey as string))).toBe(true);
    await t.restart();
    const shown = await t.cli('request', 'show', signed.json.requestId as string);
    expect(shown.json.signature).toBe(signed.json.signature);
    const audit = await t.cli('audit', 'verify');
    // keyset.created, then sign.received, sign.policy_checked, sign.signing, sign.completed.
    expect(audit.json).toEqual({ ok: true, records: 5 });
    const actions = ((await t.cli('audit', 'list')).json.records as { action: string }[]).map((r) => r.action);
    expect(actions).toEqual(['keyset.created', 'sign.received', 'sign.policy_checked', 'sign.signing', 'sign.completed']);
  });
});
