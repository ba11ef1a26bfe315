/**
 * DKLs23 presigning: the two message-independent rounds of Protocol 3.6 ("Threshold ECDSA in
 * Three Rounds", eprint 2023/765, signing steps 4-9), as a sans-I/O state machine.
 *
 *   start   (step 5-6) sample instance key k_i and inversion mask phi_i, R_i = k_i*G; broadcast a
 *           salted hash commitment to R_i; towards every peer j, as Bob of the pair (j -> i),
 *           run multiplication round 1 (chi_ij is Bob's random input) and send it point-to-point.
 *   step 1  (step 7) sk_i = lambda_i*x_i + zeta_i + tweak/|S| (zeta: F_Zero share, sums to 0 over S);
 *           towards every peer j, as Alice with inputs [k_i, sk_i]: multiplication round 2 gives
 *           c_u, c_v; send point-to-point the multiplication message, Gamma_u = c_u*G,
 *           Gamma_v = c_v*G, psi_ij = phi_i - chi_ij and an echo of the round-1 commitments;
 *           broadcast R_i with its salt and pk_i = sk_i*G.
 *   step 2  (steps 8-9) open the commitments; finish the multiplications as Bob (d_u, d_v); check
 *           chi_ij*R_j == d_u*G + Gamma_u and chi_ij*pk_j == d_v*G + Gamma_v per counterparty,
 *           sum(pk_j) == derived key, R = sum(R_j) not the identity; output
 *             u_i = k_i*(phi_i + sum_j psi_ji) + sum_j (c_u^ij + d_u^ij)     (sum over S: phi*k)
 *             v_i = sk_i*(phi_i + sum_j psi_ji) + sum_j (c_v^ij + d_v^ij)    (sum over S: phi*sk)
 *
 * psi: Bob's chi_ij is random and unknown to Alice; psi_ij = phi_i - chi_ij lets Alice (j)
 * replace the chi_ij she was multiplied by with the common mask phi = sum phi_i, so both sums
 * above come out as phi times the secret (DKLs23 section 3).
 *
 * HD tweak (PROTOCOLS.md): the derived key is PK + tweak*G. Every signer adds tweak/|S| to sk_i,
 * so sum(sk_i) = sk + tweak and sum(pk_i) is checked against the derived key. The tweak and the
 * derived key are bound into the session id before any nonce is sampled, so a presignature is
 * tied to one derivation path and cannot be re-targeted afterwards.
 *
 * Session id: sid = H(keyset public key, chain code, keyset transcript, threshold, sorted signers,
 * tweak, derived key, caller session id). Every multiplication context (H(sid, Alice, Bob)), zero
 * share, commitment and payload is bound to it. The caller's session id must be fresh and the node
 * should refuse one it has already used for the keyset: with a repeated sid, messages captured from
 * the earlier run pass every binding check here (mul.ts adds its own per-run nonces, so the reused
 * OT-extension correlations stay fresh even then, but that is its defence, not a licence).
 *
 * Blame: a failed OT-extension or multiplication check, or a failed Gamma check, names the
 * counterparty with 'ot-check-failed' / 'mul-check-failed' (the node bans it for the keyset:
 * retrying would let it run a selective-abort attack). The sum checks cannot say who cheated
 * when more than one peer contributes (zeta_j is secret), so they blame nobody unless there is
 * a single peer.
 */
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { groupFor, type Group } from '../group/index.js';
import { collectRound, ProtocolAbort, type AbortReason, type Protocol, type ProtocolMessage, type Step } from '../protocol.js';
import { lagrangeAtZero } from '../shamir.js';
import { bytesEqual, hashFields, type Field } from '../transcript.js';
import type { EcdsaKeyShare } from './keygen.js';
import { defaultMul, type MulAbortReason, type MulBackend, type MulReceiverState } from './mul-backend.js';
import { encodeMessage, FieldReader, WireError } from './wire.js';

