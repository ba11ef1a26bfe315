/**
 * Node-to-node encryption and broadcast signatures (DESIGN.md section 2): the coordinator relays
 * protocol messages but can neither read nor forge them.
 *
 * Point-to-point box (version 1):
 *   version (1) || ephemeral X25519 public (32) || nonce (24) || XChaCha20-Poly1305 ciphertext+tag
 *   key = HKDF-SHA256(DH(eph, R) || DH(S, R), info = tag, S_pub, R_pub, eph_pub)
 *   AAD = length-prefixed (tag, sessionId, round, from, to)
 * - DH(S, R) between the static keys authenticates the sender: only the holders of S or R can
 *   compute it. (As with any static-DH scheme, whoever steals R can forge boxes to R.)
 * - DH(eph, R) with a fresh ephemeral per message gives every message its own key, so nonce reuse
 *   across messages is impossible; the random 24-byte nonce is defence in depth.
 * - The info binds both static keys and the ephemeral, so a box cannot be re-attributed to another
 *   sender/receiver pair; the AAD binds the session, round and both node ids, so a box cannot be
 *   replayed into another session, round or direction. Replays of the same box in the same
 *   context are the node layer's to drop (one message per sender per round).
 *
 * Broadcasts are Ed25519 signatures (RFC 8032, strict verification) over the same context
 * encoding plus the payload: every receiver, and an auditor, can check them.
 *
 * X25519, Ed25519 signing and the AEAD (xchacha.ts) run on OpenSSL (node:crypto), about 20 times
 * faster than the pure-JS curves: DKLs23 presigning seals and signs several messages per party.
 * OpenSSL refuses an all-zero X25519 result (a low-order public key) as noble does. Broadcasts are
 * checked by ed25519-sig.ts (libsodium or OpenSSL), which refuses keys that are not a canonical
 * encoding of a point outside the small-order subgroup, and non-canonical s.
 */
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, sign as osslSign, type KeyObject } from 'node:crypto';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { ed25519VerifyPlain } from './ed25519-sig.js';
import { encodeFields } from './transcript.js';
import { xchachaOpen, xchachaSeal } from './xchacha.js';

export interface IdentityKeys {
  /** X25519 secret key (32 bytes). */
  encryptionSecret: Uint8Array;
  encryptionPublic: Uint8Array;
  /** Ed25519 secret seed (32 bytes). */
  signingSecret: Uint8Array;
  signingPublic: Uint8Array;
}

export interface PeerContext {
  sessionId: string;
  round: number;
  /** Sender node id. */
  from: string;
  /** Receiver node id, or '*' for a broadcast. */
  to: string;
}

/** A box failed to seal or open. The message never contains key material or plaintext. */
export class PeerBoxError extends Error {
  override readonly name = 'PeerBoxError';
}

const VERSION = 1;
const KEY_INFO_TAG = 'custody-peer-box-key-v1';
const AAD_TAG = 'custody-peer-box-aad-v1';
const BROADCAST_TAG = 'custody-peer-broadcast-v1';
const KEY_LENGTH = 32;
const NONCE_LENGTH = 24;
const TAG_LENGTH = 16;
const HEADER_LENGTH = 1 + KEY_LENGTH + NONCE_LENGTH;

export function generateIdentity(): IdentityKeys {
  const encryptionSecret = x25519.utils.randomSecretKey();
  const signingSecret = ed25519.utils.randomSecretKey();
  return {
    encryptionSecret,
    encryptionPublic: x25519.getPublicKey(encryptionSecret),
    signingSecret,
    signingPublic: ed25519.getPublicKey(signingSecret),
  };
}

function contextFields(tag: string, c: PeerContext): Uint8Array {
  if (typeof c.sessionId !== 'string' || typeof c.from !== 'string' || typeof c.to !== 'string') {
    throw new PeerBoxError('peer context fields must be strings');
  }
  if (!Number.isInteger(c.round) || c.round < 0 || c.round > 0xffffffff) throw new PeerBoxError('peer context round must be a uint32');
  return encodeFields([tag, c.sessionId, c.round, c.from, c.to]);
}

