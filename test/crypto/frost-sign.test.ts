/** Negative and unit tests for FROST signing: every check rejects what it should, and names who. */
import { describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { ciphersuite, curveOf, FROST_SCHEMES, type Ciphersuite, type FrostScheme } from '../../crypto/frost/ciphersuite.js';
import {
  aggregate,
  bindingFactors,
  FrostInputError,
  generateNonces,
  invalidShares,
  nonceCommitments,
  nonceGenerate,
  prepareSession,
  signOwnShare,
  signShare,
  verifyShare,
  verifySignature,
  type Nonces,
  type SignerCommitment,
} from '../../crypto/frost/sign.js';
import { groupFor, InvalidEncoding } from '../../crypto/group/index.js';
import { ProtocolAbort } from '../../crypto/protocol.js';
import { evalPolynomial } from '../../crypto/shamir.js';

type P = unknown;
const msg = (s: string) => new TextEncoder().encode(s);

function deal(cs: Ciphersuite<P>, t: number, n: number) {
  const g = cs.group;
  const coefficients = Array.from({ length: t }, () => g.randomScalar());
  const shares = new Map<number, bigint>();
  const verifyingShares = new Map<number, P>();
  for (let i = 1; i <= n; i++) {
    const s = evalPolynomial(g.Fn, coefficients, BigInt(i));
    shares.set(i, s);
    verifyingShares.set(i, g.baseMul(s));
  }
  return { PK: g.baseMul(coefficients[0]!), shares, verifyingShares };
}

function round(cs: Ciphersuite<P>, signers: number[]) {
  const nonces = new Map<number, Nonces>();
  const commitments: SignerCommitment<P>[] = [];
  for (const i of signers) {
    const n = generateNonces(cs, undefined);
    nonces.set(i, n);
    commitments.push({ index: i, ...nonceCommitments(cs, n) });
  }
  return { nonces, commitments };
}

function expectAbort(f: () => unknown, reason: string, blame: number[]): ProtocolAbort {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolAbort);
    const a = e as ProtocolAbort;
    expect(a.reason).toBe(reason);
    expect([...a.blame]).toEqual(blame);
    return a;
  }
  throw new Error('expected a ProtocolAbort');
}

