/**
 * FROST ciphersuites (RFC 9591 section 6) over the Group interface.
 *
 * - ed25519:   FROST(Ed25519, SHA-512), RFC 9591 section 6.1.
 * - secp256k1: FROST(secp256k1, SHA-256), RFC 9591 section 6.5.
 * - bip340:    the Taproot variant of the ZF frost-secp256k1-tr crate: the secp256k1 suite with its
 *              own context string, the BIP-340 challenge, even-Y handling of the group key and of R
 *              (done in sign.ts), and 64-byte BIP-340 signatures.
 *
 * Points stay generic (P) so a native backend plugs in without touching this file.
 */
import { expand_message_xmd } from '@noble/curves/abstract/hash-to-curve.js';
import { bytesToNumberBE, bytesToNumberLE } from '@noble/curves/utils.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { groupFor, InvalidEncoding, type CurveName, type Group } from '../group/index.js';

export type FrostScheme = 'ed25519' | 'secp256k1' | 'bip340';

export const FROST_SCHEMES: readonly FrostScheme[] = ['ed25519', 'secp256k1', 'bip340'];

export interface Ciphersuite<P> {
  readonly scheme: FrostScheme;
  readonly contextString: string;
  readonly group: Group<P>;
  /**
   * bip340 only: signing uses the even-Y group key and the even-Y group commitment, negating the
   * secret share and the nonces where needed (see sign.ts).
   */
  readonly evenY: boolean;
  /** Encoded public key length: 32 (Ed25519), 33 (secp256k1), 32 x-only (bip340). */
  readonly publicKeyLength: number;
  /** Encoded signature length: 64 (Ed25519), 65 (secp256k1), 64 (bip340). */
  readonly signatureLength: number;

  /** RFC 9591 H1: binding factor ("rho"). */
  H1(m: Uint8Array): bigint;
  /** RFC 9591 H2: challenge. bip340: BIP-340 tagged hash "BIP0340/challenge" mod n. */
  H2(m: Uint8Array): bigint;
  /** RFC 9591 H3: nonce generation. */
  H3(m: Uint8Array): bigint;
  /** RFC 9591 H4: message hash. */
  H4(m: Uint8Array): Uint8Array;
  /** RFC 9591 H5: commitment list hash. */
  H5(m: Uint8Array): Uint8Array;
  /** Proof-of-knowledge challenge for DKG (frost-core / noble "dkg" suffix), for dkg.ts. */
  HDKG(m: Uint8Array): bigint;
  /** Identifier derivation from a string (frost-core / noble "id" suffix). */
  HID(m: Uint8Array): bigint;

  /** RFC 9591 compute_challenge: H2(enc(R) || enc(PK) || msg); bip340 uses x-only encodings. */
  challenge(R: P, PK: P, message: Uint8Array): bigint;

  encodePublicKey(pk: P): Uint8Array;
  /** Parses and validates a public key in this scheme's encoding. Throws InvalidEncoding. */
  decodePublicKey(bytes: Uint8Array): P;
  /** R must be the group commitment itself; for bip340 only its x coordinate is kept. */
  encodeSignature(R: P, z: bigint): Uint8Array;
  /**
   * Verifies a complete signature. Malformed signatures return false; a malformed public key
   * throws InvalidEncoding (keys are configuration, not peer input, so that is a caller bug).
   */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
  /** verify() with an already decoded group key. */
  verifyWithKey(signature: Uint8Array, message: Uint8Array, publicKey: P): boolean;
}

export function curveOf(scheme: FrostScheme): CurveName {
  switch (scheme) {
    case 'ed25519':
      return 'ed25519';
    case 'secp256k1':
    case 'bip340':
      return 'secp256k1';
    default:
      throw new Error(`unknown FROST scheme ${String(scheme)}`);
  }
}

const CONTEXT: Record<FrostScheme, string> = {
  ed25519: 'FROST-ED25519-SHA512-v1',
  secp256k1: 'FROST-secp256k1-SHA256-v1',
  bip340: 'FROST-secp256k1-SHA256-TR-v1',
};

