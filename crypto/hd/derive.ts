/**
 * Non-hardened HD derivation for threshold keys (shared/PROTOCOLS.md "HD derivation and batch
 * wallets"; the exact rules, with the Ed25519 scheme, are in docs/hd-wallets.md).
 *
 * A child key is the root key shifted by a tweak computed from public data only (public key and
 * chain code), so every node applies the same tweak to its Shamir share (Lagrange coefficients sum
 * to one) and a quorum signs for the child without anyone holding the whole key. Hardened
 * derivation needs the whole secret, so paths with hardened steps are refused.
 *
 * - ecdsa, secp256k1, bip340: BIP-32 CKDpub, bit for bit (xpub-compatible).
 * - ed25519: our additive scheme. SLIP-0010 has no public derivation for Ed25519.
 * - bip340 wallets: BIP-86 key-path output key on top of the derived key (taprootOutput).
 *
 * Pure: no I/O. This module uses noble points directly rather than Group<P>: the batch path needs
 * affine coordinates and raw field arithmetic that the Group interface deliberately hides.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { normalizeZ } from '@noble/curves/abstract/curve.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';

export type HdScheme = 'ecdsa' | 'secp256k1' | 'bip340' | 'ed25519';

/** Derived secret = (negate ? -x : x) + add  (mod group order). Applies to a Shamir share too, since Lagrange coefficients sum to 1. */
export interface KeyTweak {
  readonly negate: boolean;
  readonly add: bigint;
}

export const NO_TWEAK: KeyTweak = Object.freeze({ negate: false, add: 0n });

/** A path, key or index that cannot be derived. The message names the problem and holds no secret. */
export class DerivationError extends Error {
  override readonly name = 'DerivationError';
}

export interface ExtendedPublicKey {
  /** 33-byte compressed point for ecdsa / secp256k1 / bip340 (the full point, not x-only); 32 bytes for ed25519. */
  readonly publicKey: Uint8Array;
  readonly chainCode: Uint8Array;
}

/** A derived key and its tweak relative to the root secret. */
export interface DerivedKey extends ExtendedPublicKey {
  readonly tweak: KeyTweak;
}

type SecPoint = InstanceType<typeof secp256k1.Point>;
type EdPoint = InstanceType<typeof ed25519.Point>;

const Secp = secp256k1.Point;
const N = Secp.Fn.ORDER;
const P = Secp.Fp.ORDER;
const Ed = ed25519.Point;
const L = Ed.Fn.ORDER;

/** First hardened index (BIP-32): indexes at or above it are refused. */
const HARDENED = 0x80000000;
/** BIP-32 serialises depth in one byte. */
const MAX_DEPTH = 255;

// ---------------------------------------------------------------------------------------------
// Paths

/**
 * "m/0/5", "0/5", "m", "" -> [0,5] / []. Non-hardened only. Besides the rejections of the brief
 * (hardened markers, indexes >= 2^31, empty segments, non-decimal, leading '+', depth > 255) it
 * refuses leading zeros ("m/05"), so a path has exactly one spelling (paths are bound into
 * session ids and audit records).
 */
export function parsePath(path: string): number[] {
  if (typeof path !== 'string') throw new DerivationError('derivation path must be a string');
  if (path === '' || path === 'm') return [];
  const segments = path.split('/');
  if (segments[0] === 'm') segments.shift();
  if (segments.length > MAX_DEPTH) {
    throw new DerivationError(`invalid derivation path: depth ${segments.length} exceeds the BIP-32 maximum of ${MAX_DEPTH}`);
  }
  return segments.map((s, k) => parseSegment(path, s, k + 1));
}