export interface PresignParams {
  key: EcdsaKeyShare;
  /** The signing set S (any order; sorted internally); must contain key.index, |S| >= threshold. */
  signers: readonly number[];
  /** Fresh random session id chosen by the caller; never reused for this keyset. */
  sessionId: string;
  /** Additive key tweak (non-hardened HD derivation): the derived key is key + tweak*G. Default 0. */
  tweak?: bigint;
  group?: Group<unknown>;
  /** Two-party multiplication; defaults to crypto/ecdsa/mul.ts. Tests may inject another. */
  mul?: MulBackend;
}

/** One party's presignature. Secret (u, v, phi): seal it, use it at most once, delete it before releasing the share. */
export interface Presignature {
  /** The caller's session id. */
  readonly sessionId: string;
  /** 32-byte session binding (see file comment); names this presignature on the wire. */
  readonly sid: Uint8Array;
  readonly index: number;
  /** Sorted ascending. */
  readonly signers: readonly number[];
  /** R = sum R_j, 33-byte compressed. */
  readonly R: Uint8Array;
  /** R.x mod n (R.x < n is guaranteed, see presign step 2). */
  readonly r: bigint;
  /** The derived public key (keyset key + tweak*G), 33-byte compressed. */
  readonly publicKey: Uint8Array;
  readonly tweak: bigint;
  readonly u: bigint;
  readonly v: bigint;
  readonly phi: bigint;
}

interface PresignCommon {
  readonly sessionId: string;
  readonly sid: Uint8Array;
  readonly self: number;
  readonly signers: readonly number[];
  readonly others: readonly number[];
  readonly group: Group<unknown>;
  readonly mul: MulBackend;
  readonly key: EcdsaKeyShare;
  readonly tweak: bigint;
  readonly derivedKey: unknown;
  readonly derivedKeyBytes: Uint8Array;
  /** Secrets of this session. */
  readonly k: bigint;
  readonly phi: bigint;
  readonly sk: bigint;
  readonly R: unknown;
  readonly RBytes: Uint8Array;
  readonly salt: Uint8Array;
  readonly commitment: Uint8Array;
  /** As Bob towards each peer: the multiplication state and chi_ij. */
  readonly receivers: ReadonlyMap<number, { state: MulReceiverState; chi: bigint }>;
  consumed: boolean;
}

export interface PresignRound1State extends PresignCommon {
  readonly phase: 1;
}

export interface PresignRound2State extends PresignCommon {
  readonly phase: 2;
  readonly commitments: ReadonlyMap<number, Uint8Array>;
  readonly round1Digest: Uint8Array;
  /** As Alice towards each peer: c_u, c_v. */
  readonly senderShares: ReadonlyMap<number, { cu: bigint; cv: bigint }>;
  readonly pk: unknown;
}

export type PresignState = PresignRound1State | PresignRound2State;

const TAG_SID = 'custody-ecdsa-presign-sid-v1';
const TAG_MUL_SID = 'custody-ecdsa-presign-mul-sid-v1';
const TAG_ZERO = 'custody-ecdsa-zero-share-v1';
const TAG_COMMIT = 'custody-ecdsa-presign-commit-v1';
const TAG_ROUND1 = 'custody-ecdsa-presign-round1-v1';
const TAG_R1B = 'custody-ecdsa-presign-r1b/v1';
const TAG_R1P = 'custody-ecdsa-presign-r1p/v1';
const TAG_R2B = 'custody-ecdsa-presign-r2b/v1';
const TAG_R2P = 'custody-ecdsa-presign-r2p/v1';
const TAG_PRESIG = 'custody-ecdsa-presignature/v1';
const SID_LENGTH = 32;
const SALT_LENGTH = 32;

