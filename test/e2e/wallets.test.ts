/**
 * HD wallets end to end across real processes: batch creation through the CLI for every scheme,
 * keys and addresses checked against independent implementations (@scure/bip32, ethers, @scure/base,
 * noble), signing with wallet keys (signatures verify under the wallet key, never the root), batches
 * that are idempotent and resumable, paging, and nodes that refuse paths they must not sign for.
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, toBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr, secp256k1, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { ripemd160 } from '@noble/hashes/legacy.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { base58, bech32, bech32m } from '@scure/base';
import { HDKey } from '@scure/bip32';
import { computeAddress } from 'ethers';
import { layout } from '../../cli/layout.js';
import { ed25519KeyPair, ed25519Signer, SIGN_AUTHORIZATION_DOMAIN } from '../../crypto/ed25519-sig.js';
import { Scheme } from '../../proto/gen/custody/v1/common_pb.js';
import { NodeService, SignAuthorizationSchema } from '../../proto/gen/custody/v1/node_pb.js';
import { WalletService } from '../../proto/gen/custody/v1/api_pb.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

type Json = Record<string, unknown>;
type WalletJson = { walletId: string; index: number; path: string; publicKey: string; addresses: Record<string, string>; label: string; userId: string; purpose: string; batchId: string };

/** BIP-341 output key of an internal key with no script tree, computed here with noble alone. */
function taprootOutput(internal33: Uint8Array): Uint8Array {
  const P = secp256k1.Point.fromBytes(internal33);
  const even = P.toBytes(true)[0] === 2 ? P : P.negate();
  const x = even.toBytes(true).subarray(1);
  const t = BigInt('0x' + bytesToHex(schnorr.utils.taggedHash('TapTweak', x)));
  return even.add(secp256k1.Point.BASE.multiply(t)).toBytes(true).subarray(1);
}

function ed25519Verify(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  const spki = concatBytes(hexToBytes('302a300506032b6570032100'), pub);
  return nodeVerify(null, msg, createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }), sig) && ed25519.verify(sig, msg, pub);
}

