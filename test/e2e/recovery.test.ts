/**
 * Disaster recovery across real processes: refused until the operators pin a recovery key and
 * enable export on enough nodes; then t nodes seal their shares to that key, and the offline
 * ceremony rebuilds a key that matches the keyset, whose xprv derives the cluster's wallet keys
 * and signs like the cluster does. The key is never printed; the bundle holds no share in the clear.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { HDKey } from '@scure/bip32';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

describe('disaster recovery export and offline reconstruction', () => {
  let t: TestCluster;
  let keysetId: string;
  let publicKey: string;
  beforeAll(async () => {
    // node-3's operator has not enabled recovery export; node-1 and node-2's have.
    t = await startTestCluster({
      nodes: 3,
      threshold: 2,
      env: { 'node-1': { CUSTODY_ALLOW_RECOVERY_EXPORT: '1' }, 'node-2': { CUSTODY_ALLOW_RECOVERY_EXPORT: '1' } },
    });
    const ks = await t.cli('keyset', 'create', '--scheme', 'ecdsa');
    expect(ks.code, ks.stderr).toBe(0);
    keysetId = ks.json.keysetId as string;
    publicKey = ks.json.publicKey as string;
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  const file = (name: string) => join(t.dir, name);

  it('is refused while the nodes have no recovery key, and for non-admins', async () => {
    const noKey = await t.cli('keyset', 'export-recovery', keysetId, '--out', file('b0.json'));
    expect(noKey.json.error).toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect((noKey.json.error as { message: string }).message).toMatch(/no recovery key/);
    const denied = await t.cli('keyset', 'export-recovery', keysetId, '--out', file('b1.json'), '--as', 'operator');
    expect(denied.json.error).toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('exports from the nodes whose operators enabled it and rebuilds a key that matches the keyset', async () => {
    const kg = await t.cli('recovery', 'keygen', '--out', file('recovery.key'), '--install');
    expect(kg.code, kg.stderr).toBe(0);
    const exported = await t.cli('keyset', 'export-recovery', keysetId, '--out', file('bundle.json'));
    expect(exported.code, `${exported.stderr} ${JSON.stringify(exported.json)}`).toBe(0);
    expect(exported.json.shares).toEqual(['node-1', 'node-2']);
    expect((exported.json.refused as string[]).join()).toMatch(/node-3: .*recovery export is disabled/);

    const rebuilt = await t.cli('recovery', 'reconstruct', '--bundle', file('bundle.json'), '--key', file('recovery.key'), '--out', file('recovered.json'));
    expect(rebuilt.code, `${rebuilt.stderr} ${JSON.stringify(rebuilt.json)}`).toBe(0);
    expect(rebuilt.json).toMatchObject({ keysetId, verified: true, sharesUsed: [1, 2] });
    expect(JSON.stringify(rebuilt.json)).not.toMatch(/privateKey|xprv/);
    const recovered = JSON.parse(await readFile(file('recovered.json'), 'utf8')) as { privateKey: string; xprv: string };
    const sk = hexToBytes(recovered.privateKey);
    expect(bytesToHex(secp256k1.getPublicKey(sk, true))).toBe(publicKey);
    // The bundle carries sealed boxes only: the key, as hex, is nowhere in it.
    expect(await readFile(file('bundle.json'), 'utf8')).not.toContain(recovered.privateKey);

    // The xprv derives the cluster's wallets, and signs what the cluster signs.
    const wallets = await t.cli('wallet', 'create', '--keyset', keysetId, '--count', '2');
    const w = (wallets.json.wallets as { index: number; publicKey: string }[])[1]!;
    const child = HDKey.fromExtendedKey(recovered.xprv).deriveChild(0).deriveChild(w.index);
    expect(bytesToHex(child.publicKey!)).toBe(w.publicKey);
    const digest = randomBytes(32);
    const sig = secp256k1.sign(digest, child.privateKey!, { prehash: false });
    expect(secp256k1.verify(sig, digest, hexToBytes(w.publicKey), { prehash: false })).toBe(true);

    const audit = await t.cli('audit', 'list', '--limit', '1000');
    const record = (audit.json.records as { action: string; subject: string; details: { exported: string[] } }[]).find((r) => r.action === 'keyset.recovery_exported');
    expect(record).toMatchObject({ subject: keysetId, details: { exported: ['node-1', 'node-2'] } });
  }, 60_000);

  it('a wrong recovery key opens nothing; an existing output file is never overwritten', async () => {
    await t.cli('recovery', 'keygen', '--out', file('other.key'));
    const wrong = await t.cli('recovery', 'reconstruct', '--bundle', file('bundle.json'), '--key', file('other.key'), '--out', file('x.json'));
    expect(wrong.json.error).toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect((wrong.json.error as { message: string }).message).toMatch(/does not open/);
    const again = await t.cli('recovery', 'reconstruct', '--bundle', file('bundle.json'), '--key', file('recovery.key'), '--out', file('recovered.json'));
    expect(again.json.error).toMatchObject({ code: 'ALREADY_EXISTS' });
  });
});
