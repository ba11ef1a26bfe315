/**
 * Nothing secret lands on disk in the clear, and a tampered audit row is pinpointed.
 * After a real cluster has created keys and signed, the test unseals every node's store with its
 * passphrase (as a disaster-recovery operator could; under CUSTODY_TEST_SEALER=vault with the node's
 * own AppRole at the Vault emulator), collects every share, identity key and unused nonce, proves
 * they are the real ones, and scans every data folder, the database, the logs and the span files for them.
 */
import { access, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js';
import { layout } from '../../cli/layout.js';
import { encodeReceiverSetup, encodeSenderSetup } from '../../crypto/ecdsa/mul.js';
import { groupFor } from '../../crypto/group/index.js';
import { lagrangeAtZero } from '../../crypto/shamir.js';
import { openDb } from '../../coordinator/store/db.js';
import { loadOrCreateIdentity } from '../../nodes/identity.js';
import { KeyShares } from '../../nodes/keyshares.js';
import { LocalSealer } from '../../nodes/store/local-sealer.js';
import { NonceStore } from '../../nodes/store/nonce-store.js';
import { SealedFileStore } from '../../nodes/store/sealed-file-store.js';
import type { Sealer } from '../../nodes/store/sealer.js';
import { censusWrappedKeys, VaultSealer } from '../../nodes/store/vault-sealer.js';
import { scanForSecrets } from '../support/secret-scan.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

describe('secrets at rest and audit integrity', () => {
  let t: TestCluster;
  const keysetIds: string[] = [];

  beforeAll(async () => {
    // Span files on too, so the scan covers every log and every span the processes wrote.
    t = await startTestCluster({ nodes: 3, threshold: 2, traceFiles: true });
    for (const scheme of ['ed25519', 'secp256k1', 'bip340', 'ecdsa']) {
      const { json, code, stderr } = await t.cli('keyset', 'create', '--scheme', scheme);
      expect(code, stderr).toBe(0);
      keysetIds.push(json.keysetId as string);
      for (let i = 0; i < 3; i++) {
        const s = await t.cli('sign', '--keyset', json.keysetId as string, '--digest', bytesToHex(randomBytes(32)));
        expect(s.code, s.stderr).toBe(0);
      }
    }
  }, 240_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('finds no share, identity key or nonce in the clear in any data folder or the database', async () => {
    await t.cluster.stop();
    const L = layout(t.dir);
    const secrets: Uint8Array[] = [];
    const sharesByKeyset = new Map<string, { index: number; share: bigint }[]>();
    let ecdsaSecrets = 0;
    for (const nodeId of ['node-1', 'node-2', 'node-3']) {
      let sealer: Sealer;
      if (t.vault) {
        // Every record's data key is wrapped by the node's Transit key, and no local keystore exists.
        const census = await censusWrappedKeys(join(L.nodeData(nodeId), 'sealed'));
        expect(census).toMatchObject({ foreign: 0, unreadable: 0, oldestVersion: 1 });
        expect(census.records).toBeGreaterThan(3);
        await expect(access(join(L.nodeData(nodeId), 'keystore'))).rejects.toThrow(/ENOENT/);
        const creds = (f: string) => join(t.vault!.credentialsDir, `${nodeId}.${f}`);
        sealer = await VaultSealer.openWithFiles({ address: t.vault.address, roleIdFile: creds('role-id'), secretIdFile: creds('secret-id'), transitKey: `custody-${nodeId}` });
      } else {
        const passphrase = (await readFile(L.passphrase(nodeId), 'utf8')).trim();
        sealer = await LocalSealer.open(join(L.nodeData(nodeId), 'keystore'), passphrase);
      }
      const store = new SealedFileStore(join(L.nodeData(nodeId), 'sealed'), sealer);
      const identity = await loadOrCreateIdentity(store);
      secrets.push(identity.encryptionSecret, identity.signingSecret);
      const shares = new KeyShares(store);
      await shares.load();
      for (const id of keysetIds) {
        const k = shares.get(id)!;
        const g = groupFor(k.scheme === 'ed25519' ? 'ed25519' : 'secp256k1');
        secrets.push(g.scalarToBytes(k.secretShare));
        sharesByKeyset.set(id, [...(sharesByKeyset.get(id) ?? []), { index: k.index, share: k.secretShare }]);
        if (k.ecdsa) {
          // DKLs23 material sealed with the share: zero-sharing seeds and the pairwise OT setups.
          secrets.push(g.scalarToBytes(k.ecdsa.secretShare), ...k.ecdsa.zeroSeeds.values());
          for (const setup of k.ecdsa.senderSetups.values()) secrets.push(encodeSenderSetup(setup));
          for (const setup of k.ecdsa.receiverSetups.values()) secrets.push(encodeReceiverSetup(setup));
          ecdsaSecrets++;
        }
      }
      const nonces = await NonceStore.open(store, join(L.nodeData(nodeId), 'nonces'));
      for (const pool of ['ed25519', 'secp256k1', ...keysetIds.map((id) => `presig-${id}`)]) {
        for (const id of nonces.ids(pool, 20)) {
          const r = await nonces.take(pool, id);
          if (r.status === 'ok') secrets.push(...(pool.startsWith('presig-') ? [r.secret] : [r.secret.slice(0, 32), r.secret.slice(32, 64)]));
        }
      }
      await nonces.close();
      await sealer.close?.();
    }
    // The collected shares are the real ones: any two interpolate to each keyset's public key.
    const db = await openDb({ dataDir: join(L.coordinatorData, 'db') });
    try {
      for (const id of keysetIds) {
        const rows = await db.query<{ scheme: string; public_key: Uint8Array }>('SELECT scheme, public_key FROM keysets WHERE keyset_id = $1', [id]);
        const g = groupFor(rows[0]!.scheme === 'ed25519' ? 'ed25519' : 'secp256k1');
        const two = sharesByKeyset.get(id)!.slice(0, 2);
        const secret = two.reduce((acc, s) => g.Fn.add(acc, g.Fn.mul(s.share, lagrangeAtZero(g.Fn, s.index, two.map((x) => x.index)))), 0n);
        expect(bytesToHex(g.encode(g.baseMul(secret)))).toBe(bytesToHex(rows[0]!.public_key));
      }
    } finally {
      await db.close();
    }
    expect(secrets.length).toBeGreaterThan(3 * 2 + 12 + 10);
    expect(ecdsaSecrets).toBe(3);
    expect((await readdir(L.logs)).filter((f) => f.endsWith('.spans.jsonl'))).toHaveLength(4);

    const folders = [join(t.dir, 'nodes'), L.coordinatorData, L.logs, L.roster, L.endpoint];
    expect(await scanForSecrets(folders, secrets)).toEqual([]);

    // The scan can fail: a share written out in hex is found.
    await writeFile(join(L.logs, 'leak.log'), `oops ${bytesToHex(secrets[2]!)}\n`);
    const found = await scanForSecrets(folders, secrets);
    expect(found.map((f) => f.secretIndex)).toEqual([2]);
  });

  it('points `custody audit verify` at a tampered audit row', async () => {
    const L = layout(t.dir);
    const db = await openDb({ dataDir: join(L.coordinatorData, 'db') });
    try {
      await db.query(`UPDATE audit_log SET details = '{"tampered":true}'::jsonb WHERE seq = 4`);
    } finally {
      await db.close();
    }
    await t.restart();
    const { json, code } = await t.cli('audit', 'verify');
    expect(code).toBe(1);
    expect(json.ok).toBe(false);
    expect(json.firstBadSeq).toBe(4);
  });
});