const bytesOf = (b: Uint8Array, what: string): Uint8Array => {
  if (!(b instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  return b;
};

function sameBytes(a: Uint8Array, b: Uint8Array, bOffset: number, len: number): boolean {
  let d = 0;
  for (let i = 0; i < len; i++) d |= a[i]! ^ b[bOffset + i]!;
  return d === 0;
}

type Hashes = Pick<Ciphersuite<unknown>, 'H1' | 'H2' | 'H3' | 'H4' | 'H5' | 'HDKG' | 'HID'>;

/** RFC 9591 section 6.1: SHA-512 with a prefix, read little-endian, reduced mod L. */
function ed25519Hashes(ctx: string, order: bigint): Hashes {
  const toScalar = (prefix: Uint8Array) => (m: Uint8Array) =>
    bytesToNumberLE(sha512.create().update(prefix).update(m).digest()) % order;
  const digest = (prefix: Uint8Array) => (m: Uint8Array) => sha512.create().update(prefix).update(m).digest();
  return {
    H1: toScalar(utf8ToBytes(ctx + 'rho')),
    // Undecorated so the result is an RFC 8032 Ed25519 signature.
    H2: (m) => bytesToNumberLE(sha512(m)) % order,
    H3: toScalar(utf8ToBytes(ctx + 'nonce')),
    H4: digest(utf8ToBytes(ctx + 'msg')),
    H5: digest(utf8ToBytes(ctx + 'com')),
    HDKG: toScalar(utf8ToBytes(ctx + 'dkg')),
    HID: toScalar(utf8ToBytes(ctx + 'id')),
  };
}

/**
 * RFC 9591 section 6.5: hash_to_field(m, 1) from RFC 9380 with expand_message_xmd(SHA-256), the
 * scalar field as F and k = 128, so L = 48 bytes read big-endian and reduced mod n.
 */
function secp256k1Hashes(ctx: string, order: bigint, bip340: boolean): Hashes {
  const L = 48;
  const toScalar = (dst: Uint8Array) => (m: Uint8Array) =>
    bytesToNumberBE(expand_message_xmd(m, dst, L, sha256)) % order;
  const digest = (prefix: Uint8Array) => (m: Uint8Array) => sha256.create().update(prefix).update(m).digest();
  const tag = sha256(utf8ToBytes('BIP0340/challenge'));
  return {
    H1: toScalar(utf8ToBytes(ctx + 'rho')),
    H2: bip340
      ? (m) => bytesToNumberBE(sha256.create().update(tag).update(tag).update(m).digest()) % order
      : toScalar(utf8ToBytes(ctx + 'chal')),
    H3: toScalar(utf8ToBytes(ctx + 'nonce')),
    H4: digest(utf8ToBytes(ctx + 'msg')),
    H5: digest(utf8ToBytes(ctx + 'com')),
    HDKG: toScalar(utf8ToBytes(ctx + 'dkg')),
    HID: toScalar(utf8ToBytes(ctx + 'id')),
  };
}

export function makeCiphersuite<P>(scheme: FrostScheme, group: Group<P>): Ciphersuite<P> {
  const curve = curveOf(scheme);
  if (group.curve !== curve) throw new Error(`scheme ${scheme} needs a ${curve} group, got ${group.curve}`);
  const contextString = CONTEXT[scheme];
  const { Fn, order, generator } = group;
  const bip340 = scheme === 'bip340';
  const hashes = curve === 'ed25519' ? ed25519Hashes(contextString, order) : secp256k1Hashes(contextString, order, bip340);
  const pl = group.pointLength;
  const sl = group.scalarLength;
  const tag = bip340 ? sha256(utf8ToBytes('BIP0340/challenge')) : undefined;

  const xOnly = (p: P): Uint8Array => group.encode(p).subarray(1);

  const challenge = (R: P, PK: P, message: Uint8Array): bigint => {
    if (tag) return bytesToNumberBE(sha256.create().update(tag).update(tag).update(xOnly(R)).update(xOnly(PK)).update(message).digest()) % order;
    if (curve === 'ed25519') {
      // Streamed to avoid concatenating the message.
      return bytesToNumberLE(sha512.create().update(group.encode(R)).update(group.encode(PK)).update(message).digest()) % order;
    }
    const R_ = group.encode(R);
    const buf = new Uint8Array(2 * pl + message.length);
    buf.set(R_, 0);
    buf.set(group.encode(PK), pl);
    buf.set(message, 2 * pl);
    return hashes.H2(buf);
  };

  const encodePublicKey = (pk: P): Uint8Array => (bip340 ? xOnly(pk).slice() : group.encode(pk));

  const decodePublicKey = (bytes: Uint8Array): P => {
    bytesOf(bytes, 'public key');
    if (bip340) {
      if (bytes.length !== 32) throw new InvalidEncoding('BIP-340 public key must be 32 bytes (x-only)');
      // lift_x: the even-Y point with this x.
      const c = new Uint8Array(33);
      c[0] = 0x02;
      c.set(bytes, 1);
      return group.decode(c);
    }
    return group.decode(bytes);
  };

  const encodeSignature = (R: P, z: bigint): Uint8Array => {
    const sig = new Uint8Array(bip340 ? 32 + sl : pl + sl);
    sig.set(bip340 ? xOnly(R) : group.encode(R), 0);
    sig.set(group.scalarToBytes(z), bip340 ? 32 : pl);
    return sig;
  };

  const signatureLength = bip340 ? 32 + sl : pl + sl;

  const verifyWithKey = (signature: Uint8Array, message: Uint8Array, PK: P): boolean => {
    bytesOf(signature, 'signature');
    bytesOf(message, 'message');
    if (signature.length !== signatureLength) return false;
    if (bip340) {
      // BIP-340 Verify: R = s*G - e*P must be finite, have even y and x(R) = r. Comparing the
      // bytes of x(R) (always < p) with r also rejects r >= p.
      let s: bigint;
      try {
        s = group.scalarFromBytes(signature.subarray(32));
      } catch {
        return false;
      }
      const r = signature.subarray(0, 32);
      // The x-only key stands for its even-Y point (lift_x).
      const P_ = group.hasEvenY(PK) ? PK : group.neg(PK);
      const e = bytesToNumberBE(sha256.create().update(tag!).update(tag!).update(r).update(xOnly(P_)).update(message).digest()) % order;
      const R = group.msm([generator, P_], [s, Fn.neg(e)]);
      if (group.isIdentity(R) || !group.hasEvenY(R)) return false;
      return sameBytes(r, group.encode(R), 1, 32);
    }
    // RFC 9591 verify. decode() rejects non-canonical encodings, the identity and (Ed25519)
    // points outside the prime-order subgroup, so the cofactorless equation suffices.
    let R: P;
    let z: bigint;
    try {
      R = group.decode(signature.subarray(0, pl));
      z = group.scalarFromBytes(signature.subarray(pl));
    } catch {
      return false;
    }
    const c = challenge(R, PK, message);
    return group.eq(group.msm([generator, PK], [z, Fn.neg(c)]), R);
  };

  return Object.freeze({
    scheme,
    contextString,
    group,
    evenY: bip340,
    publicKeyLength: bip340 ? 32 : pl,
    signatureLength,
    ...hashes,
    challenge,
    encodePublicKey,
    decodePublicKey,
    encodeSignature,
    verify: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) =>
      verifyWithKey(signature, message, decodePublicKey(publicKey)),
    verifyWithKey,
  });
}

const suites = new WeakMap<Group<unknown>, Map<FrostScheme, Ciphersuite<unknown>>>();

/** The ciphersuite for a scheme on a group backend (default: groupFor(curve)), memoised. */
export function ciphersuite(scheme: FrostScheme, group?: Group<unknown>): Ciphersuite<unknown> {
  const g = group ?? groupFor(curveOf(scheme));
  let perGroup = suites.get(g);
  if (!perGroup) {
    perGroup = new Map();
    suites.set(g, perGroup);
  }
  let cs = perGroup.get(scheme);
  if (!cs) {
    cs = makeCiphersuite(scheme, g);
    perGroup.set(scheme, cs);
  }
  return cs;
}