describe('HD wallets end to end', () => {
  let t: TestCluster;
  const keysets = new Map<string, Json>();

  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2 });
    for (const scheme of ['ecdsa', 'bip340', 'ed25519', 'secp256k1']) {
      const r = await t.cli('keyset', 'create', '--scheme', scheme);
      expect(r.code, r.stderr).toBe(0);
      keysets.set(scheme, r.json);
    }
  }, 180_000);
  afterAll(async () => {
    await t?.stop();
  });

  const createWallets = async (scheme: string, ...extra: string[]) => {
    const r = await t.cli('wallet', 'create', '--keyset', keysets.get(scheme)!.keysetId as string, ...extra);
    expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
    return r.json as Json & { wallets: WalletJson[]; batchId: string; firstIndex: number; count: number; complete: boolean };
  };

  it('keyset show returns the root chain code', async () => {
    const k = keysets.get('ecdsa')!;
    const shown = await t.cli('keyset', 'show', k.keysetId as string);
    expect(shown.json).toMatchObject({ keysetId: k.keysetId, scheme: 'ecdsa', publicKey: k.publicKey });
    expect(shown.json.chainCode).toMatch(/^[0-9a-f]{64}$/);
  });

  it('ecdsa wallets: keys match @scure/bip32 at m/0/i, Ethereum and P2WPKH addresses match independent encoders', async () => {
    const k = keysets.get('ecdsa')!;
    const b = await createWallets('ecdsa', '--count', '5', '--label', 'deposits', '--user', 'user-7', '--purpose', 'deposit');
    expect(b.complete).toBe(true);
    expect(b.wallets.map((w) => w.path)).toEqual(['m/0/0', 'm/0/1', 'm/0/2', 'm/0/3', 'm/0/4']);
    const account = new HDKey({ publicKey: hexToBytes(k.publicKey as string), chainCode: hexToBytes(k.chainCode as string) });
    expect(account.publicExtendedKey).toBe(k.xpub);
    for (const w of b.wallets) {
      const child = account.deriveChild(0).deriveChild(w.index);
      expect(w.publicKey).toBe(bytesToHex(child.publicKey!));
      expect(w.addresses.ethereum).toBe(computeAddress('0x' + w.publicKey));
      const decoded = bech32.decode(w.addresses.bitcoinP2wpkh as `${string}1${string}`);
      expect(decoded.prefix).toBe('bc');
      expect(decoded.words[0]).toBe(0);
      expect(bytesToHex(bech32.fromWords(decoded.words.slice(1)))).toBe(bytesToHex(ripemd160(sha256(child.publicKey!))));
      expect(w).toMatchObject({ label: 'deposits', userId: 'user-7', purpose: 'deposit', batchId: b.batchId });
    }
    expect(new Set(b.wallets.map((w) => w.walletId)).size).toBe(5);
  });

  it('bip340 wallets are BIP-86 Taproot outputs; ed25519 wallets get Solana addresses', async () => {
    const k = keysets.get('bip340')!;
    const shown = (await t.cli('keyset', 'show', k.keysetId as string)).json;
    const b = await createWallets('bip340', '--count', '3');
    // The x-only key omits the parity BIP-32 needs; the xpub carries the full point.
    const account = HDKey.fromExtendedKey(shown.xpub as string);
    expect(bytesToHex(account.publicKey!.subarray(1))).toBe(shown.publicKey);
    expect(bytesToHex(account.chainCode!)).toBe(shown.chainCode);
    for (const w of b.wallets) {
      const internal = account.deriveChild(0).deriveChild(w.index).publicKey!;
      expect(w.publicKey).toBe(bytesToHex(taprootOutput(internal)));
      const d = bech32m.decode(w.addresses.bitcoinP2tr as `${string}1${string}`);
      expect(d.words[0]).toBe(1);
      expect(bytesToHex(bech32m.fromWords(d.words.slice(1)))).toBe(w.publicKey);
    }
    const e = await createWallets('ed25519', '--count', '3');
    for (const w of e.wallets) {
      expect(bytesToHex(base58.decode(w.addresses.solana!))).toBe(w.publicKey);
      expect(() => ed25519.Point.fromBytes(hexToBytes(w.publicKey))).not.toThrow();
    }
    expect(new Set(e.wallets.map((w) => w.publicKey)).size).toBe(3);
  });

  it.each(['ecdsa', 'bip340', 'ed25519', 'secp256k1'])('signs with a %s wallet key: valid under the wallet key, not the root', async (scheme) => {
    const b = await createWallets(scheme, '--count', '2');
    const w = b.wallets[1]!;
    const digest = randomBytes(32);
    const r = await t.cli('sign', '--wallet', w.walletId, '--digest', bytesToHex(digest));
    expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
    expect(r.json).toMatchObject({ status: 'signed', publicKey: w.publicKey, walletId: w.walletId, path: w.path });
    const sig = hexToBytes(r.json.signature as string);
    const pub = hexToBytes(w.publicKey);
    const root = hexToBytes(keysets.get(scheme)!.publicKey as string);
    if (scheme === 'ecdsa') {
      const compact = sig.subarray(0, 64);
      expect(secp256k1.verify(compact, digest, pub, { prehash: false, lowS: true })).toBe(true);
      expect(secp256k1.verify(compact, digest, root, { prehash: false })).toBe(false);
      const recovered = secp256k1.Signature.fromBytes(compact, 'compact').addRecoveryBit(sig[64]!).recoverPublicKey(digest);
      expect(bytesToHex(recovered.toBytes(true))).toBe(w.publicKey);
    } else if (scheme === 'bip340') {
      expect(schnorr.verify(sig, digest, pub)).toBe(true);
      expect(schnorr.verify(sig, digest, root)).toBe(false);
    } else if (scheme === 'ed25519') {
      expect(ed25519Verify(sig, digest, pub)).toBe(true);
      expect(ed25519.verify(sig, digest, root)).toBe(false);
    } else {
      expect(secp256k1_FROST.verify(sig, digest, pub)).toBe(true);
      expect(secp256k1_FROST.verify(sig, digest, root)).toBe(false);
    }
    const shown = await t.cli('request', 'show', r.json.requestId as string);
    expect(shown.json).toMatchObject({ walletId: w.walletId, path: w.path, publicKey: w.publicKey });
  }, 60_000);

  it('a repeated call with the same idempotency key returns the same batch; other content is refused', async () => {
    const key = `batch-${bytesToHex(randomBytes(6))}`;
    const a = await createWallets('secp256k1', '--count', '4', '--idempotency-key', key, '--user', 'u-1');
    const again = await createWallets('secp256k1', '--count', '4', '--idempotency-key', key, '--user', 'u-1');
    expect(again.batchId).toBe(a.batchId);
    expect(again.wallets.map((w) => w.walletId)).toEqual(a.wallets.map((w) => w.walletId));
    const other = await t.cli('wallet', 'create', '--keyset', keysets.get('secp256k1')!.keysetId as string, '--count', '5', '--idempotency-key', key);
    expect(other.code).not.toBe(0);
    expect(other.json.error).toMatchObject({ code: 'ALREADY_EXISTS' });
    // Index ranges never overlap: the next batch starts after every earlier one.
    const next = await createWallets('secp256k1', '--count', '1');
    expect(next.firstIndex).toBeGreaterThanOrEqual(a.firstIndex + 4);
  });

  it('a batch filled in steps resumes where it stopped and pages by batch and by user', async () => {
    const c = await t.client(WalletService, 'payment');
    const keysetId = keysets.get('ed25519')!.keysetId as string;
    const req = { keysetId, count: 2500, userId: 'paged-user', idempotencyKey: `fill-${bytesToHex(randomBytes(6))}`, fillLimit: 1000 };
    const first = (await c.createWallets(req)).batch!;
    expect(first).toMatchObject({ created: 1000, complete: false });
    const second = (await c.createWallets(req)).batch!;
    expect(second).toMatchObject({ batchId: first.batchId, created: 2000, complete: false });
    const third = (await c.createWallets(req)).batch!;
    expect(third).toMatchObject({ batchId: first.batchId, created: 2500, complete: true });
    const seen: number[] = [];
    let token = '';
    do {
      const page = await c.listWallets({ keysetId, batchId: first.batchId, limit: 1000, pageToken: token });
      seen.push(...page.wallets.map((w) => w.index));
      token = page.nextPageToken;
    } while (token);
    expect(seen).toEqual(Array.from({ length: 2500 }, (_, i) => first.firstIndex + i));
    const byUser = await t.cli('wallet', 'list', '--keyset', keysetId, '--user', 'paged-user', '--limit', '3');
    expect((byUser.json.wallets as WalletJson[]).map((w) => w.userId)).toEqual(['paged-user', 'paged-user', 'paged-user']);
    expect(byUser.json.nextPageToken).not.toBe('');
    const audit = await t.cli('audit', 'list', '--limit', '1000');
    const actions = (audit.json.records as { action: string; subject: string }[]).filter((r) => r.subject === first.batchId).map((r) => r.action);
    expect(actions).toEqual(['wallet.batch_created', 'wallet.batch_completed']);
  });

  it('refuses bad input with a precise status', async () => {
    const c = await t.client(WalletService, 'payment');
    const keysetId = keysets.get('ed25519')!.keysetId as string;
    await expect(c.createWallets({ keysetId, count: 0 })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(c.createWallets({ keysetId, count: 1_000_001 })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(c.createWallets({ keysetId: '00000000-0000-4000-8000-000000000000', count: 1 })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(c.getWallet({ walletId: 'nope' })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    await expect(c.listWallets({ keysetId, pageToken: 'x' })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    const unknown = await t.cli('sign', '--wallet', '00000000-0000-4000-8000-000000000000', '--digest', bytesToHex(randomBytes(32)));
    expect(unknown.json.error).toMatchObject({ code: 'NOT_FOUND' });
    const w = (await createWallets('ed25519', '--count', '1')).wallets[0]!;
    const wrongKeyset = await t.cli('sign', '--wallet', w.walletId, '--keyset', keysets.get('ecdsa')!.keysetId as string, '--digest', bytesToHex(randomBytes(32)));
    expect(wrongKeyset.json.error).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('a node derives the key itself and refuses hardened or malformed paths, even from the coordinator', async () => {
    const L = layout(t.dir);
    const coordinator = ed25519KeyPair(hexToBytes((await readFile(L.coordinatorKey, 'utf8')).trim()));
    const signAuth = ed25519Signer(coordinator);
    const node = await t.nodeClient(NodeService, 'node-1', 'coordinator');
    const keysetId = keysets.get('ed25519')!.keysetId as string;
    for (const derivationPath of ["m/0'/1", 'm/0/x', 'm/2147483648', 'm/' + Array(20).fill('1').join('/')]) {
      const authorization = toBinary(
        SignAuthorizationSchema,
        create(SignAuthorizationSchema, {
          requestId: crypto.randomUUID(),
          sessionId: crypto.randomUUID(),
          keysetId,
          scheme: Scheme.ED25519,
          digest: randomBytes(32),
          derivationPath,
          commitments: [
            { index: 1, nodeId: 'node-1', commitmentId: 'x', hiding: ed25519.Point.BASE.toBytes(), binding: ed25519.Point.BASE.toBytes() },
            { index: 2, nodeId: 'node-2', commitmentId: 'y', hiding: ed25519.Point.BASE.toBytes(), binding: ed25519.Point.BASE.toBytes() },
          ],
          expiresAtMs: BigInt(Date.now() + 30_000),
        }),
      );
      const res = await node.signShares({ items: [{ authorization, coordinatorSignature: signAuth(SIGN_AUTHORIZATION_DOMAIN, authorization) }] });
      const r = res.results[0]!.result;
      expect(r.case, derivationPath).toBe('error');
      if (r.case === 'error') {
        expect(r.value.code).toBe(status.INVALID_ARGUMENT);
        expect(r.value.message).toMatch(/derivation path/);
      }
    }
  });
});
