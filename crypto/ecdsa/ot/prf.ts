/**
 * The two symmetric primitives on the OT-extension hot path, written against 32-bit words so a
 * multiplication does not pay per-call allocation thousands of times:
 *
 * - `RowHash`: the random oracle that turns an OT-extension row (256 bits) into scalars, i.e. the
 *   correlation-robust hash of IKNP/KOS that breaks q_j vs q_j xor Delta. It is exactly
 *   SHA-256(prefix || row || j || flag) with a 64-byte prefix bound to the domain and session
 *   (its midstate is computed once), followed by ChaCha20 keyed with that digest when more than
 *   32 bytes are needed. Tests check it byte for byte against @noble/hashes and @noble/ciphers.
 * - `prgExpand`: the PRG that stretches a base-OT seed into an OT-extension column: ChaCha20 keyed
 *   by the (secret, uniform) seed, with a per-session nonce. That is ordinary PRF use of ChaCha20.
 *
 * Both are standard algorithms; only the loop structure is ours (RFC 8439 block function, FIPS
 * 180-4 compression function).
 */
import { sha512 } from '@noble/hashes/sha2.js';
import { encodeFields, type Field } from '../../transcript.js';

const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const SHA256_IV = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

const W64 = new Uint32Array(64);

/** SHA-256 compression: out = state + F(state, block), block as 16 big-endian words. */
export function sha256Compress(state: Uint32Array, block: Uint32Array, out: Uint32Array): void {
  const W = W64;
  for (let i = 0; i < 16; i++) W[i] = block[i]!;
  for (let i = 16; i < 64; i++) {
    const a = W[i - 15]!;
    const b = W[i - 2]!;
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
  }
  let a = state[0]! | 0,
    b = state[1]! | 0,
    c = state[2]! | 0,
    d = state[3]! | 0,
    e = state[4]! | 0,
    f = state[5]! | 0,
    g = state[6]! | 0,
    h = state[7]! | 0;
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K256[i]! + W[i]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  out[0] = state[0]! + a;
  out[1] = state[1]! + b;
  out[2] = state[2]! + c;
  out[3] = state[3]! + d;
  out[4] = state[4]! + e;
  out[5] = state[5]! + f;
  out[6] = state[6]! + g;
  out[7] = state[7]! + h;
}

const bswap = (x: number): number => ((x >>> 24) | ((x >>> 8) & 0xff00) | ((x << 8) & 0xff0000) | (x << 24)) >>> 0;

/**
 * ChaCha20 block function (RFC 8439 section 2.3): 16 keystream words (little-endian) into
 * out[off..off+16), for a key of 8 little-endian words, a block counter and a 96-bit nonce.
 */
