/**
 * Native secp256k1 backend on libsecp256k1 (the `secp256k1` package's N-API binding), with the
 * semantics of the noble backend (noble.ts), the oracle (see test/crypto/group-backends.test.ts).
 *
 * Points are Secp256k1NativePoint: the 65-byte uncompressed SEC1 encoding (0x04 || x || y), which
 * libsecp256k1 parses without a square root; the compressed encoding and the parity of y are read
 * off it in JS. libsecp256k1 cannot represent the point at infinity: the identity is a point with
 * an empty encoding, answered here before any native call:
 *  - mul / baseMul: k = 0 or P = identity give the identity; for 1 <= k < n and P != identity the
 *    result never is (prime order);
 *  - add: P + (-P) is detected from the coordinates (same x, other y); in msm the native sum
 *    (secp256k1_ec_pubkey_combine) reports an infinite total, which becomes the identity;
 *  - encode(identity) = 33 zero bytes, which decodeAllowIdentity accepts and decode refuses, as the
 *    noble backend does; hasEvenY(identity) is true (noble maps it to affine (0, 0)).
 * tweak_mul (ecmult_const) and pubkey_create (ecmult_gen, context randomized at load) are
 * constant-time, as noble's multiply is; msm is for public inputs only.
 */
import { createRequire } from 'node:module';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { InvalidEncoding, scalarCodec, type Group } from './group.js';

type Secp = typeof import('secp256k1');

/** A point of secp256k1: 65-byte uncompressed encoding, or empty for the identity. Opaque to protocol code. */
export class Secp256k1NativePoint {
  /** @internal use Group.encode for the compressed encoding. */
  constructor(readonly raw: Uint8Array) {}
}

type Pt = Secp256k1NativePoint;

const Fn = secp256k1.Point.Fn;
const ORDER = Fn.ORDER;
/** libsecp256k1's message when a sum of points is the point at infinity (secp256k1 package, lib/index.js). */
const COMBINE_INFINITY = 'The sum of the public keys is not valid';


/** 32-byte big-endian encoding of 0 <= k < 2^256 (callers range-check k). */
function scalarBE(k: bigint): Uint8Array {
  return Buffer.from(k.toString(16).padStart(64, '0'), 'hex');
}

/**
 * Scratch buffer for the scalar of a native multiplication (scalars may be secret): written,
 * passed to libsecp256k1, zeroed. Calls are synchronous, so one buffer serves every call.
 */
