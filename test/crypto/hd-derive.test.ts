/**
 * HD derivation (crypto/hd/derive.ts): BIP-32 published vectors and @scure/bip32 as the oracle for
 * the secp256k1 schemes, BIP-86 vectors and noble BIP-340 signatures for Taproot, the documented
 * Ed25519 additive scheme re-computed with node:crypto and checked with noble and node:crypto
 * Ed25519 verification, and the property the cluster relies on: a tweak applied to every Shamir
 * share is the tweak applied to the secret.
 */
import { createHash, createHmac, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE, bytesToNumberLE, numberToBytesBE, numberToBytesLE } from '@noble/curves/utils.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { HDKey } from '@scure/bip32';
import { mnemonicToSeedSync } from '@scure/bip39';
import {
  __TEST,
  applyTweakToPoint,
  applyTweakToScalar,
  composeTweaks,
  derive,
  deriveChildren,
  deriveWalletKeys,
  DerivationError,
  formatPath,
  NO_TWEAK,
  normalizeTweak,
  parsePath,
  taprootOutput,
  walletKey,
  type HdScheme,
  type KeyTweak,
} from '../../crypto/hd/derive.js';
import { evalPolynomial, lagrangeAtZero, randomPolynomial } from '../../crypto/shamir.js';

const Secp = secp256k1.Point;
const N = Secp.Fn.ORDER;
const Ed = ed25519.Point;
const L = Ed.Fn.ORDER;
const SECP_SCHEMES: HdScheme[] = ['ecdsa', 'secp256k1', 'bip340'];

const hex = (b: Uint8Array) => bytesToHex(b);
const xpub = (k: HDKey) => ({ publicKey: k.publicKey!, chainCode: k.chainCode! });
const randomScalar = (order: bigint) => (bytesToNumberBE(randomBytes(64)) % (order - 1n)) + 1n;
const randomIndex = () => Math.floor(Math.random() * 0x80000000);

// ---------------------------------------------------------------------------------------------
describe('parsePath / formatPath', () => {
  it('parses the accepted spellings', () => {
    expect(parsePath('')).toEqual([]);
    expect(parsePath('m')).toEqual([]);
    expect(parsePath('m/0/5')).toEqual([0, 5]);
    expect(parsePath('0/5')).toEqual([0, 5]);
    expect(parsePath('m/2147483647')).toEqual([2147483647]);
    expect(parsePath('7')).toEqual([7]);
    expect(parsePath('m/' + Array(255).fill('1').join('/'))).toHaveLength(255);
  });

  it.each([
    ["m/0'", /segment 1 \("0'"\) is hardened/],
    ['m/1/0h', /segment 2 \("0h"\) is hardened/],
    ['m/0H', /segment 1 \("0H"\) is hardened/],
    ['m/2147483648', /segment 1 \("2147483648"\) is 2\^31 or more/],
    ['m/99999999999999999999', /is 2\^31 or more/],
    ['m/', /segment 1 is empty/],
    ['m//1', /segment 1 is empty/],
    ['/1', /segment 1 is empty/],
    ['1/', /segment 2 is empty/],
    ['m/+1', /segment 1 \("\+1"\) has a leading '\+'/],
    ['m/-1', /segment 1 \("-1"\) is not a decimal index/],
    ['m/0x10', /is not a decimal index/],
    ['m/1e3', /is not a decimal index/],
    ['m/ 1', /is not a decimal index/],
    ['M/1', /segment 1 \("M"\) is not a decimal index/],
    ['m/m/1', /segment 1 \("m"\) is not a decimal index/],
    ['m/05', /segment 1 \("05"\) has a leading zero/],
    ['m/' + Array(256).fill('1').join('/'), /depth 256 exceeds the BIP-32 maximum of 255/],
  ])('rejects %s', (path, message) => {
    expect(() => parsePath(path)).toThrow(DerivationError);
    expect(() => parsePath(path)).toThrow(message);
  });

  it('formats and round-trips', () => {
    expect(formatPath([])).toBe('m');
    expect(formatPath([0, 5])).toBe('m/0/5');
    for (let i = 0; i < 20; i++) {
      const path = Array.from({ length: 1 + (i % 5) }, randomIndex);
      expect(parsePath(formatPath(path))).toEqual(path);
    }
    expect(() => formatPath([0x80000000])).toThrow(DerivationError);
    expect(() => formatPath([1.5])).toThrow(/not a non-hardened index/);
    expect(() => formatPath([-1])).toThrow(DerivationError);
    expect(() => derive('ecdsa', { publicKey: Secp.BASE.toBytes(true), chainCode: new Uint8Array(32) }, [2 ** 31])).toThrow(DerivationError);
  });
});