describe.each(FROST_SCHEMES.map((scheme) => ({ scheme })))('FROST signing checks: $scheme', ({ scheme }) => {
  const cs = ciphersuite(scheme);
  const g = cs.group;
  const key = deal(cs, 2, 3);
  const message = msg(`negative ${scheme}`);

  function signAll(signers: number[], m = message) {
    const { nonces, commitments } = round(cs, signers);
    const session = prepareSession(cs, key.PK, commitments, m);
    const shares = new Map(signers.map((i) => [i, signShare(cs, { index: i, secretShare: key.shares.get(i)!, nonces: nonces.get(i)!, session })]));
    return { nonces, commitments, session, shares };
  }

  it('ciphersuite is memoised per scheme and backend, on the right curve', () => {
    expect(ciphersuite(scheme)).toBe(cs);
    expect(ciphersuite(scheme, groupFor(curveOf(scheme)))).toBe(cs);
    expect(g.curve).toBe(curveOf(scheme));
    const other: FrostScheme = curveOf(scheme) === 'ed25519' ? 'secp256k1' : 'ed25519';
    expect(() => ciphersuite(other, g)).toThrow(/needs a/);
  });

  it('streamed challenge equals H2 over the concatenated encodings', () => {
    const R = g.baseMul(g.randomScalar());
    const enc = cs.scheme === 'bip340' ? (p: P) => g.encode(p).subarray(1) : (p: P) => g.encode(p);
    const m = msg('challenge');
    expect(cs.challenge(R, key.PK, m)).toBe(cs.H2(new Uint8Array([...enc(R), ...enc(key.PK), ...m])));
  });

  it('nonces: deterministic with the share, fresh without it, never equal', () => {
    const random = { hiding: new Uint8Array(32).fill(7), binding: new Uint8Array(32).fill(9) };
    const s = key.shares.get(1)!;
    const a = generateNonces(cs, s, random);
    expect(generateNonces(cs, s, random)).toEqual(a);
    expect(a.hiding).not.toBe(a.binding);
    // Without a share, fresh bytes replace it: the same randomness gives different nonces.
    const b = generateNonces(cs, undefined, random);
    const c = generateNonces(cs, undefined, random);
    expect(b.hiding).not.toBe(c.hiding);
    expect(b.hiding).not.toBe(a.hiding);
    expect(() => nonceGenerate(cs, s, new Uint8Array(31))).toThrow(FrostInputError);
    expect(() => nonceGenerate(cs, g.order, random.hiding)).toThrow(/out of range/);
    expect(() => nonceCommitments(cs, { hiding: 0n, binding: 1n })).toThrow(/already consumed/);
  });

  it('a tampered share fails verifyShare, and aggregate names its index', () => {
    const { session, shares } = signAll([1, 3]);
    const tampered = new Map(shares);
    tampered.set(3, g.Fn.add(shares.get(3)!, 1n));
    const ok = (i: number, z: bigint) => verifyShare(cs, { index: i, verifyingShare: key.verifyingShares.get(i)!, share: z, session });
    expect(ok(1, tampered.get(1)!)).toBe(true);
    expect(ok(3, shares.get(3)!)).toBe(true);
    expect(ok(3, tampered.get(3)!)).toBe(false);
    // A valid share checked against another signer's verifying share fails too.
    expect(verifyShare(cs, { index: 1, verifyingShare: key.verifyingShares.get(2)!, share: shares.get(1)!, session })).toBe(false);
    expect(invalidShares(cs, session, tampered, key.verifyingShares)).toEqual([3]);
    const abort = expectAbort(() => aggregate(cs, { session, shares: tampered, verifyingShares: key.verifyingShares }), 'proof-failed', [3]);
    expect(abort.message).toMatch(/participants 3 failed/);
    expectAbort(() => aggregate(cs, { session, shares: tampered }), 'check-failed', []);
    // Untampered, the same call succeeds.
    expect(verifySignature(cs, aggregate(cs, { session, shares, verifyingShares: key.verifyingShares }), message, key.PK)).toBe(true);
  });

  it('aggregate rejects missing, extra and out-of-range shares', () => {
    const { session, shares } = signAll([1, 2]);
    expectAbort(() => aggregate(cs, { session, shares: new Map([[1, shares.get(1)!]]) }), 'missing-message', [2]);
    expectAbort(() => aggregate(cs, { session, shares: new Map([...shares, [3, 5n]]) }), 'unexpected-message', [3]);
    expectAbort(() => aggregate(cs, { session, shares: new Map([...shares, [2, g.order]]) }), 'malformed-message', [2]);
    expect(verifyShare(cs, { index: 2, verifyingShare: key.verifyingShares.get(2)!, share: shares.get(2)! + g.order, session })).toBe(false);
  });

  it('a signature does not verify for another message, a flipped bit or a non-canonical scalar', () => {
    const { session, shares } = signAll([2, 3]);
    const sig = aggregate(cs, { session, shares });
    const pk = cs.encodePublicKey(key.PK);
    expect(cs.verify(sig, message, pk)).toBe(true);
    expect(verifySignature(cs, sig, msg('another message'), key.PK)).toBe(false);
    expect(cs.verify(sig, msg('another message'), pk)).toBe(false);
    for (const pos of [0, 5, sig.length - 1]) {
      const bad = sig.slice();
      bad[pos]! ^= 1;
      expect(cs.verify(bad, message, pk)).toBe(false);
    }
    // z + order is the same residue: a strict verifier must reject it (malleability).
    const zOff = sig.length - g.scalarLength;
    const z = g.scalarFromBytes(sig.subarray(zOff));
    const bigZ = z + g.order;
    const zBytes = new Uint8Array(g.scalarLength);
    for (let i = 0, v = bigZ; i < g.scalarLength; i++, v >>= 8n) {
      zBytes[g.curve === 'ed25519' ? i : g.scalarLength - 1 - i] = Number(v & 0xffn);
    }
    if (bigZ < 1n << BigInt(8 * g.scalarLength)) {
      const malleable = sig.slice();
      malleable.set(zBytes, zOff);
      expect(cs.verify(malleable, message, pk)).toBe(false);
    }
    expect(cs.verify(sig.subarray(1), message, pk)).toBe(false);
    expect(cs.verify(new Uint8Array(sig.length), message, pk)).toBe(false);
    // Signatures of the other key do not verify.
    expect(verifySignature(cs, sig, message, g.baseMul(g.randomScalar()))).toBe(false);
  });

  it('commitment lists must be sorted, unique, with indices >= 1', () => {
    const { commitments } = round(cs, [1, 2, 3]);
    const [c1, c2, c3] = commitments as [SignerCommitment<P>, SignerCommitment<P>, SignerCommitment<P>];
    const prep = (list: SignerCommitment<P>[]) => () => prepareSession(cs, key.PK, list, message);
    expect(prep([c2, c1])).toThrow(/not sorted/);
    expect(prep([c1, c3, c2])).toThrow(FrostInputError);
    expect(prep([c1, c1])).toThrow(/duplicate commitment for participant 1/);
    expect(prep([{ ...c1, index: 0 }, c2])).toThrow(/invalid participant index 0/);
    expect(prep([{ ...c1, index: 1.5 }, c2])).toThrow(/invalid participant index/);
    expect(prep([])).toThrow(/empty/);
    expect(prep([c1, { ...c2, binding: g.identity }])).toThrow(/participant 2 is the identity/);
    expect(() => bindingFactors(cs, key.PK, [c2, c1], message)).toThrow(/not sorted/);
    expect(() => signShare(cs, { index: 1, secretShare: key.shares.get(1)!, nonces: { hiding: 1n, binding: 1n }, groupPublicKey: key.PK, commitments: [c1, c1], message })).toThrow(/duplicate/);
    expect(prep([c1, c2, c3])).not.toThrow();
  });

  it('a signer refuses commitments that are not its own, and sets it is not in', () => {
    const { nonces, commitments } = round(cs, [1, 2]);
    const s1 = key.shares.get(1)!;
    const n1 = nonces.get(1)!;
    // The coordinator put signer 2's commitments under index 1.
    const swapped = [{ ...commitments[1]!, index: 1 }, { ...commitments[0]!, index: 2 }];
    expect(() => signShare(cs, { index: 1, secretShare: s1, nonces: n1, groupPublicKey: key.PK, commitments: swapped, message })).toThrow(/participant 1 does not match/);
    expect(() => signShare(cs, { index: 3, secretShare: key.shares.get(3)!, nonces: n1, groupPublicKey: key.PK, commitments, message })).toThrow(/participant 3 is not in the commitment list/);
    expect(() => signShare(cs, { index: 1, secretShare: 0n, nonces: n1, groupPublicKey: key.PK, commitments, message })).toThrow(/out of range/);
    expect(() => signShare(cs, { index: 1, secretShare: s1, nonces: { hiding: 0n, binding: n1.binding }, groupPublicKey: key.PK, commitments, message })).toThrow(/already consumed/);
    expect(typeof signShare(cs, { index: 1, secretShare: s1, nonces: n1, groupPublicKey: key.PK, commitments, message })).toBe('bigint');
  });

  it('signOwnShare (own commitment as bytes, own term by fixed-base multiplication) equals the RFC path', () => {
    for (const signers of [[1, 2], [1, 3], [2, 3], [1, 2, 3]]) {
      const { nonces, commitments, session, shares } = signAll(signers);
      for (const i of signers) {
        const own = commitments.find((c) => c.index === i)!;
        const input = {
          index: i,
          secretShare: key.shares.get(i)!,
          nonces: nonces.get(i)!,
          groupPublicKey: key.PK,
          message,
          peers: commitments.filter((c) => c.index !== i),
          listed: { hiding: g.encode(own.hiding), binding: g.encode(own.binding) },
        };
        const out = signOwnShare(cs, input);
        expect(out.share).toBe(shares.get(i));
        expect(g.eq(out.R, session.R)).toBe(true);
        // Bytes that are not d*G, e*G (another signer's) are refused; so is its own index among the peers.
        const other = commitments.find((c) => c.index !== i)!;
        expect(() => signOwnShare(cs, { ...input, listed: { ...input.listed, binding: g.encode(other.binding) } })).toThrow(new RegExp(`participant ${i} does not match`));
        expect(() => signOwnShare(cs, { ...input, peers: commitments })).toThrow(/duplicate commitment/);
      }
      expect(verifySignature(cs, aggregate(cs, { session, shares }), message, key.PK)).toBe(true);
    }
  });

  it('a session cannot be mixed with other inputs or another suite', () => {
    const { session, shares, commitments } = signAll([1, 2]);
    expect(() => aggregate(cs, { session, shares, groupPublicKey: key.PK, commitments, message: msg('other') })).toThrow(/message differs/);
    expect(() => aggregate(cs, { session, shares, groupPublicKey: g.baseMul(3n), commitments, message })).toThrow(/group public key differs/);
    expect(() => aggregate(cs, { session, shares, groupPublicKey: key.PK, commitments: [commitments[0]!], message })).toThrow(/commitment list differs/);
    expect(aggregate(cs, { session, shares, groupPublicKey: key.PK, commitments, message })).toBeInstanceOf(Uint8Array);
    const sibling = FROST_SCHEMES.find((s) => s !== scheme && curveOf(s) === curveOf(scheme));
    if (sibling) expect(() => aggregate(ciphersuite(sibling), { session, shares })).toThrow(/session was prepared for/);
  });
});