export function chachaBlock(key: Uint32Array, koff: number, counter: number, n0: number, n1: number, n2: number, out: Uint32Array, off: number): void {
  const k0 = key[koff]! | 0,
    k1 = key[koff + 1]! | 0,
    k2 = key[koff + 2]! | 0,
    k3 = key[koff + 3]! | 0,
    k4 = key[koff + 4]! | 0,
    k5 = key[koff + 5]! | 0,
    k6 = key[koff + 6]! | 0,
    k7 = key[koff + 7]! | 0;
  let x0 = 0x61707865,
    x1 = 0x3320646e,
    x2 = 0x79622d32,
    x3 = 0x6b206574,
    x4 = k0,
    x5 = k1,
    x6 = k2,
    x7 = k3,
    x8 = k4,
    x9 = k5,
    x10 = k6,
    x11 = k7,
    x12 = counter | 0,
    x13 = n0 | 0,
    x14 = n1 | 0,
    x15 = n2 | 0;
  for (let r = 0; r < 10; r++) {
    // column round
    x0 = (x0 + x4) | 0; x12 ^= x0; x12 = (x12 << 16) | (x12 >>> 16);
    x8 = (x8 + x12) | 0; x4 ^= x8; x4 = (x4 << 12) | (x4 >>> 20);
    x0 = (x0 + x4) | 0; x12 ^= x0; x12 = (x12 << 8) | (x12 >>> 24);
    x8 = (x8 + x12) | 0; x4 ^= x8; x4 = (x4 << 7) | (x4 >>> 25);
    x1 = (x1 + x5) | 0; x13 ^= x1; x13 = (x13 << 16) | (x13 >>> 16);
    x9 = (x9 + x13) | 0; x5 ^= x9; x5 = (x5 << 12) | (x5 >>> 20);
    x1 = (x1 + x5) | 0; x13 ^= x1; x13 = (x13 << 8) | (x13 >>> 24);
    x9 = (x9 + x13) | 0; x5 ^= x9; x5 = (x5 << 7) | (x5 >>> 25);
    x2 = (x2 + x6) | 0; x14 ^= x2; x14 = (x14 << 16) | (x14 >>> 16);
    x10 = (x10 + x14) | 0; x6 ^= x10; x6 = (x6 << 12) | (x6 >>> 20);
    x2 = (x2 + x6) | 0; x14 ^= x2; x14 = (x14 << 8) | (x14 >>> 24);
    x10 = (x10 + x14) | 0; x6 ^= x10; x6 = (x6 << 7) | (x6 >>> 25);
    x3 = (x3 + x7) | 0; x15 ^= x3; x15 = (x15 << 16) | (x15 >>> 16);
    x11 = (x11 + x15) | 0; x7 ^= x11; x7 = (x7 << 12) | (x7 >>> 20);
    x3 = (x3 + x7) | 0; x15 ^= x3; x15 = (x15 << 8) | (x15 >>> 24);
    x11 = (x11 + x15) | 0; x7 ^= x11; x7 = (x7 << 7) | (x7 >>> 25);
    // diagonal round
    x0 = (x0 + x5) | 0; x15 ^= x0; x15 = (x15 << 16) | (x15 >>> 16);
    x10 = (x10 + x15) | 0; x5 ^= x10; x5 = (x5 << 12) | (x5 >>> 20);
    x0 = (x0 + x5) | 0; x15 ^= x0; x15 = (x15 << 8) | (x15 >>> 24);
    x10 = (x10 + x15) | 0; x5 ^= x10; x5 = (x5 << 7) | (x5 >>> 25);
    x1 = (x1 + x6) | 0; x12 ^= x1; x12 = (x12 << 16) | (x12 >>> 16);
    x11 = (x11 + x12) | 0; x6 ^= x11; x6 = (x6 << 12) | (x6 >>> 20);
    x1 = (x1 + x6) | 0; x12 ^= x1; x12 = (x12 << 8) | (x12 >>> 24);
    x11 = (x11 + x12) | 0; x6 ^= x11; x6 = (x6 << 7) | (x6 >>> 25);
    x2 = (x2 + x7) | 0; x13 ^= x2; x13 = (x13 << 16) | (x13 >>> 16);
    x8 = (x8 + x13) | 0; x7 ^= x8; x7 = (x7 << 12) | (x7 >>> 20);
    x2 = (x2 + x7) | 0; x13 ^= x2; x13 = (x13 << 8) | (x13 >>> 24);
    x8 = (x8 + x13) | 0; x7 ^= x8; x7 = (x7 << 7) | (x7 >>> 25);
    x3 = (x3 + x4) | 0; x14 ^= x3; x14 = (x14 << 16) | (x14 >>> 16);
    x9 = (x9 + x14) | 0; x4 ^= x9; x4 = (x4 << 12) | (x4 >>> 20);
    x3 = (x3 + x4) | 0; x14 ^= x3; x14 = (x14 << 8) | (x14 >>> 24);
    x9 = (x9 + x14) | 0; x4 ^= x9; x4 = (x4 << 7) | (x4 >>> 25);
  }
  out[off] = x0 + 0x61707865;
  out[off + 1] = x1 + 0x3320646e;
  out[off + 2] = x2 + 0x79622d32;
  out[off + 3] = x3 + 0x6b206574;
  out[off + 4] = x4 + k0;
  out[off + 5] = x5 + k1;
  out[off + 6] = x6 + k2;
  out[off + 7] = x7 + k3;
  out[off + 8] = x8 + k4;
  out[off + 9] = x9 + k5;
  out[off + 10] = x10 + k6;
  out[off + 11] = x11 + k7;
  out[off + 12] = x12 + (counter | 0);
  out[off + 13] = x13 + (n0 | 0);
  out[off + 14] = x14 + (n1 | 0);
  out[off + 15] = x15 + (n2 | 0);
}

/** A 96-bit ChaCha20 nonce plus starting counter, as words (little-endian byte order on the wire). */
export interface PrgNonce {
  readonly counter: number;
  readonly n0: number;
  readonly n1: number;
  readonly n2: number;
}