function parseSegment(path: string, s: string, position: number): number {
  const bad = (why: string) => new DerivationError(`invalid derivation path "${path}": segment ${position} ${why}`);
  if (s === '') throw bad('is empty');
  if (/^\+?[0-9]+['hH]$/.test(s)) {
    throw bad(`("${s}") is hardened; threshold keys derive non-hardened children only (hardened derivation needs the whole secret)`);
  }
  if (s.startsWith('+')) throw bad(`("${s}") has a leading '+'`);
  if (!/^[0-9]+$/.test(s)) throw bad(`("${s}") is not a decimal index`);
  if (s.length > 1 && s.startsWith('0')) throw bad(`("${s}") has a leading zero`);
  // Length guard first: Number() of a long digit string loses precision.
  if (s.length > 10 || Number(s) >= HARDENED) throw bad(`("${s}") is 2^31 or more, the hardened range`);
  return Number(s);
}

/** [] -> "m", [0,5] -> "m/0/5". */
export function formatPath(indexes: readonly number[]): string {
  checkIndexes(indexes);
  let s = 'm';
  for (const i of indexes) s += '/' + i;
  return s;
}

function checkIndex(i: number, where: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= HARDENED) {
    throw new DerivationError(`${where}: index ${String(i)} is not a non-hardened index (an integer in [0, 2^31))`);
  }
}

function checkIndexes(indexes: readonly number[]): void {
  if (!Array.isArray(indexes)) throw new DerivationError('derivation path must be an array of indexes');
  if (indexes.length > MAX_DEPTH) throw new DerivationError(`derivation path depth ${indexes.length} exceeds the BIP-32 maximum of ${MAX_DEPTH}`);
  indexes.forEach((i, k) => checkIndex(i, `derivation path position ${k + 1}`));
}

// ---------------------------------------------------------------------------------------------
// Schemes, points, tweaks

function isEd(scheme: HdScheme): boolean {
  switch (scheme) {
    case 'ed25519':
      return true;
    case 'ecdsa':
    case 'secp256k1':
    case 'bip340':
      return false;
    default:
      throw new DerivationError(`unknown HD scheme ${String(scheme)}`);
  }
}

const orderOf = (scheme: HdScheme): bigint => (isEd(scheme) ? L : N);

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

function invalidChild(index: number): DerivationError {
  return new DerivationError(`invalid child at index ${index}, use the next index`);
}

function checkChainCode(c: Uint8Array, what: string): Uint8Array {
  if (!(c instanceof Uint8Array) || c.length !== 32) throw new DerivationError(`${what} chain code must be 32 bytes`);
  return c;
}

function decodeSecp(bytes: Uint8Array, what: string): SecPoint {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 33 || (bytes[0] !== 2 && bytes[0] !== 3)) {
    throw new DerivationError(`${what} must be a 33-byte compressed secp256k1 point`);
  }
  try {
    const p = Secp.fromBytes(bytes); // solves for y: fails off the curve; cofactor 1, so no subgroup check
    p.assertValidity();
    return p;
  } catch {
    throw new DerivationError(`${what} is not a valid secp256k1 point`);
  }
}

function decodeEd(bytes: Uint8Array, what: string): EdPoint {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) throw new DerivationError(`${what} must be a 32-byte Ed25519 point`);
  let p: EdPoint;
  try {
    p = Ed.fromBytes(bytes); // RFC 8032 strict decoding
  } catch {
    throw new DerivationError(`${what} is not a valid Ed25519 point encoding`);
  }
  // A small-order component would survive every tweak and make signatures ambiguous.
  if (p.is0() || !p.isTorsionFree()) throw new DerivationError(`${what} is the identity or not in the prime-order subgroup`);
  return p;
}

function ser32(i: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, i, false);
  return b;
}

/** Reduces `add` into [0, order): composeTweaks without a scheme cannot. */
export function normalizeTweak(scheme: HdScheme, t: KeyTweak): KeyTweak {
  return { negate: t.negate, add: mod(t.add, orderOf(scheme)) };
}

/**
 * Composes: tweak `outer` applied after `inner`, i.e. secret -> outer(inner(secret)).
 * outer(inner(x)) = ±(±x + a_in) + a_out, so negate = inner xor outer, add = ±a_in + a_out.
 * Deviation from the brief: with `scheme` the result is reduced mod the group order; without it the
 * add is the exact integer (it can be negative or >= order), which every function here accepts
 * but which should be normalised (normalizeTweak) before it is stored or sent.
 */
