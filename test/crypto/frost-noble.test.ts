/**
 * Interop with @noble/curves FROST, our oracle (DESIGN.md section 5): noble's shares sign under
 * our code, our shares sign under noble's, mixed signing sets, every 2-of-3 subset and some 3-of-5
 * subsets, and external verifiers (node:crypto Ed25519, noble BIP-340, noble secp256k1 FROST).
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ed25519_FROST } from '@noble/curves/ed25519.js';
import { schnorr, schnorr_FROST, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { ciphersuite, type Ciphersuite, type FrostScheme } from '../../crypto/frost/ciphersuite.js';
import {
  aggregate,
  generateNonces,
  nonceCommitments,
  prepareSession,
  signShare,
  verifyShare,
  verifySignature,
  type Nonces,
  type SignerCommitment,
} from '../../crypto/frost/sign.js';
import { evalPolynomial } from '../../crypto/shamir.js';

type NobleFrost = typeof ed25519_FROST;
type NoblePublic = ReturnType<NobleFrost['trustedDealer']>['public'];
type NobleSecret = ReturnType<NobleFrost['trustedDealer']>['secretShares'][string];
type NobleCommitment = ReturnType<NobleFrost['commit']>['commitments'];
type P = unknown;

const SUITES: { scheme: FrostScheme; noble: NobleFrost }[] = [
  { scheme: 'ed25519', noble: ed25519_FROST },
  { scheme: 'secp256k1', noble: secp256k1_FROST },
  { scheme: 'bip340', noble: schnorr_FROST },
];

/** One keyset seen both ways: our decoded values and noble's packages. */
interface Keyset {
  t: number;
  n: number;
  PK: P;
  shares: Map<number, bigint>;
  verifyingShares: Map<number, P>;
  pub: NoblePublic;
  secrets: Map<number, NobleSecret>;
}

function fromNobleDealer(cs: Ciphersuite<P>, noble: NobleFrost, t: number, n: number, secret?: bigint): Keyset {
  const g = cs.group;
  const deal = noble.trustedDealer({ min: t, max: n }, undefined, secret === undefined ? undefined : g.scalarToBytes(secret));
  const ks: Keyset = { t, n, PK: g.decode(deal.public.commitments[0]!), shares: new Map(), verifyingShares: new Map(), pub: deal.public, secrets: new Map() };
  for (let i = 1; i <= n; i++) {
    const id = noble.Identifier.fromNumber(i);
    const s = deal.secretShares[id]!;
    expect(s.identifier).toBe(id);
    ks.shares.set(i, g.scalarFromBytes(s.signingShare));
    ks.verifyingShares.set(i, g.decode(deal.public.verifyingShares[id]!));
    ks.secrets.set(i, s);
  }
  return ks;
}

/** Test-only trusted dealer over our Group and Shamir code. */
function ourDealer(cs: Ciphersuite<P>, noble: NobleFrost, t: number, n: number): Keyset {
  const g = cs.group;
  const coefficients = Array.from({ length: t }, () => g.randomScalar());
  const commitments = coefficients.map((c) => g.baseMul(c));
  const ks: Keyset = {
    t,
    n,
    PK: commitments[0]!,
    shares: new Map(),
    verifyingShares: new Map(),
    pub: { signers: { min: t, max: n }, commitments: commitments.map((c) => g.encode(c)), verifyingShares: {} } as NoblePublic,
    secrets: new Map(),
  };
  for (let i = 1; i <= n; i++) {
    const s = evalPolynomial(g.Fn, coefficients, BigInt(i));
    const id = noble.Identifier.fromNumber(i);
    ks.shares.set(i, s);
    ks.verifyingShares.set(i, g.baseMul(s));
    ks.pub.verifyingShares[id] = g.encode(g.baseMul(s)) as NoblePublic['verifyingShares'][string];
    ks.secrets.set(i, { identifier: id, signingShare: g.scalarToBytes(s) } as NobleSecret);
  }
  noble.validateSecret(ks.secrets.get(1)!, ks.pub); // noble agrees the dealing is consistent
  return ks;
}