// ---------------------------------------------------------------------------------------------
describe('BIP-32 CKDpub (ecdsa, secp256k1, bip340)', () => {
  // bip-0032.mediawiki "Test Vectors": every non-hardened step, from the parent's xpub.
  const V1_0H = {
    pub: 'xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw',
    prv: 'xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvUxt4cV1rGL5hj6KCesnDYUhd7oWgT11eZG7XnxHrnYeSvkzY7d2bhkJ7',
  };
  const V1_0H_1 = {
    pub: 'xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ',
    prv: 'xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs',
  };
  const V1_0H_1_2H = {
    pub: 'xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5',
    prv: 'xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM',
  };
  const V1_0H_1_2H_2 = {
    pub: 'xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV',
    prv: 'xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb2Tyh8RfQMuPh7f7RtyzTtdrbdqqsunu5Mm3wDvUAKRHSC34sJ7in334',
  };
  const V1_0H_1_2H_2_1000000000 = {
    pub: 'xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy',
    prv: 'xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76',
  };
  const V2_M = {
    pub: 'xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB',
    prv: 'xprv9s21ZrQH143K31xYSDQpPDxsXRTUcvj2iNHm5NUtrGiGG5e2DtALGdso3pGz6ssrdK4PFmM8NSpSBHNqPqm55Qn3LqFtT2emdEXVYsCzC2U',
  };
  const V2_0 = {
    pub: 'xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH',
    prv: 'xprv9vHkqa6EV4sPZHYqZznhT2NPtPCjKuDKGY38FBWLvgaDx45zo9WQRUT3dKYnjwih2yJD9mkrocEZXo1ex8G81dwSM1fwqWpWkeS3v86pgKt',
  };
  const V2_0_2147483647H = {
    pub: 'xpub6ASAVgeehLbnwdqV6UKMHVzgqAG8Gr6riv3Fxxpj8ksbH9ebxaEyBLZ85ySDhKiLDBrQSARLq1uNRts8RuJiHjaDMBU4Zn9h8LZNnBC5y4a',
    prv: 'xprv9wSp6B7kry3Vj9m1zSnLvN3xH8RdsPP1Mh7fAaR7aRLcQMKTR2vidYEeEg2mUCTAwCd6vnxVrcjfy2kRgVsFawNzmjuHc2YmYRmagcEPdU9',
  };
  const V2_0_2147483647H_1 = {
    pub: 'xpub6DF8uhdarytz3FWdA8TvFSvvAh8dP3283MY7p2V4SeE2wyWmG5mg5EwVvmdMVCQcoNJxGoWaU9DCWh89LojfZ537wTfunKau47EL2dhHKon',
    prv: 'xprv9zFnWC6h2cLgpmSA46vutJzBcfJ8yaJGg8cX1e5StJh45BBciYTRXSd25UEPVuesF9yog62tGAQtHjXajPPdbRCHuWS6T8XA2ECKADdw4Ef',
  };
  const V2_0_2147483647H_1_2147483646H = {
    pub: 'xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL',
    prv: 'xprvA1RpRA33e1JQ7ifknakTFpgNXPmW2YvmhqLQYMmrj4xJXXWYpDPS3xz7iAxn8L39njGVyuoseXzU6rcxFLJ8HFsTjSyQbLYnMpCqE2VbFWc',
  };
  const V2_0_2147483647H_1_2147483646H_2 = {
    pub: 'xpub6FnCn6nSzZAw5Tw7cgR9bi15UV96gLZhjDstkXXxvCLsUXBGXPdSnLFbdpq8p9HmGsApME5hQTZ3emM2rnY5agb9rXpVGyy3bdW6EEgAtqt',
    prv: 'xprvA2nrNbFZABcdryreWet9Ea4LvTJcGsqrMzxHx98MMrotbir7yrKCEXw7nadnHM8Dq38EGfSh6dqA9QWTyefMLEcBYJUuekgW4BYPJcr9E7j',
  };
  const STEPS = [
    { name: 'vector 1: m/0H -> m/0H/1', parent: V1_0H, path: [1], child: V1_0H_1 },
    { name: 'vector 1: m/0H/1/2H -> .../2', parent: V1_0H_1_2H, path: [2], child: V1_0H_1_2H_2 },
    { name: 'vector 1: m/0H/1/2H/2 -> .../1000000000', parent: V1_0H_1_2H_2, path: [1000000000], child: V1_0H_1_2H_2_1000000000 },
    { name: 'vector 1: m/0H/1/2H -> .../2/1000000000 (two steps)', parent: V1_0H_1_2H, path: [2, 1000000000], child: V1_0H_1_2H_2_1000000000 },
    { name: 'vector 2: m -> m/0', parent: V2_M, path: [0], child: V2_0 },
    { name: 'vector 2: m/0/2147483647H -> .../1', parent: V2_0_2147483647H, path: [1], child: V2_0_2147483647H_1 },
    { name: 'vector 2: m/0/2147483647H/1/2147483646H -> .../2', parent: V2_0_2147483647H_1_2147483646H, path: [2], child: V2_0_2147483647H_1_2147483646H_2 },
  ];

  it.each(STEPS)('$name', ({ parent, path, child }) => {
    const p = HDKey.fromExtendedKey(parent.pub);
    const c = HDKey.fromExtendedKey(child.pub);
    for (const scheme of SECP_SCHEMES) {
      const d = derive(scheme, xpub(p), path);
      expect(hex(d.publicKey)).toBe(hex(c.publicKey!));
      expect(hex(d.chainCode)).toBe(hex(c.chainCode!));
      expect(d.tweak.negate).toBe(false);
      expect(hex(applyTweakToPoint(scheme, d.tweak, p.publicKey!))).toBe(hex(c.publicKey!));
    }
    // The tweak moves the published parent private key onto the published child private key.
    const d = derive('ecdsa', xpub(p), path);
    const kParent = bytesToNumberBE(HDKey.fromExtendedKey(parent.prv).privateKey!);
    const kChild = bytesToNumberBE(HDKey.fromExtendedKey(child.prv).privateKey!);
    expect(applyTweakToScalar('ecdsa', d.tweak, kParent)).toBe(kChild);
  });

  it('matches @scure/bip32 on random keys, chain codes and paths (public and private side)', () => {
    for (let trial = 0; trial < 24; trial++) {
      const k = randomScalar(N);
      const hd = new HDKey({ privateKey: numberToBytesBE(k, 32), chainCode: randomBytes(32) });
      const path = Array.from({ length: 1 + (trial % 4) }, () => (trial % 3 === 0 ? trial : randomIndex()));
      let expected = hd;
      for (const i of path) expected = expected.deriveChild(i);
      const pubOnly = new HDKey({ publicKey: hd.publicKey!, chainCode: hd.chainCode! });
      let expectedPub = pubOnly;
      for (const i of path) expectedPub = expectedPub.deriveChild(i);
      const d = derive('ecdsa', xpub(hd), path);
      expect(hex(d.publicKey)).toBe(hex(expected.publicKey!));
      expect(hex(d.publicKey)).toBe(hex(expectedPub.publicKey!));
      expect(hex(d.chainCode)).toBe(hex(expected.chainCode!));
      expect(numberToBytesBE(applyTweakToScalar('ecdsa', d.tweak, k), 32)).toEqual(expected.privateKey);
    }
  });

  it('the empty path is the root with no tweak', () => {
    const hd = HDKey.fromExtendedKey(V2_M.pub);
    const d = derive('bip340', xpub(hd), []);
    expect(d.publicKey).toEqual(hd.publicKey);
    expect(d.chainCode).toEqual(hd.chainCode);
    expect(d.tweak).toEqual(NO_TWEAK);
  });

  it('rejects invalid roots', () => {
    const cc = new Uint8Array(32);
    const pk = Secp.BASE.toBytes(true);
    expect(() => derive('ecdsa', { publicKey: pk.subarray(1), chainCode: cc }, [0])).toThrow(/33-byte compressed/);
    expect(() => derive('ecdsa', { publicKey: Secp.BASE.toBytes(false), chainCode: cc }, [0])).toThrow(/33-byte compressed/);
    let x = 5n;
    while (isOnCurveX(numberToBytesBE(x, 32))) x++; // about half of all x are on the curve
    const offCurve = new Uint8Array([2, ...numberToBytesBE(x, 32)]);
    expect(() => derive('ecdsa', { publicKey: offCurve, chainCode: cc }, [0])).toThrow(/not a valid secp256k1 point/);
    expect(() => derive('ecdsa', { publicKey: pk, chainCode: cc.subarray(1) }, [0])).toThrow(/chain code must be 32 bytes/);
    expect(() => derive('nope' as HdScheme, { publicKey: pk, chainCode: cc }, [0])).toThrow(/unknown HD scheme/);
  });
});