/** Session binding shared by every signer (see file comment). */
export function presignSessionBinding(
  key: Pick<EcdsaKeyShare, 'publicKey' | 'chainCode' | 'transcriptHash' | 'threshold'>,
  signers: readonly number[],
  tweak: bigint,
  derivedKey: Uint8Array,
  sessionId: string,
): Uint8Array {
  const sorted = [...signers].sort((a, b) => a - b);
  const fields: Field[] = [key.publicKey, key.chainCode, key.transcriptHash, key.threshold, sorted.length, ...sorted];
  fields.push(numberToBytesBE(tweak, 32), derivedKey, sessionId);
  return hashFields('sha256', TAG_SID, fields);
}

/** Salted commitment to R_i (DKLs23 step 6); exported so tests can play a deviating party. */
export function commitInstancePoint(sid: Uint8Array, index: number, RBytes: Uint8Array, salt: Uint8Array): Uint8Array {
  return hashFields('sha256', TAG_COMMIT, [sid, index, RBytes, salt]);
}

function mulContext(sid: Uint8Array, alice: number, bob: number): { sessionId: Uint8Array } {
  return { sessionId: hashFields('sha256', TAG_MUL_SID, [sid, alice, bob]) };
}

/**
 * F_Zero share: zeta_i = sum_{j in S\{i}} +-PRF(seed_ij, sid), + when i < j; the pair's two terms
 * cancel, so sum_{i in S} zeta_i = 0. SHA-512 reduced mod n: bias below 2^-256.
 */
function zeroShare(g: Group<unknown>, key: EcdsaKeyShare, signers: readonly number[], sid: Uint8Array): bigint {
  let zeta = 0n;
  for (const j of signers) {
    if (j === key.index) continue;
    const seed = key.zeroSeeds.get(j);
    if (!seed) throw new Error(`no zero-sharing seed for party ${j}`);
    const lo = Math.min(key.index, j);
    const hi = Math.max(key.index, j);
    const term = g.Fn.create(bytesToNumberBE(hashFields('sha512', TAG_ZERO, [seed, sid, lo, hi])));
    zeta = key.index < j ? g.Fn.add(zeta, term) : g.Fn.sub(zeta, term);
  }
  return zeta;
}

/** The x coordinate of a compressed secp256k1 point encoding, as an integer (not reduced). */
export function pointX(encoded: Uint8Array): bigint {
  return bytesToNumberBE(encoded.subarray(1, 33));
}

function round1Digest(s: PresignCommon, commitments: ReadonlyMap<number, Uint8Array>): Uint8Array {
  const fields: Field[] = [s.sid, s.signers.length];
  for (const i of s.signers) fields.push(i, commitments.get(i)!);
  return hashFields('sha256', TAG_ROUND1, fields);
}

function mapMulReason(r: MulAbortReason): AbortReason {
  return r === 'malformed' ? 'malformed-message' : r;
}

/** Failures gathered over all peers, so blame names every offender of the most serious kind. */
class Failures {
  private readonly byReason = new Map<AbortReason, { who: number[]; why: string[] }>();
  add(reason: AbortReason, who: number, why: string): void {
    let e = this.byReason.get(reason);
    if (!e) this.byReason.set(reason, (e = { who: [], why: [] }));
    e.who.push(who);
    e.why.push(`party ${who}: ${why}`);
  }
  /** Ban-worthy reasons first: they must never be masked by a lesser one. */
  throwIfAny(context: string): void {
    for (const reason of ['ot-check-failed', 'mul-check-failed', 'malformed-message', 'check-failed'] as const) {
      const e = this.byReason.get(reason);
      if (e) throw new ProtocolAbort(reason, e.who, `${context}: ${e.why.join('; ')}`);
    }
    if (this.byReason.size > 0) {
      const [reason, e] = [...this.byReason][0]!;
      throw new ProtocolAbort(reason, e.who, `${context}: ${e.why.join('; ')}`);
    }
  }
}

