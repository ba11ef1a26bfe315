/**
 * DKLs23 two-party multiplication (random-input vector OLE) on secp256k1, and its pairwise setup.
 *
 * Sources: DKLs23, "Threshold ECDSA in Three Rounds" (eprint 2023/765: OT-based random VOLE, its
 * check, Fiat-Shamir, one OT batch reused for all of Alice's inputs); DKLs19 (eprint 2019/523: the
 * multiplication, gadget vector, consistency check); base OT eprint 2022/1525 (ot/base.ts); OT
 * extension KOS15 (eprint 2015/546, corrected Fig. 10) with the SoftSpokenOT (eprint 2022/192)
 * check (ot/extension.ts). Silence Labs' sl-oblivious and 0xCarbon's DKLs23 were read, not copied.
 *
 * Setup (per keyset and ordered pair, 2 flights, Alice first): 256 base OTs, Alice the OT receiver
 * with her OT-extension key Delta as choice bits, Bob the OT sender; the pads become the extension
 * seeds. setupId = H(sessionId) is kept in both setups, fixes the public random gadget vector g (per
 * pair, like the DKLs19 reference code) and is bound into every multiplication.
 *
 * Multiplication: xi = 256 + 2*lambda_s extended OTs; Alice's inputs a_0, a_1 and a random check
 * input a^ (rho = 1, width 3).
 *   Bob, round 1    random beta in {0,1}^xi, chi = <g, beta>; fresh nonce_B; OT extension with
 *                   choices beta and its check values.
 *   Alice, round 2  extension check; fresh nonce_A; per OT j the row oracle gives alpha0_j = H(q_j)
 *                   and alpha1_j = H(q_j xor Delta) in Z_n^3 (Bob's H(t_j) is alpha^{beta_j}_j);
 *                   sends a~_j = alpha0_j - alpha1_j + (a_0, a_1, a^), then theta = H(transcript,
 *                   a~) in Z_n^2, eta = a^ + theta.a and H(mu) with mu_j = alpha0_j[2] +
 *                   theta.alpha0_j[0..1]; her shares are -sum_j g_j*alpha0_j[i].
 *   Bob, round 3    d_j = H(t_j) + beta_j*a~_j; checks H(d_j[2] + theta.d_j[0..1] - beta_j*eta) ==
 *                   H(mu) in constant time; his shares are sum_j g_j*d_j[i].
 * In DKLs19 terms theta is the pair (chi, chi^) (a^'s weight normalised to 1) and mu is r.
 *
 * Parameters: kappa = 256 base OTs (Delta bits), 128-bit computational security; lambda_s = 80 as in
 * the DKLs19 reference implementation, so xi = 416. A cheating Alice learns a bit of beta only by
 * risking an abort with probability 1/2 per bit; g is uniformly random, so chi = <g, beta> stays
 * statistically hidden with the 2*lambda_s bits of slack.
 *
 * Fresh correlations: the PRG and the row oracle are keyed by (setupId, sessionId, nonce_B), the row
 * oracle also by nonce_A, so each honest party's own nonce keeps its correlations fresh even if a
 * session id were repeated. Callers must still use a unique session id per multiplication (it binds
 * the multiplication to its signing session) and must ban the peer for the keyset after an
 * 'ot-check-failed' or 'mul-check-failed' abort (the setup is reused; retries leak bits).
 *
 * Side channels: byte and word work is branch-free on secrets; scalars are JS BigInts, which are
 * not constant-time (the caveat of @noble/curves too); secret bits select through masks.
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { groupFor } from '../group/index.js';
import { encodeFields } from '../transcript.js';
import { MulAbort } from './ot/abort.js';
import { baseOtReceiverFinish, baseOtReceiverStart, baseOtSenderRespond, BASE_OT_BATCH, type BaseOtReceiverState } from './ot/base.js';
import { bytesOfWords, ctEqual, dataView, Reader, readU256, sha256Bulk, writeU256 } from './ot/bytes.js';
import { OTE_KAPPA, oteColumnWords, oteReceive, oteSend } from './ot/extension.js';
import { fromLimbs, LimbMod, limbsFromBE, limbsToBE, toLimbs } from './ot/limbs.js';
import { prgNonce, RowHash } from './ot/prf.js';
import { MSG_MUL_ROUND1, MSG_MUL_ROUND2, SCALAR_BYTES, STORE_RECEIVER_SETUP, STORE_RECEIVER_STATE, STORE_SENDER_SETUP, WIRE_VERSION } from './ot/wire.js';

export { MulAbort } from './ot/abort.js';
export type { MulAbortReason } from './ot/abort.js';

/** Alice's inputs per multiplication: instance key and key share in DKLs23. */
export const MUL_INPUTS = 2;
/** Total messages of the pairwise setup: Alice's base-OT message, then Bob's. */
export const MUL_SETUP_FLIGHTS: number = 2;
export const MUL_SETUP_FIRST: 'sender' | 'receiver' = 'sender';

