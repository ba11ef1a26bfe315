/**
 * Native group backends (libsodium for Ed25519, libsecp256k1 for secp256k1) against the noble
 * backend, the oracle: (a) every Group method on random and edge inputs, including invalid and
 * tricky encodings; (b) the protocols on the native backend (RFC 9591 vectors, FROST DKG + 2-of-3
 * signing, DKLs23 2-of-3 keygen + presign + sign), checked by noble verification.
 */
import { readFileSync } from 'node:fs';
import { ed25519, ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { schnorr, secp256k1, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ciphersuite, curveOf, FROST_SCHEMES, type FrostScheme } from '../../crypto/frost/ciphersuite.js';
import { frostDkg, type DkgOutput } from '../../crypto/frost/dkg.js';
import {
  aggregate,
  bindingFactors,
  generateNonces,
  nonceCommitments,
  prepareSession,
  signOwnShare,
  signShare,
  verifyShare,
  verifySignature,
  type SignerCommitment,
} from '../../crypto/frost/sign.js';
import {
  groupBackendStatus,
  groupFor,
  InvalidEncoding,
  nativeGroup,
  parseGroupBackend,
  selectedGroupBackend,
  setGroupBackend,
  withGroupBackend,
  type CurveName,
  type Group,
} from '../../crypto/group/index.js';
import { nobleGroup } from '../../crypto/group/noble.js';
import { evalPolynomial, lagrangeAtZero } from '../../crypto/shamir.js';
import type { EcdsaKeyShare } from '../../crypto/ecdsa/keygen.js';
import { keygenAllAsync, nobleAccepts, presignAll, signWith } from './support/ecdsa-driver.js';
import { runProtocol } from '../support/protocol-driver.js';

type P = unknown;
const CURVES: CurveName[] = ['ed25519', 'secp256k1'];
const EXPECTED_BACKEND: Record<CurveName, string> = { ed25519: 'libsodium', secp256k1: 'libsecp256k1' };
const hex = (b: Uint8Array) => bytesToHex(b);

function native(curve: CurveName): Group<P> {
  const g = nativeGroup(curve);
  if (!g) throw new Error(`native ${curve} backend did not load: ${JSON.stringify(groupBackendStatus().fallback)}`);
  return g;
}

/** What a call did: the encoding of a returned point, a returned value, or the error class and message. */
type Outcome = { ok: string } | { err: string };
function outcome(f: () => unknown, g: Group<P>): Outcome {
  try {
    const r = f();
    if (typeof r === 'bigint' || typeof r === 'boolean') return { ok: String(r) };
    if (r instanceof Uint8Array) return { ok: hex(r) };
    return { ok: hex(g.encode(r)) };
  } catch (e) {
    return { err: e instanceof InvalidEncoding ? `InvalidEncoding: ${e.message}` : e instanceof RangeError ? 'RangeError' : 'Error' };
  }
}

describe('backend selection', () => {
  it('native is the default and both native addons load here', () => {
    expect(selectedGroupBackend()).toBe('native');
    const s = groupBackendStatus();
    expect(s).toEqual({ requested: 'native', ed25519: 'libsodium', secp256k1: 'libsecp256k1', fallback: {} });
    for (const c of CURVES) {
      expect(groupFor(c).backend).toBe(EXPECTED_BACKEND[c]);
      expect(groupFor(c, 'native')).toBe(groupFor(c));
      expect(groupFor(c, 'noble')).toBe(nobleGroup(c));
      expect(groupFor(c, 'noble').backend).toBe('noble');
    }
  });

  it('setGroupBackend / withGroupBackend switch and restore; bad names throw', async () => {
    expect(setGroupBackend('noble')).toEqual({ requested: 'noble', ed25519: 'noble', secp256k1: 'noble', fallback: {} });
    expect(groupFor('ed25519').backend).toBe('noble');
    expect(ciphersuite('ed25519').group.backend).toBe('noble');
    setGroupBackend('native');
    expect(ciphersuite('ed25519').group.backend).toBe('libsodium');
    expect(withGroupBackend('noble', () => groupFor('secp256k1').backend)).toBe('noble');
    expect(selectedGroupBackend()).toBe('native');
    expect(() => withGroupBackend('noble', () => {
      throw new Error('boom');
    })).toThrow('boom');
    expect(selectedGroupBackend()).toBe('native');
    await withGroupBackend('noble', async () => {
      await Promise.resolve();
      expect(groupFor('secp256k1').backend).toBe('noble');
    });
    expect(selectedGroupBackend()).toBe('native');
    expect(parseGroupBackend(undefined)).toBe('native');
    expect(parseGroupBackend('')).toBe('native');
    expect(parseGroupBackend(' Noble ')).toBe('noble');
    expect(parseGroupBackend('native')).toBe('native');
    expect(() => parseGroupBackend('sodium')).toThrow(/unknown group backend/);
    expect(() => setGroupBackend('fast' as never)).toThrow(/unknown group backend/);
    expect(() => groupFor('ed25519', 'fast' as never)).toThrow(/unknown group backend/);
    expect(selectedGroupBackend()).toBe('native');
  });
});

describe.each(CURVES.map((curve) => ({ curve })))('native vs noble: $curve', ({ curve }) => {
  const nat = native(curve);
  const nob = nobleGroup(curve);
  const n = nob.order;
  const toNative = (p: P) => nat.decodeAllowIdentity(nob.encode(p));
  const same = (a: P, b: P) => expect(hex(nat.encode(a))).toBe(hex(nob.encode(b)));
  const edgeScalars = [0n, 1n, 2n, 3n, n - 1n, n - 2n, (n - 1n) / 2n, (n + 1n) / 2n, 1n << 128n, (1n << 252n) % n];
  const scalars = [...edgeScalars, ...Array.from({ length: 12 }, () => nob.randomScalar())];
  const randomPoints = Array.from({ length: 6 }, () => nob.baseMul(nob.randomScalar()));

  it('constants: field, order, lengths, generator, identity, backend name', () => {
    expect(nat.curve).toBe(curve);
    expect(nat.backend).toBe(EXPECTED_BACKEND[curve]);
    expect(nat.Fn).toBe(nob.Fn);
    expect(nat.order).toBe(nob.order);
    expect(nat.pointLength).toBe(nob.pointLength);
    expect(nat.scalarLength).toBe(nob.scalarLength);
    same(nat.generator, nob.generator);
    same(nat.identity, nob.identity);
    expect(nat.isIdentity(nat.identity)).toBe(true);
    expect(nat.isIdentity(nat.generator)).toBe(false);
  });

  it('scalar codecs and randomScalar', () => {
    for (const s of scalars) {
      expect(hex(nat.scalarToBytes(s))).toBe(hex(nob.scalarToBytes(s)));
      expect(nat.scalarFromBytes(nob.scalarToBytes(s))).toBe(s);
    }
    const le = curve === 'ed25519';
    const enc = (x: bigint, len = 32) => {
      const b = new Uint8Array(len);
      for (let i = 0; i < len; i++, x >>= 8n) b[le ? i : len - 1 - i] = Number(x & 0xffn);
      return b;
    };
    for (const b of [enc(n), enc(n + 1n), enc((1n << 256n) - 1n), enc(n - 1n), enc(0n), new Uint8Array(31), new Uint8Array(33), enc(5n, 31), enc(5n, 33)]) {
      expect(outcome(() => nat.scalarFromBytes(b), nat)).toEqual(outcome(() => nob.scalarFromBytes(b), nob));
    }
    for (let i = 0; i < 50; i++) {
      const s = nat.randomScalar();
      expect(s > 0n && s < n).toBe(true);
    }
    expect(nat.randomScalar()).not.toBe(nat.randomScalar());
  });

  it('baseMul, and out-of-range scalars throw like noble', () => {
    for (const k of scalars) same(nat.baseMul(k), nob.baseMul(k));
    for (const k of [n, n + 1n, -1n, 1n << 256n]) {
      expect(outcome(() => nat.baseMul(k), nat)).toEqual(outcome(() => nob.baseMul(k), nob));
      expect(outcome(() => nat.baseMul(k), nat)).toEqual({ err: 'RangeError' });
    }
  });

  it('mul: random points, the generator, the identity; edge and out-of-range scalars', () => {
    const points = [...randomPoints.slice(0, 3), nob.generator, nob.identity];
    const ks = [...edgeScalars, ...Array.from({ length: 3 }, () => nob.randomScalar())];
    for (const p of points) {
      for (const k of ks) same(nat.mul(toNative(p), k), nob.mul(p, k));
      for (const k of [n, -1n]) expect(outcome(() => nat.mul(toNative(p), k), nat)).toEqual(outcome(() => nob.mul(p, k), nob));
    }
  });

  it('add, sub, neg: random pairs, doubling, cancellation, the identity', () => {
    const [a, b, c] = randomPoints as [P, P, P];
    const I = nob.identity;
    const G = nob.generator;
    const pairs: [P, P][] = [
      [a, b],
      [b, c],
      [a, a],
      [a, nob.neg(a)],
      [a, I],
      [I, a],
      [I, I],
      [G, G],
      [G, nob.neg(G)],
      [nob.baseMul(n - 1n), G],
    ];
    for (const [x, y] of pairs) {
      same(nat.add(toNative(x), toNative(y)), nob.add(x, y));
      same(nat.sub(toNative(x), toNative(y)), nob.sub(x, y));
    }
    for (const x of [a, b, I, G, nob.neg(G)]) {
      same(nat.neg(toNative(x)), nob.neg(x));
      expect(nat.isIdentity(nat.add(toNative(x), nat.neg(toNative(x))))).toBe(true);
      expect(nat.eq(nat.sub(toNative(x), toNative(x)), nat.identity)).toBe(true);
    }
    // A longer chain: sum of k*G for k = 1..20 is 210*G.
    let acc = nat.identity;
    for (let k = 1n; k <= 20n; k++) acc = nat.add(acc, nat.baseMul(k));
    same(acc, nob.baseMul(210n));
  });

  it('msm: shapes, zeros, identities, cancellation, many points; bad input throws like noble', () => {
    const [a, b, c] = randomPoints as [P, P, P];
    const G = nob.generator;
    const I = nob.identity;
    const k = () => nob.randomScalar();
    const cases: [P[], bigint[]][] = [
      [[], []],
      [[a], [k()]],
      [[G, a], [k(), k()]],
      [[G, a], [0n, k()]],
      [[G, a], [k(), 0n]],
      [[a, b, c, G], [k(), k(), k(), k()]],
      [[a, I, b], [k(), k(), 0n]],
      [[a, a], [5n, n - 5n]], // cancels
      [[a, nob.neg(a)], [7n, 7n]], // cancels
      [[a, b, nob.neg(a)], [9n, 1n, 9n]], // partial cancellation
      [[a, a], [1n, 1n]], // doubling inside the sum
      [[G, G, G], [n - 1n, 1n, 1n]],
    ];
    // Past 32 points the noble backend switches to Pippenger.
    const many = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? G : randomPoints[i % randomPoints.length]!));
    cases.push([many, many.map(() => k())]);
    for (const [pts, ks] of cases) same(nat.msm(pts.map(toNative), ks), nob.msm(pts, ks));
    const bad: [P[], bigint[]][] = [
      [[a, b], [1n]],
      [[a], [n]],
      [[a], [-1n]],
    ];
    for (const [pts, ks] of bad) {
      const o = outcome(() => nat.msm(pts.map(toNative), ks), nat);
      expect(o).toEqual(outcome(() => nob.msm(pts, ks), nob));
      expect('err' in o).toBe(true);
    }
  });

  it('eq, isIdentity, hasEvenY', () => {
    const pts = [...randomPoints, nob.generator, nob.identity, nob.neg(nob.generator)];
    for (const x of pts) {
      expect(nat.isIdentity(toNative(x))).toBe(nob.isIdentity(x));
      for (const y of pts) expect(nat.eq(toNative(x), toNative(y))).toBe(nob.eq(x, y));
      expect(outcome(() => nat.hasEvenY(toNative(x)), nat)).toEqual(outcome(() => nob.hasEvenY(x), nob));
    }
    if (curve === 'secp256k1') {
      expect(nat.hasEvenY(nat.identity)).toBe(nob.hasEvenY(nob.identity));
      const parities = pts.filter((p) => !nob.isIdentity(p)).map((p) => nat.hasEvenY(toNative(p)));
      expect(parities).toContain(true);
      expect(parities).toContain(false);
    } else {
      expect(() => nat.hasEvenY(nat.generator)).toThrow(/secp256k1 only/);
    }
  });

  it('points of the other backend are refused, not misread', () => {
    expect(() => nat.add(nob.generator, nat.generator)).toThrow();
    expect(() => nat.encode(nob.generator)).toThrow();
    expect(() => nat.mul(nat.encode(nat.generator), 2n)).toThrow();
    expect(() => nat.msm([nob.generator], [1n])).toThrow();
    expect(() => nob.add(nat.generator, nob.generator)).toThrow();
  });

  it('encode / decode / decodeAllowIdentity round trip on valid points', () => {
    for (const p of [...randomPoints, nob.generator, nob.neg(nob.generator)]) {
      const e = nob.encode(p);
      const q = nat.decode(e);
      expect(hex(nat.encode(q))).toBe(hex(e));
      expect(nat.eq(nat.decodeAllowIdentity(e), q)).toBe(true);
    }
    // decode copies its input: reusing the caller's buffer does not change the point.
    const buf = nob.encode(randomPoints[0]!);
    const before = hex(buf);
    const q = nat.decode(buf);
    buf.fill(0);
    expect(hex(nat.encode(q))).toBe(before);
    // encode returns a fresh copy.
    const e = nat.encode(q);
    e.fill(0);
    expect(hex(nat.encode(q))).toBe(before);
  });

  it('decode agrees with noble on invalid and tricky encodings (result or InvalidEncoding message)', () => {
    const encs = curve === 'ed25519' ? trickyEd25519() : trickySecp256k1();
    let accepted = 0;
    let refused = 0;
    for (const b of encs) {
      for (const m of ['decode', 'decodeAllowIdentity'] as const) {
        const want = outcome(() => nob[m](b as Uint8Array), nob);
        expect(outcome(() => nat[m](b as Uint8Array), nat), `${m}(${b instanceof Uint8Array ? hex(b) : String(b)})`).toEqual(want);
        if ('ok' in want) accepted++;
        else refused++;
      }
    }
    expect(accepted).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(10);
  });
});

