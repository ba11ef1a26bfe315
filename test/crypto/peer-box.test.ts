import { describe, expect, it } from 'vitest';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeFields } from '../../crypto/transcript.js';
import {
  broadcastMessage,
  generateIdentity,
  openFromPeer,
  PeerBoxError,
  sealToPeer,
  signBroadcast,
  verifyBroadcast,
  type PeerContext,
} from '../../crypto/peer-box.js';

const alice = generateIdentity();
const bob = generateIdentity();
const mallory = generateIdentity();
const ctx: PeerContext = { sessionId: 'dkg-7f3a', round: 2, from: 'node-a', to: 'node-b' };
const plaintext = new TextEncoder().encode('share of f_1 at 2');

const seal = (context: PeerContext = ctx, pt = plaintext) =>
  sealToPeer({ sender: alice, receiverPublic: bob.encryptionPublic, context, plaintext: pt });

describe('peer box', () => {
  it('identity keys have the documented sizes', () => {
    for (const k of [alice.encryptionSecret, alice.encryptionPublic, alice.signingSecret, alice.signingPublic]) expect(k.length).toBe(32);
  });

  it('round trips, including an empty plaintext', () => {
    const box = seal();
    expect(box[0]).toBe(1);
    expect(box.length).toBe(1 + 32 + 24 + plaintext.length + 16);
    expect(openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: ctx, box })).toEqual(plaintext);
    const empty = seal(ctx, new Uint8Array(0));
    expect(openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: ctx, box: empty })).toEqual(new Uint8Array(0));
  });

  it('does not contain the plaintext', () => {
    const box = Buffer.from(seal());
    expect(box.includes(Buffer.from(plaintext))).toBe(false);
  });

  for (const [field, value] of [
    ['sessionId', 'dkg-7f3b'],
    ['round', 3],
    ['from', 'node-c'],
    ['to', 'node-c'],
  ] as const) {
    it(`fails to open when the context ${field} changes`, () => {
      const box = seal();
      const other = { ...ctx, [field]: value };
      expect(() => openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: other, box })).toThrow(PeerBoxError);
    });
  }

  it('a box cannot be reflected back in the other direction', () => {
    const box = seal();
    const reversed = { ...ctx, from: ctx.to, to: ctx.from };
    expect(() => openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: reversed, box })).toThrow(PeerBoxError);
  });

  it('fails with the wrong receiver key', () => {
    const box = seal();
    expect(() => openFromPeer({ receiver: mallory, senderPublic: alice.encryptionPublic, context: ctx, box })).toThrow(PeerBoxError);
  });

  it('authenticates the sender: wrong sender key fails, and a forger cannot pass as alice', () => {
    const box = seal();
    expect(() => openFromPeer({ receiver: bob, senderPublic: mallory.encryptionPublic, context: ctx, box })).toThrow(PeerBoxError);
    // Mallory seals to bob with her own static key; bob expects alice.
    const forged = sealToPeer({ sender: mallory, receiverPublic: bob.encryptionPublic, context: ctx, plaintext });
    expect(() => openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: ctx, box: forged })).toThrow(PeerBoxError);
  });

  it('keeps the static key agreement of each pair apart (it is computed once per pair)', () => {
    // One sender, many boxes to two receivers and back: every box opens for its receiver only.
    for (let i = 0; i < 3; i++) {
      const toBob = seal();
      const toMallory = sealToPeer({ sender: alice, receiverPublic: mallory.encryptionPublic, context: ctx, plaintext });
      const toAlice = sealToPeer({ sender: bob, receiverPublic: alice.encryptionPublic, context: ctx, plaintext });
      expect(openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: ctx, box: toBob })).toEqual(plaintext);
      expect(openFromPeer({ receiver: mallory, senderPublic: alice.encryptionPublic, context: ctx, box: toMallory })).toEqual(plaintext);
      expect(openFromPeer({ receiver: alice, senderPublic: bob.encryptionPublic, context: ctx, box: toAlice })).toEqual(plaintext);
      expect(() => openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: ctx, box: toMallory })).toThrow(PeerBoxError);
      expect(() => openFromPeer({ receiver: bob, senderPublic: mallory.encryptionPublic, context: ctx, box: toBob })).toThrow(PeerBoxError);
    }
  });

  it('fails on any flipped bit (version, ephemeral key, nonce, ciphertext, tag) and on truncation', () => {
    const box = seal();
    for (const pos of [0, 1, 20, 33, 50, 57, 60, box.length - 17, box.length - 1]) {
      const t = box.slice();
      t[pos]! ^= 0x01;
      expect(() => openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: ctx, box: t })).toThrow(PeerBoxError);
    }
    for (const len of [0, 1, 57, 57 + 15, box.length - 1]) {
      expect(() => openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: ctx, box: box.subarray(0, len) })).toThrow(PeerBoxError);
    }
  });

  it('error messages carry no secrets', () => {
    const box = seal();
    box[box.length - 1]! ^= 1;
    try {
      openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: ctx, box });
      expect.unreachable();
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).not.toContain(Buffer.from(bob.encryptionSecret).toString('hex'));
      expect(msg).not.toContain('share of f_1');
    }
  });

  it('two seals of the same plaintext differ (fresh ephemeral and nonce)', () => {
    const a = seal();
    const b = seal();
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect(Buffer.from(a.subarray(1, 33)).equals(Buffer.from(b.subarray(1, 33)))).toBe(false);
  });

  it('rejects low-order and malformed receiver keys when sealing', () => {
    expect(() => sealToPeer({ sender: alice, receiverPublic: new Uint8Array(32), context: ctx, plaintext })).toThrow(PeerBoxError);
    expect(() => sealToPeer({ sender: alice, receiverPublic: new Uint8Array(31), context: ctx, plaintext })).toThrow(PeerBoxError);
  });

  it('rejects a box whose ephemeral key is low order', () => {
    const box = seal();
    box.fill(0, 1, 33);
    expect(() => openFromPeer({ receiver: bob, senderPublic: alice.encryptionPublic, context: ctx, box })).toThrow(PeerBoxError);
  });
});

