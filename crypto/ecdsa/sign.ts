/**
 * DKLs23 online signing: the one message-dependent round of Protocol 3.6 (eprint 2023/765,
 * signing steps 9-10).
 *
 *   each signer   w_i = m*phi_i + r*v_i, broadcasts (w_i, u_i)      (m = the 32-byte digest mod n)
 *   combiner      s = sum(w_i) / sum(u_i) = phi*(m + r*sk) / (phi*k) = (m + r*sk) / k
 *
 * The combiner verifies the result as a plain ECDSA signature against the (derived) public key,
 * in the strong form s*R == m*G + r*PK (R is known from the presignature), which also fixes the
 * recovery id: the parity of R.y. Then s is normalised to the low half (s -> n - s negates R, so
 * the recovery bit flips). R.x >= n never reaches here: presigning rejects such an R, so the
 * recovery id is always 0 or 1 (Ethereum's v / yParity).
 *
 * Blame: the paper's last round has no per-share check (u_i, v_i are additive shares with no
 * public commitment), so a signature that does not verify aborts with 'check-failed' and no
 * blame; shares that do not decode name their sender.
 *
 * Only 32-byte digests are signed (PROTOCOLS.md: never a raw message of another length).
 */
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { groupFor, type Group } from '../group/index.js';
import { collectRound, ProtocolAbort, type Protocol, type ProtocolMessage, type Step } from '../protocol.js';
import { bytesEqual } from '../transcript.js';
import { pointX, type Presignature } from './presign.js';
import { encodeMessage, FieldReader, WireError } from './wire.js';

/** What the combiner needs from a presignature: public, identical on every signer. */
export interface PresignaturePublic {
  readonly sid: Uint8Array;
  readonly signers: readonly number[];
  readonly R: Uint8Array;
  readonly publicKey: Uint8Array;
}

export interface EcdsaSignature {
  /** r || s, 32 bytes each, big-endian, s in the low half. */
  readonly signature: Uint8Array;
  /** Parity of the y coordinate of the (normalised) R: Ethereum yParity, v = 27 + recovery. */
  readonly recovery: 0 | 1;
  readonly r: bigint;
  readonly s: bigint;
}

export interface SignShare {
  readonly index: number;
  readonly w: bigint;
  readonly u: bigint;
  /** Broadcast payload carrying (sid, index, digest, w_i, u_i). */
  readonly payload: Uint8Array;
}

const TAG_SHARE = 'custody-ecdsa-sign-share/v1';
const DIGEST_LENGTH = 32;

export function presignaturePublic(p: Presignature): PresignaturePublic {
  return { sid: p.sid, signers: p.signers, R: p.R, publicKey: p.publicKey };
}

function checkDigest(digest: Uint8Array): void {
  if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_LENGTH) {
    throw new RangeError(`ECDSA signs a ${DIGEST_LENGTH}-byte digest, got ${digest instanceof Uint8Array ? digest.length : typeof digest}`);
  }
}

/** The digest as a scalar: the 256-bit big-endian integer mod n (SEC 1 bits2int for n of 256 bits). */
function digestScalar(g: Group<unknown>, digest: Uint8Array): bigint {
  return g.Fn.create(bytesToNumberBE(digest));
}

/**
 * This signer's share of the signature on `digest`. The presignature must be deleted (from the
 * sealed pool) before the payload leaves the node: two shares from one presignature reveal the key.
 */
export function signRound(presig: Presignature, digest: Uint8Array): SignShare {
  checkDigest(digest);
  const g = groupFor('secp256k1');
  const m = digestScalar(g, digest);
  const w = g.Fn.add(g.Fn.mul(m, presig.phi), g.Fn.mul(presig.r, presig.v));
  const payload = encodeMessage(TAG_SHARE, [presig.sid, presig.index, digest, g.scalarToBytes(w), g.scalarToBytes(presig.u)]);
  return { index: presig.index, w, u: presig.u, payload };
}

/**
 * Combines every signer's share payload (index -> payload) into a verified, low-s signature.
 * Throws ProtocolAbort on missing, foreign or malformed shares and on a signature that fails.
 */