const ED_P = 2n ** 255n - 19n;
function leBytes(x: bigint, len = 32): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = 0; i < len; i++, x >>= 8n) b[i] = Number(x & 0xffn);
  return b;
}

/** Ed25519 encodings that test each rule: canonical y, x = 0 sign, on the curve, torsion, identity. */
function trickyEd25519(): unknown[] {
  const out: unknown[] = [];
  const withSign = (b: Uint8Array) => {
    const c = b.slice();
    c[31]! ^= 0x80;
    return c;
  };
  const torsion = ED25519_TORSION_SUBGROUP.map((h) => hexToBytes(h));
  for (const t of torsion) out.push(t, withSign(t));
  // y = 1 (identity), y = p - 1 (order 2), both signs.
  for (const y of [1n, ED_P - 1n, 0n]) out.push(leBytes(y), withSign(leBytes(y)));
  // Non-canonical y in [p, 2^255): y = p + 1 is "the identity", y = p - 1 + p does not fit.
  for (let y = ED_P; y < 2n ** 255n; y++) out.push(leBytes(y), withSign(leBytes(y)));
  // Valid points, their negations, and valid points plus a torsion point.
  for (let i = 0; i < 4; i++) {
    const P = ed25519.Point.BASE.multiply(ed25519.Point.Fn.create(BigInt('0x' + bytesToHex(randomBytes(32)))));
    out.push(P.toBytes(), P.negate().toBytes());
    for (const t of torsion.slice(1, 4)) out.push(P.add(ed25519.Point.fromBytes(t)).toBytes());
  }
  // Random strings: about half are y with no x, most others are off the prime-order subgroup.
  for (let i = 0; i < 60; i++) out.push(randomBytes(32));
  // Wrong lengths and types.
  out.push(new Uint8Array(31), new Uint8Array(33), new Uint8Array(0), ed25519.Point.BASE.toBytes().subarray(1), Array.from(ed25519.Point.BASE.toBytes()));
  return out;
}