/** Statistical security parameter and the number of extended OTs per multiplication. */
export const MUL_STAT_SECURITY = 80;
export const MUL_OTS = 256 + 2 * MUL_STAT_SECURITY;
const RHO = 1;
const WIDTH = MUL_INPUTS + RHO;

export type MulRole = 'sender' | 'receiver';

export interface MulContext {
  /** Binds keyset, both party indices, direction and fresh randomness; unique per use (caller's duty). */
  sessionId: Uint8Array;
}

/** Opaque setup state machine state; `role` says which side holds it. */
export interface MulSetupState {
  readonly role: MulRole;
}
/** Opaque secret: Alice's OT-extension key Delta and seeds. Store sealed, like a key share. */
export interface MulSenderSetup {
  readonly role: 'sender';
}
/** Opaque secret: Bob's OT-extension seeds (both seeds of every base OT). */
export interface MulReceiverSetup {
  readonly role: 'receiver';
}
/** Opaque, secret, single use: Bob's state between round 1 and round 3. */
export interface MulReceiverState {
  readonly role: 'receiver';
}

const TAG_SETUP_ID = 'custody/dkls23/mul/v1/setup-id';
const TAG_GADGET = 'custody/dkls23/mul/v1/gadget';
const TAG_SESSION = 'custody/dkls23/mul/v1/session';
const TAG_PRG = 'custody/dkls23/mul/v1/prg';
const TAG_T1 = 'custody/dkls23/mul/v1/round1';
const TAG_TA = 'custody/dkls23/mul/v1/round2';
const TAG_RO = 'custody/dkls23/mul/v1/row-oracle';
const TAG_THETA = 'custody/dkls23/mul/v1/theta';
const TAG_THETA_EXPAND = 'custody/dkls23/mul/v1/theta-expand';
const TAG_MU = 'custody/dkls23/mul/v1/mu';

const SEED_WORDS = BASE_OT_BATCH * 8;
const SENDER_SETUP_BYTES = 2 + 32 + 32 + SEED_WORDS * 4;
const RECEIVER_SETUP_BYTES = 2 + 32 + 2 * SEED_WORDS * 4;
const CW = oteColumnWords(MUL_OTS);
/** Round-1 size: header, nonce_B, U, x~, t~. */
export const MUL_ROUND1_BYTES = 2 + 32 + OTE_KAPPA * CW * 4 + 32 + OTE_KAPPA * 32;
/** Round-2 size: header, nonce_A, a~ (xi x 3 scalars), eta, H(mu). */
export const MUL_ROUND2_BYTES = 2 + 32 + MUL_OTS * WIDTH * SCALAR_BYTES + SCALAR_BYTES + 32;

const N = (): bigint => groupFor('secp256k1').order;

function checkContext(ctx: MulContext): Uint8Array {
  if (!(ctx?.sessionId instanceof Uint8Array) || ctx.sessionId.length < 16) {
    throw new TypeError('MulContext.sessionId must be a Uint8Array of at least 16 bytes');
  }
  return ctx.sessionId;
}

function packSeeds(pads: readonly Uint8Array[]): Uint32Array {
  const out = new Uint32Array(SEED_WORDS);
  const bytes = bytesOfWords(out);
  pads.forEach((p, i) => bytes.set(p, 32 * i));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Setup objects

/** Objects holding secrets print as a placeholder, so a stray log line cannot leak them. */
abstract class Secret {
  protected abstract readonly label: string;
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `[${this.label} (secret)]`;
  }
  toJSON(): string {
    return `[${this.label} (secret)]`;
  }
}

