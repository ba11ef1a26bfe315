/**
 * Proactive refresh across real processes: the public key never changes, every verifying share
 * does, signing works before and after (FROST and ECDSA, root and wallet keys), the share epoch
 * moves on, and the old sealed share is gone from the node's disk. A node killed between the
 * phases sits out while the others sign on the new epoch, and catches up when it is back.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';
import { scanForSecrets } from '../support/secret-scan.js';

type Member = { nodeId: string; verifyingShare: string };

describe('proactive share refresh', () => {
  let t: TestCluster;
  beforeAll(async () => {
    // A pause between prepare and commit lets a test take a node down in between.
    t = await startTestCluster({ nodes: 3, threshold: 2, env: { coordinator: { CUSTODY_TEST_REFRESH_HOLD_MS: '1500' } } });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  /** The sealed active record of a keyset on a node (its bytes, to look for after the refresh). */
  const sealedRecord = async (nodeId: string, keysetId: string): Promise<Uint8Array> => {
    const dir = join(t.dir, 'nodes', nodeId, 'sealed');
    const files = (await readdir(dir, { recursive: true })).map(String).filter((f) => f.includes(keysetId) && f.startsWith('keysets'));
    expect(files).toHaveLength(1);
    return new Uint8Array(await readFile(join(dir, files[0]!)));
  };

  const sign = async (args: string[]) => {
    const digest = randomBytes(32);
    const r = await t.cli('sign', ...args, '--digest', bytesToHex(digest));
    expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
    return { digest, sig: hexToBytes(r.json.signature as string), pub: hexToBytes(r.json.publicKey as string) };
  };

  it.each(['ed25519', 'ecdsa'])('refreshes a %s keyset: same key, new shares, signing works, old share gone', async (scheme) => {
    const created = await t.cli('keyset', 'create', '--scheme', scheme);
    expect(created.code, created.stderr).toBe(0);
    const id = created.json.keysetId as string;
    const wallets = await t.cli('wallet', 'create', '--keyset', id, '--count', '1');
    const walletId = (wallets.json.wallets as { walletId: string }[])[0]!.walletId;
    await sign(['--keyset', id]);
    const before = await sealedRecord('node-1', id);

    const refreshed = await t.cli('keyset', 'refresh', id);
    expect(refreshed.code, `${refreshed.stderr} ${JSON.stringify(refreshed.json)}`).toBe(0);
    expect(refreshed.json).toMatchObject({ keysetId: id, publicKey: created.json.publicKey, epoch: 1 });
    const oldShares = (created.json.members as Member[]).map((m) => m.verifyingShare);
    const newShares = (refreshed.json.members as Member[]).map((m) => m.verifyingShare);
    newShares.forEach((v, i) => expect(v).not.toBe(oldShares[i]));

    for (const args of [['--keyset', id], ['--wallet', walletId]]) {
      const s = await sign(args);
      if (scheme === 'ed25519') expect(ed25519.verify(s.sig, s.digest, s.pub)).toBe(true);
      else expect(secp256k1.verify(s.sig.subarray(0, 64), s.digest, s.pub, { prehash: false, lowS: true })).toBe(true);
    }
    // The old sealed record (and so the old share) is nowhere on the node's disk any more.
    expect(bytesToHex(await sealedRecord('node-1', id))).not.toBe(bytesToHex(before));
    expect(await scanForSecrets([join(t.dir, 'nodes', 'node-1')], [before.subarray(before.length - 48)])).toEqual([]);
    const pending = await readdir(join(t.dir, 'nodes', 'node-1', 'sealed', 'pending')).catch(() => []);
    expect(pending).toEqual([]);

    const audit = (await t.cli('audit', 'list', '--limit', '5000')).json.records as { action: string; subject: string }[];
    expect(audit.filter((r) => r.subject === id).map((r) => r.action)).toEqual(expect.arrayContaining(['keyset.refresh_prepared', 'keyset.refreshed']));
  }, 120_000);

  it('a second refresh moves to epoch 2, and a restart keeps it', async () => {
    const created = await t.cli('keyset', 'create', '--scheme', 'secp256k1');
    const id = created.json.keysetId as string;
    await t.cli('keyset', 'refresh', id);
    const second = await t.cli('keyset', 'refresh', id);
    expect(second.json.epoch).toBe(2);
    await t.restart();
    await sign(['--keyset', id]);
    expect((await t.cli('keyset', 'show', id)).json.epoch).toBe(2);
  }, 120_000);

  it('a node killed between prepare and commit sits out, then catches up: one epoch throughout', async () => {
    const created = await t.cli('keyset', 'create', '--scheme', 'ed25519');
    const id = created.json.keysetId as string;
    const refreshing = t.cli('keyset', 'refresh', id);
    await vi.waitFor(
      async () => {
        const audit = (await t.cli('audit', 'list', '--limit', '5000')).json.records as { action: string; subject: string }[];
        expect(audit.some((r) => r.action === 'keyset.refresh_prepared' && r.subject === id)).toBe(true);
      },
      { timeout: 20_000, interval: 100 },
    );
    await t.cluster.stopProcess(t.cluster.nodes.get('node-3')!, 'SIGKILL');
    const r = await refreshing;
    expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
    expect(r.json).toMatchObject({ epoch: 1, pendingNodes: ['node-3'], publicKey: created.json.publicKey });
    // node-1 and node-2 are on the new epoch and sign.
    const s = await sign(['--keyset', id]);
    expect(ed25519.verify(s.sig, s.digest, s.pub)).toBe(true);
    // node-3 comes back with its pending share sealed on disk; the coordinator commits it.
    await t.cluster.startNode('node-3');
    await vi.waitFor(
      async () => {
        const audit = (await t.cli('audit', 'list', '--limit', '5000')).json.records as { action: string; subject: string }[];
        expect(audit.some((x) => x.action === 'keyset.refresh_completed' && x.subject === id)).toBe(true);
      },
      { timeout: 30_000, interval: 500 },
    );
    const signers = new Set<string>();
    for (let i = 0; i < 6 && !signers.has('node-3'); i++) {
      const digest = randomBytes(32);
      const x = await t.cli('sign', '--keyset', id, '--digest', bytesToHex(digest));
      expect(x.code, x.stderr).toBe(0);
      expect(ed25519.verify(hexToBytes(x.json.signature as string), digest, hexToBytes(created.json.publicKey as string))).toBe(true);
      for (const n of x.json.signers as string[]) signers.add(n);
    }
    expect(signers.has('node-3')).toBe(true);
  }, 120_000);
});