describe('invalid point bytes are rejected at the boundary (group.decode)', () => {
  const ed = ciphersuite('ed25519');
  const k1 = ciphersuite('secp256k1');
  const tr = ciphersuite('bip340');

  // (0, -1) has order 2; G + (0, -1) is on the curve but outside the prime-order subgroup.
  const ORDER2 = 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f';
  const MIXED = bytesToHex(ed25519.Point.BASE.add(ed25519.Point.fromBytes(hexToBytes(ORDER2))).toBytes());
  const edBad: [string, string][] = [
    ['non-canonical y >= p', 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
    ['identity', '0100000000000000000000000000000000000000000000000000000000000000'],
    ['small order (y = -1)', ORDER2],
    ['mixed order (G + order-2 point)', MIXED],
    ['wrong length', '00'],
  ];
  it.each(edBad)('Ed25519: %s', (_, hex) => {
    const bytes = hexToBytes(hex);
    expect(() => ed.group.decode(bytes)).toThrow(InvalidEncoding);
    // The same bytes as R in a signature make verification fail rather than throw.
    const sig = new Uint8Array(64);
    if (bytes.length === 32) sig.set(bytes, 0);
    expect(ed.verify(sig, msg('m'), ed.encodePublicKey(ed.group.generator))).toBe(false);
    // As a public key they are a caller error.
    expect(() => ed.verify(new Uint8Array(64), msg('m'), bytes)).toThrow(InvalidEncoding);
  });

  const k1Bad: [string, string][] = [
    ['uncompressed prefix', '04' + '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798'],
    ['x not on the curve', '02' + '0000000000000000000000000000000000000000000000000000000000000005'],
    ['x >= p', '02' + 'fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc30'],
    ['identity encoding', '00'.repeat(33)],
    ['wrong length', '02' + '79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f817'],
  ];
  it.each(k1Bad)('secp256k1: %s', (_, hex) => {
    const bytes = hexToBytes(hex);
    expect(() => k1.group.decode(bytes)).toThrow(InvalidEncoding);
    const sig = new Uint8Array(65);
    if (bytes.length === 33) sig.set(bytes, 0);
    sig[64] = 1;
    expect(k1.verify(sig, msg('m'), k1.encodePublicKey(k1.group.generator))).toBe(false);
    expect(() => k1.verify(sig, msg('m'), bytes)).toThrow(InvalidEncoding);
  });

  it('bip340: x-only keys must be 32 bytes and on the curve; r >= p fails verification', () => {
    expect(() => tr.decodePublicKey(new Uint8Array(33))).toThrow(/32 bytes/);
    expect(() => tr.decodePublicKey(hexToBytes('0000000000000000000000000000000000000000000000000000000000000005'))).toThrow(InvalidEncoding);
    const G = tr.group.generator;
    expect(tr.group.eq(tr.decodePublicKey(tr.encodePublicKey(G)), G)).toBe(true);
    const sig = new Uint8Array(64).fill(0xff);
    sig.fill(1, 32);
    expect(tr.verify(sig, msg('m'), tr.encodePublicKey(G))).toBe(false);
  });
});