class SenderSetup extends Secret implements MulSenderSetup {
  readonly role = 'sender' as const;
  protected readonly label = 'MulSenderSetup';
  private g: bigint[] | undefined;
  constructor(
    readonly setupId: Uint8Array,
    readonly delta: Uint32Array, // 8 words
    readonly seeds: Uint32Array, // 256 x 8 words: seed_i^{Delta_i}
  ) {
    super();
  }
  gadget(): bigint[] {
    return (this.g ??= gadgetVector(this.setupId));
  }
}

class ReceiverSetup extends Secret implements MulReceiverSetup {
  readonly role = 'receiver' as const;
  protected readonly label = 'MulReceiverSetup';
  private g: bigint[] | undefined;
  constructor(
    readonly setupId: Uint8Array,
    readonly seeds0: Uint32Array,
    readonly seeds1: Uint32Array,
  ) {
    super();
  }
  gadget(): bigint[] {
    return (this.g ??= gadgetVector(this.setupId));
  }
}

/** g_j = H(setupId, j) mod n: public, random, fixed per ordered pair. */
function gadgetVector(setupId: Uint8Array): bigint[] {
  const n = N();
  const rh = new RowHash(TAG_GADGET, [setupId]);
  const zero = new Uint32Array(8);
  const out = new Uint32Array(8);
  const dv = new DataView(out.buffer);
  const g: bigint[] = new Array<bigint>(MUL_OTS);
  for (let j = 0; j < MUL_OTS; j++) {
    rh.hash(zero, 0, null, j, 0, out, 0, 8);
    g[j] = readU256(dv, 0) % n;
  }
  return g;
}

function asSender(s: MulSenderSetup): SenderSetup {
  if (!(s instanceof SenderSetup)) throw new TypeError('not a MulSenderSetup from this module');
  return s;
}
function asReceiver(s: MulReceiverSetup): ReceiverSetup {
  if (!(s instanceof ReceiverSetup)) throw new TypeError('not a MulReceiverSetup from this module');
  return s;
}

// ---------------------------------------------------------------------------------------------
// Setup state machine

class SenderSetupWait extends Secret implements MulSetupState {
  readonly role = 'sender' as const;
  protected readonly label = 'MulSetupState';
  used = false;
  constructor(
    readonly setupId: Uint8Array,
    readonly delta: Uint8Array,
    readonly ot: BaseOtReceiverState,
  ) {
    super();
  }
}

class ReceiverSetupWait implements MulSetupState {
  readonly role = 'receiver' as const;
  used = false;
  constructor(readonly setupId: Uint8Array) {}
}

export function mulSetupStart(role: MulRole, ctx: MulContext): { state: MulSetupState; msg?: Uint8Array } {
  const setupId = sha256(encodeFields([TAG_SETUP_ID, checkContext(ctx)]));
  if (role === 'sender') {
    const delta = randomBytes(OTE_KAPPA / 8);
    const { state, msg } = baseOtReceiverStart(setupId, delta);
    return { state: new SenderSetupWait(setupId, delta, state), msg };
  }
  if (role === 'receiver') return { state: new ReceiverSetupWait(setupId) };
  throw new TypeError(`unknown role ${String(role)}`);
}

export function mulSetupStep(
  state: MulSetupState,
  msg: Uint8Array,
): { state: MulSetupState; msg?: Uint8Array } | { done: MulSenderSetup | MulReceiverSetup; msg?: Uint8Array } {
  if (!(msg instanceof Uint8Array)) throw new MulAbort('malformed', 'setup message is not bytes');
  if (state instanceof ReceiverSetupWait) {
    if (state.used) throw new Error('mulSetupStep: state already used');
    state.used = true;
    const r = baseOtSenderRespond(state.setupId, msg);
    const setup = new ReceiverSetup(state.setupId, packSeeds(r.pads0), packSeeds(r.pads1));
    for (const p of [...r.pads0, ...r.pads1]) p.fill(0);
    return { done: setup, msg: r.msg };
  }
  if (state instanceof SenderSetupWait) {
    if (state.used) throw new Error('mulSetupStep: state already used');
    state.used = true;
    const pads = baseOtReceiverFinish(state.ot, msg);
    const delta = new Uint32Array(8);
    bytesOfWords(delta).set(state.delta);
    state.delta.fill(0);
    const setup = new SenderSetup(state.setupId, delta, packSeeds(pads));
    for (const p of pads) p.fill(0);
    return { done: setup };
  }
  throw new TypeError('not a MulSetupState from this module');
}

