/** A node that returns bad signature shares is named, recorded, and bypassed; every signature is still valid. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

describe('identifiable abort', () => {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2, env: { 'node-2': { CUSTODY_FAULT_INJECTION: 'bad-share' } } });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  it.each(['ed25519', 'bip340'] as const)('names the cheating node and retries with another quorum (%s)', async (scheme) => {
    const ks = await t.cli('keyset', 'create', '--scheme', scheme);
    expect(ks.code, ks.stderr).toBe(0);
    const pub = hexToBytes(ks.json.publicKey as string);
    let retried = 0;
    for (let i = 0; i < 4; i++) {
      const digest = randomBytes(32);
      const { json, code, stderr } = await t.cli('sign', '--keyset', ks.json.keysetId as string, '--digest', bytesToHex(digest));
      expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
      const sig = hexToBytes(json.signature as string);
      expect(scheme === 'ed25519' ? ed25519.verify(sig, digest, pub) : schnorr.verify(sig, digest, pub)).toBe(true);
      expect(json.signers).not.toContain('node-2');
      if ((json.attempts as number) > 1) retried++;
    }
    // Quorums rotate, so node-2 was picked at least once and caught each time.
    expect(retried).toBeGreaterThan(0);
    const nodes = (await t.cli('nodes')).json.nodes as { nodeId: string; faults: number }[];
    expect(nodes.find((n) => n.nodeId === 'node-2')!.faults).toBeGreaterThanOrEqual(retried);
    expect(nodes.filter((n) => n.nodeId !== 'node-2').every((n) => n.faults === 0)).toBe(true);
    const audit = (await t.cli('audit', 'list', '--limit', '1000')).json.records as { action: string; subject: string }[];
    const blamed = audit.filter((r) => r.action === 'node.blamed');
    expect(blamed.length).toBeGreaterThanOrEqual(retried);
    expect(blamed.every((r) => r.subject === 'node-2')).toBe(true);
  });
});