export function composeTweaks(inner: KeyTweak, outer: KeyTweak, scheme?: HdScheme): KeyTweak {
  const t = { negate: inner.negate !== outer.negate, add: (outer.negate ? -inner.add : inner.add) + outer.add };
  return scheme === undefined ? t : normalizeTweak(scheme, t);
}

export function applyTweakToScalar(scheme: HdScheme, t: KeyTweak, x: bigint): bigint {
  return mod((t.negate ? -x : x) + t.add, orderOf(scheme));
}

/** Point (encoded as above) -> tweaked point encoding: (negate ? -P : P) + add*G. */
export function applyTweakToPoint(scheme: HdScheme, t: KeyTweak, point: Uint8Array): Uint8Array {
  const add = mod(t.add, orderOf(scheme));
  if (isEd(scheme)) {
    const p = decodeEd(point, 'point');
    const q = (t.negate ? p.negate() : p).add(Ed.BASE.multiplyUnsafe(add));
    if (q.is0()) throw new DerivationError('tweaked point is the identity');
    return q.toBytes();
  }
  const p = decodeSecp(point, 'point');
  const q = (t.negate ? p.negate() : p).add(Secp.BASE.multiplyUnsafe(add));
  if (q.is0()) throw new DerivationError('tweaked point is the identity');
  return q.toBytes(true);
}

// ---------------------------------------------------------------------------------------------
// Single derivation

/** Ed25519 derivation domain tag (docs/hd-wallets.md). Changing it changes every Ed25519 wallet. */
const ED_TAG = utf8ToBytes('custody-ed25519-ckd-v1');

/** 0x00/0x01 || tag || A || ser32(i): 0x00 feeds the tweak, 0x01 the child chain code. */
function edData(domain: 0 | 1, A: Uint8Array, index: number): Uint8Array {
  return concatBytes(Uint8Array.of(domain), ED_TAG, A, ser32(index));
}

/** All 64 bytes reduced mod L: the tweak is within about 2^-260 of uniform. */
const edTweakOf = (I: Uint8Array): bigint => bytesToNumberBE(I) % L;

/**
 * Public child derivation of `path` from root. secp256k1 schemes: BIP-32 CKDpub. ed25519: our
 * additive scheme. tweak.negate is always false here; tweak.add is the sum of the step tweaks.
 */
export function derive(scheme: HdScheme, root: ExtendedPublicKey, path: readonly number[]): DerivedKey {
  checkIndexes(path);
  let cc: Uint8Array = checkChainCode(root.chainCode, 'root').slice();
  let add = 0n;
  if (isEd(scheme)) {
    let A = decodeEd(root.publicKey, 'root public key');
    let Ab: Uint8Array = root.publicKey.slice();
    for (const index of path) {
      const t = edTweakOf(hmac(sha512, cc, edData(0, Ab, index)));
      if (t === 0n) throw invalidChild(index);
      A = A.add(Ed.BASE.multiplyUnsafe(t));
      if (A.is0()) throw invalidChild(index);
      cc = hmac(sha512, cc, edData(1, Ab, index)).slice(0, 32);
      Ab = A.toBytes();
      add = (add + t) % L;
    }
    return { publicKey: Ab, chainCode: cc, tweak: { negate: false, add } };
  }
  let K = decodeSecp(root.publicKey, 'root public key');
  let Kb: Uint8Array = root.publicKey.slice();
  for (const index of path) {
    // BIP-32 CKDpub: I = HMAC-SHA512(c, serP(K) || ser32(i)); K_i = IL*G + K; c_i = IR.
    const I = hmac(sha512, cc, concatBytes(Kb, ser32(index)));
    const il = bytesToNumberBE(I.subarray(0, 32));
    if (il >= N) throw invalidChild(index);
    K = K.add(Secp.BASE.multiplyUnsafe(il)); // IL is public: the variable-time path is fine
    if (K.is0()) throw invalidChild(index);
    Kb = K.toBytes(true);
    cc = I.slice(32);
    add = (add + il) % N;
  }
  return { publicKey: Kb, chainCode: cc, tweak: { negate: false, add } };
}

// ---------------------------------------------------------------------------------------------
// Taproot (BIP-341 / BIP-86)