function checkKey(k: Uint8Array, what: string): void {
  if (!(k instanceof Uint8Array) || k.length !== KEY_LENGTH) throw new PeerBoxError(`${what} must be 32 bytes`);
}

function deriveKey(dhEph: Uint8Array, dhStatic: Uint8Array, senderPublic: Uint8Array, receiverPublic: Uint8Array, ephPublic: Uint8Array): Uint8Array {
  const ikm = new Uint8Array(2 * KEY_LENGTH);
  ikm.set(dhEph, 0);
  ikm.set(dhStatic, KEY_LENGTH);
  const key = hkdf(sha256, ikm, undefined, encodeFields([KEY_INFO_TAG, senderPublic, receiverPublic, ephPublic]), KEY_LENGTH);
  ikm.fill(0);
  return key;
}

// DER prefixes of RFC 8410 private keys (PKCS#8), X25519 (1.3.101.110) and Ed25519 (1.3.101.112).
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Key objects of identity secrets, made once per identity (the secrets live as long as the identity does). */
const privateKeys = new WeakMap<Uint8Array, KeyObject>();
function privateKey(secret: Uint8Array, pkcs8Prefix: Buffer): KeyObject {
  let k = privateKeys.get(secret);
  if (!k) {
    const der = Buffer.concat([pkcs8Prefix, secret]);
    k = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    der.fill(0);
    privateKeys.set(secret, k);
  }
  return k;
}

/**
 * Public keys go in and out of OpenSSL as JWK: its DER (SPKI) import and export each cost about
 * 70 us here against 1-7 us for JWK, and every box imports and exports an ephemeral key.
 */