export function combine(pub: PresignaturePublic, digest: Uint8Array, shares: ReadonlyMap<number, Uint8Array>): EcdsaSignature {
  checkDigest(digest);
  const g = groupFor('secp256k1');
  const Fn = g.Fn;
  const unexpected = [...shares.keys()].filter((i) => !pub.signers.includes(i));
  if (unexpected.length > 0) throw new ProtocolAbort('unexpected-message', unexpected, `shares from non-signers ${unexpected.join(', ')}`);
  const missing = pub.signers.filter((i) => !shares.has(i));
  if (missing.length > 0) throw new ProtocolAbort('missing-message', missing, `no signature share from ${missing.join(', ')}`);

  let sumW = 0n;
  let sumU = 0n;
  const bad: number[] = [];
  const foreign: number[] = [];
  for (const i of pub.signers) {
    try {
      const r = new FieldReader(shares.get(i)!, TAG_SHARE);
      const sid = r.bytes(32);
      const index = r.u32();
      const d = r.bytes(DIGEST_LENGTH);
      const w = r.scalar(g);
      const u = r.scalar(g);
      r.end();
      if (index !== i) throw new WireError(`share claims index ${index}`);
      // Another presignature or another digest: the signer may have been handed it by the caller.
      if (!bytesEqual(sid, pub.sid) || !bytesEqual(d, digest)) foreign.push(i);
      sumW = Fn.add(sumW, w);
      sumU = Fn.add(sumU, u);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      bad.push(i);
    }
  }
  if (bad.length > 0) throw new ProtocolAbort('malformed-message', bad, `malformed signature shares from ${bad.join(', ')}`);
  if (foreign.length > 0) {
    throw new ProtocolAbort('inconsistent-broadcast', [], `parties ${foreign.join(', ')} signed another presignature or digest`);
  }

  let R: unknown;
  let PK: unknown;
  try {
    R = g.decode(pub.R);
    PK = g.decode(pub.publicKey);
  } catch {
    throw new Error('presignature public part holds an invalid point');
  }
  const r = pointX(pub.R);
  if (r === 0n || r >= g.order) throw new Error('presignature R.x is not in [1, n)');
  if (sumU === 0n) throw new ProtocolAbort('check-failed', [], 'sum of u_i is zero');
  if (sumW === 0n) throw new ProtocolAbort('check-failed', [], 's = 0');
  // s = W/U and 1/s = U/W from one inversion of W*U (an inversion costs as much as ~100 products).
  const t = Fn.inv(Fn.mul(sumW, sumU));
  let s = Fn.mul(Fn.sqr(sumW), t);
  const sInv = Fn.mul(Fn.sqr(sumU), t);

  // Strong ECDSA check: (m/s)*G + (r/s)*PK == R (public values: msm is fine).
  const m = digestScalar(g, digest);
  const check = g.msm([g.generator, PK], [Fn.mul(m, sInv), Fn.mul(r, sInv)]);
  if (!g.eq(check, R)) throw new ProtocolAbort('check-failed', [], 'combined signature does not verify');

  let recovery: 0 | 1 = g.hasEvenY(R) ? 0 : 1;
  if (s > g.order >> 1n) {
    s = g.order - s;
    recovery = recovery === 0 ? 1 : 0;
  }
  const signature = new Uint8Array(64);
  signature.set(numberToBytesBE(r, 32), 0);
  signature.set(numberToBytesBE(s, 32), 32);
  return { signature, recovery, r, s };
}

// ---------------------------------------------------------------------------------------------
// The same round as a one-round state machine, for drivers that run every protocol alike.

export interface SignParams {
  presignature: Presignature;
  digest: Uint8Array;
}

export interface SignState {
  readonly pub: PresignaturePublic;
  readonly self: number;
  readonly digest: Uint8Array;
  readonly own: Uint8Array;
  consumed: boolean;
}

export const ecdsaSign: Protocol<SignParams, SignState, EcdsaSignature> = {
  name: 'dkls23-sign',
  rounds: 1,
  start(params) {
    const share = signRound(params.presignature, params.digest);
    const state: SignState = {
      pub: presignaturePublic(params.presignature),
      self: params.presignature.index,
      digest: params.digest.slice(),
      own: share.payload,
      consumed: false,
    };
    return { state, outgoing: [{ from: state.self, to: 0, round: 1, payload: share.payload }] };
  },
  step(state, incoming: readonly ProtocolMessage[]): Step<SignState, EcdsaSignature> {
    if (state.consumed) throw new Error('sign state already used: states are single-use');
    const got = collectRound(incoming, 1, state.self, state.pub.signers, 'broadcast');
    const shares = new Map<number, Uint8Array>([[state.self, state.own]]);
    for (const [i, m] of got) shares.set(i, m.payload);
    state.consumed = true;
    return { done: true, output: combine(state.pub, state.digest, shares), outgoing: [] };
  },
};