/** SHA-256 state after the TapTweak tag prefix sha256(tag) || sha256(tag), cloned per use. */
const TAP_TWEAK = (() => {
  const tag = sha256(utf8ToBytes('TapTweak'));
  return sha256.create().update(tag).update(tag);
})();
const tapTweak = (x32: Uint8Array): Uint8Array => TAP_TWEAK.clone().update(x32).digest();

function tapTweakTooLarge(): DerivationError {
  return new DerivationError('TapTweak hash is not below the group order (BIP-341); this internal key has no output key');
}

/**
 * BIP-341 / BIP-86 key-path output key with no script tree: P = lift_x(x(internal)), t =
 * int(TaggedHash("TapTweak", x(P))), Q = P + t*G. `internal` is the 33-byte full point (then
 * negate = internal has odd Y) or a 32-byte x-only key (taken as lift_x, so negate = false: the
 * caller's secret must already be that of the even-Y point). The tweak maps the internal key's
 * secret to Q's, composed after `internalTweak`.
 */
export function taprootOutput(internal: Uint8Array, internalTweak: KeyTweak = NO_TWEAK): { outputKey: Uint8Array; tweak: KeyTweak } {
  let even: SecPoint;
  let negate = false;
  let x: Uint8Array;
  if (internal instanceof Uint8Array && internal.length === 32) {
    try {
      even = schnorr.utils.lift_x(bytesToNumberBE(internal));
    } catch {
      throw new DerivationError('internal key is not the x coordinate of a secp256k1 point');
    }
    x = internal;
  } else {
    const K = decodeSecp(internal, 'internal key');
    negate = internal[0] === 3;
    even = negate ? K.negate() : K;
    x = internal.subarray(1);
  }
  const t = bytesToNumberBE(tapTweak(x));
  if (t >= N) throw tapTweakTooLarge();
  const Q = even.add(Secp.BASE.multiplyUnsafe(t));
  if (Q.is0()) throw new DerivationError('taproot output key is the identity');
  return { outputKey: Q.toBytes(true), tweak: composeTweaks(internalTweak, { negate, add: t }, 'bip340') };
}

/**
 * The key a wallet signs with: derive(...) and, for bip340, then taprootOutput (BIP-86 key-path
 * wallets). publicKey: ecdsa/secp256k1 33-byte compressed, bip340 32-byte x-only of Q, ed25519 32
 * bytes. tweak: relative to the keyset root secret (apply to every node's share). For bip340 it
 * maps to the secret of the full point Q, which may have odd Y: BIP-340 signing negates for odd Y
 * as it does for any key.
 */
export function walletKey(scheme: HdScheme, root: ExtendedPublicKey, path: readonly number[]): { publicKey: Uint8Array; tweak: KeyTweak; chainCode: Uint8Array } {
  const d = derive(scheme, root, path);
  if (scheme !== 'bip340') return { publicKey: d.publicKey, tweak: d.tweak, chainCode: d.chainCode };
  const { outputKey, tweak } = taprootOutput(d.publicKey, d.tweak);
  return { publicKey: outputKey.slice(1), tweak, chainCode: d.chainCode };
}

// ---------------------------------------------------------------------------------------------
// Batch derivation

export interface BatchOptions {
  /** Also return 65-byte uncompressed SEC1 keys (secp256k1 schemes): Ethereum addresses need them, and decompressing costs a square root. */
  readonly uncompressed?: boolean;
}

/** Below this count the per-child noble path is cheaper than the shared inversions (and never builds the table). */
const BATCH_MIN = 64;

function checkRange(from: number, count: number): void {
  if (!Number.isInteger(from) || from < 0) throw new DerivationError(`from must be a non-negative integer, got ${String(from)}`);
  if (!Number.isInteger(count) || count < 0) throw new DerivationError(`count must be a non-negative integer, got ${String(count)}`);
  if (from + count > HARDENED) throw new DerivationError(`indexes ${from}..${from + count - 1} reach the hardened range (2^31)`);
}