function validateParams(p: PresignParams): { signers: number[]; group: Group<unknown>; mul: MulBackend; tweak: bigint } {
  const group = p.group ?? groupFor('secp256k1');
  if (group.curve !== 'secp256k1') throw new Error('ECDSA presigning runs on secp256k1');
  if (typeof p.sessionId !== 'string' || p.sessionId.length === 0) throw new Error('sessionId must be a non-empty string');
  const signers = [...p.signers].sort((a, b) => a - b);
  if (new Set(signers).size !== signers.length) throw new Error('signers must be distinct');
  if (signers.length < Math.max(2, p.key.threshold)) throw new Error(`need at least ${Math.max(2, p.key.threshold)} signers`);
  for (const j of signers) if (!p.key.participants.includes(j)) throw new Error(`signer ${j} is not in the keyset`);
  if (!signers.includes(p.key.index)) throw new Error('this party is not among the signers');
  for (const j of signers) {
    if (j === p.key.index) continue;
    if (!p.key.senderSetups.has(j) || !p.key.receiverSetups.has(j) || !p.key.zeroSeeds.has(j)) throw new Error(`no pairwise setup with party ${j}`);
  }
  const tweak = p.tweak ?? 0n;
  if (typeof tweak !== 'bigint' || tweak < 0n || tweak >= group.order) throw new Error('tweak must be a scalar in [0, n)');
  const mul = p.mul ?? defaultMul;
  if (mul.inputs !== 2) throw new Error('DKLs23 signing needs a multiplication with 2 inputs');
  return { signers, group, mul, tweak };
}

function start(params: PresignParams): { state: PresignState; outgoing: ProtocolMessage[] } {
  const { signers, group: g, mul, tweak } = validateParams(params);
  const key = params.key;
  const self = key.index;
  const others = signers.filter((j) => j !== self);
  const derivedKey = g.add(g.decode(key.publicKey), g.baseMul(tweak));
  if (g.isIdentity(derivedKey)) throw new Error('tweak cancels the public key');
  const derivedKeyBytes = g.encode(derivedKey);
  const sid = presignSessionBinding(key, signers, tweak, derivedKeyBytes, params.sessionId);

  // sk_i: Lagrange-weighted share, re-randomised by the zero share, plus this signer's part of the tweak.
  const lambda = lagrangeAtZero(g.Fn, self, signers);
  const tweakPart = g.Fn.mul(tweak, g.Fn.inv(g.Fn.create(BigInt(signers.length))));
  const sk = g.Fn.add(g.Fn.add(g.Fn.mul(lambda, key.secretShare), zeroShare(g, key, signers, sid)), tweakPart);

  const k = g.randomScalar();
  const phi = g.randomScalar();
  const R = g.baseMul(k);
  const RBytes = g.encode(R);
  const salt = randomBytes(SALT_LENGTH);
  const commitment = commitInstancePoint(sid, self, RBytes, salt);

  const outgoing: ProtocolMessage[] = [{ from: self, to: 0, round: 1, payload: encodeMessage(TAG_R1B, [sid, commitment]) }];
  const receivers = new Map<number, { state: MulReceiverState; chi: bigint }>();
  for (const j of others) {
    const r = mul.receiverRound1(key.receiverSetups.get(j)!, mulContext(sid, j, self));
    receivers.set(j, { state: r.state, chi: r.chi });
    outgoing.push({ from: self, to: j, round: 1, payload: encodeMessage(TAG_R1P, [sid, r.msg]) });
  }
  const state: PresignRound1State = {
    phase: 1,
    sessionId: params.sessionId,
    sid,
    self,
    signers,
    others,
    group: g,
    mul,
    key,
    tweak,
    derivedKey,
    derivedKeyBytes,
    k,
    phi,
    sk,
    R,
    RBytes,
    salt,
    commitment,
    receivers,
    consumed: false,
  };
  return { state, outgoing };
}

