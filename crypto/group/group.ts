/**
 * The one small interface every protocol computes through (DESIGN.md section 5).
 *
 * Scalars are bigints in [0, order). Points are opaque to protocol code: a backend chooses its
 * own representation (noble point objects, native byte buffers), so protocols are generic in P.
 * Peer points enter only through `decode`, which validates once; after that they stay decoded.
 */
import type { IField } from '@noble/curves/abstract/modular.js';

export type CurveName = 'ed25519' | 'secp256k1';

export interface Group<P> {
  readonly curve: CurveName;
  /** Backend name, for logs and benchmarks ("noble", "sodium", "secp256k1-native"). */
  readonly backend: string;
  /** Scalar field mod the group order: add, sub, mul, inv, neg, create (reduce). */
  readonly Fn: IField<bigint>;
  readonly order: bigint;
  /** Encoded point length: 32 for Ed25519, 33 (compressed SEC1) for secp256k1. */
  readonly pointLength: number;
  readonly scalarLength: number;
  readonly generator: P;
  readonly identity: P;

  /** Canonical scalar encoding: little-endian for Ed25519, big-endian for secp256k1. */
  scalarToBytes(s: bigint): Uint8Array;
  /** Parses a canonical scalar; throws InvalidEncoding if it is not reduced or has the wrong length. */
  scalarFromBytes(b: Uint8Array): bigint;
  /** Uniform non-zero scalar from the backend's CSPRNG. */
  randomScalar(): bigint;

  baseMul(k: bigint): P;
  mul(p: P, k: bigint): P;
  add(a: P, b: P): P;
  sub(a: P, b: P): P;
  neg(p: P): P;
  /** sum(points[i] * scalars[i]); public inputs only (not constant time). */
  msm(points: readonly P[], scalars: readonly bigint[]): P;
  eq(a: P, b: P): boolean;
  isIdentity(p: P): boolean;

  encode(p: P): Uint8Array;
  /**
   * Decodes and validates a peer's point: canonical encoding, on the curve, in the prime-order
   * subgroup, not the identity. Throws InvalidEncoding otherwise.
   */
  decode(b: Uint8Array): P;
  /** Like decode but accepts the identity (used where a protocol allows it, e.g. commitments to zero). */
  decodeAllowIdentity(b: Uint8Array): P;
  /** secp256k1 only: whether the point's affine y is even (BIP-340). Ed25519 throws. */
  hasEvenY(p: P): boolean;
}

/** A peer sent bytes that are not a valid scalar or point. Message is safe to show (no secrets). */
export class InvalidEncoding extends Error {
  override readonly name = 'InvalidEncoding';
}

/**
 * The scalar half of a backend, the same for every backend of a curve: 32-byte encodings (Ed25519
 * little-endian, secp256k1 big-endian) that refuse unreduced values, and uniform non-zero random
 * scalars (64 random bytes reduced: bias below 2^-256).
 */
export function scalarCodec(
  order: bigint,
  littleEndian: boolean,
  toBytes: (s: bigint) => Uint8Array,
  random: (n: number) => Uint8Array,
): Pick<Group<unknown>, 'scalarToBytes' | 'scalarFromBytes' | 'randomScalar'> {
  const toNumber = (b: Uint8Array) => {
    let n = 0n;
    for (let i = 0; i < b.length; i++) n = (n << 8n) | BigInt(b[littleEndian ? b.length - 1 - i : i]!);
    return n;
  };
  return {
    scalarToBytes: toBytes,
    scalarFromBytes: (b) => {
      if (b.length !== 32) throw new InvalidEncoding('scalar must be 32 bytes');
      const n = toNumber(b);
      if (n >= order) throw new InvalidEncoding('scalar is not reduced modulo the group order');
      return n;
    },
    randomScalar: () => {
      for (;;) {
        const n = toNumber(random(64)) % order;
        if (n !== 0n) return n;
      }
    },
  };
}
