/** Reference backend on @noble/curves: audited, pure TypeScript, the oracle for native backends. */
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { mulAddUnsafe, pippenger, type CurvePoint, type CurvePointCons } from '@noble/curves/abstract/curve.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { InvalidEncoding, scalarCodec, type CurveName, type Group } from './group.js';

type EdPoint = InstanceType<typeof ed25519.Point>;
type SecPoint = InstanceType<typeof secp256k1.Point>;


/** Strauss-Shamir for the few-point shapes of FROST and DKG checks; Pippenger pays off only for many points. */
function msm<T extends CurvePoint<bigint, T>>(P: CurvePointCons<T>, points: T[], scalars: bigint[]): T {
  if (points.length !== scalars.length) throw new Error('msm: points and scalars differ in length');
  return points.length <= 32 ? mulAddUnsafe(P, points, scalars) : pippenger(P, points, scalars);
}

function edGroup(): Group<EdPoint> {
  const P = ed25519.Point;
  const Fn = P.Fn;
  const decodeAny = (b: Uint8Array): EdPoint => {
    if (!(b instanceof Uint8Array) || b.length !== 32) throw new InvalidEncoding('point must be 32 bytes');
    let p: EdPoint;
    try {
      p = P.fromBytes(b); // rejects non-canonical y and points off the curve
    } catch {
      throw new InvalidEncoding('not a valid Ed25519 point encoding');
    }
    if (!p.isTorsionFree()) throw new InvalidEncoding('Ed25519 point is not in the prime-order subgroup');
    return p;
  };
  return {
    curve: 'ed25519',
    backend: 'noble',
    Fn,
    order: Fn.ORDER,
    pointLength: 32,
    scalarLength: 32,
    generator: P.BASE,
    identity: P.ZERO,
    ...scalarCodec(Fn.ORDER, true, (s) => Fn.toBytes(s), randomBytes),
    baseMul: (k) => (k === 0n ? P.ZERO : P.BASE.multiply(k)),
    mul: (p, k) => (k === 0n ? P.ZERO : p.multiply(k)),
    add: (a, b) => a.add(b),
    sub: (a, b) => a.subtract(b),
    neg: (p) => p.negate(),
    msm: (points, scalars) => msm<EdPoint>(P as unknown as CurvePointCons<EdPoint>, points as EdPoint[], scalars as bigint[]),
    eq: (a, b) => a.equals(b),
    isIdentity: (p) => p.is0(),
    encode: (p) => p.toBytes(),
    decode: (b) => {
      const p = decodeAny(b);
      if (p.is0()) throw new InvalidEncoding('point is the identity');
      return p;
    },
    decodeAllowIdentity: decodeAny,
    hasEvenY: () => {
      throw new Error('hasEvenY is defined for secp256k1 only');
    },
  };
}

function secpGroup(): Group<SecPoint> {
  const P = secp256k1.Point;
  const Fn = P.Fn;
  const decodeAny = (b: Uint8Array): SecPoint => {
    if (!(b instanceof Uint8Array) || b.length !== 33) throw new InvalidEncoding('point must be 33 bytes (compressed SEC1)');
    if (b.every((x) => x === 0)) return P.ZERO; // our identity encoding: 33 zero bytes
    try {
      const p = P.fromBytes(b);
      p.assertValidity();
      return p;
    } catch {
      throw new InvalidEncoding('not a valid secp256k1 point encoding');
    }
  };
  return {
    curve: 'secp256k1',
    backend: 'noble',
    Fn,
    order: Fn.ORDER,
    pointLength: 33,
    scalarLength: 32,
    generator: P.BASE,
    identity: P.ZERO,
    ...scalarCodec(Fn.ORDER, false, (s) => Fn.toBytes(s), randomBytes),
    baseMul: (k) => (k === 0n ? P.ZERO : P.BASE.multiply(k)),
    mul: (p, k) => (k === 0n || p.is0() ? P.ZERO : p.multiply(k)),
    add: (a, b) => a.add(b),
    sub: (a, b) => a.subtract(b),
    neg: (p) => p.negate(),
    msm: (points, scalars) => msm<SecPoint>(P as unknown as CurvePointCons<SecPoint>, points as SecPoint[], scalars as bigint[]),
    eq: (a, b) => a.equals(b),
    isIdentity: (p) => p.is0(),
    encode: (p) => (p.is0() ? new Uint8Array(33) : p.toBytes(true)),
    decode: (b) => {
      const p = decodeAny(b);
      if (p.is0()) throw new InvalidEncoding('point is the identity');
      return p;
    },
    decodeAllowIdentity: decodeAny,
    hasEvenY: (p) => p.toAffine().y % 2n === 0n,
  };
}

const cache = new Map<CurveName, Group<unknown>>();

/** The noble backend for a curve (memoised: groups are stateless). */
export function nobleGroup(curve: CurveName): Group<unknown> {
  let g = cache.get(curve);
  if (!g) {
    g = (curve === 'ed25519' ? edGroup() : secpGroup()) as Group<unknown>;
    cache.set(curve, g);
  }
  return g;
}
