/**
 * Fixed-base scalar multiplication through the group interface only (add and identity), for the
 * base OT where the same point is multiplied by hundreds of secret scalars (G and h for the
 * receiver's message, the sender's key z for the receiver's pads).
 *
 * Fixed-window comb: table[w][d] = d * 2^(W*w) * P for every window w and digit d, so k*P is one
 * add per window. The sequence of operations does not depend on k: every window adds exactly one
 * entry (the identity for a zero digit; the group's addition is complete) and the entry is picked by
 * scanning the whole row, as @noble/curves does for its own constant-time tables. Scalars are
 * BigInts, so this is as constant-time as the rest of a pure-JS stack, not more.
 *
 * On a native backend (libsecp256k1, libsodium) one constant-time library multiplication costs
 * less than the 32 table additions of a lookup, so no table is built and mul calls the library.
 */
import type { Group } from '../../group/index.js';

export class FixedBase<P> {
  private readonly rows: P[][] = [];
  private readonly windows: number;
  private readonly mask: bigint;
  /** Native backends: multiply directly (see the file comment). */
  private readonly direct: boolean;
  private readonly isGenerator: boolean;

  constructor(
    private readonly g: Group<P>,
    private readonly base: P,
    private readonly bits: number,
  ) {
    if (!Number.isInteger(bits) || bits < 1 || bits > 10) throw new RangeError('FixedBase: window must be 1..10 bits');
    this.direct = g.backend !== 'noble';
    this.isGenerator = g.eq(base, g.generator);
    this.windows = 0;
    this.mask = 0n;
    if (this.direct) return;
    const orderBits = g.order.toString(2).length;
    this.windows = Math.ceil(orderBits / bits);
    this.mask = (1n << BigInt(bits)) - 1n;
    const size = 1 << bits;
    let step = base; // 2^(bits * w) * P
    for (let w = 0; w < this.windows; w++) {
      const row: P[] = new Array<P>(size);
      row[0] = g.identity;
      row[1] = step;
      for (let d = 2; d < size; d++) row[d] = g.add(row[d - 1]!, step);
      this.rows.push(row);
      if (w + 1 < this.windows) step = g.add(row[size - 1]!, step);
    }
  }

  /** k * base for 0 <= k < order. */
  mul(k: bigint): P {
    if (k < 0n || k >= this.g.order) throw new RangeError('FixedBase.mul: scalar out of range');
    if (this.direct) return this.isGenerator ? this.g.baseMul(k) : this.g.mul(this.base, k);
    const B = BigInt(this.bits);
    let acc = this.g.identity;
    let rest = k;
    for (let w = 0; w < this.windows; w++) {
      const digit = Number(rest & this.mask);
      rest >>= B;
      const row = this.rows[w]!;
      let sel = row[0]!;
      for (let d = 1; d < row.length; d++) sel = d === digit ? row[d]! : sel;
      acc = this.g.add(acc, sel);
    }
    return acc;
  }
}

const generatorTables = new WeakMap<object, FixedBase<unknown>>();

/** The 8-bit-window table of the generator, built once per group backend (~8k additions). */
export function generatorTable(g: Group<unknown>): FixedBase<unknown> {
  let t = generatorTables.get(g);
  if (!t) {
    t = new FixedBase(g, g.generator, 8);
    generatorTables.set(g, t);
  }
  return t;
}
