/**
 * Ed25519 signatures for coordinator authorizations and node identities, through node:crypto
 * (about 50x faster than pure JS; the keys are ordinary Ed25519, so any verifier agrees).
 * Every signature is domain-separated so one kind can never be replayed as another.
 *
 * Verification uses libsodium when its addon loads (about 50 us here against OpenSSL's 108), and
 * OpenSSL otherwise. Both check the cofactorless equation with a canonical s and compare R as
 * bytes, and refuse keys that are not canonical or of small order (libsodium itself; before
 * OpenSSL, a check once per key). Every honestly made signature passes both.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';

const b64url = (b: Uint8Array) => Buffer.from(b).toString('base64url');

const pubCache = new Map<string, KeyObject>();

function publicKeyObject(pub: Uint8Array): KeyObject {
  const k = b64url(pub);
  let obj = pubCache.get(k);
  if (!obj) {
    obj = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k }, format: 'jwk' });
    pubCache.set(k, obj);
  }
  return obj;
}

function privateKeyObject(seed: Uint8Array, pub: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64url(seed), x: b64url(pub) }, format: 'jwk' });
}

function tagged(domain: string, message: Uint8Array): Uint8Array {
  const tag = new TextEncoder().encode(`custody/${domain}/v1\0`);
  const out = new Uint8Array(tag.length + message.length);
  out.set(tag);
  out.set(message, tag.length);
  return out;
}

export interface Ed25519KeyPair {
  seed: Uint8Array;
  publicKey: Uint8Array;
}

export function ed25519KeyPair(seed: Uint8Array = randomBytes(32)): Ed25519KeyPair {
  const priv = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(priv).export({ format: 'jwk' });
  return { seed, publicKey: new Uint8Array(Buffer.from(jwk.x as string, 'base64url')) };
}

/** A signer that keeps its key object, so the hot path does not re-import the key per call. */
export function ed25519Signer(pair: Ed25519KeyPair): (domain: string, message: Uint8Array) => Uint8Array {
  const key = privateKeyObject(pair.seed, pair.publicKey);
  return (domain, message) => new Uint8Array(sign(null, tagged(domain, message), key));
}

/** A plain RFC 8032 verification of well-sized inputs; false for anything that does not verify. */
type Verifier = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean;

/** Keys already found canonical and not of small order. */
const strictKeys = new Set<string>();
const MAX_STRICT_KEYS = 1_000;

/**
 * RFC 8032 strict decoding of a key, and not of small order: OpenSSL checks neither, and under the
 * identity as a key (R = identity, s = 0) verifies for every message. Checked once per key (noble).
 */
function strictKey(key: Uint8Array): boolean {
  const hex = Buffer.from(key).toString('hex');
  if (strictKeys.has(hex)) return true;
  try {
    // zip215: false is RFC 8032 strict decoding (canonical encoding).
    if (ed25519.Point.fromBytes(key, false).isSmallOrder()) return false;
  } catch {
    return false;
  }
  if (strictKeys.size >= MAX_STRICT_KEYS) strictKeys.clear();
  strictKeys.add(hex);
  return true;
}

const opensslVerify: Verifier = (publicKey, message, signature) => {
  if (!strictKey(publicKey)) return false;
  try {
    return verify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
};

function loadSodiumVerify(): Verifier | undefined {
  try {
    const na = createRequire(import.meta.url)('sodium-native') as { crypto_sign_verify_detached(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean };
    return (publicKey, message, signature) => na.crypto_sign_verify_detached(signature, message, publicKey);
  } catch {
    return undefined;
  }
}

/** The verifiers available here, preferred first (exported so tests hold each to the same vectors). */
export const ED25519_VERIFIERS: readonly { name: string; verify: Verifier }[] = [
  ...(() => {
    const v = loadSodiumVerify();
    return v ? [{ name: 'libsodium', verify: v }] : [];
  })(),
  { name: 'openssl', verify: opensslVerify },
];
const preferred = ED25519_VERIFIERS[0]!.verify;

export function ed25519Verify(publicKey: Uint8Array, domain: string, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  return preferred(publicKey, tagged(domain, message), signature);
}

/** Domain of the coordinator's signature over a SignAuthorization. */
export const SIGN_AUTHORIZATION_DOMAIN = 'sign-authorization';

/** Domain of the coordinator's one signature over a whole SignShares batch (signBatchMessage). */
export const SIGN_BATCH_DOMAIN = 'sign-batch';

/**
 * What the coordinator signs for a batch of authorizations: their count and each one's SHA-256, in
 * order. One signature (and one verification on the node) per call instead of one per item.
 */
export function signBatchMessage(authorizations: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(4 + 32 * authorizations.length);
  new DataView(out.buffer).setUint32(0, authorizations.length);
  authorizations.forEach((a, i) => out.set(sha256(a), 4 + 32 * i));
  return out;
}

/**
 * A plain RFC 8032 Ed25519 verification (no domain tag), for signatures the protocols make, such
 * as FROST(Ed25519) aggregates. Both verifiers check the cofactorless equation with canonical
 * encodings: stricter than RFC 9591's cofactored check, and every honestly made signature passes both.
 */
export function ed25519VerifyPlain(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  return preferred(publicKey, message, signature);
}
