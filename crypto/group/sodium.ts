/**
 * Native Ed25519 backend on libsodium (sodium-native), with the semantics of the noble backend
 * (noble.ts), which stays the oracle (test/crypto/group-backends.test.ts holds them side by side).
 *
 * Points are canonical 32-byte encodings wrapped in Ed25519NativePoint. Every such point is in the
 * prime-order subgroup: it comes from the generator, from decode (which checks exactly what noble's
 * fromBytes + isTorsionFree check) or from group operations on such points. So:
 *  - eq is a byte comparison (libsodium always writes canonical encodings);
 *  - neg flips the sign bit, except for the identity (the only subgroup point with x = 0);
 *  - libsodium refuses to multiply the identity, and refuses a zero scalar or an identity result
 *    (returns -1): k = 0 and P = identity are answered here, and for 1 <= k < L and P != identity
 *    in the prime-order subgroup the result is never the identity.
 *  - crypto_core_ed25519_add/sub accept the identity and may return it (sums that cancel).
 * Scalars are bigints with noble's scalar field (Fn), as in the noble backend: field arithmetic is
 * cheap, point operations are the cost.
 *
 * crypto_scalarmult_ed25519_noclamp re-checks that its point is in the prime-order subgroup on every
 * call (a multiplication by L): variable-base multiplication costs about 5x the fixed-base one, so
 * multiples of the generator always go through crypto_scalarmult_ed25519_base_noclamp.
 */
import { createRequire } from 'node:module';
import { ed25519 } from '@noble/curves/ed25519.js';
import { InvalidEncoding, scalarCodec, type Group } from './group.js';

