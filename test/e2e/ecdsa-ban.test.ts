/**
 * DKLs23 bans: a node whose multiplication messages fail the check (fault injection 'bad-mul') is
 * banned for the keyset on the first abort, recorded (keyset_bans, audit node.banned), shown by
 * `custody nodes`, and never picked for that keyset again; signing continues without it. The
 * honest node that caught it refuses to presign with it on its own, until an operator re-runs the
 * pairwise setup, which clears both bans.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { NodeService } from '../../proto/gen/custody/v1/node_pb.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

describe('DKLs23 ban after a failed multiplication check', () => {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2, env: { 'node-2': { CUSTODY_FAULT_INJECTION: 'bad-mul' } } });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('bans the cheating node for the keyset and keeps signing without it', async () => {
    const ks = await t.cli('keyset', 'create', '--scheme', 'ecdsa');
    expect(ks.code, ks.stderr).toBe(0);
    const keysetId = ks.json.keysetId as string;
    const pub = hexToBytes(ks.json.publicKey as string);
    const attempts: number[] = [];
    for (let i = 0; i < 4; i++) {
      const digest = randomBytes(32);
      const { json, code, stderr } = await t.cli('sign', '--keyset', keysetId, '--digest', bytesToHex(digest));
      expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
      const sig = hexToBytes(json.signature as string);
      expect(secp256k1.verify(sig.subarray(0, 64), digest, pub, { prehash: false, lowS: true })).toBe(true);
      expect(json.signers).not.toContain('node-2');
      attempts.push(json.attempts as number);
    }
    // Quorums rotate from {node-1, node-2}: the first request meets the cheater, then it is banned.
    expect(attempts).toEqual([2, 1, 1, 1]);

    const nodes = (await t.cli('nodes')).json.nodes as { nodeId: string; bans: string[] }[];
    expect(Object.fromEntries(nodes.map((n) => [n.nodeId, n.bans]))).toEqual({ 'node-1': [], 'node-2': [keysetId], 'node-3': [] });
    const audit = (await t.cli('audit', 'list', '--limit', '1000')).json.records as { action: string; subject: string; details: { keysetId: string; reason: string } }[];
    const banned = audit.filter((r) => r.action === 'node.banned');
    expect(banned.map((r) => [r.subject, r.details.keysetId])).toEqual([['node-2', keysetId]]);
    expect(banned[0]!.details.reason).toMatch(/mul-check-failed/);

    // The honest node that caught it refuses on its own authority, whatever a coordinator asks.
    const node1 = await t.nodeClient(NodeService, 'node-1', 'coordinator');
    await expect(node1.runRound({ sessionId: randomUUID(), round: 0, params: { case: 'presign', value: { keysetId, signers: [1, 2] } } })).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      message: expect.stringMatching(/will not presign with node-2/),
    });
  }, 180_000);

  it('keeps the ban across a coordinator restart', async () => {
    await t.restart();
    const nodes = (await t.cli('nodes')).json.nodes as { nodeId: string; bans: string[] }[];
    expect(nodes.find((n) => n.nodeId === 'node-2')!.bans).toHaveLength(1);
    const keysetId = nodes.find((n) => n.nodeId === 'node-2')!.bans[0]!;
    for (let i = 0; i < 3; i++) {
      const { json, code, stderr } = await t.cli('sign', '--keyset', keysetId, '--digest', bytesToHex(randomBytes(32)));
      expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
      expect(json.signers).toEqual(['node-1', 'node-3']);
      expect(json.attempts).toBe(1);
    }
  }, 180_000);

  it('an operator re-runs the pairwise setup: the ban is cleared, and a node that still cheats is banned again', async () => {
    const before = (await t.cli('nodes')).json.nodes as { nodeId: string; bans: string[] }[];
    const keysetId = before.find((n) => n.nodeId === 'node-2')!.bans[0]!;
    const rerun = await t.cli('keyset', 'rerun-setup', keysetId);
    expect(rerun.code, `${rerun.stderr} ${JSON.stringify(rerun.json)}`).toBe(0);
    expect(rerun.json.clearedBans).toEqual(['node-2']);
    const after = (await t.cli('nodes')).json.nodes as { nodeId: string; bans: string[] }[];
    expect(after.find((n) => n.nodeId === 'node-2')!.bans).toEqual([]);
    // node-2 is eligible again; it still corrupts its multiplication, so the check bans it again.
    let sawRetry = false;
    for (let i = 0; i < 3; i++) {
      const { json, code, stderr } = await t.cli('sign', '--keyset', keysetId, '--digest', bytesToHex(randomBytes(32)));
      expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
      expect(json.signers).not.toContain('node-2');
      if ((json.attempts as number) > 1) sawRetry = true;
    }
    expect(sawRetry).toBe(true);
    const again = (await t.cli('nodes')).json.nodes as { nodeId: string; bans: string[] }[];
    expect(again.find((n) => n.nodeId === 'node-2')!.bans).toEqual([keysetId]);
    const audit = (await t.cli('audit', 'list', '--limit', '1000')).json.records as { action: string; subject: string; details: { clearedBans?: string[] } }[];
    expect(audit.find((r) => r.action === 'keyset.setup_rerun' && r.subject === keysetId)?.details.clearedBans).toEqual(['node-2']);
  }, 180_000);
});
