/**
 * Key import and the ecdsa setup re-run end to end across real processes. The published BIP-39
 * test mnemonic is imported at m/44'/60'/0' through the CLI ceremony: the cluster's wallets m/0/i
 * must have the addresses @scure/bip32 derives at m/44'/60'/0'/0/i (the first is the well-known
 * 0x9858EfFD232B4033E47d90003D41EC34EcaEda94), they must sign for those addresses, and no file under
 * the cluster folder may hold the mnemonic, the seed or the account key afterwards.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync } from '@scure/bip39';
import { computeAddress, recoverAddress, Signature } from 'ethers';
import { startTestCluster, type TestCluster } from '../support/cluster.js';
import { scanForSecrets } from '../support/secret-scan.js';

const MNEMONIC = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
const ACCOUNT = "m/44'/60'/0'";

type WalletJson = { walletId: string; index: number; publicKey: string; addresses: { ethereum: string } };

describe('key import and setup re-run', () => {
  let t: TestCluster;
  const secretsDir = () => join(t.dir, '..', `${t.dir.split('/').pop()}-ceremony`);

  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2 });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  it("imports the BIP-39 test mnemonic at m/44'/60'/0': wallet addresses equal @scure/bip32's and sign for them", async () => {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(secretsDir(), { recursive: true });
    const mnemonicFile = join(secretsDir(), 'mnemonic.txt');
    await writeFile(mnemonicFile, MNEMONIC + '\n', { mode: 0o600 });
    const imported = await t.cli('keyset', 'import', '--scheme', 'ecdsa', '--mnemonic-file', mnemonicFile, '--path', ACCOUNT, '--label', 'legacy');
    expect(imported.code, `${imported.stderr} ${JSON.stringify(imported.json)}`).toBe(0);
    const seed = mnemonicToSeedSync(MNEMONIC);
    const account = HDKey.fromMasterSeed(seed).derive(ACCOUNT);
    expect(imported.json).toMatchObject({ scheme: 'ecdsa', publicKey: bytesToHex(account.publicKey!), chainCode: bytesToHex(account.chainCode!), source: `bip39 mnemonic at ${ACCOUNT}` });
    const keysetId = imported.json.keysetId as string;

    const created = await t.cli('wallet', 'create', '--keyset', keysetId, '--count', '3');
    expect(created.code, created.stderr).toBe(0);
    const wallets = created.json.wallets as WalletJson[];
    for (const w of wallets) {
      const expected = HDKey.fromMasterSeed(seed).derive(`${ACCOUNT}/0/${w.index}`);
      expect(w.publicKey).toBe(bytesToHex(expected.publicKey!));
      expect(w.addresses.ethereum).toBe(computeAddress('0x' + bytesToHex(expected.publicKey!)));
    }
    expect(wallets[0]!.addresses.ethereum).toBe('0x9858EfFD232B4033E47d90003D41EC34EcaEda94');

    const digest = randomBytes(32);
    const signed = await t.cli('sign', '--wallet', wallets[0]!.walletId, '--digest', bytesToHex(digest));
    expect(signed.code, signed.stderr).toBe(0);
    const sig = hexToBytes(signed.json.signature as string);
    const recovered = recoverAddress(digest, Signature.from({ r: '0x' + bytesToHex(sig.subarray(0, 32)), s: '0x' + bytesToHex(sig.subarray(32, 64)), v: 27 + sig[64]! }));
    expect(recovered).toBe('0x9858EfFD232B4033E47d90003D41EC34EcaEda94');

    // Nothing under the cluster folder (node keystores, database, logs) holds the whole key in any form.
    const hits = await scanForSecrets([t.dir], [utf8ToBytes(MNEMONIC), seed, account.privateKey!, HDKey.fromMasterSeed(seed).privateKey!]);
    expect(hits).toEqual([]);
    const audit = await t.cli('audit', 'list', '--limit', '1000');
    const record = (audit.json.records as { action: string; subject: string; details: Record<string, unknown> }[]).find((r) => r.subject === keysetId);
    expect(record).toMatchObject({ action: 'keyset.imported', details: { source: `bip39 mnemonic at ${ACCOUNT}` } });
  }, 120_000);

  it('imports a raw Ed25519 private key (RFC 8032 seed): signatures verify under the key RFC 8032 derives from it', async () => {
    const seed = randomBytes(32);
    const file = join(secretsDir(), 'ed25519.key');
    await writeFile(file, bytesToHex(seed), { mode: 0o600 });
    const imported = await t.cli('keyset', 'import', '--scheme', 'ed25519', '--private-key-file', file);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.json.publicKey).toBe(bytesToHex(ed25519.getPublicKey(seed)));
    const msg = randomBytes(32);
    const signed = await t.cli('sign', '--keyset', imported.json.keysetId as string, '--digest', bytesToHex(msg));
    expect(signed.code, signed.stderr).toBe(0);
    expect(ed25519.verify(hexToBytes(signed.json.signature as string), msg, ed25519.getPublicKey(seed))).toBe(true);
    expect(await scanForSecrets([t.dir], [seed])).toEqual([]);
  }, 60_000);

  it('refuses a bad mnemonic and imports by a non-admin', async () => {
    const bad = join(secretsDir(), 'bad.txt');
    await writeFile(bad, 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon', { mode: 0o600 });
    const r = await t.cli('keyset', 'import', '--scheme', 'ecdsa', '--mnemonic-file', bad);
    expect(r.json.error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(JSON.stringify(r.json)).not.toContain('abandon');
    const file = join(secretsDir(), 'k.key');
    await writeFile(file, bytesToHex(secp256k1.utils.randomSecretKey()), { mode: 0o600 });
    const denied = await t.cli('keyset', 'import', '--scheme', 'secp256k1', '--private-key-file', file, '--as', 'operator');
    expect(denied.json.error).toMatchObject({ code: 'PERMISSION_DENIED' });
  });

  it('re-runs the pairwise setup of an ecdsa keyset: same key, signing works, audit record written', async () => {
    const created = await t.cli('keyset', 'create', '--scheme', 'ecdsa');
    expect(created.code, created.stderr).toBe(0);
    const keysetId = created.json.keysetId as string;
    const rerun = await t.cli('keyset', 'rerun-setup', keysetId);
    expect(rerun.code, `${rerun.stderr} ${JSON.stringify(rerun.json)}`).toBe(0);
    expect(rerun.json).toMatchObject({ keysetId, clearedBans: [] });
    const shown = await t.cli('keyset', 'show', keysetId);
    expect(shown.json.publicKey).toBe(created.json.publicKey);
    for (let i = 0; i < 3; i++) {
      const digest = randomBytes(32);
      const signed = await t.cli('sign', '--keyset', keysetId, '--digest', bytesToHex(digest));
      expect(signed.code, signed.stderr).toBe(0);
      expect(secp256k1.verify(hexToBytes(signed.json.signature as string).subarray(0, 64), digest, hexToBytes(created.json.publicKey as string), { prehash: false })).toBe(true);
    }
    const notEcdsa = await t.cli('keyset', 'create', '--scheme', 'ed25519');
    const refused = await t.cli('keyset', 'rerun-setup', notEcdsa.json.keysetId as string);
    expect(refused.json.error).toMatchObject({ code: 'FAILED_PRECONDITION' });
    const audit = await t.cli('audit', 'list', '--limit', '1000');
    expect((audit.json.records as { action: string; subject: string }[]).some((r) => r.action === 'keyset.setup_rerun' && r.subject === keysetId)).toBe(true);
  }, 120_000);
});
