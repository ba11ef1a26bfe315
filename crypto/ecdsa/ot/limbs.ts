/**
 * Branch-free addition and subtraction modulo the group order on 8 x 32-bit little-endian limbs.
 *
 * The multiplication's inner loop adds and subtracts thousands of hash-derived scalars; doing that
 * on the hash output words avoids a BigInt conversion for every value that never meets a product.
 * Carries and borrows are computed arithmetically (no data-dependent branches), and every
 * conditional subtraction is a masked select. Values here are always < 2^256; the modulus must be
 * in (2^255, 2^256) (true for secp256k1's order).
 */

const TWO_M32 = 2.3283064365386963e-10; // 2^-32

export class LimbMod {
  /** The modulus as 8 limbs. */
  readonly n = new Uint32Array(8);
  private readonly t = new Uint32Array(8);
  private readonly u = new Uint32Array(8);

  constructor(readonly modulus: bigint) {
    if (modulus <= 1n << 255n || modulus >= 1n << 256n) throw new RangeError('LimbMod: modulus must be a 256-bit number');
    for (let k = 0; k < 8; k++) this.n[k] = Number((modulus >> BigInt(32 * k)) & 0xffffffffn);
  }

  /** x <- x mod n for x < 2^256 (one masked conditional subtraction suffices since n > 2^255). */
  reduce(x: Uint32Array, xo: number): void {
    const n = this.n;
    const t = this.t;
    let borrow = 0;
    for (let k = 0; k < 8; k++) {
      const d = x[xo + k]! - n[k]! - borrow;
      const lo = d >>> 0;
      borrow = (lo - d) * TWO_M32;
      t[k] = lo;
    }
    // borrow = 1 iff x < n: keep x; otherwise take x - n.
    const keep = -borrow;
    for (let k = 0; k < 8; k++) x[xo + k] = (x[xo + k]! & keep) | (t[k]! & ~keep);
  }

  /** out <- (a - b) mod n, for a, b < n. out may alias a or b. */
  sub(a: Uint32Array, ao: number, b: Uint32Array, bo: number, out: Uint32Array, oo: number): void {
    const n = this.n;
    let borrow = 0;
    const t = this.t;
    for (let k = 0; k < 8; k++) {
      const d = a[ao + k]! - b[bo + k]! - borrow;
      const lo = d >>> 0;
      borrow = (lo - d) * TWO_M32;
      t[k] = lo;
    }
    // Add n back iff it borrowed (the final carry out is the wrap-around and is dropped).
    const m = -borrow;
    let carry = 0;
    for (let k = 0; k < 8; k++) {
      const s = t[k]! + ((n[k]! & m) >>> 0) + carry;
      const lo = s >>> 0;
      carry = (s - lo) * TWO_M32;
      out[oo + k] = lo;
    }
  }

  /** out <- (a + b) mod n, for a, b < n. out may alias a or b. */
  add(a: Uint32Array, ao: number, b: Uint32Array, bo: number, out: Uint32Array, oo: number): void {
    const n = this.n;
    const s = this.t;
    let carry = 0;
    for (let k = 0; k < 8; k++) {
      const v = a[ao + k]! + b[bo + k]! + carry;
      const lo = v >>> 0;
      carry = (v - lo) * TWO_M32;
      s[k] = lo;
    }
    let borrow = 0;
    const d = this.u;
    for (let k = 0; k < 8; k++) {
      const v = s[k]! - n[k]! - borrow;
      const lo = v >>> 0;
      borrow = (lo - v) * TWO_M32;
      d[k] = lo;
    }
    // a + b >= n iff it carried out of 256 bits or the subtraction did not borrow.
    const ge = -(carry | (borrow ^ 1));
    for (let k = 0; k < 8; k++) out[oo + k] = (d[k]! & ge) | (s[k]! & ~ge);
  }

  /** 1 if x >= n else 0, without branches. */
  geq(x: Uint32Array, xo: number): number {
    const n = this.n;
    let borrow = 0;
    for (let k = 0; k < 8; k++) {
      const d = x[xo + k]! - n[k]! - borrow;
      borrow = ((d >>> 0) - d) * TWO_M32;
    }
    return borrow ^ 1;
  }
}

/** Limbs (little-endian words) of a BigInt below 2^256. */
export function toLimbs(x: bigint, out: Uint32Array, oo: number): void {
  for (let k = 0; k < 8; k++) out[oo + k] = Number((x >> BigInt(32 * k)) & 0xffffffffn);
}

/** BigInt from 8 little-endian limbs, read through a DataView over the same buffer. */
export function fromLimbs(dv: DataView, byteOff: number): bigint {
  return (
    (((dv.getBigUint64(byteOff + 24, true) << 64n) | dv.getBigUint64(byteOff + 16, true)) << 128n) |
    ((dv.getBigUint64(byteOff + 8, true) << 64n) | dv.getBigUint64(byteOff, true))
  );
}

/** Writes 8 limbs as a 32-byte big-endian scalar (the wire encoding). */
export function limbsToBE(x: Uint32Array, xo: number, dv: DataView, off: number): void {
  for (let k = 0; k < 8; k++) dv.setUint32(off + 4 * (7 - k), x[xo + k]!, false);
}

/** Reads a 32-byte big-endian scalar into 8 limbs. */
export function limbsFromBE(dv: DataView, off: number, x: Uint32Array, xo: number): void {
  for (let k = 0; k < 8; k++) x[xo + k] = dv.getUint32(off + 4 * (7 - k), false);
}
