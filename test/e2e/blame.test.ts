/**
 * A node that returns bad signature shares is named, recorded, bypassed on the retry, and then
 * left out of later quorums; every signature is still valid.
 */
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

  const signMany = async (scheme: 'ed25519' | 'bip340', count: number) => {
    const ks = await t.cli('keyset', 'create', '--scheme', scheme);
    expect(ks.code, ks.stderr).toBe(0);
    const pub = hexToBytes(ks.json.publicKey as string);
    const attempts: number[] = [];
    for (let i = 0; i < count; i++) {
      const digest = randomBytes(32);
      const { json, code, stderr } = await t.cli('sign', '--keyset', ks.json.keysetId as string, '--digest', bytesToHex(digest));
      expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
      const sig = hexToBytes(json.signature as string);
      expect(scheme === 'ed25519' ? ed25519.verify(sig, digest, pub) : schnorr.verify(sig, digest, pub)).toBe(true);
      expect(json.signers).not.toContain('node-2');
      attempts.push(json.attempts as number);
    }
    return attempts;
  };

  it('names the cheating node, records it, and retries with another quorum', async () => {
    // Quorums rotate from {node-1, node-2}, so the first request meets the cheater; after that it is quarantined.
    expect(await signMany('ed25519', 4)).toEqual([2, 1, 1, 1]);
    const nodes = (await t.cli('nodes')).json.nodes as { nodeId: string; faults: number }[];
    expect(Object.fromEntries(nodes.map((n) => [n.nodeId, n.faults]))).toEqual({ 'node-1': 0, 'node-2': 1, 'node-3': 0 });
    const audit = (await t.cli('audit', 'list', '--limit', '1000')).json.records as { action: string; subject: string; details: { reason: string } }[];
    const blamed = audit.filter((r) => r.action === 'node.blamed');
    expect(blamed.map((r) => r.subject)).toEqual(['node-2']);
    expect(blamed[0]!.details.reason).toMatch(/participants 2 failed verification/);
  });

  it('keeps the quarantined node out of quorums for other keysets too', async () => {
    expect(await signMany('bip340', 3)).toEqual([1, 1, 1]);
  });
});

describe('a node that reports a wrong group commitment with a right share', () => {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2, env: { 'node-3': { CUSTODY_FAULT_INJECTION: 'bad-r' } } });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('costs the coordinator the slow path only: signatures verify, with node-3 in them, and nobody is blamed', async () => {
    for (const scheme of ['ed25519', 'bip340'] as const) {
      const ks = await t.cli('keyset', 'create', '--scheme', scheme);
      expect(ks.code, ks.stderr).toBe(0);
      const pub = hexToBytes(ks.json.publicKey as string);
      const signers = new Set<string>();
      // Quorums rotate over {1,2}, {1,3}, {2,3}: three requests meet node-3 twice.
      for (let i = 0; i < 3; i++) {
        const digest = randomBytes(32);
        const { json, code, stderr } = await t.cli('sign', '--keyset', ks.json.keysetId as string, '--digest', bytesToHex(digest));
        expect(code, stderr).toBe(0);
        const sig = hexToBytes(json.signature as string);
        expect(scheme === 'ed25519' ? ed25519.verify(sig, digest, pub) : schnorr.verify(sig, digest, pub)).toBe(true);
        expect(json.attempts).toBe(1);
        for (const s of json.signers as string[]) signers.add(s);
      }
      expect(signers.has('node-3')).toBe(true);
    }
    const nodes = (await t.cli('nodes')).json.nodes as { nodeId: string; faults: number }[];
    expect(nodes.every((n) => n.faults === 0)).toBe(true);
  });
});

describe('a node that hands out nonce commitments that are not valid points', () => {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2, env: { 'node-2': { CUSTODY_FAULT_INJECTION: 'bad-commitment' } } });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('is the one blamed when its peers refuse them (not the peers), and signing goes on without it', async () => {
    const ks = await t.cli('keyset', 'create', '--scheme', 'ed25519');
    expect(ks.code, ks.stderr).toBe(0);
    const pub = hexToBytes(ks.json.publicKey as string);
    const attempts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const digest = randomBytes(32);
      const { json, code, stderr } = await t.cli('sign', '--keyset', ks.json.keysetId as string, '--digest', bytesToHex(digest));
      expect(code, stderr).toBe(0);
      expect(ed25519.verify(hexToBytes(json.signature as string), digest, pub)).toBe(true);
      expect(json.signers).not.toContain('node-2');
      attempts.push(json.attempts as number);
    }
    // The first request's quorum {node-1, node-2} meets the bad commitment; then node-2 is quarantined.
    expect(attempts).toEqual([2, 1, 1]);
    const audit = (await t.cli('audit', 'list', '--limit', '1000')).json.records as { action: string; subject: string; details: { reason: string } }[];
    const blamed = audit.filter((r) => r.action === 'node.blamed');
    expect(blamed.map((r) => r.subject)).toEqual(['node-2']);
    expect(blamed[0]!.details.reason).toMatch(/invalid nonce commitments from node-2/);
  });
});
