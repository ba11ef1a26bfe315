/** Our XChaCha20-Poly1305 (HChaCha20 + OpenSSL ChaCha20-Poly1305) against noble's, an independent implementation. */
import { describe, expect, it } from 'vitest';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { xchachaOpen, xchachaSeal } from '../../crypto/xchacha.js';

describe('XChaCha20-Poly1305 through OpenSSL', () => {
  it('makes exactly what noble makes, and each opens the other, for lengths 0 to 5000', () => {
    for (const len of [0, 1, 15, 16, 17, 63, 64, 65, 1000, 5000]) {
      const key = randomBytes(32);
      const nonce = randomBytes(24);
      const aad = randomBytes(len % 40);
      const pt = randomBytes(len);
      const ours = xchachaSeal(key, nonce, aad, pt);
      const noble = xchacha20poly1305(key, nonce, aad).encrypt(pt);
      expect(Buffer.from(ours).toString('hex')).toBe(Buffer.from(noble).toString('hex'));
      expect(xchachaOpen(key, nonce, aad, noble)).toEqual(pt);
      expect(xchacha20poly1305(key, nonce, aad).decrypt(ours)).toEqual(pt);
    }
  });

  it('matches the draft-irtf-cfrg-xchacha-03 AEAD test vector (A.3.1)', () => {
    const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
    const pt = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
    const aad = hex('50515253c0c1c2c3c4c5c6c7');
    const key = hex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f');
    const nonce = hex('404142434445464748494a4b4c4d4e4f5051525354555657');
    const box = xchachaSeal(key, nonce, aad, pt);
    expect(Buffer.from(box.subarray(0, 16)).toString('hex')).toBe('bd6d179d3e83d43b9576579493c0e939');
    expect(Buffer.from(box.subarray(box.length - 16)).toString('hex')).toBe('c0875924c1c7987947deafd8780acf49');
  });

  it('refuses a changed key, nonce, associated data, ciphertext or tag, and bad lengths', () => {
    const key = randomBytes(32);
    const nonce = randomBytes(24);
    const aad = randomBytes(8);
    const box = xchachaSeal(key, nonce, aad, randomBytes(100));
    const flip = (b: Uint8Array, i: number) => {
      const c = b.slice();
      c[i]! ^= 1;
      return c;
    };
    expect(() => xchachaOpen(flip(key, 0), nonce, aad, box)).toThrow();
    expect(() => xchachaOpen(key, flip(nonce, 0), aad, box)).toThrow();
    expect(() => xchachaOpen(key, flip(nonce, 23), aad, box)).toThrow();
    expect(() => xchachaOpen(key, nonce, flip(aad, 0), box)).toThrow();
    expect(() => xchachaOpen(key, nonce, aad, flip(box, 0))).toThrow();
    expect(() => xchachaOpen(key, nonce, aad, flip(box, box.length - 1))).toThrow();
    expect(() => xchachaOpen(key, nonce, aad, box.subarray(0, 10))).toThrow();
    expect(() => xchachaSeal(key.subarray(1), nonce, aad, box)).toThrow(/32 bytes/);
    expect(() => xchachaSeal(key, nonce.subarray(1), aad, box)).toThrow(/24 bytes/);
  });
});
