/**
 * crypto/ed25519-sig.ts: every available verifier (libsodium, OpenSSL) against RFC 8032's vectors,
 * against noble on random signatures, and on what must be refused. The domain-tagged signatures
 * verify with noble over the tagged bytes, so any Ed25519 implementation can check them.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { describe, expect, it } from 'vitest';
import { ED25519_VERIFIERS, ed25519KeyPair, ed25519Signer, ed25519Verify, ed25519VerifyPlain } from '../../crypto/ed25519-sig.js';

// RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte).
const RFC8032 = [
  {
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
].map((v) => ({ publicKey: hexToBytes(v.publicKey), message: hexToBytes(v.message), signature: hexToBytes(v.signature) }));

// The group order L, little-endian: s + L is the same scalar but not canonical.
const L = (1n << 252n) + 27742317777372353535851937790883648493n;
const le = (n: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
const fromLe = (b: Uint8Array) => b.reduceRight((acc, x) => (acc << 8n) | BigInt(x), 0n);

describe('Ed25519 verification (crypto/ed25519-sig.ts)', () => {
  it('prefers libsodium when the addon loads, with OpenSSL always there', () => {
    expect(ED25519_VERIFIERS.map((v) => v.name)).toEqual(['libsodium', 'openssl']);
  });

  for (const { name, verify } of ED25519_VERIFIERS) {
    describe(name, () => {
      it('accepts the RFC 8032 vectors and refuses them altered', () => {
        for (const v of RFC8032) {
          expect(ed25519.verify(v.signature, v.message, v.publicKey)).toBe(true); // the vectors as typed
          expect(verify(v.publicKey, v.message, v.signature)).toBe(true);
          const sig = v.signature.slice();
          sig[5]! ^= 1;
          expect(verify(v.publicKey, v.message, sig)).toBe(false);
          expect(verify(v.publicKey, Uint8Array.of(...v.message, 0), v.signature)).toBe(false);
          expect(verify(RFC8032[1 - RFC8032.indexOf(v)]!.publicKey, v.message, v.signature)).toBe(false);
        }
      });

      it('agrees with noble on random keys and messages', () => {
        for (let i = 0; i < 20; i++) {
          const secret = ed25519.utils.randomSecretKey();
          const pub = ed25519.getPublicKey(secret);
          const msg = randomBytes(i * 7);
          const sig = ed25519.sign(msg, secret);
          expect(verify(pub, msg, sig)).toBe(true);
          const bad = sig.slice();
          bad[40]! ^= 0x10;
          expect(verify(pub, msg, bad)).toBe(ed25519.verify(bad, msg, pub));
          expect(verify(pub, msg, bad)).toBe(false);
        }
      });

      it('refuses a non-canonical s (s + L) that noble also refuses', () => {
        const v = RFC8032[0]!;
        const s = fromLe(v.signature.subarray(32));
        const sig = Uint8Array.of(...v.signature.subarray(0, 32), ...le(s + L));
        expect(ed25519.verify(sig, v.message, v.publicKey)).toBe(false);
        expect(verify(v.publicKey, v.message, sig)).toBe(false);
      });

      it('refuses the identity as a key with a signature (R = identity, s = 0) that verifies under it', () => {
        const identity = le(1n); // y = 1, x = 0
        const sig = Uint8Array.of(...identity, ...new Uint8Array(32));
        expect(verify(identity, new Uint8Array([1, 2, 3]), sig)).toBe(false);
      });
    });
  }

  it('domain-tagged signatures verify with noble over the tagged bytes, and only in their domain', () => {
    const pair = ed25519KeyPair();
    const sign = ed25519Signer(pair);
    const msg = randomBytes(40);
    const sig = sign('sign-batch', msg);
    expect(ed25519Verify(pair.publicKey, 'sign-batch', msg, sig)).toBe(true);
    expect(ed25519Verify(pair.publicKey, 'sign-authorization', msg, sig)).toBe(false);
    const tagged = Uint8Array.of(...new TextEncoder().encode('custody/sign-batch/v1\0'), ...msg);
    expect(ed25519.verify(sig, tagged, pair.publicKey)).toBe(true);
    expect(ed25519VerifyPlain(pair.publicKey, tagged, sig)).toBe(true);
    expect(ed25519VerifyPlain(pair.publicKey, tagged, sig.subarray(0, 63))).toBe(false);
    expect(ed25519Verify(pair.publicKey.subarray(1), 'sign-batch', msg, sig)).toBe(false);
  });
});
