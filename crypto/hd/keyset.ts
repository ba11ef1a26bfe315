/**
 * A keyset seen through a derivation path: the tweak every node applies to its share, the group
 * key the shares then sign for, and the key clients see. Coordinator and nodes both compute it
 * from public data (root key, chain code, path), so neither has to trust the other's arithmetic.
 */
import { applyTweakToPoint, NO_TWEAK, parsePath, walletKey, type HdScheme, type KeyTweak } from './derive.js';

/** Paths are relative to the keyset root; deeper ones are refused to bound the work per request. */
export const MAX_SIGNING_DEPTH = 16;

export interface DerivedKeyset {
  /** Canonical form ("m/0/5"); '' for the root. */
  readonly path: string;
  readonly tweak: KeyTweak;
  /** The tweaked group key in the group encoding (33-byte compressed on secp256k1, 32 bytes on Ed25519). */
  readonly groupPublicKey: Uint8Array;
  /** The key as clients use it (x-only for bip340). */
  readonly publicKey: Uint8Array;
}

/**
 * `rootGroupKey` is the keyset key in the group encoding. For bip340 a non-root path yields the
 * BIP-86 Taproot output key of the child (crypto/hd/wallets.ts); the root stays as it always was.
 */
export function deriveKeyset(scheme: HdScheme, rootGroupKey: Uint8Array, chainCode: Uint8Array, path: string): DerivedKeyset {
  if (path === '' || path === 'm') {
    return { path: '', tweak: NO_TWEAK, groupPublicKey: rootGroupKey, publicKey: scheme === 'bip340' ? rootGroupKey.slice(1) : rootGroupKey };
  }
  const indexes = parsePath(path);
  if (indexes.length > MAX_SIGNING_DEPTH) throw new RangeError(`derivation path is deeper than ${MAX_SIGNING_DEPTH} levels`);
  const w = walletKey(scheme, { publicKey: rootGroupKey, chainCode }, indexes);
  const groupPublicKey = applyTweakToPoint(scheme, w.tweak, rootGroupKey);
  return { path: 'm/' + indexes.join('/'), tweak: w.tweak, groupPublicKey, publicKey: w.publicKey };
}

/** A member's verifying share under the same tweak (the Lagrange weights sum to one, so the add carries over). */
export function deriveVerifyingShare(scheme: HdScheme, d: DerivedKeyset, verifyingShare: Uint8Array): Uint8Array {
  return d.path === '' ? verifyingShare : applyTweakToPoint(scheme, d.tweak, verifyingShare);
}
