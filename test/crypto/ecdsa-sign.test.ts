import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeEcdsaKeyShare, ecdsaKeygen, encodeEcdsaKeyShare, type EcdsaKeyShare } from '../../crypto/ecdsa/keygen.js';
import { decodePresignature, encodePresignature, type Presignature } from '../../crypto/ecdsa/presign.js';
import { combine, ecdsaSign, presignaturePublic, signRound, type EcdsaSignature } from '../../crypto/ecdsa/sign.js';
import { groupFor } from '../../crypto/group/index.js';
import { lagrangeAtZero } from '../../crypto/shamir.js';
import { keygenAll, keygenAllAsync, presignAll, range, runProtocol, signAll, signWith } from './support/ecdsa-driver.js';
import { fakeMul } from './support/fake-mul.js';

const g = groupFor('secp256k1');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function subsets<T>(xs: readonly T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (xs.length < k) return [];
  const [head, ...rest] = xs;
  return [...subsets(rest, k - 1).map((s) => [head!, ...s]), ...subsets(rest, k)];
}

/** Plain ECDSA verification and public-key recovery with noble (the oracle). */
function expectValid(sig: EcdsaSignature, digest: Uint8Array, publicKey: Uint8Array): void {
  expect(sig.signature.length).toBe(64);
  expect(sig.s <= g.order >> 1n).toBe(true);
  expect(secp256k1.verify(sig.signature, digest, publicKey, { prehash: false, lowS: true })).toBe(true);
  const recovered = secp256k1.Signature.fromBytes(sig.signature, 'compact').addRecoveryBit(sig.recovery).recoverPublicKey(digest);
  expect(hex(recovered.toBytes(true))).toBe(hex(publicKey));
}

function expectKeygenAgreement(keys: Map<number, EcdsaKeyShare>, n: number, t: number): void {
  expect(keys.size).toBe(n);
  const first = keys.get(1)!;
  for (const [i, k] of keys) {
    expect(k.index).toBe(i);
    expect(k.threshold).toBe(t);
    expect(k.participants).toEqual(range(n));
    expect(hex(k.publicKey)).toBe(hex(first.publicKey));
    expect(hex(k.chainCode)).toBe(hex(first.chainCode));
    expect(hex(k.transcriptHash)).toBe(hex(first.transcriptHash));
    expect(hex(g.encode(g.baseMul(k.secretShare)))).toBe(hex(first.verifyingShares.get(i)!));
    const peers = range(n).filter((j) => j !== i);
    expect([...k.senderSetups.keys()].sort()).toEqual(peers);
    expect([...k.receiverSetups.keys()].sort()).toEqual(peers);
    for (const j of peers) expect(hex(k.zeroSeeds.get(j)!)).toBe(hex(keys.get(j)!.zeroSeeds.get(i)!));
  }
  for (const set of subsets(range(n), t)) {
    const x = set.reduce((acc, i) => g.Fn.add(acc, g.Fn.mul(lagrangeAtZero(g.Fn, i, set), keys.get(i)!.secretShare)), 0n);
    expect(hex(g.encode(g.baseMul(x)))).toBe(hex(first.publicKey));
  }
}

const digestOf = (s: string) => sha256(new TextEncoder().encode(s));

// The real multiplication's pairwise setup (256 base OTs per ordered pair) dominates keygen, so
// each keyset is generated once per file and shared; keygen time is measured on the first one.
const SLOW = 600_000;
let keys23: Map<number, EcdsaKeyShare>;
let keys35: Map<number, EcdsaKeyShare>;
let keygen23Ms = 0;
let keygen35Ms = 0;
beforeAll(async () => {
  let t0 = performance.now();
  keys23 = await keygenAllAsync(3, 2);
  keygen23Ms = performance.now() - t0;
  t0 = performance.now();
  keys35 = await keygenAllAsync(5, 3);
  keygen35Ms = performance.now() - t0;
}, SLOW);