function isOnCurveX(x: Uint8Array): boolean {
  try {
    schnorr.utils.lift_x(bytesToNumberBE(x));
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
describe('deriveChildren and deriveWalletKeys', () => {
  const root = () => ({ publicKey: Secp.BASE.multiply(randomScalar(N)).toBytes(true), chainCode: randomBytes(32) });
  const edRoot = () => ({ publicKey: Ed.BASE.multiply(randomScalar(L)).toBytes(), chainCode: randomBytes(32) });

  it.each([
    { count: 5, from: 0 }, // per-child noble path
    { count: __TEST.BATCH_MIN + 100, from: 1000 }, // shared-inversion batch path
    { count: __TEST.BATCH_MIN, from: 0x80000000 - __TEST.BATCH_MIN }, // up to the last non-hardened index
  ])('secp256k1: equals derive for $count children from $from', ({ count, from }) => {
    const parent = root();
    const r = deriveChildren('ecdsa', parent, from, count, { uncompressed: true });
    expect(r.publicKeys).toHaveLength(count);
    for (let k = 0; k < count; k++) {
      const d = derive('ecdsa', parent, [from + k]);
      expect(hex(r.publicKeys[k]!)).toBe(hex(d.publicKey));
      expect(r.tweaks[k]).toBe(d.tweak.add);
      expect(hex(r.uncompressed![k]!)).toBe(Secp.fromBytes(d.publicKey).toHex(false));
    }
    // bip340 and secp256k1 derive the same children (the Taproot step belongs to walletKey).
    expect(deriveChildren('bip340', parent, from, 3).publicKeys).toEqual(r.publicKeys.slice(0, 3));
  });

  it.each([{ count: 4 }, { count: 70 }])('ed25519: equals derive for $count children', ({ count }) => {
    const parent = edRoot();
    const r = deriveChildren('ed25519', parent, 7, count);
    for (let k = 0; k < count; k++) {
      const d = derive('ed25519', parent, [7 + k]);
      expect(hex(r.publicKeys[k]!)).toBe(hex(d.publicKey));
      expect(r.tweaks[k]).toBe(d.tweak.add);
    }
  });

  it('checks its range', () => {
    const parent = root();
    expect(deriveChildren('ecdsa', parent, 5, 0)).toEqual({ publicKeys: [], tweaks: [] });
    expect(deriveWalletKeys('bip340', parent, [], 5, 0)).toEqual({ publicKeys: [], tweaks: [] });
    expect(deriveChildren('ed25519', edRoot(), 5, 0)).toEqual({ publicKeys: [], tweaks: [] });
    expect(() => deriveChildren('ecdsa', parent, 0x80000000 - 1, 2)).toThrow(/hardened range/);
    expect(() => deriveChildren('ecdsa', parent, -1, 2)).toThrow(DerivationError);
    expect(() => deriveChildren('ecdsa', parent, 0, 1.5)).toThrow(DerivationError);
    expect(() => deriveChildren('ed25519', edRoot(), 0, 1, { uncompressed: true })).toThrow(DerivationError);
  });

  it.each([
    { scheme: 'ecdsa' as const, count: __TEST.BATCH_MIN + 6 },
    { scheme: 'secp256k1' as const, count: 3 },
    { scheme: 'bip340' as const, count: __TEST.BATCH_MIN + 6 },
    { scheme: 'bip340' as const, count: 4 },
    { scheme: 'ed25519' as const, count: 5 },
  ])('deriveWalletKeys equals walletKey per child ($scheme, $count)', ({ scheme, count }) => {
    const r0 = scheme === 'ed25519' ? edRoot() : root();
    const batch = deriveWalletKeys(scheme, r0, [0], 11, count);
    for (let k = 0; k < count; k++) {
      const w = walletKey(scheme, r0, [0, 11 + k]);
      expect(hex(batch.publicKeys[k]!)).toBe(hex(w.publicKey));
      expect(batch.tweaks[k]).toEqual(w.tweak);
    }
  });
});

describe('batch multiplication corner cases (secpMulAdd)', () => {
  it('handles doubling, cancellation and zero scalars like noble', () => {
    const G = Secp.BASE;
    const scalars: bigint[] = [];
    const addends: (typeof G)[] = [];
    for (let k = 0; k < 80; k++) {
      const s = randomScalar(N);
      scalars.push(s);
      addends.push(G.multiply(randomScalar(N)));
    }
    const s1 = randomScalar(N);
    const s2 = randomScalar(N);
    scalars.push(s1, s2, 0n, 1n, N - 1n);
    addends.push(G.multiply(s1), G.multiply(s2).negate(), G.multiply(5n), G, G.multiply(3n));
    const aff = addends.map((p) => p.toAffine());
    const r = __TEST.secpMulAdd(
      scalars.map((s) => numberToBytesBE(s, 32)),
      aff.map((a) => a.x),
      aff.map((a) => a.y),
    );
    expect(r.identity).toEqual([81]); // s2*G - s2*G
    scalars.forEach((s, k) => {
      if (k === 81) return;
      const e = G.multiplyUnsafe(s).add(addends[k]!).toAffine();
      expect([r.x[k], r.y[k]]).toEqual([e.x, e.y]);
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe('tweaks', () => {
  it('composeTweaks(inner, outer) is outer after inner, for every sign combination', () => {
    for (const scheme of ['ecdsa', 'ed25519'] as HdScheme[]) {
      const order = scheme === 'ed25519' ? L : N;
      for (const [n1, n2] of [[false, false], [false, true], [true, false], [true, true]] as const) {
        const inner: KeyTweak = { negate: n1, add: randomScalar(order) };
        const outer: KeyTweak = { negate: n2, add: randomScalar(order) };
        const x = randomScalar(order);
        const expected = applyTweakToScalar(scheme, outer, applyTweakToScalar(scheme, inner, x));
        const c = composeTweaks(inner, outer, scheme);
        expect(c.add >= 0n && c.add < order).toBe(true);
        expect(applyTweakToScalar(scheme, c, x)).toBe(expected);
        // Without a scheme the add is exact and still right modulo the order.
        const raw = composeTweaks(inner, outer);
        expect(applyTweakToScalar(scheme, raw, x)).toBe(expected);
        expect(normalizeTweak(scheme, raw)).toEqual(c);
        // The point side agrees with the scalar side.
        const enc = (s: bigint) => (scheme === 'ed25519' ? Ed.BASE.multiply(s).toBytes() : Secp.BASE.multiply(s).toBytes(true));
        expect(hex(applyTweakToPoint(scheme, c, enc(x)))).toBe(hex(enc(expected)));
        expect(hex(applyTweakToPoint(scheme, outer, applyTweakToPoint(scheme, inner, enc(x))))).toBe(hex(enc(expected)));
      }
    }
  });

  it('applyTweakToPoint refuses the identity it would produce', () => {
    const x = randomScalar(N);
    const P = Secp.BASE.multiply(x).toBytes(true);
    expect(() => applyTweakToPoint('ecdsa', { negate: false, add: N - x }, P)).toThrow(/identity/);
    expect(() => applyTweakToPoint('ecdsa', { negate: true, add: x }, P)).toThrow(/identity/);
  });

  it('a tweak applied to every Shamir share is the tweak applied to the secret (2-of-3)', () => {
    const cases: { scheme: HdScheme; negate: boolean }[] = [
      { scheme: 'ecdsa', negate: false },
      { scheme: 'ecdsa', negate: true },
      { scheme: 'bip340', negate: true },
      { scheme: 'ed25519', negate: false },
      { scheme: 'ed25519', negate: true },
    ];
    for (const { scheme, negate } of cases) {
      const ed = scheme === 'ed25519';
      const Fn = ed ? Ed.Fn : Secp.Fn;
      const order = Fn.ORDER;
      const secret = randomScalar(order);
      const poly = randomPolynomial(secret, 2, () => randomScalar(order));
      const shares = [1, 2, 3].map((i) => evalPolynomial(Fn, poly, BigInt(i)));
      const tweak: KeyTweak = { negate, add: randomScalar(order) };
      const tweaked = shares.map((s) => applyTweakToScalar(scheme, tweak, s));
      for (const set of [[1, 2], [1, 3], [2, 3]]) {
        const combined = set.reduce((acc, i) => Fn.add(acc, Fn.mul(lagrangeAtZero(Fn, i, set), tweaked[i - 1]!)), 0n);
        expect(combined).toBe(applyTweakToScalar(scheme, tweak, secret));
        const pk = ed ? Ed.BASE.multiply(secret).toBytes() : Secp.BASE.multiply(secret).toBytes(true);
        const combinedPk = ed ? Ed.BASE.multiply(combined).toBytes() : Secp.BASE.multiply(combined).toBytes(true);
        expect(hex(applyTweakToPoint(scheme, tweak, pk))).toBe(hex(combinedPk));
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('Taproot (BIP-341 / BIP-86)', () => {
  const MNEMONIC = 'abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about';
  // bip-0086.mediawiki test vectors.
  const ACCOUNT_XPUB = 'xpub6BgBgsespWvERF3LHQu6CnqdvfEvtMcQjYrcRzx53QJjSxarj2afYWcLteoGVky7D3UKDP9QyrLprQ3VCECoY49yfdDEHGCtMMj92pReUsQ';
  const VECTORS = [
    { path: [0, 0], internal: 'cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115', output: 'a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c' },
    { path: [0, 1], internal: '83dfe85a3151d2517290da461fe2815591ef69f2b18a2ce63f01697a8b313145', output: 'a82f29944d65b86ae6b5e5cc75e294ead6c59391a1edc5e016e3498c67fc7bbb' },
    { path: [1, 0], internal: '399f1b2f4393f29a18c937859c5dd8a77350103157eb880f02e8c08214277cef', output: '882d74e5d0572d5a816cef0041a96b6c1de832f6f9676d9605c44d5e9a97d3dc' },
  ];

  it('m/86h/0h/0h/0/0 from the BIP-39 mnemonic: internal and output keys', () => {
    const key = HDKey.fromMasterSeed(mnemonicToSeedSync(MNEMONIC)).derive("m/86'/0'/0'/0/0");
    expect(hex(key.publicKey!.subarray(1))).toBe(VECTORS[0]!.internal);
    const { outputKey, tweak } = taprootOutput(key.publicKey!);
    expect(hex(outputKey.subarray(1))).toBe(VECTORS[0]!.output);
    // The tweak takes the BIP-32 private key to the output key's discrete log.
    const q = applyTweakToScalar('bip340', tweak, bytesToNumberBE(key.privateKey!));
    expect(hex(Secp.BASE.multiply(q).toBytes(true))).toBe(hex(outputKey));
  });

  it.each(VECTORS)('walletKey from the published account xpub: $path', ({ path, internal, output }) => {
    const account = HDKey.fromExtendedKey(ACCOUNT_XPUB);
    const d = derive('bip340', xpub(account), path);
    expect(hex(d.publicKey.subarray(1))).toBe(internal);
    expect(hex(walletKey('bip340', xpub(account), path).publicKey)).toBe(output);
    // A 32-byte (x-only) internal key is read as lift_x.
    expect(hex(taprootOutput(hexToBytes(internal)).outputKey.subarray(1))).toBe(output);
  });

  it('BIP-340 signatures by the tweaked secret verify under the output key, for both parities', () => {
    const seen = new Set<number>();
    for (let trial = 0; trial < 64 && seen.size < 2; trial++) {
      const d = randomScalar(N);
      const internal = Secp.BASE.multiply(d).toBytes(true);
      seen.add(internal[0]!);
      const { outputKey, tweak } = taprootOutput(internal);
      expect(tweak.negate).toBe(internal[0] === 3);
      const q = applyTweakToScalar('bip340', tweak, d);
      const msg = randomBytes(32);
      const sig = schnorr.sign(msg, numberToBytesBE(q, 32), randomBytes(32));
      expect(schnorr.verify(sig, msg, outputKey.subarray(1))).toBe(true);
      expect(schnorr.verify(sig, randomBytes(32), outputKey.subarray(1))).toBe(false);
      // And through a derivation: walletKey's tweak is relative to the root secret.
      const root = { publicKey: internal, chainCode: randomBytes(32) };
      const w = walletKey('bip340', root, [0, trial]);
      const wq = applyTweakToScalar('bip340', w.tweak, d);
      expect(schnorr.verify(schnorr.sign(msg, numberToBytesBE(wq, 32), randomBytes(32)), msg, w.publicKey)).toBe(true);
    }
    expect(seen).toEqual(new Set([2, 3]));
  });

  it('composes after an internal tweak and rejects bad keys', () => {
    const d = randomScalar(N);
    const inner: KeyTweak = { negate: true, add: randomScalar(N) };
    const internalSecret = applyTweakToScalar('bip340', inner, d);
    const internal = Secp.BASE.multiply(internalSecret).toBytes(true);
    const { outputKey, tweak } = taprootOutput(internal, inner);
    expect(hex(Secp.BASE.multiply(applyTweakToScalar('bip340', tweak, d)).toBytes(true))).toBe(hex(outputKey));
    expect(() => taprootOutput(new Uint8Array(31))).toThrow(DerivationError);
    const notX = new Uint8Array(32).fill(0xff); // >= p
    expect(() => taprootOutput(notX)).toThrow(/not the x coordinate/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('Ed25519 additive derivation (docs/hd-wallets.md)', () => {
  const TAG = Buffer.from('custody-ed25519-ckd-v1', 'utf8');
  const ser32 = (i: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(i);
    return b;
  };

  it('follows the documented formulas (re-computed with node:crypto HMAC)', () => {
    const a = randomScalar(L);
    let A = Ed.BASE.multiply(a);
    let cc = randomBytes(32);
    const root = { publicKey: A.toBytes(), chainCode: cc };
    const path = [0, 5, 0x7fffffff];
    let total = 0n;
    for (const i of path) {
      const Ab = A.toBytes();
      const I0 = createHmac('sha512', cc).update(Buffer.concat([Buffer.of(0), TAG, Ab, ser32(i)])).digest();
      const I1 = createHmac('sha512', cc).update(Buffer.concat([Buffer.of(1), TAG, Ab, ser32(i)])).digest();
      const t = bytesToNumberBE(I0) % L;
      A = A.add(Ed.BASE.multiply(t));
      cc = new Uint8Array(I1.subarray(0, 32));
      total = (total + t) % L;
    }
    const d = derive('ed25519', root, path);
    expect(hex(d.publicKey)).toBe(hex(A.toBytes()));
    expect(hex(d.chainCode)).toBe(hex(cc));
    expect(d.tweak).toEqual({ negate: false, add: total });
    expect(hex(applyTweakToPoint('ed25519', d.tweak, root.publicKey))).toBe(hex(d.publicKey));
    // walletKey is derive for ed25519.
    expect(walletKey('ed25519', root, path).publicKey).toEqual(d.publicKey);
  });

  it('signatures by the tweaked scalar verify with noble and node:crypto Ed25519', () => {
    const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
    for (let trial = 0; trial < 4; trial++) {
      // A bare scalar, not an RFC 8032 seed: derived keys have no seed either.
      const a = randomScalar(L);
      const root = { publicKey: Ed.BASE.multiply(a).toBytes(), chainCode: randomBytes(32) };
      const d = derive('ed25519', root, [trial, 1000 + trial]);
      const a2 = applyTweakToScalar('ed25519', d.tweak, a);
      expect(hex(Ed.BASE.multiply(a2).toBytes())).toBe(hex(d.publicKey));
      // Minimal Ed25519 Schnorr: R = r*G, k = SHA-512(R || A' || M) mod L (little-endian), S = r + k*a'.
      const M = randomBytes(1 + trial * 50);
      const r = randomScalar(L);
      const R = Ed.BASE.multiply(r).toBytes();
      const k = bytesToNumberLE(createHash('sha512').update(R).update(d.publicKey).update(M).digest()) % L;
      const S = (r + k * a2) % L;
      const sig = new Uint8Array([...R, ...numberToBytesLE(S, 32)]);
      expect(ed25519.verify(sig, M, d.publicKey)).toBe(true);
      const spki = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, d.publicKey]), format: 'der', type: 'spki' });
      expect(nodeVerify(null, M, spki, sig)).toBe(true);
      // The untweaked scalar does not sign for the child.
      const S0 = (r + k * a) % L;
      expect(ed25519.verify(new Uint8Array([...R, ...numberToBytesLE(S0, 32)]), M, d.publicKey)).toBe(false);
    }
  });

  it('rejects the identity, small-order and mixed-order roots', () => {
    const cc = randomBytes(32);
    const identity = Ed.ZERO.toBytes();
    // (0, -1), the point of order 2: y = p - 1.
    const order2 = numberToBytesLE(Ed.Fp.ORDER - 1n, 32);
    const mixed = Ed.BASE.multiply(randomScalar(L)).add(Ed.fromBytes(order2)).toBytes();
    for (const publicKey of [identity, order2, mixed]) {
      expect(() => derive('ed25519', { publicKey, chainCode: cc }, [0])).toThrow(/identity or not in the prime-order subgroup/);
    }
    expect(() => derive('ed25519', { publicKey: new Uint8Array(33), chainCode: cc }, [0])).toThrow(/32-byte Ed25519 point/);
  });
});

// ---------------------------------------------------------------------------------------------
describe('speed (printed, not asserted)', () => {
  it('deriveChildren and deriveWalletKeys, 10,000 children', () => {
    const root = { publicKey: Secp.BASE.multiply(randomScalar(N)).toBytes(true), chainCode: randomBytes(32) };
    const edRoot = { publicKey: Ed.BASE.multiply(randomScalar(L)).toBytes(), chainCode: randomBytes(32) };
    deriveChildren('ecdsa', root, 0, __TEST.BATCH_MIN); // builds the fixed-base table
    const rate = (name: string, f: () => unknown) => {
      const start = performance.now();
      f();
      const ms = performance.now() - start;
      console.log(`${name}: ${Math.round(10_000 / (ms / 1000))} children/s (${ms.toFixed(0)} ms for 10,000)`);
    };
    rate('deriveChildren secp256k1', () => deriveChildren('ecdsa', root, 0, 10_000));
    rate('deriveChildren secp256k1 + uncompressed', () => deriveChildren('ecdsa', root, 0, 10_000, { uncompressed: true }));
    rate('deriveWalletKeys bip340 (BIP-86 output keys)', () => deriveWalletKeys('bip340', root, [0], 0, 10_000));
    rate('deriveChildren ed25519', () => deriveChildren('ed25519', edRoot, 0, 10_000));
  });
});