/**
 * Fast path for batch wallet creation: children parent/from .. parent/(from+count-1), public keys
 * only (same encoding as derive) plus their tweak relative to `parent` (IL, or the Ed25519 step
 * tweak). Throws DerivationError for an invalid child like derive does (the caller skips that
 * index). With options.uncompressed (secp256k1 schemes) also returns the 65-byte keys.
 */
export function deriveChildren(
  scheme: HdScheme,
  parent: ExtendedPublicKey,
  from: number,
  count: number,
  options: BatchOptions = {},
): { publicKeys: Uint8Array[]; tweaks: bigint[]; uncompressed?: Uint8Array[] } {
  checkRange(from, count);
  checkChainCode(parent.chainCode, 'parent');
  if (isEd(scheme)) {
    if (options.uncompressed) throw new DerivationError('uncompressed keys exist for secp256k1 schemes only');
    return edChildren(parent, from, count);
  }
  const c = secpChildren(parent, from, count);
  const publicKeys = new Array<Uint8Array>(count);
  for (let k = 0; k < count; k++) publicKeys[k] = compressed(c.x[k]!, c.y[k]!);
  const out: { publicKeys: Uint8Array[]; tweaks: bigint[]; uncompressed?: Uint8Array[] } = { publicKeys, tweaks: c.tweaks };
  if (options.uncompressed) out.uncompressed = c.x.map((x, k) => uncompressed(x, c.y[k]!));
  return out;
}

export interface WalletKeyBatch {
  /** walletKey encoding: 33-byte compressed (ecdsa, secp256k1), 32-byte x-only Q (bip340), 32 bytes (ed25519). */
  readonly publicKeys: Uint8Array[];
  /** Relative to the keyset root secret, normalised. */
  readonly tweaks: KeyTweak[];
  /** With options.uncompressed, ecdsa and secp256k1 only: the 65-byte keys. */
  readonly uncompressed?: Uint8Array[];
}

/**
 * Batch form of walletKey for root/parentPath/from .. root/parentPath/(from+count-1): equal to
 * walletKey(scheme, root, [...parentPath, i]) per child, without its chain code. Addition to the
 * brief: bip340 wallets need a second fixed-base multiplication per child (the TapTweak), which the
 * per-child taprootOutput would also pay a square root for; this batches both.
 */
export function deriveWalletKeys(
  scheme: HdScheme,
  root: ExtendedPublicKey,
  parentPath: readonly number[],
  from: number,
  count: number,
  options: BatchOptions = {},
): WalletKeyBatch {
  checkRange(from, count);
  if (options.uncompressed && scheme !== 'ecdsa' && scheme !== 'secp256k1') {
    throw new DerivationError('uncompressed wallet keys exist for ecdsa and secp256k1 only');
  }
  const parent = derive(scheme, root, parentPath);
  const step = (add: bigint): KeyTweak => composeTweaks(parent.tweak, { negate: false, add }, scheme);
  if (scheme !== 'bip340') {
    const c = deriveChildren(scheme, parent, from, count, options);
    const out: { publicKeys: Uint8Array[]; tweaks: KeyTweak[]; uncompressed?: Uint8Array[] } = { publicKeys: c.publicKeys, tweaks: c.tweaks.map(step) };
    if (c.uncompressed) out.uncompressed = c.uncompressed;
    return out;
  }
  const c = secpChildren(parent, from, count);
  // BIP-86 on every child: even-Y internal point, t = TapTweak(x), Q = P_even + t*G.
  const tBytes = new Array<Uint8Array>(count);
  const ts = new Array<bigint>(count);
  const ys = new Array<bigint>(count);
  const negates = new Array<boolean>(count);
  for (let k = 0; k < count; k++) {
    const y = c.y[k]!;
    negates[k] = (y & 1n) === 1n;
    ys[k] = negates[k] ? P - y : y;
    tBytes[k] = tapTweak(numberToBytesBE(c.x[k]!, 32));
    ts[k] = bytesToNumberBE(tBytes[k]!);
    if (ts[k]! >= N) throw tapTweakTooLarge();
  }
  const q = mulAdd(tBytes, ts, c.x, ys);
  if (q.identity.length > 0) throw new DerivationError('taproot output key is the identity');
  const publicKeys = q.x.map((x) => numberToBytesBE(x, 32));
  const tweaks = c.tweaks.map((il, k) => composeTweaks(step(il), { negate: negates[k]!, add: ts[k]! }, 'bip340'));
  return { publicKeys, tweaks };
}