type Impl = 'ours' | 'noble';

interface Attempt {
  session: ReturnType<typeof prepareSession<P>>;
  nobleList: NobleCommitment[];
  shares: Map<number, bigint>;
  nobleShares: Record<string, Uint8Array>;
}

/** Round one and two for `signers`, each done by the implementation `impl(i)` says. */
function signRound(cs: Ciphersuite<P>, noble: NobleFrost, ks: Keyset, signers: number[], message: Uint8Array, impl: (i: number) => Impl): Attempt {
  const g = cs.group;
  const ours = new Map<number, Nonces>();
  const nobles = new Map<number, ReturnType<NobleFrost['commit']>['nonces']>();
  const commitments: SignerCommitment<P>[] = [];
  const nobleList: NobleCommitment[] = [];
  for (const i of signers) {
    const id = noble.Identifier.fromNumber(i);
    if (impl(i) === 'ours') {
      // Alternate between share-hedged nonces and pool-style nonces made without the share.
      const nonces = generateNonces(cs, i % 2 === 0 ? undefined : ks.shares.get(i));
      const c = nonceCommitments(cs, nonces);
      ours.set(i, nonces);
      commitments.push({ index: i, ...c });
      nobleList.push({ identifier: id, hiding: g.encode(c.hiding), binding: g.encode(c.binding) } as NobleCommitment);
    } else {
      const { nonces, commitments: c } = noble.commit(ks.secrets.get(i)!);
      nobles.set(i, nonces);
      commitments.push({ index: i, hiding: g.decode(c.hiding), binding: g.decode(c.binding) });
      nobleList.push(c);
    }
  }
  const session = prepareSession(cs, ks.PK, commitments, message);
  const shares = new Map<number, bigint>();
  const nobleShares: Record<string, Uint8Array> = {};
  for (const i of signers) {
    const id = noble.Identifier.fromNumber(i);
    const z =
      impl(i) === 'ours'
        ? signShare(cs, { index: i, secretShare: ks.shares.get(i)!, nonces: ours.get(i)!, session })
        : g.scalarFromBytes(noble.signShare(ks.secrets.get(i)!, ks.pub, nobles.get(i)!, nobleList, message));
    shares.set(i, z);
    nobleShares[id] = g.scalarToBytes(z);
  }
  return { session, nobleList, shares, nobleShares };
}

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');

/** Verifiers that are not ours and not noble's FROST code where one exists. */
function externalVerify(cs: Ciphersuite<P>, noble: NobleFrost, sig: Uint8Array, message: Uint8Array, PK: P): boolean {
  const pk = cs.encodePublicKey(PK);
  if (cs.scheme === 'ed25519') {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pk) }, format: 'jwk' });
    return nodeVerify(null, message, key, sig);
  }
  if (cs.scheme === 'bip340') return schnorr.verify(sig, message, pk);
  return noble.verify(sig, message, pk);
}

function subsets(n: number, k: number): number[][] {
  const out: number[][] = [];
  const rec = (start: number, acc: number[]) => {
    if (acc.length === k) return void out.push(acc.slice());
    for (let i = start; i <= n; i++) rec(i + 1, [...acc, i]);
  };
  rec(1, []);
  return out;
}

const msg = (s: string) => new TextEncoder().encode(s);