export function encodeSenderSetup(s: MulSenderSetup): Uint8Array {
  const x = asSender(s);
  const out = new Uint8Array(SENDER_SETUP_BYTES);
  out[0] = WIRE_VERSION;
  out[1] = STORE_SENDER_SETUP;
  out.set(x.setupId, 2);
  out.set(bytesOfWords(x.delta), 34);
  out.set(bytesOfWords(x.seeds), 66);
  return out;
}

export function decodeSenderSetup(b: Uint8Array): MulSenderSetup {
  const rd = new Reader(b, 'sender setup');
  rd.header(WIRE_VERSION, STORE_SENDER_SETUP);
  const setupId = rd.take(32).slice();
  const delta = rd.words(8).slice();
  const seeds = rd.words(SEED_WORDS).slice();
  rd.end();
  return new SenderSetup(setupId, delta, seeds);
}

export function encodeReceiverSetup(s: MulReceiverSetup): Uint8Array {
  const x = asReceiver(s);
  const out = new Uint8Array(RECEIVER_SETUP_BYTES);
  out[0] = WIRE_VERSION;
  out[1] = STORE_RECEIVER_SETUP;
  out.set(x.setupId, 2);
  out.set(bytesOfWords(x.seeds0), 34);
  out.set(bytesOfWords(x.seeds1), 34 + SEED_WORDS * 4);
  return out;
}

export function decodeReceiverSetup(b: Uint8Array): MulReceiverSetup {
  const rd = new Reader(b, 'receiver setup');
  rd.header(WIRE_VERSION, STORE_RECEIVER_SETUP);
  const setupId = rd.take(32).slice();
  const seeds0 = rd.words(SEED_WORDS).slice();
  const seeds1 = rd.words(SEED_WORDS).slice();
  rd.end();
  return new ReceiverSetup(setupId, seeds0, seeds1);
}

// ---------------------------------------------------------------------------------------------
// Multiplication

class ReceiverState extends Secret implements MulReceiverState {
  readonly role = 'receiver' as const;
  protected readonly label = 'MulReceiverState';
  used = false;
  constructor(
    readonly setup: ReceiverSetup,
    readonly t1: Uint8Array, // round-1 transcript digest
    readonly beta: Uint32Array, // xi choice bits
    readonly rows: Uint32Array, // xi rows t_j
  ) {
    super();
  }
}

const RECEIVER_STATE_BYTES = 2 + 32 + 32 + MUL_OTS / 8 + MUL_OTS * 32;

/**
 * Serialises Bob's state between round 1 and round 3 (not part of the brief's contract; for sealed
 * presignature storage). The setup is not included: decoding needs it and checks it is the same one.
 * The bytes are as secret as the setup, and the state is single use: whoever stores it must delete
 * it when round 3 runs, or a replay would run round 3 twice on the same correlations.
 */
export function encodeReceiverState(state: MulReceiverState): Uint8Array {
  if (!(state instanceof ReceiverState)) throw new TypeError('not a MulReceiverState from this module');
  if (state.used) throw new Error('encodeReceiverState: state already used');
  const out = new Uint8Array(RECEIVER_STATE_BYTES);
  out[0] = WIRE_VERSION;
  out[1] = STORE_RECEIVER_STATE;
  out.set(state.setup.setupId, 2);
  out.set(state.t1, 34);
  out.set(bytesOfWords(state.beta), 66);
  out.set(bytesOfWords(state.rows), 66 + MUL_OTS / 8);
  return out;
}