function compressed(x: bigint, y: bigint): Uint8Array {
  const out = new Uint8Array(33);
  out[0] = (y & 1n) === 1n ? 3 : 2;
  out.set(numberToBytesBE(x, 32), 1);
  return out;
}

function uncompressed(x: bigint, y: bigint): Uint8Array {
  const out = new Uint8Array(65);
  out[0] = 4;
  out.set(numberToBytesBE(x, 32), 1);
  out.set(numberToBytesBE(y, 32), 33);
  return out;
}

/** CKDpub for a range: affine children and their IL. */
function secpChildren(parent: ExtendedPublicKey, from: number, count: number): { x: bigint[]; y: bigint[]; tweaks: bigint[] } {
  const K = decodeSecp(parent.publicKey, 'parent public key');
  // HMAC key schedule once; per child only the two compressions of the 37-byte message remain.
  const base = hmac.create(sha512, parent.chainCode);
  const mac = base.clone();
  const data = new Uint8Array(37);
  data.set(parent.publicKey);
  const view = new DataView(data.buffer);
  const I = new Uint8Array(64);
  const ils = new Array<Uint8Array>(count);
  const tweaks = new Array<bigint>(count);
  for (let k = 0; k < count; k++) {
    view.setUint32(33, from + k, false);
    base._cloneInto(mac);
    mac.update(data);
    mac.digestInto(I);
    ils[k] = I.slice(0, 32);
    tweaks[k] = bytesToNumberBE(ils[k]!);
    if (tweaks[k]! >= N) throw invalidChild(from + k);
  }
  const { x: kx, y: ky } = K.toAffine();
  const r = mulAdd(ils, tweaks, new Array<bigint>(count).fill(kx), new Array<bigint>(count).fill(ky));
  if (r.identity.length > 0) throw invalidChild(from + r.identity[0]!);
  return { x: r.x, y: r.y, tweaks };
}

/**
 * s_k*G + Q_k for every k, affine; identity lists the k that give the point at infinity. Below
 * BATCH_MIN per child with noble (no table to build), from there the shared-inversion batch.
 */
function mulAdd(sBytes: readonly Uint8Array[], s: readonly bigint[], qx: readonly bigint[], qy: readonly bigint[]): { x: bigint[]; y: bigint[]; identity: number[] } {
  if (s.length >= BATCH_MIN) return secpMulAdd(sBytes, qx, qy);
  const pts = s.map((v, k) => Secp.fromAffine({ x: qx[k]!, y: qy[k]! }).add(Secp.BASE.multiplyUnsafe(v)));
  const identity = pts.flatMap((p, k) => (p.is0() ? [k] : []));
  const aff = pts.length === 0 ? [] : normalizeZ(Secp, pts).map((p) => p.toAffine());
  return { x: aff.map((a) => a.x), y: aff.map((a) => a.y), identity };
}

/** Ed25519 range: per-child tweak, noble multiplication, one shared inversion for the encodings. */
function edChildren(parent: ExtendedPublicKey, from: number, count: number): { publicKeys: Uint8Array[]; tweaks: bigint[] } {
  const A = decodeEd(parent.publicKey, 'parent public key');
  const base = hmac.create(sha512, parent.chainCode);
  const mac = base.clone();
  const data = edData(0, parent.publicKey, 0);
  const view = new DataView(data.buffer);
  const I = new Uint8Array(64);
  const tweaks = new Array<bigint>(count);
  const pts = new Array<EdPoint>(count);
  for (let k = 0; k < count; k++) {
    view.setUint32(data.length - 4, from + k, false);
    base._cloneInto(mac);
    mac.update(data);
    mac.digestInto(I);
    const t = edTweakOf(I);
    if (t === 0n) throw invalidChild(from + k);
    tweaks[k] = t;
    pts[k] = A.add(Ed.BASE.multiplyUnsafe(t));
    if (pts[k]!.is0()) throw invalidChild(from + k);
  }
  return { publicKeys: count === 0 ? [] : normalizeZ(Ed, pts).map((p) => p.toBytes()), tweaks };
}