/**
 * Derives the per-session PRG nonce: 112 bits of a domain-separated hash go into the nonce and the
 * high half of the block counter (the low 16 bits count blocks, so a column can be up to 4 MiB),
 * so two sessions under the same seed collide only with probability about q^2 / 2^113 after q
 * sessions.
 */
export function prgNonce(tag: string, fields: readonly Field[]): PrgNonce {
  const d = sha512(encodeFields([tag, ...fields]));
  const w = new Uint32Array(d.buffer, d.byteOffset, 4);
  return { counter: (w[0]! & 0xffff0000) >>> 0, n0: w[1]!, n1: w[2]!, n2: w[3]! };
}

/**
 * Fills out[off..off+words) with ChaCha20 keystream under key[koff..koff+8) (the seed) and the
 * session nonce. `scratch` holds one block (16 words) for a partial last block.
 */
export function prgExpand(key: Uint32Array, koff: number, nonce: PrgNonce, out: Uint32Array, off: number, words: number, scratch: Uint32Array): void {
  if (words > 16 * 65536) throw new RangeError('prgExpand: at most 2^16 blocks');
  const full = words >>> 4;
  for (let b = 0; b < full; b++) chachaBlock(key, koff, nonce.counter + b, nonce.n0, nonce.n1, nonce.n2, out, off + 16 * b);
  const rest = words & 15;
  if (rest !== 0) {
    chachaBlock(key, koff, nonce.counter + full, nonce.n0, nonce.n1, nonce.n2, scratch, 0);
    for (let i = 0; i < rest; i++) out[off + 16 * full + i] = scratch[i]!;
  }
}

/**
 * Random oracle on 256-bit rows: H(prefix, row, j, flag) = SHA-256(P || row || be32(j) || flag),
 * where P is the 64-byte SHA-512 of the length-prefixed (tag, fields). Output is 32 bytes, or more
 * through ChaCha20 keyed with those 32 bytes (the XOF step); `outWords` words in little-endian
 * byte order.
 */
export class RowHash {
  private readonly mid = new Uint32Array(8);
  private readonly block = new Uint32Array(16);
  private readonly digest = new Uint32Array(8);
  private readonly key = new Uint32Array(8);
  private readonly ks = new Uint32Array(64);

  constructor(tag: string, fields: readonly Field[]) {
    const prefix = sha512(encodeFields([tag, ...fields]));
    const b = new Uint32Array(16);
    for (let i = 0; i < 16; i++) {
      b[i] = (prefix[4 * i]! << 24) | (prefix[4 * i + 1]! << 16) | (prefix[4 * i + 2]! << 8) | prefix[4 * i + 3]!;
    }
    sha256Compress(SHA256_IV, b, this.mid);
    // Fixed tail of the second block: 0x80 after the 37 message bytes, bit length of 101 bytes.
    this.block.fill(0);
    this.block[15] = (64 + 37) * 8;
  }

  /**
   * Hashes row[roff..roff+8) (little-endian words, i.e. its wire bytes) with index j and a one-byte
   * flag, optionally xoring `mask` into the row first (so q_j xor Delta needs no temporary).
   * Writes outWords (8, 16, 24 or 32) words into out[ooff..].
   */
  hash(row: Uint32Array, roff: number, mask: Uint32Array | null, j: number, flag: number, out: Uint32Array, ooff: number, outWords: number): void {
    const blk = this.block;
    if (mask === null) {
      for (let i = 0; i < 8; i++) blk[i] = bswap(row[roff + i]!);
    } else {
      for (let i = 0; i < 8; i++) blk[i] = bswap((row[roff + i]! ^ mask[i]!) >>> 0);
    }
    blk[8] = j >>> 0;
    blk[9] = ((flag & 0xff) << 24) | 0x800000;
    sha256Compress(this.mid, blk, this.digest);
    if (outWords === 8) {
      for (let i = 0; i < 8; i++) out[ooff + i] = bswap(this.digest[i]!);
      return;
    }
    // ChaCha20 key = the digest bytes; nonce and counter zero: a fresh key per call.
    for (let i = 0; i < 8; i++) this.key[i] = bswap(this.digest[i]!);
    const blocks = (outWords + 15) >>> 4;
    for (let b = 0; b < blocks; b++) chachaBlock(this.key, 0, b, 0, 0, 0, this.ks, 16 * b);
    for (let i = 0; i < outWords; i++) out[ooff + i] = this.ks[i]!;
  }
}