describe('DKLs23 keygen', () => {
  it('2-of-3: DKG agreement, pairwise setups in both directions, matching zero seeds', () => {
    expectKeygenAgreement(keys23, 3, 2);
    expect(keys23.get(1)!.publicKey.length).toBe(33);
  });

  it('3-of-5 likewise', () => {
    expectKeygenAgreement(keys35, 5, 3);
  });

  it('key shares survive the sealing codec and still sign', () => {
    const keys = keys23;
    const restored = new Map([...keys].map(([i, k]) => [i, decodeEcdsaKeyShare(encodeEcdsaKeyShare(k))]));
    expectKeygenAgreement(restored, 3, 2);
    const digest = digestOf('after unseal');
    expectValid(signAll(restored, [2, 3], digest), digest, keys.get(1)!.publicKey);
    const bytes = encodeEcdsaKeyShare(keys.get(1)!);
    expect(() => decodeEcdsaKeyShare(bytes.subarray(0, bytes.length - 1))).toThrow(/invalid ECDSA key share/);
    const flipped = bytes.slice();
    flipped[40] ^= 1; // inside the participant list / threshold area
    expect(() => decodeEcdsaKeyShare(flipped)).toThrow(/invalid ECDSA key share/);
  });

  // The round schedule follows the multiplication's flight count and first mover.
  for (const flights of [2, 3, 4, 5]) {
    for (const first of ['sender', 'receiver'] as const) {
      it(`schedules ${flights} setup flight(s), ${first} first, over ${Math.max(2, flights)} rounds`, () => {
        const mul = fakeMul({ flights, first });
        expect(ecdsaKeygen.roundsFor(mul)).toBe(Math.max(2, flights));
        const keys = keygenAll(3, 2, mul);
        expectKeygenAgreement(keys, 3, 2);
        const digest = digestOf(`flights ${flights}`);
        expectValid(signAll(keys, [1, 3], digest, { mul }), digest, keys.get(1)!.publicKey);
      });
    }
  }
});