// ---------------------------------------------------------------------------------------------
// secp256k1 fixed-base batch multiplication
//
// noble's per-key path (precomputed w=6 wNAF, projective) costs ~300 us per child here, mostly
// ~43 projective additions of ~12 field multiplications. This path instead uses a table of every
// signed 12-bit window of G (22 windows x 2048 affine points, built once, ~5 MB) and keeps all
// children in affine coordinates: each window is one affine addition per child, 6 field
// multiplications with the inversion shared across the batch (Montgomery's trick).

const W = 12;
const HALF = 1 << (W - 1);
const WINDOWS = Math.ceil(257 / W); // signed recoding can carry one bit past 256

let table: { x: bigint[]; y: bigint[] } | undefined;

const inv = (a: bigint): bigint => Secp.Fp.inv(a);

/**
 * a_k <- a_k + b_k (affine) for k < m, one inversion for all. Requires x(a_k) != x(b_k), i.e.
 * a_k != ±b_k; the caller routes those (doubling, identity) elsewhere.
 */
function addAffineInPlace(ax: bigint[], ay: bigint[], bx: readonly bigint[], by: readonly bigint[], m: number, prefix: bigint[]): void {
  if (m === 0) return;
  let acc = 1n;
  for (let k = 0; k < m; k++) {
    prefix[k] = acc;
    let d = bx[k]! - ax[k]!;
    if (d < 0n) d += P;
    acc = (acc * d) % P;
  }
  let i = inv(acc);
  for (let k = m - 1; k >= 0; k--) {
    const x1 = ax[k]!;
    const x2 = bx[k]!;
    let d = x2 - x1;
    if (d < 0n) d += P;
    const dInv = (i * prefix[k]!) % P;
    i = (i * d) % P;
    const lambda = ((by[k]! - ay[k]!) * dInv) % P; // sign fixed by the squares and products below
    let x3 = (lambda * lambda - x1 - x2) % P;
    if (x3 < 0n) x3 += P;
    let y3 = (lambda * (x1 - x3) - ay[k]!) % P;
    if (y3 < 0n) y3 += P;
    ax[k] = x3;
    ay[k] = y3;
  }
}

/** table[j*HALF + m - 1] = m * 2^(W*j) * G for m in 1..HALF. */
function fixedBaseTable(): { x: bigint[]; y: bigint[] } {
  if (table) return table;
  const size = WINDOWS * HALF;
  const x = new Array<bigint>(size);
  const y = new Array<bigint>(size);
  const gx = new Array<bigint>(WINDOWS);
  const gy = new Array<bigint>(WINDOWS);
  let g = Secp.BASE;
  for (let j = 0; j < WINDOWS; j++) {
    const a1 = g.toAffine();
    const a2 = g.double().toAffine();
    [x[j * HALF], y[j * HALF], x[j * HALF + 1], y[j * HALF + 1]] = [a1.x, a1.y, a2.x, a2.y];
    [gx[j], gy[j]] = [a1.x, a1.y];
    for (let k = 0; k < W; k++) g = g.double();
  }
  // Column m = column m-1 + column 1, all windows at once (m >= 3, so never a doubling).
  const ax = new Array<bigint>(WINDOWS);
  const ay = new Array<bigint>(WINDOWS);
  const prefix = new Array<bigint>(WINDOWS);
  for (let m = 3; m <= HALF; m++) {
    for (let j = 0; j < WINDOWS; j++) [ax[j], ay[j]] = [x[j * HALF + m - 2]!, y[j * HALF + m - 2]!];
    addAffineInPlace(ax, ay, gx, gy, WINDOWS, prefix);
    for (let j = 0; j < WINDOWS; j++) [x[j * HALF + m - 1], y[j * HALF + m - 1]] = [ax[j]!, ay[j]!];
  }
  table = { x, y };
  return table;
}