function importX25519(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

function exportPublic(key: KeyObject): Uint8Array {
  return new Uint8Array(Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url'));
}

/** Public key objects of peers (roster keys: few, reused for every message). */
const publicKeys = new Map<string, KeyObject>();
const MAX_PUBLIC_KEYS = 1_000;
function publicKey(raw: Uint8Array, cache: boolean): KeyObject {
  if (!cache) return importX25519(raw);
  const id = Buffer.from(raw).toString('hex');
  let k = publicKeys.get(id);
  if (!k) {
    k = importX25519(raw);
    if (publicKeys.size >= MAX_PUBLIC_KEYS) publicKeys.clear();
    publicKeys.set(id, k);
  }
  return k;
}

/** X25519 through OpenSSL, which throws when the result is all zero (a low-order public key). */
function dh(secret: KeyObject, peerPublic: Uint8Array, cachePeer: boolean): Uint8Array {
  return new Uint8Array(diffieHellman({ privateKey: secret, publicKey: publicKey(peerPublic, cachePeer) }));
}

/**
 * DH(S, R) between two static keys never changes, so it is computed once per key pair: it halves
 * the X25519 work of every box. The cached value is as secret as the identity key it comes from and
 * lives exactly as long (held per key object, never copied out).
 */
const staticShared = new WeakMap<KeyObject, Map<string, Uint8Array>>();
function staticDh(secret: KeyObject, peerPublic: Uint8Array): Uint8Array {
  let byPeer = staticShared.get(secret);
  if (!byPeer) staticShared.set(secret, (byPeer = new Map()));
  const id = Buffer.from(peerPublic).toString('hex');
  let shared = byPeer.get(id);
  if (!shared) {
    shared = dh(secret, peerPublic, true);
    if (byPeer.size >= MAX_PUBLIC_KEYS) {
      for (const v of byPeer.values()) v.fill(0);
      byPeer.clear();
    }
    byPeer.set(id, shared);
  }
  return shared;
}

export function sealToPeer(args: { sender: IdentityKeys; receiverPublic: Uint8Array; context: PeerContext; plaintext: Uint8Array }): Uint8Array {
  const { sender, receiverPublic, context, plaintext } = args;
  checkKey(receiverPublic, 'receiver public key');
  checkKey(sender.encryptionSecret, 'sender encryption key');
  const aad = contextFields(AAD_TAG, context);
  // The ephemeral secret never leaves OpenSSL.
  const eph = generateKeyPairSync('x25519');
  const ephPublic = exportPublic(eph.publicKey);
  let dhEph: Uint8Array;
  let dhStatic: Uint8Array;
  try {
    dhEph = dh(eph.privateKey, receiverPublic, true);
    dhStatic = staticDh(privateKey(sender.encryptionSecret, X25519_PKCS8), receiverPublic);
  } catch {
    throw new PeerBoxError('invalid receiver public key');
  }
  const key = deriveKey(dhEph, dhStatic, sender.encryptionPublic, receiverPublic, ephPublic);
  dhEph.fill(0);
  const nonce = randomBytes(NONCE_LENGTH);
  const ciphertext = xchachaSeal(key, nonce, aad, plaintext);
  key.fill(0);
  const box = new Uint8Array(HEADER_LENGTH + ciphertext.length);
  box[0] = VERSION;
  box.set(ephPublic, 1);
  box.set(nonce, 1 + KEY_LENGTH);
  box.set(ciphertext, HEADER_LENGTH);
  return box;
}

export function openFromPeer(args: { receiver: IdentityKeys; senderPublic: Uint8Array; context: PeerContext; box: Uint8Array }): Uint8Array {
  const { receiver, senderPublic, context, box } = args;
  checkKey(senderPublic, 'sender public key');
  checkKey(receiver.encryptionSecret, 'receiver encryption key');
  if (!(box instanceof Uint8Array) || box.length < HEADER_LENGTH + TAG_LENGTH) throw new PeerBoxError('peer box is too short');
  if (box[0] !== VERSION) throw new PeerBoxError('unsupported peer box version');
  const aad = contextFields(AAD_TAG, context);
  const ephPublic = box.subarray(1, 1 + KEY_LENGTH);
  const nonce = box.subarray(1 + KEY_LENGTH, HEADER_LENGTH);
  let key: Uint8Array | undefined;
  try {
    const secret = privateKey(receiver.encryptionSecret, X25519_PKCS8);
    const dhEph = dh(secret, ephPublic, false);
    key = deriveKey(dhEph, staticDh(secret, senderPublic), senderPublic, receiver.encryptionPublic, ephPublic);
    dhEph.fill(0);
    return xchachaOpen(key, nonce, aad, box.subarray(HEADER_LENGTH));
  } catch {
    // One message for every failure: which check failed is no business of the relay.
    throw new PeerBoxError('peer box does not open (wrong key, context or tampered ciphertext)');
  } finally {
    key?.fill(0);
  }
}

/** The bytes a broadcast signature covers (exported for independent verification in tests). */
export function broadcastMessage(context: PeerContext, payload: Uint8Array): Uint8Array {
  const head = contextFields(BROADCAST_TAG, context);
  return encodeFields([head, payload]);
}

export function signBroadcast(sender: IdentityKeys, context: PeerContext, payload: Uint8Array): Uint8Array {
  return new Uint8Array(osslSign(null, broadcastMessage(context, payload), privateKey(sender.signingSecret, ED25519_PKCS8)));
}

export function verifyBroadcast(senderSigningPublic: Uint8Array, context: PeerContext, payload: Uint8Array, signature: Uint8Array): boolean {
  if (!(senderSigningPublic instanceof Uint8Array) || senderSigningPublic.length !== 32 || !(signature instanceof Uint8Array) || signature.length !== 64) return false;
  return ed25519VerifyPlain(senderSigningPublic, broadcastMessage(context, payload), signature);
}