/** Reads the leading session binding; a mismatch is another session's message, not a malformed one. */
function readSid(r: FieldReader, s: PresignCommon, from: number): void {
  const sid = r.bytes(SID_LENGTH);
  if (!bytesEqual(sid, s.sid)) {
    // The peer may have been handed other parameters (signers, tweak, session id) by the caller: no blame.
    throw new ProtocolAbort('unexpected-message', [], `party ${from} is in another session (different signers, tweak, key or session id)`);
  }
}

function stepRound1(s: PresignRound1State, incoming: readonly ProtocolMessage[]): Step<PresignState, Presignature> {
  const g = s.group;
  const bc = collectRound(incoming, 1, s.self, s.signers, 'broadcast');
  const p2p = collectRound(incoming, 1, s.self, s.signers, 'p2p');

  const commitments = new Map<number, Uint8Array>([[s.self, s.commitment]]);
  const mulMsgs = new Map<number, Uint8Array>();
  const fail = new Failures();
  for (const j of s.others) {
    try {
      const b = new FieldReader(bc.get(j)!.payload, TAG_R1B);
      readSid(b, s, j);
      commitments.set(j, b.bytes(32));
      b.end();
      const p = new FieldReader(p2p.get(j)!.payload, TAG_R1P);
      readSid(p, s, j);
      const m = p.bytes();
      p.end();
      if (m.length === 0) throw new WireError('empty multiplication message');
      mulMsgs.set(j, m);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      fail.add('malformed-message', j, `round 1: ${e.message}`);
    }
  }
  fail.throwIfAny('presign round 1');

  // As Alice towards every peer. An OT-extension check failure here bans the peer (Bob).
  const senderShares = new Map<number, { cu: bigint; cv: bigint }>();
  const replies = new Map<number, Uint8Array>();
  for (const j of s.others) {
    try {
      const r = s.mul.senderRound2(s.key.senderSetups.get(j)!, mulContext(s.sid, s.self, j), [s.k, s.sk], mulMsgs.get(j)!);
      if (r.shares.length !== 2) throw new Error('multiplication returned the wrong number of shares');
      senderShares.set(j, { cu: r.shares[0]!, cv: r.shares[1]! });
      replies.set(j, r.msg);
    } catch (e) {
      const reason = s.mul.abortReason(e);
      if (reason === undefined) throw e;
      fail.add(mapMulReason(reason), j, `multiplication round 2 (we are Alice): ${reason}`);
    }
  }
  fail.throwIfAny('presign round 1');

  const digest = round1Digest(s, commitments);
  const pk = g.baseMul(s.sk);
  const outgoing: ProtocolMessage[] = [
    { from: s.self, to: 0, round: 2, payload: encodeMessage(TAG_R2B, [s.sid, s.RBytes, s.salt, g.encode(pk)]) },
  ];
  for (const j of s.others) {
    const { cu, cv } = senderShares.get(j)!;
    const psi = g.Fn.sub(s.phi, s.receivers.get(j)!.chi);
    outgoing.push({
      from: s.self,
      to: j,
      round: 2,
      payload: encodeMessage(TAG_R2P, [s.sid, digest, replies.get(j)!, g.encode(g.baseMul(cu)), g.encode(g.baseMul(cv)), g.scalarToBytes(psi)]),
    });
  }
  s.consumed = true;
  const next: PresignRound2State = { ...s, phase: 2, commitments, round1Digest: digest, senderShares, pk, consumed: false };
  return { done: false, state: next, outgoing };
}

interface Round2View {
  R: unknown;
  RBytes: Uint8Array;
  salt: Uint8Array;
  pk: unknown;
  digest: Uint8Array;
  mulMsg: Uint8Array;
  gammaU: unknown;
  gammaV: unknown;
  psi: bigint;
}

