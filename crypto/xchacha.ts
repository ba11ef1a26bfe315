/**
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) with the bulk work in OpenSSL: HChaCha20 (one
 * block, @noble/ciphers) turns the key and the first 16 nonce bytes into a subkey, and OpenSSL's
 * ChaCha20-Poly1305 (RFC 8439) encrypts under it with nonce 0^4 || last 8 nonce bytes. Output is
 * ciphertext || 16-byte tag, byte for byte what noble's xchacha20poly1305 makes (tested against
 * it); several times faster on the kilobyte-sized messages of DKLs23 presigning.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { hchacha } from '@noble/ciphers/chacha.js';

const TAG = 16;
// "expand 32-byte k"
const SIGMA = new Uint32Array([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]);

/** Little-endian 32-bit words of `b` (a copy, so host byte order and alignment do not matter). */
function words(b: Uint8Array): Uint32Array {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Uint32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(4 * i, true);
  return out;
}

function subkey(key: Uint8Array, nonce: Uint8Array): { key: Buffer; nonce: Buffer } {
  if (key.length !== 32) throw new RangeError('XChaCha20-Poly1305 key must be 32 bytes');
  if (nonce.length !== 24) throw new RangeError('XChaCha20-Poly1305 nonce must be 24 bytes');
  const k = words(key);
  const out = new Uint32Array(8);
  hchacha(SIGMA, k, words(nonce.subarray(0, 16)), out);
  const sub = Buffer.alloc(32);
  for (let i = 0; i < 8; i++) sub.writeUInt32LE(out[i]!, 4 * i);
  k.fill(0);
  out.fill(0);
  const n = Buffer.alloc(12);
  n.set(nonce.subarray(16, 24), 4);
  return { key: sub, nonce: n };
}

export function xchachaSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const s = subkey(key, nonce);
  try {
    const c = createCipheriv('chacha20-poly1305', s.key, s.nonce, { authTagLength: TAG });
    c.setAAD(aad, { plaintextLength: plaintext.length });
    const body = c.update(plaintext);
    c.final();
    const out = new Uint8Array(body.length + TAG);
    out.set(body, 0);
    out.set(c.getAuthTag(), body.length);
    return out;
  } finally {
    s.key.fill(0);
  }
}

/** Throws on a wrong key, nonce, associated data or a tampered box (the caller maps the error). */
export function xchachaOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, box: Uint8Array): Uint8Array {
  if (box.length < TAG) throw new RangeError('XChaCha20-Poly1305 box is shorter than its tag');
  const s = subkey(key, nonce);
  try {
    const d = createDecipheriv('chacha20-poly1305', s.key, s.nonce, { authTagLength: TAG });
    d.setAuthTag(box.subarray(box.length - TAG));
    d.setAAD(aad, { plaintextLength: box.length - TAG });
    const body = d.update(box.subarray(0, box.length - TAG));
    d.final();
    return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  } finally {
    s.key.fill(0);
  }
}