describe('DKLs23 presign + sign', () => {
  it('2-of-3: every signer subset (and all three) signs; noble verifies with lowS and recovers the key', () => {
    const pk = keys23.get(1)!.publicKey;
    for (const signers of [...subsets(range(3), 2), range(3)]) {
      const digest = digestOf(`2-of-3 ${signers.join(',')}`);
      const sig = signAll(keys23, signers, digest);
      expectValid(sig, digest, pk);
      for (const p of sig.presignatures.values()) {
        expect(p.signers).toEqual(signers);
        expect(hex(p.publicKey)).toBe(hex(pk));
      }
    }
  });

  it('3-of-5: every 3-subset signs', () => {
    const pk = keys35.get(1)!.publicKey;
    const sets = subsets(range(5), 3);
    expect(sets.length).toBe(10);
    for (const signers of sets) {
      const digest = digestOf(`3-of-5 ${signers.join(',')}`);
      expectValid(signAll(keys35, signers, digest), digest, pk);
    }
  });

  it('every signer agrees on R, r and the session binding; sum(u) = phi*k and sum(v) = phi*sk', () => {
    const presigs = presignAll(keys35, [2, 4, 5]);
    const first = presigs.get(2)!;
    for (const p of presigs.values()) {
      expect(hex(p.R)).toBe(hex(first.R));
      expect(hex(p.sid)).toBe(hex(first.sid));
      expect(p.r).toBe(first.r);
    }
    // With R = k*G and PK = sk*G: sum(v)*R = phi*sk*k*G = sum(u)*PK.
    const su = [...presigs.values()].reduce((a, p) => g.Fn.add(a, p.u), 0n);
    const sv = [...presigs.values()].reduce((a, p) => g.Fn.add(a, p.v), 0n);
    expect(g.eq(g.mul(g.decode(first.R), sv), g.mul(g.decode(first.publicKey), su))).toBe(true);
  });

  it('both recovery ids occur and high s is normalised (flipping the recovery bit)', () => {
    const pk = keys23.get(1)!.publicKey;
    const seen = new Set<number>();
    for (let i = 0; i < 16; i++) {
      const digest = randomBytes(32);
      const sig = signAll(keys23, [1, 2], digest);
      expectValid(sig, digest, pk);
      seen.add(sig.recovery);
    }
    expect(seen.size).toBe(2);
  });

  it('presignatures survive the sealing codec', () => {
    const presigs = presignAll(keys23, [1, 3]);
    const restored = new Map([...presigs].map(([i, p]) => [i, decodePresignature(encodePresignature(p))]));
    for (const [i, p] of restored) {
      const o = presigs.get(i)!;
      expect([p.u, p.v, p.phi, p.r, p.tweak, p.index]).toEqual([o.u, o.v, o.phi, o.r, o.tweak, o.index]);
      expect(p.sessionId).toBe(o.sessionId);
    }
    const digest = digestOf('sealed presignature');
    expectValid(signWith(restored, digest), digest, keys23.get(1)!.publicKey);
    const bytes = encodePresignature(presigs.get(1)!);
    expect(() => decodePresignature(bytes.subarray(1))).toThrow(/invalid presignature/);
  });

  it('the one-round ecdsaSign state machine gives every signer the same verified signature', () => {
    const presigs = presignAll(keys23, [2, 3]);
    const digest = digestOf('state machine');
    const r = runProtocol(ecdsaSign, new Map([...presigs].map(([i, p]) => [i, { presignature: p, digest }])));
    expect(r.aborts.size).toBe(0);
    const sigs = [...r.outputs.values()];
    expect(sigs.length).toBe(2);
    expect(hex(sigs[0]!.signature)).toBe(hex(sigs[1]!.signature));
    expectValid(sigs[0]!, digest, keys23.get(1)!.publicKey);
  });

  it('HD tweak: signatures verify under pubkey + tweak*G and recover to it', () => {
    for (const [keys, signers] of [
      [keys23, [1, 3]],
      [keys35, [1, 2, 5]],
    ] as const) {
      const tweak = g.Fn.create(BigInt('0x' + hex(randomBytes(32))));
      const derived = g.encode(g.add(g.decode(keys.get(1)!.publicKey), g.baseMul(tweak)));
      const digest = digestOf('tweaked');
      const sig = signAll(keys, signers, digest, { tweak });
      expectValid(sig, digest, derived);
      expect(secp256k1.verify(sig.signature, digest, keys.get(1)!.publicKey, { prehash: false })).toBe(false);
      for (const p of sig.presignatures.values()) {
        expect(hex(p.publicKey)).toBe(hex(derived));
        expect(p.tweak).toBe(tweak);
      }
    }
  });

  it('the session binding covers tweak, signers and session id', () => {
    const a = presignAll(keys23, [1, 2], { sessionId: 's1' }).get(1)!;
    const b = presignAll(keys23, [1, 2], { sessionId: 's2' }).get(1)!;
    const c = presignAll(keys23, [1, 2], { sessionId: 's1', tweak: 5n }).get(1)!;
    const d = presignAll(keys23, [1, 3], { sessionId: 's1' }).get(1)!;
    expect(new Set([a, b, c, d].map((p) => hex(p.sid))).size).toBe(4);
  });

  it('refuses digests that are not 32 bytes', () => {
    const presigs = presignAll(keys23, [1, 2]);
    const p = presigs.get(1)!;
    for (const len of [0, 20, 31, 33, 64]) {
      expect(() => signRound(p, new Uint8Array(len))).toThrow(RangeError);
      expect(() => combine(presignaturePublic(p), new Uint8Array(len), new Map())).toThrow(RangeError);
    }
  });

  it('rejects bad presign parameters before any message', async () => {
    const { ecdsaPresign } = await import('../../crypto/ecdsa/presign.js');
    const key = keys23.get(1)!;
    expect(() => ecdsaPresign.start({ key, signers: [1], sessionId: 'x' })).toThrow(/at least 2/);
    expect(() => ecdsaPresign.start({ key, signers: [2, 3], sessionId: 'x' })).toThrow(/not among the signers/);
    expect(() => ecdsaPresign.start({ key, signers: [1, 4], sessionId: 'x' })).toThrow(/not in the keyset/);
    expect(() => ecdsaPresign.start({ key, signers: [1, 2], sessionId: '' })).toThrow(/sessionId/);
    expect(() => ecdsaPresign.start({ key, signers: [1, 2], sessionId: 'x', tweak: g.order })).toThrow(/tweak/);
    expect(() => ecdsaPresign.start({ key, signers: [1, 1], sessionId: 'x' })).toThrow(/distinct/);
  });
});

describe('DKLs23 timings (all parties in one process)', () => {
  it('keygen 2-of-3, presign 2-of-3, online sign', () => {
    const time = (f: () => void, runs: number) => {
      const t0 = performance.now();
      for (let i = 0; i < runs; i++) f();
      return (performance.now() - t0) / runs;
    };
    const keys = keys23;
    const kg = keygen23Ms;
    let presigs: Map<number, Presignature> = new Map();
    const ps = time(() => (presigs = presignAll(keys, [1, 2])), 10);
    const pool = Array.from({ length: 20 }, () => presignAll(keys, [1, 2]));
    const digest = digestOf('timing');
    let k = 0;
    const sg = time(() => {
      const sig = signWith(pool[k++]!, digest);
      if (sig.signature.length !== 64) throw new Error('bad');
    }, pool.length);
    expect(presigs.size).toBe(2);
    console.log(
      `DKLs23 in-memory timings: keygen 2-of-3 ${kg.toFixed(0)} ms, keygen 3-of-5 ${keygen35Ms.toFixed(0)} ms, presign 2-of-3 ${ps.toFixed(1)} ms, online sign (2 shares + combine + verify) ${sg.toFixed(2)} ms`,
    );
  });
});