function stepRound2(s: PresignRound2State, incoming: readonly ProtocolMessage[]): Step<PresignState, Presignature> {
  const g = s.group;
  const Fn = g.Fn;
  const bc = collectRound(incoming, 2, s.self, s.signers, 'broadcast');
  const p2p = collectRound(incoming, 2, s.self, s.signers, 'p2p');
  const fail = new Failures();

  // 1. Decode and validate every field (points on the curve, not the identity; canonical scalars).
  const views = new Map<number, Round2View>();
  for (const j of s.others) {
    try {
      const b = new FieldReader(bc.get(j)!.payload, TAG_R2B);
      readSid(b, s, j);
      const R = b.point(g);
      const salt = b.bytes(SALT_LENGTH);
      const pk = b.point(g);
      b.end();
      const p = new FieldReader(p2p.get(j)!.payload, TAG_R2P);
      readSid(p, s, j);
      const digest = p.bytes(32);
      const mulMsg = p.bytes();
      const gammaU = p.point(g);
      const gammaV = p.point(g);
      const psi = p.scalar(g);
      p.end();
      if (mulMsg.length === 0) throw new WireError('empty multiplication message');
      views.set(j, { R: R.point, RBytes: R.bytes, salt, pk: pk.point, digest, mulMsg, gammaU: gammaU.point, gammaV: gammaV.point, psi });
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      fail.add('malformed-message', j, `round 2: ${e.message}`);
    }
  }
  fail.throwIfAny('presign round 2');

  // 2. Echo: every peer answered the same round-1 commitments we saw. Who equivocated (a sender,
  //    the relay, or the echoing peer) cannot be told apart here, so nobody is blamed.
  const disagree = s.others.filter((j) => !bytesEqual(views.get(j)!.digest, s.round1Digest));
  if (disagree.length > 0) {
    throw new ProtocolAbort('inconsistent-broadcast', [], `parties ${disagree.join(', ')} saw different round-1 commitments`);
  }

  // 3. Openings of the R_j commitments (step 8).
  for (const j of s.others) {
    const v = views.get(j)!;
    if (!bytesEqual(commitInstancePoint(s.sid, j, v.RBytes, v.salt), s.commitments.get(j)!)) {
      fail.add('check-failed', j, 'R_j does not open its round-1 commitment');
    }
  }
  fail.throwIfAny('presign round 2');

  // 4. Finish the multiplications as Bob, then the per-counterparty consistency checks.
  const receiverShares = new Map<number, { du: bigint; dv: bigint }>();
  for (const j of s.others) {
    const v = views.get(j)!;
    const rec = s.receivers.get(j)!;
    let d: bigint[];
    try {
      d = s.mul.receiverRound3(rec.state, v.mulMsg);
    } catch (e) {
      const reason = s.mul.abortReason(e);
      if (reason === undefined) throw e;
      fail.add(mapMulReason(reason), j, `multiplication round 3 (we are Bob): ${reason}`);
      continue;
    }
    if (d.length !== 2) throw new Error('multiplication returned the wrong number of shares');
    const [du, dv] = d as [bigint, bigint];
    // chi is secret: g.mul / g.baseMul (constant-time in the backend), never msm.
    if (!g.eq(g.mul(v.R, rec.chi), g.add(g.baseMul(du), v.gammaU))) {
      fail.add('mul-check-failed', j, 'chi*R_j != d_u*G + Gamma_u');
    } else if (!g.eq(g.mul(v.pk, rec.chi), g.add(g.baseMul(dv), v.gammaV))) {
      fail.add('mul-check-failed', j, 'chi*pk_j != d_v*G + Gamma_v');
    }
    receiverShares.set(j, { du, dv });
  }
  fail.throwIfAny('presign round 2');

  // 5. Sums: the pk_j must add up to the derived key; R must not be the identity.
  const soleBlame = s.others.length === 1 ? [...s.others] : [];
  let pkSum = s.pk;
  let R = s.R;
  for (const j of s.others) {
    pkSum = g.add(pkSum, views.get(j)!.pk);
    R = g.add(R, views.get(j)!.R);
  }
  if (!g.eq(pkSum, s.derivedKey)) {
    throw new ProtocolAbort('check-failed', soleBlame, 'public key shares do not add up to the (derived) public key');
  }
  if (g.isIdentity(R)) throw new ProtocolAbort('check-failed', soleBlame, 'R is the identity');
  const RBytes = g.encode(R);
  const rx = pointX(RBytes);
  // R.x >= n (probability ~2^-128) would need recovery ids 2/3, which Ethereum cannot carry:
  // the presignature is discarded and the caller presigns again. Nobody cheated.
  if (rx >= g.order) throw new ProtocolAbort('check-failed', [], 'R.x >= n: discard this presignature and presign again');
  const r = rx;
  if (r === 0n) throw new ProtocolAbort('check-failed', [], 'r = 0');

  // 6. u_i, v_i.
  let mask = s.phi;
  for (const j of s.others) mask = Fn.add(mask, views.get(j)!.psi);
  let u = Fn.mul(s.k, mask);
  let v = Fn.mul(s.sk, mask);
  for (const j of s.others) {
    const c = s.senderShares.get(j)!;
    const d = receiverShares.get(j)!;
    u = Fn.add(u, Fn.add(c.cu, d.du));
    v = Fn.add(v, Fn.add(c.cv, d.dv));
  }

  s.consumed = true;
  return {
    done: true,
    outgoing: [],
    output: {
      sessionId: s.sessionId,
      sid: s.sid,
      index: s.self,
      signers: s.signers,
      R: RBytes,
      r,
      publicKey: s.derivedKeyBytes,
      tweak: s.tweak,
      u,
      v,
      phi: s.phi,
    },
  };
}

