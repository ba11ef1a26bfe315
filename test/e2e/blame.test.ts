/**
 * Misbehaving nodes (test-only fault injection): one that returns bad signature shares is named,
 * recorded, bypassed on the retry, and then left out of later quorums; one that reports a wrong
 * group commitment costs only the coordinator's slow path; one whose nonce commitments are not
 * valid points is blamed, not the peers that refuse them. Every signature is still valid.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

/** A 2-of-3 cluster whose `node` runs with `fault`, for the tests of one describe block. */
function clusterWithFault(node: string, fault: string): () => TestCluster {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2, env: { [node]: { CUSTODY_FAULT_INJECTION: fault } } });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });
  return () => t;
}

/** Signs `count` digests with a new keyset through the CLI; every signature must verify. */
async function signMany(t: TestCluster, scheme: 'ed25519' | 'bip340', count: number): Promise<{ attempts: number[]; signers: string[][] }> {
  const ks = await t.cli('keyset', 'create', '--scheme', scheme);
  expect(ks.code, ks.stderr).toBe(0);
  const pub = hexToBytes(ks.json.publicKey as string);
  const attempts: number[] = [];
  const signers: string[][] = [];
  for (let i = 0; i < count; i++) {
    const digest = randomBytes(32);
    const { json, code, stderr } = await t.cli('sign', '--keyset', ks.json.keysetId as string, '--digest', bytesToHex(digest));
    expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
    const sig = hexToBytes(json.signature as string);
    expect(scheme === 'ed25519' ? ed25519.verify(sig, digest, pub) : schnorr.verify(sig, digest, pub)).toBe(true);
    attempts.push(json.attempts as number);
    signers.push(json.signers as string[]);
  }
  return { attempts, signers };
}

async function blameRecords(t: TestCluster): Promise<{ subject: string; details: { reason: string } }[]> {
  const audit = (await t.cli('audit', 'list', '--limit', '1000')).json.records as { action: string; subject: string; details: { reason: string } }[];
  return audit.filter((r) => r.action === 'node.blamed');
}

describe('identifiable abort', () => {
  const cluster = clusterWithFault('node-2', 'bad-share');

  it('names the cheating node, records it, and retries with another quorum', async () => {
    const t = cluster();
    // Quorums rotate from {node-1, node-2}, so the first request meets the cheater; after that it is quarantined.
    const { attempts, signers } = await signMany(t, 'ed25519', 4);
    expect(attempts).toEqual([2, 1, 1, 1]);
    for (const s of signers) expect(s).not.toContain('node-2');
    const nodes = (await t.cli('nodes')).json.nodes as { nodeId: string; faults: number }[];
    expect(Object.fromEntries(nodes.map((n) => [n.nodeId, n.faults]))).toEqual({ 'node-1': 0, 'node-2': 1, 'node-3': 0 });
    const blamed = await blameRecords(t);
    expect(blamed.map((r) => r.subject)).toEqual(['node-2']);
    expect(blamed[0]!.details.reason).toMatch(/participants 2 failed verification/);
  });

  it('keeps the quarantined node out of quorums for other keysets too', async () => {
    const { attempts, signers } = await signMany(cluster(), 'bip340', 3);
    expect(attempts).toEqual([1, 1, 1]);
    for (const s of signers) expect(s).not.toContain('node-2');
  });
});

describe('a node that reports a wrong group commitment with a right share', () => {
  const cluster = clusterWithFault('node-3', 'bad-r');

  it('costs the coordinator the slow path only: signatures verify, with node-3 in them, and nobody is blamed', async () => {
    const t = cluster();
    for (const scheme of ['ed25519', 'bip340'] as const) {
      // Quorums rotate over {1,2}, {1,3}, {2,3}: three requests meet node-3 twice.
      const { attempts, signers } = await signMany(t, scheme, 3);
      expect(attempts).toEqual([1, 1, 1]);
      expect(signers.flat()).toContain('node-3');
    }
    const nodes = (await t.cli('nodes')).json.nodes as { nodeId: string; faults: number }[];
    expect(nodes.every((n) => n.faults === 0)).toBe(true);
  });
});

describe('a node that hands out nonce commitments that are not valid points', () => {
  const cluster = clusterWithFault('node-2', 'bad-commitment');

  it('is the one blamed when its peers refuse them (not the peers), and signing goes on without it', async () => {
    const t = cluster();
    const { attempts, signers } = await signMany(t, 'ed25519', 3);
    // The first request's quorum {node-1, node-2} meets the bad commitment; then node-2 is quarantined.
    expect(attempts).toEqual([2, 1, 1]);
    for (const s of signers) expect(s).not.toContain('node-2');
    const blamed = await blameRecords(t);
    expect(blamed.map((r) => r.subject)).toEqual(['node-2']);
    expect(blamed[0]!.details.reason).toMatch(/invalid nonce commitments from node-2/);
  });
});
