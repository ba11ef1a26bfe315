/**
 * Operator quorum across real processes and the real CLI: with a policy that puts keyset.refresh
 * under 2 approvals of role ops, `custody keyset refresh` is held (FAILED_PRECONDITION naming an
 * operation) and changes nothing; one approval is not enough; the initiator cannot approve its own
 * operation; after the second approver the rerun refreshes, once: the next run asks again. A
 * rejected operation is dead. Without `operations` in the policy, refresh needs no approvals.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditService, KeysetService } from '../../proto/gen/custody/v1/api_pb.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

type Json = Record<string, unknown>;
type CliError = { code: string; message: string; operationId?: string };

describe('operator quorum for lifecycle commands', () => {
  let t: TestCluster;
  let keysetId: string;
  const approvers: { name: string; publicKey: string; roles: string[] }[] = [];

  // gRPC straight from the test where the CLI is not what is being tested: each CLI run is a process.
  const epoch = async () => (await (await t.client(KeysetService, 'operator')).getKeyset({ keysetId })).keyset!.epoch;
  const refresh = () => t.cli('keyset', 'refresh', keysetId);
  const approve = (id: string, who: string, ...more: string[]) => t.cli(more.length ? 'reject' : 'approve', id, '--key', join(t.dir, `${who}.key`), ...more);
  const setPolicy = async (extra: Json) => {
    const file = join(t.dir, `policy-${Date.now()}.json`);
    await writeFile(file, JSON.stringify({ version: 1, assets: [], approvers, rules: [], rawDigests: 'deny', defaultEffect: 'deny', approvalTtlSeconds: 3600, ...extra }));
    const set = await t.cli('policy', 'set', '--file', file);
    expect(set.code, `${set.stderr} ${JSON.stringify(set.json)}`).toBe(0);
  };
  /** A held refresh: FAILED_PRECONDITION naming its operation, nothing changed. */
  const held = async (expectedEpoch: number): Promise<string> => {
    const r = await refresh();
    expect(r.code).not.toBe(0);
    const err = r.json.error as CliError;
    expect(err).toMatchObject({ code: 'FAILED_PRECONDITION', operationId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(err.message).toMatch(new RegExp(`keyset\\.refresh of ${keysetId} (still )?needs approvals \\(\\d of role ops\\): operation ${err.operationId}; approvers run \`custody approve ${err.operationId}\``));
    expect(await epoch()).toBe(expectedEpoch);
    return err.operationId!;
  };

  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2 });
    const ks = await t.cli('keyset', 'create', '--scheme', 'ed25519');
    expect(ks.code, ks.stderr).toBe(0);
    keysetId = ks.json.keysetId as string;
    // "admin" is the name of the admin client certificate: the initiator of every command below.
    for (const name of ['admin', 'o1', 'o2']) {
      const kg = await t.cli('approver', 'keygen', '--out', join(t.dir, `${name}.key`));
      expect(kg.code, kg.stderr).toBe(0);
      approvers.push({ name, publicKey: kg.json.publicKey as string, roles: ['ops'] });
    }
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('without operations in the policy, refresh runs at once', async () => {
    await setPolicy({});
    const r = await refresh();
    expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
    expect(r.json.epoch).toBe(1);
  }, 60_000);

  it('2 of role ops: held, the initiator cannot approve, one is not enough, two are, and only once', async () => {
    await setPolicy({ operations: [{ kinds: ['keyset.refresh', 'keyset.reshare'], approvals: [{ count: 2, role: 'ops' }] }] });
    const id = await held(1);

    const self = await approve(id, 'admin');
    expect(self.json.error).toMatchObject({ code: 'PERMISSION_DENIED', message: expect.stringMatching(/initiator of an operation never counts/) });

    const first = await approve(id, 'o1');
    expect(first.code, `${first.stderr} ${JSON.stringify(first.json)}`).toBe(0);
    expect(first.json).toMatchObject({ approver: 'o1', operationId: id, status: 'pending', kind: 'keyset.refresh', subject: keysetId, missing: [{ count: 1, role: 'ops' }] });
    // Running again before the quorum names the same operation.
    expect(await held(1)).toBe(id);

    const second = await approve(id, 'o2');
    expect(second.json).toMatchObject({ operationId: id, status: 'approved', approvedBy: ['o1', 'o2'] });
    const ran = await refresh();
    expect(ran.code, `${ran.stderr} ${JSON.stringify(ran.json)}`).toBe(0);
    expect(ran.json.epoch).toBe(2);
    expect((await t.cli('operation', 'show', id)).json).toMatchObject({ status: 'consumed', initiator: 'admin' });

    // The approval is spent: the next run asks for a new one.
    const again = await held(2);
    expect(again).not.toBe(id);
    const actions = ((await t.cli('audit', 'list', '--limit', '5000')).json.records as { action: string; subject: string }[]).filter((x) => x.subject === id).map((x) => x.action);
    expect(actions).toEqual(['operation.requested', 'approval.refused', 'approval.recorded', 'approval.recorded', 'operation.approved', 'operation.authorized']);

    // A rejection ends it; the command then asks for a fresh operation.
    const rejected = await approve(again, 'o1', '--reason', 'not now');
    expect(rejected.json).toMatchObject({ operationId: again, status: 'rejected', error: 'rejected by o1: not now' });
    expect(await approve(again, 'o2').then((r) => r.json.error)).toMatchObject({ code: 'FAILED_PRECONDITION' });
    const fresh = await held(2);
    expect([id, again]).not.toContain(fresh);
    expect((await (await t.client(AuditService, 'operator')).verifyAudit({})).ok).toBe(true);
  }, 120_000);
});
