/**
 * Repair across real processes: node-3 loses its whole data folder (keys, nonces, identity); after
 * a restart with its new identity in the roster, `custody node repair node-3` rebuilds its shares
 * from the other members, none of which reveals its own, and node-3 signs again (FROST and ECDSA).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

describe('repair of a node that lost its data folder', () => {
  let t: TestCluster;
  const keysets: Record<string, { id: string; publicKey: string }> = {};
  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2 });
    for (const scheme of ['ed25519', 'ecdsa']) {
      const r = await t.cli('keyset', 'create', '--scheme', scheme);
      expect(r.code, r.stderr).toBe(0);
      keysets[scheme] = { id: r.json.keysetId as string, publicKey: r.json.publicKey as string };
    }
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  const signUntil = async (scheme: string, node: string) => {
    const { id, publicKey } = keysets[scheme]!;
    for (let i = 0; i < 8; i++) {
      const digest = randomBytes(32);
      const r = await t.cli('sign', '--keyset', id, '--digest', bytesToHex(digest));
      expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
      const sig = hexToBytes(r.json.signature as string);
      if (scheme === 'ed25519') expect(ed25519.verify(sig, digest, hexToBytes(publicKey))).toBe(true);
      else expect(secp256k1.verify(sig.subarray(0, 64), digest, hexToBytes(publicKey), { prehash: false, lowS: true })).toBe(true);
      if ((r.json.signers as string[]).includes(node)) return true;
    }
    return false;
  };

  it('a node that still holds its shares has nothing to repair', async () => {
    const r = await t.cli('node', 'repair', 'node-3');
    expect(r.json.error).toMatchObject({ code: 'ALREADY_EXISTS' });
  });

  it('rebuilds the wiped node\'s shares; it signs again with both keysets', async () => {
    await t.cluster.stopProcess(t.cluster.nodes.get('node-3')!, 'SIGTERM');
    await rm(join(t.dir, 'nodes', 'node-3'), { recursive: true, force: true });
    // A restart writes the roster again, with node-3's new identity keys.
    await t.restart();
    expect(await signUntil('ed25519', 'node-3')).toBe(false);

    const r = await t.cli('node', 'repair', 'node-3');
    expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
    expect([...(r.json.keysetIds as string[])].sort()).toEqual([keysets.ed25519!.id, keysets.ecdsa!.id].sort());
    expect(await signUntil('ed25519', 'node-3')).toBe(true);
    expect(await signUntil('ecdsa', 'node-3')).toBe(true);
    const audit = (await t.cli('audit', 'list', '--limit', '1000')).json.records as { action: string; subject: string }[];
    expect(audit.some((x) => x.action === 'node.repaired' && x.subject === 'node-3')).toBe(true);
  }, 180_000);
});