const scratch = Buffer.alloc(32);
function withScalarBE<T>(k: bigint, f: (n: Uint8Array) => T): T {
  scratch.write(k.toString(16).padStart(64, '0'), 'hex');
  try {
    return f(scratch);
  } finally {
    scratch.fill(0);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array, from = 0, to = a.length): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = from; i < to; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Loads libsecp256k1 through the `secp256k1` package and builds the group. Throws if the addon does not load. */
export function libsecp256k1Group(): Group<Secp256k1NativePoint> {
  const require = createRequire(import.meta.url);
  // The native binding only: the package's main entry silently falls back to elliptic.js.
  const na = require('secp256k1/bindings') as Secp;
  // Blinding for ecmult_gen (side channels); also fails early if the binding is broken.
  na.contextRandomize(randomBytes(32));

  const IDENTITY = new Secp256k1NativePoint(new Uint8Array(0));
  const GENERATOR = new Secp256k1NativePoint(na.publicKeyCreate(scalarBE(1n), false));
  if (!sameBytes(GENERATOR.raw, secp256k1.Point.BASE.toBytes(false))) throw new Error('libsecp256k1: unexpected generator');

  const pt = (p: unknown): Pt => {
    if (!(p instanceof Secp256k1NativePoint)) throw new TypeError('expected a point of the libsecp256k1 backend');
    return p;
  };
  const isId = (p: Pt): boolean => p.raw.length === 0;
  const isGen = (p: Pt): boolean => p === GENERATOR || sameBytes(p.raw, GENERATOR.raw);
  const wrap = (raw: Uint8Array): Pt => new Secp256k1NativePoint(raw);

  const checkScalar = (k: bigint): void => {
    if (!Fn.isValidNot0(k)) throw new RangeError('invalid scalar: out of range');
  };
  /** k*P for 1 <= k < n, P != identity. */
  const baseNZ = (k: bigint): Pt => wrap(withScalarBE(k, (n) => na.publicKeyCreate(n, false)));
  const mulNZ = (p: Pt, k: bigint): Pt => (isGen(p) ? baseNZ(k) : wrap(withScalarBE(k, (n) => na.publicKeyTweakMul(p.raw, n, false))));
  const neg = (p: Pt): Pt => (isId(p) ? IDENTITY : wrap(na.publicKeyNegate(p.raw, false)));
  const add = (a: Pt, b: Pt): Pt => {
    if (isId(a)) return b;
    if (isId(b)) return a;
    // Same x: b = a (doubling, which the native sum handles) or b = -a (the identity).
    if (sameBytes(a.raw, b.raw, 1, 33) && !sameBytes(a.raw, b.raw, 33, 65)) return IDENTITY;
    return wrap(na.publicKeyCombine([a.raw, b.raw], false));
  };
  const sum = (terms: Uint8Array[]): Pt => {
    if (terms.length === 0) return IDENTITY;
    if (terms.length === 1) return wrap(terms[0]!);
    try {
      return wrap(na.publicKeyCombine(terms, false));
    } catch (e) {
      if (e instanceof Error && e.message === COMBINE_INFINITY) return IDENTITY;
      throw e;
    }
  };

  const decodeAny = (b: Uint8Array): Pt => {
    if (!(b instanceof Uint8Array) || b.length !== 33) throw new InvalidEncoding('point must be 33 bytes (compressed SEC1)');
    if (b.every((x) => x === 0)) return IDENTITY; // our identity encoding: 33 zero bytes
    // Only 0x02 / 0x03 with x < p and x^3 + 7 a square: what secp256k1_ec_pubkey_parse accepts at 33 bytes.
    if (b[0] !== 0x02 && b[0] !== 0x03) throw new InvalidEncoding('not a valid secp256k1 point encoding');
    try {
      return wrap(na.publicKeyConvert(b, false));
    } catch {
      throw new InvalidEncoding('not a valid secp256k1 point encoding');
    }
  };

  const group: Group<Secp256k1NativePoint> = {
    curve: 'secp256k1',
    backend: 'libsecp256k1',
    Fn,
    order: ORDER,
    pointLength: 33,
    scalarLength: 32,
    generator: GENERATOR,
    identity: IDENTITY,
    ...scalarCodec(ORDER, false, (s) => Fn.toBytes(s), randomBytes),
    baseMul: (k) => {
      if (k === 0n) return IDENTITY;
      checkScalar(k);
      return baseNZ(k);
    },
    mul: (p, k) => {
      pt(p);
      if (k === 0n || isId(p)) return IDENTITY;
      checkScalar(k);
      return mulNZ(p, k);
    },
    add: (a, b) => add(pt(a), pt(b)),
    sub: (a, b) => add(pt(a), neg(pt(b))),
    neg: (p) => neg(pt(p)),
    msm: (points, scalars) => {
      if (points.length !== scalars.length) throw new Error('msm: points and scalars differ in length');
      if (!Array.isArray(points)) throw new Error('expected array of points');
      points.forEach((p, i) => {
        if (!(p instanceof Secp256k1NativePoint)) throw new Error('invalid point at index ' + i);
      });
      if (!Array.isArray(scalars)) throw new Error('array of scalars expected');
      scalars.forEach((s, i) => {
        if (!Fn.isValid(s)) throw new Error('invalid scalar at index ' + i);
      });
      // Public inputs: native multiplications, then one native sum of all the terms.
      const terms: Uint8Array[] = [];
      for (let i = 0; i < points.length; i++) {
        const k = scalars[i]!;
        const p = points[i]!;
        if (k !== 0n && !isId(p)) terms.push(mulNZ(p, k).raw);
      }
      return sum(terms);
    },
    eq: (a, b) => sameBytes(pt(a).raw, pt(b).raw),
    isIdentity: (p) => isId(pt(p)),
    encode: (p) => {
      const r = pt(p).raw;
      const out = new Uint8Array(33);
      if (r.length === 0) return out;
      out[0] = 0x02 | (r[64]! & 1);
      out.set(r.subarray(1, 33), 1);
      return out;
    },
    decode: (b) => {
      const p = decodeAny(b);
      if (isId(p)) throw new InvalidEncoding('point is the identity');
      return p;
    },
    decodeAllowIdentity: decodeAny,
    hasEvenY: (p) => {
      const r = pt(p).raw;
      return r.length === 0 || (r[64]! & 1) === 0;
    },
  };
  return Object.freeze(group);
}
