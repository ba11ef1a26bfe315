/**
 * GF(2^256) = GF(2)[x] / (x^256 + x^10 + x^5 + x^2 + 1), for the universal hash of the
 * OT-extension consistency check. The polynomial is irreducible (checked with Rabin's test: x^(2^256)
 * = x and gcd(x^(2^128) - x, f) = 1 mod f; the test file re-checks it).
 *
 * An element is 8 little-endian 32-bit words: the coefficient of x^e is bit (e & 31) of word e >> 5,
 * the same layout as a 256-bit slice of a bit-packed OT column. The check multiplies many columns by
 * the same challenge, so `ConstMul` precomputes 4-bit window tables for one constant (64 windows x
 * 16 entries x 8 words) and a product costs 64 table lookups.
 */

const REDUCE = (1 << 10) | (1 << 5) | (1 << 2) | 1;

/** a <- a * x (in place, 8 words). */
function mulX(a: Uint32Array, off: number): void {
  const carry = a[off + 7]! >>> 31;
  for (let i = 7; i > 0; i--) a[off + i] = (a[off + i]! << 1) | (a[off + i - 1]! >>> 31);
  a[off] = (a[off]! << 1) ^ (REDUCE & -carry);
}

export class ConstMul {
  /** table[(64 * 0 + window) * 16 + v] * 8 words = c * v * x^(4 * window). */
  private readonly table = new Uint32Array(64 * 16 * 8);

  constructor(c: Uint32Array) {
    if (c.length !== 8) throw new RangeError('GF(2^256) element must be 8 words');
    const pw = new Uint32Array(8);
    pw.set(c);
    const t = this.table;
    for (let w = 0; w < 64; w++) {
      const base = w * 16 * 8;
      // Entries 1, 2, 4, 8 are c * x^(4w + b); the rest are xors of those.
      for (let b = 0; b < 4; b++) {
        const idx = base + (1 << b) * 8;
        for (let k = 0; k < 8; k++) t[idx + k] = pw[k]!;
        mulX(pw, 0);
      }
      for (let v = 3; v < 16; v++) {
        if ((v & (v - 1)) === 0) continue;
        const low = v & -v;
        const a = base + low * 8;
        const b = base + (v ^ low) * 8;
        const d = base + v * 8;
        for (let k = 0; k < 8; k++) t[d + k] = t[a + k]! ^ t[b + k]!;
      }
    }
  }

  /**
   * acc[aoff..aoff+8) ^= c * src, where src is the `n` words src[soff..soff+n) (n <= 8) padded
   * with zero words.
   */
  mulAcc(src: Uint32Array, soff: number, n: number, acc: Uint32Array, aoff: number): void {
    const t = this.table;
    let a0 = acc[aoff]!,
      a1 = acc[aoff + 1]!,
      a2 = acc[aoff + 2]!,
      a3 = acc[aoff + 3]!,
      a4 = acc[aoff + 4]!,
      a5 = acc[aoff + 5]!,
      a6 = acc[aoff + 6]!,
      a7 = acc[aoff + 7]!;
    for (let w = 0; w < n; w++) {
      let word = src[soff + w]!;
      let idx = w * 8 * 16 * 8;
      for (let nib = 0; nib < 8; nib++) {
        const e = idx + (word & 15) * 8;
        a0 ^= t[e]!;
        a1 ^= t[e + 1]!;
        a2 ^= t[e + 2]!;
        a3 ^= t[e + 3]!;
        a4 ^= t[e + 4]!;
        a5 ^= t[e + 5]!;
        a6 ^= t[e + 6]!;
        a7 ^= t[e + 7]!;
        word >>>= 4;
        idx += 16 * 8;
      }
    }
    acc[aoff] = a0;
    acc[aoff + 1] = a1;
    acc[aoff + 2] = a2;
    acc[aoff + 3] = a3;
    acc[aoff + 4] = a4;
    acc[aoff + 5] = a5;
    acc[aoff + 6] = a6;
    acc[aoff + 7] = a7;
  }
}

/** Reference bit-by-bit product (tests only: checks the tables). */
export function gfMulSlow(a: Uint32Array, b: Uint32Array): Uint32Array {
  const acc = new Uint32Array(8);
  const p = new Uint32Array(a);
  for (let e = 0; e < 256; e++) {
    if ((b[e >>> 5]! >>> (e & 31)) & 1) for (let k = 0; k < 8; k++) acc[k] = acc[k]! ^ p[k]!;
    mulX(p, 0);
  }
  return acc;
}