describe.each(SUITES)('FROST interop with noble: $scheme', ({ scheme, noble }) => {
  const cs = ciphersuite(scheme);
  const g = cs.group;

  function checkSignature(ks: Keyset, sig: Uint8Array, message: Uint8Array): void {
    expect(sig.length).toBe(cs.signatureLength);
    expect(verifySignature(cs, sig, message, ks.PK)).toBe(true);
    expect(cs.verify(sig, message, cs.encodePublicKey(ks.PK))).toBe(true);
    expect(noble.verify(sig, message, cs.encodePublicKey(ks.PK))).toBe(true);
    expect(externalVerify(cs, noble, sig, message, ks.PK)).toBe(true);
  }

  it('maps our index i to noble identifier i in the suite scalar encoding', () => {
    for (const i of [1, 2, 3, 255, 256, 1000]) expect(noble.Identifier.fromNumber(i)).toBe(Buffer.from(g.scalarToBytes(BigInt(i))).toString('hex'));
  });

  it('(a) noble trusted-dealer shares, our signing and aggregation: verifies under noble and ours', () => {
    const ks = fromNobleDealer(cs, noble, 2, 3);
    const m = msg(`a ${scheme}`);
    const at = signRound(cs, noble, ks, [1, 3], m, () => 'ours');
    for (const [i, z] of at.shares) {
      expect(verifyShare(cs, { index: i, verifyingShare: ks.verifyingShares.get(i)!, share: z, session: at.session })).toBe(true);
      expect(noble.verifyShare(ks.pub, at.nobleList, m, noble.Identifier.fromNumber(i), g.scalarToBytes(z))).toBe(true);
    }
    const sig = aggregate(cs, { session: at.session, shares: at.shares, verifyingShares: ks.verifyingShares });
    checkSignature(ks, sig, m);
    // Same shares through noble's aggregator give byte-identical signatures.
    expect(Buffer.from(noble.aggregate(ks.pub, at.nobleList, m, at.nobleShares)).toString('hex')).toBe(Buffer.from(sig).toString('hex'));
  });

  it('(b) our dealing: noble signs and we aggregate', () => {
    const ks = ourDealer(cs, noble, 2, 3);
    const m = msg(`b1 ${scheme}`);
    const at = signRound(cs, noble, ks, [2, 3], m, () => 'noble');
    for (const [i, z] of at.shares) {
      expect(verifyShare(cs, { index: i, verifyingShare: ks.verifyingShares.get(i)!, share: z, session: at.session })).toBe(true);
    }
    checkSignature(ks, aggregate(cs, { session: at.session, shares: at.shares, verifyingShares: ks.verifyingShares }), m);
  });

  it('(b) our dealing: we sign and noble aggregates', () => {
    const ks = ourDealer(cs, noble, 2, 3);
    const m = msg(`b2 ${scheme}`);
    const at = signRound(cs, noble, ks, [1, 2], m, () => 'ours');
    for (const [i, z] of at.shares) {
      expect(noble.verifyShare(ks.pub, at.nobleList, m, noble.Identifier.fromNumber(i), g.scalarToBytes(z))).toBe(true);
    }
    checkSignature(ks, noble.aggregate(ks.pub, at.nobleList, m, at.nobleShares), m);
  });

  it('(c) mixed signers: one share from noble, one from us, aggregated by both', () => {
    for (const dealer of ['noble', 'ours'] as const) {
      const ks = dealer === 'noble' ? fromNobleDealer(cs, noble, 2, 3) : ourDealer(cs, noble, 2, 3);
      const m = msg(`c ${scheme} ${dealer}`);
      const at = signRound(cs, noble, ks, [1, 2], m, (i) => (i === 1 ? 'noble' : 'ours'));
      const ourSig = aggregate(cs, { session: at.session, shares: at.shares, verifyingShares: ks.verifyingShares });
      const nobleSig = noble.aggregate(ks.pub, at.nobleList, m, at.nobleShares);
      expect(Buffer.from(nobleSig).equals(Buffer.from(ourSig))).toBe(true);
      checkSignature(ks, ourSig, m);
    }
  });

  it('(d) 2-of-3: every 2-subset', () => {
    const ks = fromNobleDealer(cs, noble, 2, 3);
    const sets = subsets(3, 2);
    expect(sets).toHaveLength(3);
    for (const set of sets) {
      const m = msg(`d 2-of-3 ${set.join(',')}`);
      const at = signRound(cs, noble, ks, set, m, (i) => (i === set[0] ? 'ours' : 'noble'));
      checkSignature(ks, aggregate(cs, { session: at.session, shares: at.shares, verifyingShares: ks.verifyingShares }), m);
    }
  });

  it('(d) 3-of-5 on several subsets, including all-ours and all-noble', () => {
    const ks = ourDealer(cs, noble, 3, 5);
    const cases: [number[], (i: number) => Impl][] = [
      [[1, 2, 3], () => 'ours'],
      [[1, 3, 5], () => 'noble'],
      [[2, 4, 5], (i) => (i === 4 ? 'noble' : 'ours')],
      [[3, 4, 5], (i) => (i === 4 ? 'ours' : 'noble')],
    ];
    for (const [set, impl] of cases) {
      const m = msg(`d 3-of-5 ${set.join(',')}`);
      const at = signRound(cs, noble, ks, set, m, impl);
      const sig = aggregate(cs, { session: at.session, shares: at.shares, verifyingShares: ks.verifyingShares });
      checkSignature(ks, sig, m);
      expect(Buffer.from(noble.aggregate(ks.pub, at.nobleList, m, at.nobleShares)).equals(Buffer.from(sig))).toBe(true);
    }
  });

  it('a single-key signature made by noble verifies under our verifier', () => {
    const sk = g.randomScalar();
    const m = msg(`single ${scheme}`);
    const sig = noble.sign(m, g.scalarToBytes(sk));
    expect(cs.verify(sig, m, cs.encodePublicKey(g.baseMul(sk)))).toBe(true);
    expect(cs.verify(sig, msg('other'), cs.encodePublicKey(g.baseMul(sk)))).toBe(false);
  });
});