/** Signed base-2^W digits of a 32-byte big-endian scalar, each in [-2^(W-1), 2^(W-1)). */
function recode(s: Uint8Array, out: Int16Array, offset: number): void {
  let carry = 0;
  for (let j = 0; j < WINDOWS; j++) {
    const bit = j * W;
    const byte = bit >> 3;
    // Bytes counted from the least significant end; W <= 17 fits in three bytes.
    const b0 = byte < 32 ? s[31 - byte]! : 0;
    const b1 = byte + 1 < 32 ? s[30 - byte]! : 0;
    const b2 = byte + 2 < 32 ? s[29 - byte]! : 0;
    let v = (((b2 << 16) | (b1 << 8) | b0) >>> (bit & 7)) & ((1 << W) - 1);
    v += carry;
    carry = v >= HALF ? 1 : 0;
    out[offset + j] = v - carry * (1 << W);
  }
}

/**
 * s_k*G + Q_k for every k, in affine coordinates. s_k: 32-byte big-endian scalars below n; Q_k =
 * (qx[k], qy[k]) valid affine points. identity lists the k whose result is the point at infinity
 * (x, y undefined there). Rare exceptional additions (equal x) are recomputed with noble.
 */
function secpMulAdd(scalars: readonly Uint8Array[], qx: readonly bigint[], qy: readonly bigint[]): { x: bigint[]; y: bigint[]; identity: number[] } {
  const n = scalars.length;
  const T = fixedBaseTable();
  const digits = new Int16Array(n * WINDOWS);
  for (let k = 0; k < n; k++) recode(scalars[k]!, digits, k * WINDOWS);
  const X = new Array<bigint>(n).fill(0n);
  const Y = new Array<bigint>(n).fill(0n);
  // 0: still the identity; 1: (X, Y) holds the partial sum; 2: exceptional, redone with noble.
  const state = new Uint8Array(n);
  const ax = new Array<bigint>(n).fill(0n);
  const ay = new Array<bigint>(n).fill(0n);
  const bx = new Array<bigint>(n).fill(0n);
  const by = new Array<bigint>(n).fill(0n);
  const prefix = new Array<bigint>(n).fill(0n);
  const who = new Int32Array(n);
  let m = 0;
  // Queues "child k += (x, y)" for the next shared-inversion round.
  const offer = (k: number, x: bigint, y: bigint): void => {
    if (state[k] === 2) return;
    if (state[k] === 0) {
      X[k] = x;
      Y[k] = y;
      state[k] = 1;
    } else if (X[k] === x) {
      state[k] = 2; // P + P or P - P: left to noble below
    } else {
      ax[m] = X[k]!;
      ay[m] = Y[k]!;
      bx[m] = x;
      by[m] = y;
      who[m++] = k;
    }
  };
  const flush = (): void => {
    addAffineInPlace(ax, ay, bx, by, m, prefix);
    for (let i = 0; i < m; i++) {
      X[who[i]!] = ax[i]!;
      Y[who[i]!] = ay[i]!;
    }
    m = 0;
  };
  for (let j = 0; j < WINDOWS; j++) {
    for (let k = 0; k < n; k++) {
      const d = digits[k * WINDOWS + j]!;
      if (d === 0) continue;
      const t = j * HALF + (d > 0 ? d : -d) - 1;
      offer(k, T.x[t]!, d > 0 ? T.y[t]! : P - T.y[t]!);
    }
    flush();
  }
  for (let k = 0; k < n; k++) offer(k, qx[k]!, qy[k]!);
  flush();
  const identity: number[] = [];
  for (let k = 0; k < n; k++) {
    if (state[k] !== 2) continue;
    const s = bytesToNumberBE(scalars[k]!);
    const p = Secp.BASE.multiplyUnsafe(s).add(Secp.fromAffine({ x: qx[k]!, y: qy[k]! }));
    if (p.is0()) identity.push(k);
    else [X[k], Y[k]] = [p.x, p.y];
  }
  return { x: X, y: Y, identity };
}

/** Test-only seam: the batch multiplication, to exercise its rare branches directly. */
export const __TEST = { secpMulAdd, BATCH_MIN };