export const ecdsaPresign: Protocol<PresignParams, PresignState, Presignature> = {
  name: 'dkls23-presign',
  rounds: 2,
  start,
  step(state, incoming) {
    if (state.consumed) throw new Error('presign state already used: states are single-use');
    return state.phase === 1 ? stepRound1(state, incoming) : stepRound2(state, incoming);
  },
};

// ---------------------------------------------------------------------------------------------
// Sealing codec: a presignature is secret and single-use.

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

export function encodePresignature(p: Presignature): Uint8Array {
  const g = groupFor('secp256k1');
  return encodeMessage(TAG_PRESIG, [
    utf8.encode(p.sessionId),
    p.sid,
    p.index,
    p.signers.length,
    ...p.signers,
    p.R,
    p.publicKey,
    g.scalarToBytes(p.tweak),
    g.scalarToBytes(p.u),
    g.scalarToBytes(p.v),
    g.scalarToBytes(p.phi),
  ]);
}

export function decodePresignature(bytes: Uint8Array): Presignature {
  const g = groupFor('secp256k1');
  try {
    const r = new FieldReader(bytes, TAG_PRESIG);
    const sessionId = utf8d.decode(r.bytes());
    const sid = r.bytes(SID_LENGTH);
    const index = r.u32();
    const n = r.count(1024);
    const signers: number[] = [];
    for (let i = 0; i < n; i++) signers.push(r.u32());
    for (let i = 1; i < n; i++) if (signers[i]! <= signers[i - 1]!) throw new WireError('signers must be strictly ascending');
    if (n < 2 || !signers.includes(index)) throw new WireError('bad signer set');
    const R = r.point(g).bytes;
    const publicKey = r.point(g).bytes;
    const tweak = r.scalar(g);
    const u = r.scalar(g);
    const v = r.scalar(g);
    const phi = r.scalar(g);
    r.end();
    const rx = pointX(R);
    if (rx >= g.order) throw new WireError('R.x >= n');
    return { sessionId, sid, index, signers, R, r: rx, publicKey, tweak, u, v, phi };
  } catch (e) {
    throw new Error(`invalid presignature encoding: ${e instanceof Error ? e.message : 'unknown error'}`);
  }
}