describe('broadcast signatures', () => {
  const bctx: PeerContext = { sessionId: 'dkg-7f3a', round: 1, from: 'node-a', to: '*' };
  const payload = new TextEncoder().encode('round-1 commitments');
  const sig = signBroadcast(alice, bctx, payload);

  it('verifies', () => {
    expect(sig.length).toBe(64);
    expect(verifyBroadcast(alice.signingPublic, bctx, payload, sig)).toBe(true);
  });

  it('fails on any change', () => {
    expect(verifyBroadcast(mallory.signingPublic, bctx, payload, sig)).toBe(false);
    for (const other of [
      { ...bctx, sessionId: 'dkg-7f3b' },
      { ...bctx, round: 2 },
      { ...bctx, from: 'node-c' },
      { ...bctx, to: 'node-b' },
    ]) {
      expect(verifyBroadcast(alice.signingPublic, other, payload, sig)).toBe(false);
    }
    const p2 = payload.slice();
    p2[0]! ^= 1;
    expect(verifyBroadcast(alice.signingPublic, bctx, p2, sig)).toBe(false);
    for (const pos of [0, 31, 32, 63]) {
      const s2 = sig.slice();
      s2[pos]! ^= 1;
      expect(verifyBroadcast(alice.signingPublic, bctx, payload, s2)).toBe(false);
    }
    expect(verifyBroadcast(alice.signingPublic, bctx, payload, sig.subarray(0, 63))).toBe(false);
    expect(verifyBroadcast(new Uint8Array(32), bctx, payload, sig)).toBe(false);
  });

  it('field boundaries are unambiguous', () => {
    // Same concatenated bytes, different split between sessionId and from.
    const a: PeerContext = { sessionId: 'ab', round: 1, from: 'c', to: '*' };
    const b: PeerContext = { sessionId: 'a', round: 1, from: 'bc', to: '*' };
    expect(verifyBroadcast(alice.signingPublic, b, payload, signBroadcast(alice, a, payload))).toBe(false);
  });
});

describe('OpenSSL-backed curves agree with an independent implementation (noble)', () => {
  it('a box opens with X25519 and HKDF done by noble, so the wire format is unchanged', () => {
    const box = seal();
    const eph = box.subarray(1, 33);
    const ikm = new Uint8Array(64);
    ikm.set(x25519.getSharedSecret(bob.encryptionSecret, eph), 0);
    ikm.set(x25519.getSharedSecret(bob.encryptionSecret, alice.encryptionPublic), 32);
    const key = hkdf(sha256, ikm, undefined, encodeFields(['custody-peer-box-key-v1', alice.encryptionPublic, bob.encryptionPublic, eph]), 32);
    const aad = encodeFields(['custody-peer-box-aad-v1', ctx.sessionId, ctx.round, ctx.from, ctx.to]);
    expect(xchacha20poly1305(key, box.subarray(33, 57), aad).decrypt(box.subarray(57))).toEqual(plaintext);
  });

  it('broadcast signatures are RFC 8032 signatures noble verifies; small-order and non-canonical keys are refused', () => {
    const bctx: PeerContext = { sessionId: 's', round: 1, from: 'node-a', to: '*' };
    const payload = new TextEncoder().encode('p');
    const sig = signBroadcast(alice, bctx, payload);
    expect(ed25519.verify(sig, broadcastMessage(bctx, payload), alice.signingPublic, { zip215: false })).toBe(true);
    // The identity (y = 1) is of small order: anyone could sign for it with R = identity-related tricks.
    const identity = new Uint8Array(32);
    identity[0] = 1;
    expect(verifyBroadcast(identity, bctx, payload, sig)).toBe(false);
    // y = p (non-canonical encoding of y = 0).
    const nonCanonical = new Uint8Array(32).fill(0xff);
    nonCanonical[0] = 0xed;
    nonCanonical[31] = 0x7f;
    expect(verifyBroadcast(nonCanonical, bctx, payload, sig)).toBe(false);
  });
});