export function decodeReceiverState(b: Uint8Array, setup: MulReceiverSetup): MulReceiverState {
  const s = asReceiver(setup);
  const rd = new Reader(b, 'receiver state');
  rd.header(WIRE_VERSION, STORE_RECEIVER_STATE);
  const setupId = rd.take(32);
  const t1 = rd.take(32).slice();
  const beta = rd.words(MUL_OTS / 32).slice();
  const rows = rd.words(MUL_OTS * 8).slice();
  rd.end();
  if (!ctEqual(setupId, s.setupId)) throw new MulAbort('malformed', 'receiver state belongs to another setup');
  return new ReceiverState(s, t1, beta, rows);
}

/** Context of one multiplication: binds the setup, the caller's session id and Bob's nonce. */
function sessionContext(setupId: Uint8Array, sessionId: Uint8Array, nonceB: Uint8Array): Uint8Array {
  return sha256(encodeFields([TAG_SESSION, setupId, sessionId, nonceB]));
}

function round1Digest(oteDigest: Uint8Array, xTilde: Uint8Array, tTilde: Uint8Array): Uint8Array {
  return sha256Bulk(TAG_T1, [oteDigest], xTilde, tTilde);
}

/** theta in Z_n^2 from the round-2 transcript and all corrections a~. */
function thetaOf(ta: Uint8Array, aTilde: Uint8Array, n: bigint): [bigint, bigint] {
  const d = sha512(encodeFields([TAG_THETA_EXPAND, sha256Bulk(TAG_THETA, [ta], aTilde)]));
  const dv = dataView(d);
  return [readU256(dv, 0) % n, readU256(dv, 32) % n];
}

function muDigest(ta: Uint8Array, mu: Uint8Array): Uint8Array {
  return sha256Bulk(TAG_MU, [ta], mu);
}

export function mulReceiverRound1(setup: MulReceiverSetup, ctx: MulContext): { state: MulReceiverState; chi: bigint; msg: Uint8Array } {
  const s = asReceiver(setup);
  const sid = checkContext(ctx);
  const n = N();
  const g = s.gadget();
  const nonceB = randomBytes(32);
  const context = sessionContext(s.setupId, sid, nonceB);
  const x = new Uint32Array(CW);
  bytesOfWords(x).set(randomBytes(CW * 4)); // beta (xi bits), then the 256 mask bits
  const ote = oteReceive(s.seeds0, s.seeds1, prgNonce(TAG_PRG, [context]), context, x, MUL_OTS);

  // chi = <g, beta>; the bit selects through a mask, not a branch.
  let acc = 0n;
  for (let j = 0; j < MUL_OTS; j++) acc += g[j]! & -BigInt((x[j >>> 5]! >>> (j & 31)) & 1);
  const chi = acc % n;

  const msg = new Uint8Array(MUL_ROUND1_BYTES);
  msg[0] = WIRE_VERSION;
  msg[1] = MSG_MUL_ROUND1;
  msg.set(nonceB, 2);
  let off = 34;
  msg.set(bytesOfWords(ote.u), off);
  off += ote.u.length * 4;
  const xt = bytesOfWords(ote.xTilde);
  const tt = bytesOfWords(ote.tTilde);
  msg.set(xt, off);
  msg.set(tt, off + 32);
  const beta = x.slice(0, MUL_OTS / 32);
  x.fill(0);
  const state = new ReceiverState(s, round1Digest(ote.challenge.digest, xt, tt), beta, ote.rows);
  return { state, chi, msg };
}

export function mulSenderRound2(setup: MulSenderSetup, ctx: MulContext, inputs: readonly bigint[], msg: Uint8Array): { shares: bigint[]; msg: Uint8Array } {
  return senderRound2(setup, ctx, inputs, msg, undefined);
}

/**
 * @internal Test hook, not for production: a cheating Alice whose correction for OT j uses
 * a_0 + skew(j) instead of a_0 (inconsistent correlations, the selective-failure attack the
 * multiplication check exists for). It can only make the caller itself misbehave.
 */
export function _mulSenderRound2Skewed(
  setup: MulSenderSetup,
  ctx: MulContext,
  inputs: readonly bigint[],
  msg: Uint8Array,
  skew: (j: number) => bigint,
): { shares: bigint[]; msg: Uint8Array } {
  return senderRound2(setup, ctx, inputs, msg, skew);
}

