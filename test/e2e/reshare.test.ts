/**
 * Reshare across real processes: a 2-of-3 cluster grows by node-4, its ed25519 and ecdsa keysets
 * move to 3-of-4 and back to 2-of-3 without node-4, and every signature verifies under the same
 * public key each time. node-4 deletes its share when it leaves. A new member killed between the
 * phases sits out while the others sign on the new epoch, and is committed when it is back.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

type Scheme = 'ed25519' | 'ecdsa';

describe('reshare to another threshold and member set', () => {
  let t: TestCluster;
  const keysets = {} as Record<Scheme, { id: string; publicKey: string }>;
  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2, env: { coordinator: { CUSTODY_TEST_REFRESH_HOLD_MS: '1500' } } });
    for (const scheme of ['ed25519', 'ecdsa'] as const) {
      const r = await t.cli('keyset', 'create', '--scheme', scheme);
      expect(r.code, r.stderr).toBe(0);
      keysets[scheme] = { id: r.json.keysetId as string, publicKey: r.json.publicKey as string };
    }
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  /** Signs until `node` took part (or a few tries passed); every signature must verify under the keyset's key. */
  const signWith = async (scheme: Scheme, node?: string): Promise<Set<string>> => {
    const { id, publicKey } = keysets[scheme];
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const digest = randomBytes(32);
      const r = await t.cli('sign', '--keyset', id, '--digest', bytesToHex(digest));
      expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
      const sig = hexToBytes(r.json.signature as string);
      if (scheme === 'ed25519') expect(ed25519.verify(sig, digest, hexToBytes(publicKey))).toBe(true);
      else expect(secp256k1.verify(sig.subarray(0, 64), digest, hexToBytes(publicKey), { prehash: false, lowS: true })).toBe(true);
      for (const n of r.json.signers as string[]) seen.add(n);
      if (!node || seen.has(node)) break;
    }
    return seen;
  };

  const sealedKeysets = async (nodeId: string, keysetId: string) =>
    (await readdir(join(t.dir, 'nodes', nodeId, 'sealed'), { recursive: true }).catch(() => [])).map(String).filter((f) => f.startsWith('keysets') && f.includes(keysetId));

  it('refuses requests that cannot work, before any node is asked', async () => {
    const id = keysets.ed25519.id;
    const cases: [string[], RegExp][] = [
      [['--add-node', 'node-9'], /node-9 is not in the cluster/],
      [['--remove-node', 'node-7'], /not a member/],
      [['--add-node', 'node-1'], /already a member/],
      [['--remove-node', 'node-2,node-3'], /new threshold must be between 2 and the number of new members \(1\), got 2/],
      [['--threshold', '4'], /new threshold must be between 2 and the number of new members \(3\), got 4/],
      [[], /changes nothing/],
    ];
    for (const [args, message] of cases) {
      const r = await t.cli('keyset', 'reshare', id, ...args);
      expect(r.code).not.toBe(0);
      expect(r.json.error, JSON.stringify(r.json)).toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect(String((r.json.error as { message: string }).message)).toMatch(message);
    }
    expect((await t.cli('keyset', 'show', id)).json).toMatchObject({ epoch: 0, threshold: 2 });
  }, 60_000);

  it('2-of-3 to 3-of-4 with node-4 added: same key, node-4 signs in the quorum', async () => {
    await t.restart({ nodes: 4 });
    for (const scheme of ['ed25519', 'ecdsa'] as const) {
      const { id, publicKey } = keysets[scheme];
      const r = await t.cli('keyset', 'reshare', id, '--threshold', '3', '--add-node', 'node-4');
      expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
      expect(r.json).toMatchObject({ keysetId: id, publicKey, threshold: 3, epoch: 1, nodes: ['node-1', 'node-2', 'node-3', 'node-4'], pendingNodes: [], unretiredNodes: [] });
      const signers = await signWith(scheme, 'node-4');
      expect(signers.has('node-4')).toBe(true);
      expect((await sealedKeysets('node-4', id)).length).toBe(1);
    }
  }, 180_000);

  it('3-of-4 back to 2-of-3 with node-4 removed: same key, node-4 deleted its share', async () => {
    for (const scheme of ['ed25519', 'ecdsa'] as const) {
      const { id, publicKey } = keysets[scheme];
      const r = await t.cli('keyset', 'reshare', id, '--threshold', '2', '--remove-node', 'node-4');
      expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
      expect(r.json).toMatchObject({ keysetId: id, publicKey, threshold: 2, epoch: 2, nodes: ['node-1', 'node-2', 'node-3'], unretiredNodes: [] });
      const signers = await signWith(scheme);
      expect(signers.size).toBe(2);
      expect(signers.has('node-4')).toBe(false);
      expect(await sealedKeysets('node-4', id)).toEqual([]);
    }
    const audit = (await t.cli('audit', 'list', '--limit', '5000')).json.records as { action: string; subject: string; details: Record<string, unknown> }[];
    const own = audit.filter((r) => r.subject === keysets.ecdsa.id).map((r) => r.action);
    expect(own.filter((a) => a === 'keyset.reshared')).toHaveLength(2);
    expect(own.filter((a) => a === 'keyset.reshare_completed')).toHaveLength(2);
  }, 180_000);

  it('a new member killed between the phases sits out, then is committed: one epoch throughout', async () => {
    const { id, publicKey } = keysets.ed25519;
    const resharing = t.cli('keyset', 'reshare', id, '--threshold', '3', '--add-node', 'node-4');
    await vi.waitFor(
      async () => {
        const audit = (await t.cli('audit', 'list', '--limit', '5000')).json.records as { action: string; subject: string }[];
        expect(audit.filter((r) => r.action === 'keyset.reshare_prepared' && r.subject === id)).toHaveLength(3);
      },
      { timeout: 30_000, interval: 100 },
    );
    await t.cluster.stopProcess(t.cluster.nodes.get('node-2')!, 'SIGKILL');
    const r = await resharing;
    expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
    expect(r.json).toMatchObject({ epoch: 3, threshold: 3, pendingNodes: ['node-2'], publicKey });
    // node-1, node-3 and node-4 hold epoch 3 and sign 3-of-4 without node-2.
    expect([...(await signWith('ed25519'))].sort()).toEqual(['node-1', 'node-3', 'node-4']);
    await t.cluster.startNode('node-2');
    await vi.waitFor(
      async () => {
        const audit = (await t.cli('audit', 'list', '--limit', '5000')).json.records as { action: string; subject: string }[];
        expect(audit.filter((x) => x.action === 'keyset.reshare_completed' && x.subject === id)).toHaveLength(3);
      },
      { timeout: 30_000, interval: 500 },
    );
    expect((await signWith('ed25519', 'node-2')).has('node-2')).toBe(true);
  }, 180_000);
});