const K1_P = 2n ** 256n - 2n ** 32n - 977n;
function beBytes(x: bigint, len = 32): Uint8Array {
  const b = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--, x >>= 8n) b[i] = Number(x & 0xffn);
  return b;
}

/** secp256k1 encodings: prefixes, x >= p, x with no y, the zero encoding, lengths. */
function trickySecp256k1(): unknown[] {
  const out: unknown[] = [];
  const withPrefix = (prefix: number, x: Uint8Array) => {
    const b = new Uint8Array(33);
    b[0] = prefix;
    b.set(x, 1);
    return b;
  };
  const G = secp256k1.Point.BASE;
  const pts = [G, G.negate(), ...Array.from({ length: 4 }, () => G.multiply(secp256k1.Point.Fn.create(BigInt('0x' + bytesToHex(randomBytes(32))) + 1n)))];
  for (const P of pts) {
    const c = P.toBytes(true);
    out.push(c);
    for (const prefix of [0x00, 0x01, 0x04, 0x05, 0x06, 0x07, 0x02 ^ 0x01 ^ c[0]!, 0xff]) out.push(withPrefix(prefix, c.subarray(1)));
    out.push(P.toBytes(false), c.subarray(1), c.subarray(0, 32));
  }
  out.push(new Uint8Array(33)); // our identity encoding
  const z = new Uint8Array(33);
  z[32] = 1;
  out.push(z);
  // x = 0 and x = 1 have no y; x in [p, 2^256) is not a field element (x - p would be).
  for (const x of [0n, 1n, K1_P - 1n, K1_P, K1_P + 1n, K1_P + 7n, 2n ** 256n - 1n]) {
    for (const prefix of [0x02, 0x03]) out.push(withPrefix(prefix, beBytes(x)));
  }
  for (let i = 0; i < 60; i++) out.push(withPrefix(0x02 | (i & 1), randomBytes(32)));
  out.push(new Uint8Array(32), new Uint8Array(34), new Uint8Array(65), new Uint8Array(0), Array.from(G.toBytes(true)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// (b) The protocols on the native backend.

interface VectorFile {
  inputs: {
    participant_list: number[];
    group_secret_key: string;
    group_public_key?: string;
    verifying_key_key?: string;
    message: string;
    participant_shares: { identifier: number; participant_share: string }[];
  };
  round_one_outputs: {
    outputs: {
      identifier: number;
      hiding_nonce_randomness: string;
      binding_nonce_randomness: string;
      hiding_nonce_commitment: string;
      binding_nonce_commitment: string;
      binding_factor: string;
    }[];
  };
  round_two_outputs: { outputs: { identifier: number; sig_share: string }[] };
  final_output: { sig: string };
}
const VECTORS: { file: string; scheme: FrostScheme }[] = [
  { file: 'ed25519-sha512.json', scheme: 'ed25519' },
  { file: 'secp256k1-sha256.json', scheme: 'secp256k1' },
  { file: 'secp256k1-tr-bip340.json', scheme: 'bip340' },
];

describe.each(VECTORS)('RFC 9591 vectors on the native backend: $file', ({ file, scheme }) => {
  it('nonces, commitments, binding factors, shares and the signature match', () => {
    const v = JSON.parse(readFileSync(new URL(`../vectors/frost/${file}`, import.meta.url), 'utf8')) as VectorFile;
    const g = native(curveOf(scheme));
    const cs = ciphersuite(scheme, g);
    expect(cs.group).toBe(g);
    const sx = (s: bigint) => hex(g.scalarToBytes(s));
    const scalar = (h: string) => g.scalarFromBytes(hexToBytes(h));
    const message = hexToBytes(v.inputs.message);
    const PK = g.baseMul(scalar(v.inputs.group_secret_key));
    expect(hex(g.encode(PK))).toBe(v.inputs.group_public_key ?? v.inputs.verifying_key_key);
    const shareOf = new Map(v.inputs.participant_shares.map((p) => [p.identifier, scalar(p.participant_share)]));
    const commitments: SignerCommitment<P>[] = v.round_one_outputs.outputs.map((o) => ({
      index: o.identifier,
      hiding: g.decode(hexToBytes(o.hiding_nonce_commitment)),
      binding: g.decode(hexToBytes(o.binding_nonce_commitment)),
    }));
    const nonces = new Map(
      v.round_one_outputs.outputs.map((o) => {
        const n = generateNonces(cs, shareOf.get(o.identifier), { hiding: hexToBytes(o.hiding_nonce_randomness), binding: hexToBytes(o.binding_nonce_randomness) });
        const c = nonceCommitments(cs, n);
        expect(hex(g.encode(c.hiding))).toBe(o.hiding_nonce_commitment);
        expect(hex(g.encode(c.binding))).toBe(o.binding_nonce_commitment);
        return [o.identifier, n];
      }),
    );
    const rho = bindingFactors(cs, PK, commitments, message);
    for (const o of v.round_one_outputs.outputs) expect(sx(rho.get(o.identifier)!)).toBe(o.binding_factor);
    const session = prepareSession(cs, PK, commitments, message);
    const shares = new Map<number, bigint>();
    for (const o of v.round_two_outputs.outputs) {
      const z = signShare(cs, { index: o.identifier, secretShare: shareOf.get(o.identifier)!, nonces: nonces.get(o.identifier)!, session });
      expect(sx(z)).toBe(o.sig_share);
      // The node's path: own commitment as bytes, own term by a fixed-base multiplication.
      const own = signOwnShare(cs, {
        index: o.identifier,
        secretShare: shareOf.get(o.identifier)!,
        nonces: nonces.get(o.identifier)!,
        groupPublicKey: PK,
        message,
        peers: commitments.filter((c) => c.index !== o.identifier),
        listed: { hiding: g.encode(commitments.find((c) => c.index === o.identifier)!.hiding), binding: g.encode(commitments.find((c) => c.index === o.identifier)!.binding) },
      });
      expect(sx(own.share)).toBe(o.sig_share);
      expect(g.eq(own.R, session.R)).toBe(true);
      expect(verifyShare(cs, { index: o.identifier, verifyingShare: g.baseMul(shareOf.get(o.identifier)!), share: z, session })).toBe(true);
      shares.set(o.identifier, z);
    }
    const sig = aggregate(cs, { session, shares });
    expect(hex(sig)).toBe(scheme === 'bip340' ? v.final_output.sig.slice(2) : v.final_output.sig);
    expect(verifySignature(cs, sig, message, PK)).toBe(true);
    // And the noble backend's suite agrees.
    expect(ciphersuite(scheme, nobleGroup(curveOf(scheme))).verify(sig, message, cs.encodePublicKey(PK))).toBe(true);
  });
});

/** noble's own verification of a FROST signature (the oracle). */
function nobleVerifies(scheme: FrostScheme, sig: Uint8Array, msg: Uint8Array, groupPublicKey: Uint8Array): boolean {
  if (scheme === 'ed25519') return ed25519.verify(sig, msg, groupPublicKey);
  if (scheme === 'bip340') return schnorr.verify(sig, msg, groupPublicKey.length === 33 ? groupPublicKey.subarray(1) : groupPublicKey);
  return secp256k1_FROST.verify(sig, msg, groupPublicKey);
}

describe.each(FROST_SCHEMES.map((scheme) => ({ scheme })))('FROST on the native backend: $scheme', ({ scheme }) => {
  const range = (k: number) => Array.from({ length: k }, (_, i) => i + 1);

  it('DKG 2-of-3, then 2-of-3 signing with every signer pair; noble verifies', () => {
    const g = native(curveOf(scheme));
    const cs = ciphersuite(scheme, g);
    const parties = range(3);
    const r = runProtocol(frostDkg, new Map(parties.map((i) => [i, { scheme, sessionId: `native-${scheme}`, self: i, participants: parties, threshold: 2, group: g }])));
    expect(r.aborts.size).toBe(0);
    const outs = r.outputs as Map<number, DkgOutput>;
    const first = outs.get(1)!;
    for (const o of outs.values()) expect(hex(o.groupPublicKey)).toBe(hex(first.groupPublicKey));
    for (const [i, o] of outs) expect(hex(g.encode(g.baseMul(o.secretShare)))).toBe(hex(first.verifyingShares.get(i)!));
    const PK = g.decode(first.groupPublicKey);
    const verifying = new Map([...first.verifyingShares].map(([i, v]) => [i, g.decode(v)]));
    for (const signers of [
      [1, 2],
      [1, 3],
      [2, 3],
    ]) {
      const message = new TextEncoder().encode(`native ${scheme} ${signers.join(',')}`);
      const nonces = new Map(signers.map((i) => [i, generateNonces(cs, outs.get(i)!.secretShare)]));
      const commitments = signers.map((i) => ({ index: i, ...nonceCommitments(cs, nonces.get(i)!) }));
      const session = prepareSession(cs, PK, commitments, message);
      const shares = new Map(signers.map((i) => [i, signShare(cs, { index: i, secretShare: outs.get(i)!.secretShare, nonces: nonces.get(i)!, session })]));
      const sig = aggregate(cs, { session, shares, verifyingShares: verifying });
      expect(nobleVerifies(scheme, sig, message, cs.encodePublicKey(PK))).toBe(true);
      expect(cs.verify(sig, message, cs.encodePublicKey(PK))).toBe(true);
      expect(ciphersuite(scheme, nobleGroup(curveOf(scheme))).verify(sig, message, cs.encodePublicKey(PK))).toBe(true);
      const bad = sig.slice();
      bad[bad.length - 1]! ^= 1;
      expect(cs.verify(bad, message, cs.encodePublicKey(PK))).toBe(false);
    }
    // Lagrange interpolation of any two shares gives the group key.
    const sk = [1, 3].reduce((acc, i) => g.Fn.add(acc, g.Fn.mul(lagrangeAtZero(g.Fn, i, [1, 3]), outs.get(i)!.secretShare)), 0n);
    expect(g.eq(g.baseMul(sk), PK)).toBe(true);
  });

  it('a trusted-dealer key signs on the native backend and verifies on noble (and vice versa)', () => {
    const curve = curveOf(scheme);
    for (const [signWith, checkWith] of [
      [native(curve), nobleGroup(curve)],
      [nobleGroup(curve), native(curve)],
    ] as const) {
      const cs = ciphersuite(scheme, signWith);
      const g = cs.group;
      const coeffs = [g.randomScalar(), g.randomScalar()];
      const PK = g.baseMul(coeffs[0]!);
      const share = (i: number) => evalPolynomial(g.Fn, coeffs, BigInt(i));
      const message = randomBytes(40);
      const signers = [2, 3];
      const nonces = new Map(signers.map((i) => [i, generateNonces(cs, share(i))]));
      const session = prepareSession(cs, PK, signers.map((i) => ({ index: i, ...nonceCommitments(cs, nonces.get(i)!) })), message);
      const shares = new Map(signers.map((i) => [i, signShare(cs, { index: i, secretShare: share(i), nonces: nonces.get(i)!, session })]));
      const sig = aggregate(cs, { session, shares });
      expect(ciphersuite(scheme, checkWith).verify(sig, message, cs.encodePublicKey(PK))).toBe(true);
      expect(nobleVerifies(scheme, sig, message, cs.encodePublicKey(PK))).toBe(true);
    }
  });
});

describe('DKLs23 on the native backend', () => {
  // The ECDSA code takes its group from groupFor('secp256k1') in several places (base OT, signing,
  // presignature codec), so this block selects the native backend for the whole file section and
  // restores the previous selection after.
  let before: ReturnType<typeof selectedGroupBackend>;
  let keys: Map<number, EcdsaKeyShare>;
  beforeAll(async () => {
    before = selectedGroupBackend();
    setGroupBackend('native');
    keys = await keygenAllAsync(3, 2);
  }, 600_000);
  afterAll(() => {
    setGroupBackend(before);
  });

  it('2-of-3 keygen, presign and sign with every signer pair; noble verifies and recovers the key', () => {
    expect(groupFor('secp256k1').backend).toBe('libsecp256k1');
    const pk = keys.get(1)!.publicKey;
    const g = groupFor('secp256k1');
    for (const [i, k] of keys) expect(hex(g.encode(g.baseMul(k.secretShare)))).toBe(hex(keys.get(1)!.verifyingShares.get(i)!));
    for (const signers of [
      [1, 2],
      [1, 3],
      [2, 3],
    ]) {
      const digest = sha256(new TextEncoder().encode(`native ecdsa ${signers.join(',')}`));
      const sig = signWith(presignAll(keys, signers), digest);
      expect(nobleAccepts(sig, digest, pk)).toBe(true);
    }
  });

  it('a key generated on the native backend signs on noble too (encodings are backend-neutral)', () => {
    const digest = sha256(new TextEncoder().encode('native key, noble signing'));
    const sig = withGroupBackend('noble', () => signWith(presignAll(keys, [1, 3]), digest));
    expect(nobleAccepts(sig, digest, keys.get(1)!.publicKey)).toBe(true);
  });
});