function senderRound2(
  setup: MulSenderSetup,
  ctx: MulContext,
  inputs: readonly bigint[],
  msg: Uint8Array,
  skew: ((j: number) => bigint) | undefined,
): { shares: bigint[]; msg: Uint8Array } {
  const s = asSender(setup);
  const sid = checkContext(ctx);
  const grp = groupFor('secp256k1');
  const n = grp.order;
  if (inputs.length !== MUL_INPUTS || inputs.some((a) => typeof a !== 'bigint' || a < 0n || a >= n)) {
    throw new RangeError(`mulSenderRound2: need ${MUL_INPUTS} scalars in [0, n)`);
  }
  if (!(msg instanceof Uint8Array)) throw new MulAbort('malformed', 'multiplication round 1: not bytes');
  const rd = new Reader(msg, 'multiplication round 1');
  rd.header(WIRE_VERSION, MSG_MUL_ROUND1);
  const nonceB = rd.take(32);
  const u = rd.words(OTE_KAPPA * CW);
  const xtBytes = rd.take(32);
  const ttBytes = rd.take(OTE_KAPPA * 32);
  rd.end();
  const context = sessionContext(s.setupId, sid, nonceB);
  const xTilde = new Uint32Array(xtBytes.slice().buffer);
  const tTilde = new Uint32Array(ttBytes.slice().buffer);
  const { rows, challenge } = oteSend(s.delta, s.seeds, prgNonce(TAG_PRG, [context]), context, u, xTilde, tTilde, MUL_OTS);

  const nonceA = randomBytes(32);
  const ta = sha256(encodeFields([TAG_TA, round1Digest(challenge.digest, xtBytes, ttBytes), nonceA]));
  const rh = new RowHash(TAG_RO, [ta]);
  const [a0, a1] = [inputs[0]!, inputs[1]!];
  const aHat = grp.randomScalar();
  const ins = [a0, a1, aHat];

  const out = new Uint8Array(MUL_ROUND2_BYTES);
  out[0] = WIRE_VERSION;
  out[1] = MSG_MUL_ROUND2;
  out.set(nonceA, 2);
  const odv = dataView(out);
  const aTildeOff = 34;
  // Row-oracle outputs are 3 scalars per OT, each the little-endian reading of 32 bytes mod n;
  // the corrections a~ are computed on limbs, only alpha0 becomes a BigInt (it meets products).
  const lm = new LimbMod(n);
  const insLimbs = new Uint32Array(8 * WIDTH);
  ins.forEach((a, i) => toLimbs(a, insLimbs, 8 * i));
  const h0 = new Uint32Array(8 * WIDTH);
  const h1 = new Uint32Array(8 * WIDTH);
  const tmp = new Uint32Array(8);
  const dv0 = new DataView(h0.buffer);
  const alpha0: bigint[] = new Array<bigint>(MUL_OTS * WIDTH);
  for (let j = 0; j < MUL_OTS; j++) {
    rh.hash(rows, 8 * j, null, j, 0, h0, 0, 8 * WIDTH);
    rh.hash(rows, 8 * j, s.delta, j, 0, h1, 0, 8 * WIDTH);
    if (skew !== undefined) toLimbs((((a0 + skew(j)) % n) + n) % n, insLimbs, 0);
    for (let i = 0; i < WIDTH; i++) {
      lm.reduce(h0, 8 * i);
      lm.reduce(h1, 8 * i);
      lm.sub(h0, 8 * i, h1, 8 * i, tmp, 0);
      lm.add(tmp, 0, insLimbs, 8 * i, tmp, 0);
      limbsToBE(tmp, 0, odv, aTildeOff + (j * WIDTH + i) * SCALAR_BYTES);
      alpha0[j * WIDTH + i] = fromLimbs(dv0, 32 * i);
    }
  }
  h0.fill(0);
  h1.fill(0);
  tmp.fill(0);
  insLimbs.fill(0);
  rows.fill(0);
  const aTildeEnd = aTildeOff + MUL_OTS * WIDTH * SCALAR_BYTES;
  const [th0, th1] = thetaOf(ta, out.subarray(aTildeOff, aTildeEnd), n);
  writeU256(odv, aTildeEnd, (aHat + th0 * a0 + th1 * a1) % n);

  const mu = new Uint8Array(MUL_OTS * SCALAR_BYTES);
  const mdv = dataView(mu);
  const g = s.gadget();
  let c0 = 0n;
  let c1 = 0n;
  for (let j = 0; j < MUL_OTS; j++) {
    const b = j * WIDTH;
    const x0 = alpha0[b]!;
    const x1 = alpha0[b + 1]!;
    writeU256(mdv, j * SCALAR_BYTES, (alpha0[b + 2]! + th0 * x0 + th1 * x1) % n);
    c0 += g[j]! * x0;
    c1 += g[j]! * x1;
  }
  alpha0.fill(0n);
  out.set(muDigest(ta, mu), aTildeEnd + SCALAR_BYTES);
  mu.fill(0);
  return { shares: [(n - (c0 % n)) % n, (n - (c1 % n)) % n], msg: out };
}