/** The part of sodium-native this backend uses (the package ships no types). */
interface SodiumNative {
  crypto_scalarmult_ed25519_base_noclamp(q: Uint8Array, n: Uint8Array): void;
  crypto_scalarmult_ed25519_noclamp(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_core_ed25519_add(r: Uint8Array, p: Uint8Array, q: Uint8Array): void;
  crypto_core_ed25519_sub(r: Uint8Array, p: Uint8Array, q: Uint8Array): void;
  crypto_core_ed25519_is_valid_point(p: Uint8Array): boolean;
  randombytes_buf(b: Uint8Array): void;
}

/** A point of the Ed25519 prime-order subgroup: its canonical encoding. Opaque to protocol code. */
export class Ed25519NativePoint {
  /** @internal use Group.encode for a copy. */
  constructor(readonly bytes: Uint8Array) {}
}

type Pt = Ed25519NativePoint;

const Fn = ed25519.Point.Fn;
const ORDER = Fn.ORDER;


/** 32-byte little-endian encoding of 0 <= k < 2^256 (callers range-check k). */
function scalarLE(k: bigint): Uint8Array {
  return Buffer.from(k.toString(16).padStart(64, '0'), 'hex').reverse();
}

/**
 * Scratch buffer for the scalar of a native multiplication (scalars may be secret): written,
 * passed to libsodium, zeroed. Calls are synchronous, so one buffer serves every call.
 */
const scratch = Buffer.alloc(32);
function withScalarLE<T>(k: bigint, f: (n: Uint8Array) => T): T {
  scratch.write(k.toString(16).padStart(64, '0'), 'hex');
  scratch.reverse();
  try {
    return f(scratch);
  } finally {
    scratch.fill(0);
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** y >= p = 2^255 - 19 (sign bit ignored): a non-canonical encoding, refused by noble (RFC 8032). */
function yNotCanonical(b: Uint8Array): boolean {
  if ((b[31]! & 0x7f) !== 0x7f) return false;
  for (let i = 30; i >= 1; i--) if (b[i] !== 0xff) return false;
  return b[0]! >= 0xed;
}

/** y = 1 or y = p - 1 with the sign bit set: x = 0 cannot be "negative" (noble rejects, RFC 8032). */
function negativeZeroX(b: Uint8Array): boolean {
  if ((b[31]! & 0x80) === 0) return false;
  if ((b[31]! & 0x7f) === 0 && b[0] === 1) {
    for (let i = 1; i < 31; i++) if (b[i] !== 0) return false;
    return true; // y = 1
  }
  if ((b[31]! & 0x7f) === 0x7f && b[0] === 0xec) {
    for (let i = 1; i < 31; i++) if (b[i] !== 0xff) return false;
    return true; // y = p - 1
  }
  return false;
}

/** Loads libsodium through sodium-native and builds the group. Throws if the addon does not load. */
export function sodiumEd25519Group(): Group<Ed25519NativePoint> {
  const require = createRequire(import.meta.url);
  const na = require('sodium-native') as SodiumNative;
  for (const f of [
    'crypto_scalarmult_ed25519_base_noclamp',
    'crypto_scalarmult_ed25519_noclamp',
    'crypto_core_ed25519_add',
    'crypto_core_ed25519_sub',
    'crypto_core_ed25519_is_valid_point',
    'randombytes_buf',
  ] as const) {
    if (typeof na[f] !== 'function') throw new Error(`sodium-native lacks ${f}`);
  }

  const identityBytes = new Uint8Array(32);
  identityBytes[0] = 1;
  const IDENTITY = new Ed25519NativePoint(identityBytes);
  const generatorBytes = new Uint8Array(32);
  na.crypto_scalarmult_ed25519_base_noclamp(generatorBytes, scalarLE(1n));
  const GENERATOR = new Ed25519NativePoint(generatorBytes);
  // The generator libsodium uses is RFC 8032's B (noble's BASE): y = 4/5.
  if (!sameBytes(generatorBytes, ed25519.Point.BASE.toBytes())) throw new Error('libsodium: unexpected Ed25519 base point');

  const pt = (p: unknown): Pt => {
    if (!(p instanceof Ed25519NativePoint)) throw new TypeError('expected a point of the libsodium Ed25519 backend');
    return p;
  };
  const isId = (p: Pt): boolean => p === IDENTITY || sameBytes(p.bytes, identityBytes);
  const isGen = (p: Pt): boolean => p === GENERATOR || sameBytes(p.bytes, generatorBytes);

  /** 1 <= k < L, as noble's Point.multiply requires. */
  const checkScalar = (k: bigint): void => {
    if (!Fn.isValidNot0(k)) throw new RangeError('invalid scalar: expected 1 <= sc < curve.n');
  };
  const base = (k: bigint): Pt => {
    const q = new Uint8Array(32);
    withScalarLE(k, (n) => na.crypto_scalarmult_ed25519_base_noclamp(q, n));
    return new Ed25519NativePoint(q);
  };
  /** k*P for 1 <= k < L and P != identity: never the identity, so libsodium never refuses. */
  const varMul = (p: Pt, k: bigint): Pt => {
    if (isGen(p)) return base(k);
    const q = new Uint8Array(32);
    withScalarLE(k, (n) => na.crypto_scalarmult_ed25519_noclamp(q, n, p.bytes));
    return new Ed25519NativePoint(q);
  };
  const add = (a: Pt, b: Pt): Pt => {
    if (isId(a)) return b;
    if (isId(b)) return a;
    const r = new Uint8Array(32);
    na.crypto_core_ed25519_add(r, a.bytes, b.bytes);
    return new Ed25519NativePoint(r);
  };
  const neg = (p: Pt): Pt => {
    if (isId(p)) return IDENTITY;
    const r = p.bytes.slice();
    r[31]! ^= 0x80;
    return new Ed25519NativePoint(r);
  };

  const decodeAny = (b: Uint8Array): Pt => {
    if (!(b instanceof Uint8Array) || b.length !== 32) throw new InvalidEncoding('point must be 32 bytes');
    // Copy first: the caller may reuse its buffer.
    const c = Uint8Array.prototype.slice.call(b);
    // Canonical y, on the curve, not of small order, in the prime-order subgroup.
    if (na.crypto_core_ed25519_is_valid_point(c)) return new Ed25519NativePoint(c);
    // The identity is of small order for libsodium but torsion-free for noble: accept its canonical
    // encoding here (decode() then refuses it, as the noble backend does).
    if (sameBytes(c, identityBytes)) return IDENTITY;
    // Refused. Give noble's reason: an invalid encoding (non-canonical y, x = 0 with the sign bit
    // set, no x for this y), or a point on the curve outside the prime-order subgroup.
    if (yNotCanonical(c) || negativeZeroX(c)) throw new InvalidEncoding('not a valid Ed25519 point encoding');
    try {
      // Decompresses and checks the curve equation, nothing more.
      na.crypto_core_ed25519_add(new Uint8Array(32), c, identityBytes);
    } catch {
      throw new InvalidEncoding('not a valid Ed25519 point encoding');
    }
    throw new InvalidEncoding('Ed25519 point is not in the prime-order subgroup');
  };

  const group: Group<Ed25519NativePoint> = {
    curve: 'ed25519',
    backend: 'libsodium',
    Fn,
    order: ORDER,
    pointLength: 32,
    scalarLength: 32,
    generator: GENERATOR,
    identity: IDENTITY,
    ...scalarCodec(ORDER, true, (s) => Fn.toBytes(s), (n) => {
      const b = new Uint8Array(n);
      na.randombytes_buf(b);
      return b;
    }),
    baseMul: (k) => {
      if (k === 0n) return IDENTITY;
      checkScalar(k);
      return base(k);
    },
    mul: (p, k) => {
      pt(p);
      if (k === 0n) return IDENTITY;
      checkScalar(k);
      return isId(p) ? IDENTITY : varMul(p, k);
    },
    add: (a, b) => add(pt(a), pt(b)),
    sub: (a, b) => {
      pt(a);
      pt(b);
      if (isId(b)) return a;
      if (isId(a)) return neg(b);
      const r = new Uint8Array(32);
      na.crypto_core_ed25519_sub(r, a.bytes, b.bytes);
      return new Ed25519NativePoint(r);
    },
    neg: (p) => neg(pt(p)),
    msm: (points, scalars) => {
      if (points.length !== scalars.length) throw new Error('msm: points and scalars differ in length');
      if (!Array.isArray(points)) throw new Error('expected array of points');
      points.forEach((p, i) => {
        if (!(p instanceof Ed25519NativePoint)) throw new Error('invalid point at index ' + i);
      });
      if (!Array.isArray(scalars)) throw new Error('array of scalars expected');
      scalars.forEach((s, i) => {
        if (!Fn.isValid(s)) throw new Error('invalid scalar at index ' + i);
      });
      // Public inputs: a sum of native multiplications (each is ~10x a native addition).
      let acc = IDENTITY;
      for (let i = 0; i < points.length; i++) {
        const k = scalars[i]!;
        const p = points[i]!;
        if (k === 0n || isId(p)) continue;
        acc = add(acc, varMul(p, k));
      }
      return acc;
    },
    eq: (a, b) => sameBytes(pt(a).bytes, pt(b).bytes),
    isIdentity: (p) => isId(pt(p)),
    encode: (p) => pt(p).bytes.slice(),
    decode: (b) => {
      const p = decodeAny(b);
      if (isId(p)) throw new InvalidEncoding('point is the identity');
      return p;
    },
    decodeAllowIdentity: decodeAny,
    hasEvenY: () => {
      throw new Error('hasEvenY is defined for secp256k1 only');
    },
  };
  return Object.freeze(group);
}