describe('bip340 even-Y handling against noble schnorr_FROST', () => {
  const cs = ciphersuite('bip340');
  const g = cs.group;

  it.each(['even', 'odd'] as const)('group key with %s Y: both R parities sign and verify', (parity) => {
    let sk = g.randomScalar();
    if (g.hasEvenY(g.baseMul(sk)) !== (parity === 'even')) sk = g.Fn.neg(sk);
    const ks = fromNobleDealer(cs, schnorr_FROST, 2, 3, sk);
    expect(g.hasEvenY(ks.PK)).toBe(parity === 'even');
    const seen = new Set<boolean>();
    for (let attempt = 0; attempt < 64 && seen.size < 2; attempt++) {
      const m = msg(`parity ${parity} ${attempt}`);
      const at = signRound(cs, schnorr_FROST, ks, [1, 3], m, (i) => (i === 1 ? 'ours' : 'noble'));
      expect(at.session.negateKey).toBe(parity === 'odd');
      seen.add(at.session.negateNonces);
      for (const [i, z] of at.shares) {
        expect(verifyShare(cs, { index: i, verifyingShare: ks.verifyingShares.get(i)!, share: z, session: at.session })).toBe(true);
      }
      const sig = aggregate(cs, { session: at.session, shares: at.shares, verifyingShares: ks.verifyingShares });
      expect(schnorr.verify(sig, m, cs.encodePublicKey(ks.PK))).toBe(true);
      expect(schnorr_FROST.verify(sig, m, cs.encodePublicKey(ks.PK))).toBe(true);
      expect(verifySignature(cs, sig, m, ks.PK)).toBe(true);
    }
    expect([...seen].sort()).toEqual([false, true]); // odd and even R both exercised
  });

  it('verifies BIP-340 signatures made by noble schnorr.sign (odd and even keys)', () => {
    for (let k = 0; k < 8; k++) {
      const { secretKey, publicKey } = schnorr.keygen();
      const m = msg(`bip340 single ${k}`);
      const sig = schnorr.sign(m, secretKey);
      expect(cs.verify(sig, m, publicKey)).toBe(true);
      expect(cs.verify(sig, msg('other'), publicKey)).toBe(false);
    }
  });
});