export function mulReceiverRound3(state: MulReceiverState, msg: Uint8Array): bigint[] {
  if (!(state instanceof ReceiverState)) throw new TypeError('not a MulReceiverState from this module');
  if (state.used) throw new Error('mulReceiverRound3: state already used');
  state.used = true;
  try {
    return receiverFinish(state, msg);
  } finally {
    state.rows.fill(0);
    state.beta.fill(0);
  }
}

function receiverFinish(state: ReceiverState, msg: Uint8Array): bigint[] {
  const n = N();
  if (!(msg instanceof Uint8Array)) throw new MulAbort('malformed', 'multiplication round 2: not bytes');
  const rd = new Reader(msg, 'multiplication round 2');
  rd.header(WIRE_VERSION, MSG_MUL_ROUND2);
  const nonceA = rd.take(32);
  const aTilde = rd.take(MUL_OTS * WIDTH * SCALAR_BYTES);
  const etaBytes = rd.take(SCALAR_BYTES);
  const muHash = rd.take(32);
  rd.end();
  const adv = dataView(aTilde);
  const eta = readU256(dataView(etaBytes), 0);
  if (eta >= n) throw new MulAbort('malformed', 'multiplication round 2: eta is not a canonical scalar');

  const ta = sha256(encodeFields([TAG_TA, state.t1, nonceA]));
  const rh = new RowHash(TAG_RO, [ta]);
  const [th0, th1] = thetaOf(ta, aTilde, n);
  const g = state.setup.gadget();
  const lm = new LimbMod(n);
  const hw = new Uint32Array(8 * WIDTH);
  const hdv = new DataView(hw.buffer);
  const at = new Uint32Array(8);
  const mu = new Uint8Array(MUL_OTS * SCALAR_BYTES);
  const mdv = dataView(mu);
  let d0 = 0n;
  let d1 = 0n;
  let bad = 0;
  for (let j = 0; j < MUL_OTS; j++) {
    rh.hash(state.rows, 8 * j, null, j, 0, hw, 0, 8 * WIDTH);
    const bit = (state.beta[j >>> 5]! >>> (j & 31)) & 1;
    const wmask = -bit; // all ones iff beta_j = 1
    const base = j * WIDTH * SCALAR_BYTES;
    for (let i = 0; i < WIDTH; i++) {
      lm.reduce(hw, 8 * i);
      limbsFromBE(adv, base + 32 * i, at, 0);
      bad |= lm.geq(at, 0);
      for (let k = 0; k < 8; k++) at[k] = at[k]! & wmask;
      lm.add(hw, 8 * i, at, 0, hw, 8 * i); // d_j[i] = H(t_j)[i] + beta_j * a~_j[i]
    }
    const e0 = fromLimbs(hdv, 0);
    const e1 = fromLimbs(hdv, 32);
    const e2 = fromLimbs(hdv, 64);
    writeU256(mdv, j * SCALAR_BYTES, (e2 + th0 * e0 + th1 * e1 + n - (eta & -BigInt(bit))) % n);
    d0 += g[j]! * e0;
    d1 += g[j]! * e1;
  }
  at.fill(0);
  hw.fill(0);
  if (bad !== 0) throw new MulAbort('malformed', 'multiplication round 2: correction is not a canonical scalar');
  const ok = ctEqual(muDigest(ta, mu), muHash);
  mu.fill(0);
  if (!ok) throw new MulAbort('mul-check-failed', 'multiplication consistency check failed');
  return [d0 % n, d1 % n];
}
