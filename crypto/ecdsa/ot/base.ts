/**
 * Base OT for the DKLs23 pairwise setup: the endemic OT of Zhou, Zhang, Zhou and Ren, "Endemic
 * Oblivious Transfer via Random Oracles, Revisited" (eprint 2022/1525, section 3), the base OT
 * DKLs23 (eprint 2023/765) recommends. It revisits Masny-Rindal's endemic OT (eprint 2019/706) and
 * comes with a UC proof in the random-oracle model: the receiver proves its message well formed
 * and the sender proves knowledge of its key with a straight-line extractable proof.
 *
 * For OT i of a batch of BASE_OT_BATCH, with h = H_G(sid, seed) a random-oracle point whose
 * discrete log nobody knows (seed: the receiver's fresh 32 bytes):
 *   receiver (choice b_i)  r_i random, u_i = r_i*h, v_i = r_i*G + b_i*h, and a Fiat-Shamir
 *                          OR-proof (two Chaum-Pedersen branches) that (G, h, v_i - b*h, u_i) is a
 *                          DDH tuple for b = 0 or b = 1, challenge bound to (sid, seed, i); hiding
 *                          b_i is DDH.
 *   sender                 s random, z = s*G with a Fischlin-transformed Schnorr proof (one proof
 *                          for the whole batch); pads m0_i = H(sid, i, z, u_i, v_i, s*v_i) and
 *                          m1_i = H(sid, i, z, u_i, v_i, s*(v_i - h)).
 *   receiver output        m_{b_i} = H(sid, i, z, u_i, v_i, r_i*z).
 * A receiver that learned both pads of some i would know s*h, i.e. solve CDH(z, h); that is why h
 * comes from a hash-to-curve and never from hash-to-scalar times G (a public discrete log would let
 * the receiver compute s*h = dlog(h)*z and read every pad).
 *
 * Batch: 2022/1525 lets the sender reuse s and its proof and the receiver reuse its seed across
 * executions (its p. 18, as cited by the 0xCarbon implementation); we also use one h for the whole
 * batch (the reference implementations derive one per OT) so that h gets a fixed-base table. The
 * simulator's trapdoor for h (its programmed discrete log) extracts every b_i from (u_i, v_i) the
 * same way, and each OT stays separated by the index i in its challenge and pads. h by
 * try-and-increment on the compressed encoding (uniform over the group, public inputs,
 * works through group.decode on any backend). The sender verifies all OR-proofs at once with a
 * random linear combination (128-bit weights, soundness 2^-128), the receiver the Fischlin slots
 * likewise. Fischlin's transform with his per-slot condition (the slot hash starts with B zero
 * bits), R = 32 slots, B = 8 (R*B = 256), 16-bit challenges sampled at random rather than enumerated
 * (the randomized search of Kondi-shelat, eprint 2022/393).
 * Every received point goes through group.decode (on the curve, in the group, not the identity).
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { groupFor, InvalidEncoding, type Group } from '../../group/index.js';
import { encodeFields, type Field } from '../../transcript.js';
import { MulAbort } from './abort.js';
import { dataView, Reader, writeU256 } from './bytes.js';
import { FixedBase, generatorTable } from './fixedbase.js';
import { MSG_BASE_OT_RECEIVER, MSG_BASE_OT_SENDER, POINT_BYTES, SCALAR_BYTES, WIRE_VERSION } from './wire.js';

export const BASE_OT_BATCH = 256;
export const BASE_OT_SEED_BYTES = 32;

const FISCHLIN_R = 32;
const FISCHLIN_MAX_TRIES = 1 << 16;

const TAG_H = 'custody/dkls23/base-ot/v1/h';
const TAG_OR = 'custody/dkls23/base-ot/v1/or-proof';
const TAG_DLOG = 'custody/dkls23/base-ot/v1/dlog-fischlin';
const TAG_PAD = 'custody/dkls23/base-ot/v1/pad';

/** receiver record: u, v, A0, B0, A1, B1, c0, z0, z1 */
const REC_BYTES = 6 * POINT_BYTES + 3 * SCALAR_BYTES;
export const BASE_OT_RECEIVER_MSG_BYTES = 2 + BASE_OT_SEED_BYTES + BASE_OT_BATCH * REC_BYTES;
export const BASE_OT_SENDER_MSG_BYTES = 2 + POINT_BYTES + FISCHLIN_R * POINT_BYTES + FISCHLIN_R * (2 + SCALAR_BYTES);

type Pt = unknown;

function grp(): Group<Pt> {
  return groupFor('secp256k1');
}

function bytesToBigBE(b: Uint8Array): bigint {
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

function hashToScalar(g: Group<Pt>, tag: string, fields: readonly Field[]): bigint {
  return bytesToBigBE(sha512(encodeFields([tag, ...fields]))) % g.order;
}

/** Random 128-bit weight for batch verification. */
function weight(buf: Uint8Array, i: number): bigint {
  const dv = dataView(buf);
  return (dv.getBigUint64(16 * i) << 64n) | dv.getBigUint64(16 * i + 8);
}

/** h: try-and-increment over compressed encodings; the parity bit comes from the hash too. */
export function hashToPoint(g: Group<Pt>, sid: Uint8Array, seed: Uint8Array): Pt {
  const enc = new Uint8Array(POINT_BYTES);
  for (let ctr = 0; ctr < 256; ctr++) {
    const d = sha512(encodeFields([TAG_H, sid, seed, ctr]));
    enc[0] = 0x02 | (d[32]! & 1);
    enc.set(d.subarray(0, 32), 1);
    try {
      return g.decode(enc);
    } catch (e) {
      if (!(e instanceof InvalidEncoding)) throw e;
    }
  }
  throw new Error('hashToPoint: no point found'); // probability 2^-256
}

function decodePoint(g: Group<Pt>, b: Uint8Array, what: string): Pt {
  try {
    return g.decode(b);
  } catch (e) {
    if (e instanceof InvalidEncoding) throw new MulAbort('malformed', `${what}: invalid point`);
    throw e;
  }
}

function decodeScalar(g: Group<Pt>, b: Uint8Array, what: string): bigint {
  try {
    return g.scalarFromBytes(b);
  } catch (e) {
    if (e instanceof InvalidEncoding) throw new MulAbort('malformed', `${what}: invalid scalar`);
    throw e;
  }
}

function pad(sid: Uint8Array, i: number, z: Uint8Array, uv: Uint8Array, p: Uint8Array): Uint8Array {
  return sha256(encodeFields([TAG_PAD, sid, i, z, uv, p]));
}

// ---------------------------------------------------------------------------------------------
// Receiver (in DKLs23: Alice, the multiplication sender, whose choice bits become Delta)

export interface BaseOtReceiverState {
  readonly sid: Uint8Array;
  readonly choices: Uint8Array; // BASE_OT_BATCH bits, bit i = (choices[i >> 3] >> (i & 7)) & 1
  readonly r: bigint[];
  /** u_i || v_i encodings, bound into every pad. */
  readonly uv: Uint8Array;
}

/** Builds flight 1 of the setup. `choices` is 32 bytes of (secret, random) choice bits. */
export function baseOtReceiverStart(sid: Uint8Array, choices: Uint8Array): { state: BaseOtReceiverState; msg: Uint8Array } {
  if (choices.length !== BASE_OT_BATCH / 8) throw new RangeError('baseOtReceiverStart: need 256 choice bits');
  const g = grp();
  const Fn = g.Fn;
  const seed = randomBytes(BASE_OT_SEED_BYTES);
  const msg = new Uint8Array(BASE_OT_RECEIVER_MSG_BYTES);
  msg[0] = WIRE_VERSION;
  msg[1] = MSG_BASE_OT_RECEIVER;
  msg.set(seed, 2);
  const r: bigint[] = new Array<bigint>(BASE_OT_BATCH);
  const uv = new Uint8Array(BASE_OT_BATCH * 2 * POINT_BYTES);
  const dv = dataView(msg);
  const h = hashToPoint(g, sid, seed);
  const hEnc = g.encode(h);
  const tG = generatorTable(g);
  const tH = new FixedBase(g, h, 8);
  for (let i = 0; i < BASE_OT_BATCH; i++) {
    const b = (choices[i >> 3]! >> (i & 7)) & 1;
    const ri = g.randomScalar();
    r[i] = ri;
    const u = tH.mul(ri);
    const rG = tG.mul(ri);
    const rGh = g.add(rG, h);
    const v = b === 1 ? rGh : rG;
    const vEnc = g.encode(v);
    const uEnc = g.encode(u);
    // Real branch (index b), statement V_b = v - b*h = r*G: Chaum-Pedersen commitment with fresh k.
    const k = g.randomScalar();
    const realA = tG.mul(k);
    const realB = tH.mul(k);
    // Simulated branch (index f = 1-b), statement V_f = r*G + (2b-1)*h. With w = z_f + c_f*r random:
    // A_f = z_f*G + c_f*V_f = w*G + (2b-1)*c_f*h and B_f = z_f*h + c_f*u = w*h. Same work for both b.
    const cf = g.randomScalar();
    const w = g.randomScalar();
    const wG = tG.mul(w);
    const cfh = tH.mul(cf);
    const plus = g.add(wG, cfh);
    const minus = g.sub(wG, cfh);
    const fakeA = b === 1 ? plus : minus;
    const fakeB = tH.mul(w);
    const A0 = g.encode(b === 0 ? realA : fakeA);
    const B0 = g.encode(b === 0 ? realB : fakeB);
    const A1 = g.encode(b === 1 ? realA : fakeA);
    const B1 = g.encode(b === 1 ? realB : fakeB);
    const c = hashToScalar(g, TAG_OR, [sid, seed, i, hEnc, uEnc, vEnc, A0, B0, A1, B1]);
    const cb = Fn.sub(c, cf);
    const zb = Fn.sub(k, Fn.mul(cb, ri));
    const zf = Fn.sub(w, Fn.mul(cf, ri));
    const c0 = b === 0 ? cb : cf;
    const z0 = b === 0 ? zb : zf;
    const z1 = b === 1 ? zb : zf;
    let off = 2 + BASE_OT_SEED_BYTES + i * REC_BYTES;
    for (const p of [uEnc, vEnc, A0, B0, A1, B1]) {
      msg.set(p, off);
      off += POINT_BYTES;
    }
    writeU256(dv, off, c0);
    writeU256(dv, off + 32, z0);
    writeU256(dv, off + 64, z1);
    uv.set(uEnc, 2 * POINT_BYTES * i);
    uv.set(vEnc, 2 * POINT_BYTES * i + POINT_BYTES);
  }
  return { state: { sid, choices: choices.slice(), r, uv }, msg };
}

/** Consumes flight 2; returns the 256 chosen 32-byte pads m_{b_i}. Throws MulAbort. */
export function baseOtReceiverFinish(state: BaseOtReceiverState, msg: Uint8Array): Uint8Array[] {
  const g = grp();
  const Fn = g.Fn;
  const rd = new Reader(msg, 'base-OT sender message');
  rd.header(WIRE_VERSION, MSG_BASE_OT_SENDER);
  const zEnc = rd.take(POINT_BYTES).slice();
  const z = decodePoint(g, zEnc, 'base-OT sender key');
  const commitBytes = rd.take(FISCHLIN_R * POINT_BYTES).slice();
  const commits: Pt[] = [];
  for (let j = 0; j < FISCHLIN_R; j++) commits.push(decodePoint(g, commitBytes.subarray(j * POINT_BYTES, (j + 1) * POINT_BYTES), 'Fischlin commitment'));
  const es: bigint[] = [];
  const resps: bigint[] = [];
  const slots: Uint8Array[] = [];
  for (let j = 0; j < FISCHLIN_R; j++) {
    const slot = rd.take(2 + SCALAR_BYTES);
    es.push(BigInt((slot[0]! << 8) | slot[1]!));
    resps.push(decodeScalar(g, slot.subarray(2), 'Fischlin response'));
    slots.push(slot);
  }
  rd.end();
  // Fischlin: every slot's hash must start with a zero byte...
  const prefix = sha256.create().update(encodeFields([TAG_DLOG, state.sid, zEnc, commitBytes]));
  const input = new Uint8Array(1 + 2 + SCALAR_BYTES);
  let bad = 0;
  for (let j = 0; j < FISCHLIN_R; j++) {
    input[0] = j;
    input.set(slots[j]!, 1);
    bad |= prefix.clone().update(input).digest()[0]!;
  }
  // ...and every Schnorr equation resp_j*G + e_j*z = A_j must hold (batched with random weights).
  const w = randomBytes(16 * FISCHLIN_R);
  let sResp = 0n;
  let sE = 0n;
  const ws: bigint[] = [];
  for (let j = 0; j < FISCHLIN_R; j++) {
    const wj = weight(w, j);
    ws.push(wj);
    sResp += wj * resps[j]!;
    sE += wj * es[j]!;
  }
  const left = g.msm([g.generator, z], [Fn.create(sResp), Fn.create(sE)]);
  const right = g.msm(commits, ws);
  if (bad !== 0 || !g.eq(left, right)) throw new MulAbort('ot-check-failed', 'base OT: sender proof of knowledge does not verify');
  const tZ = new FixedBase(g, z, 6);
  const out: Uint8Array[] = [];
  for (let i = 0; i < BASE_OT_BATCH; i++) {
    const p = g.encode(tZ.mul(state.r[i]!));
    out.push(pad(state.sid, i, zEnc, state.uv.subarray(2 * POINT_BYTES * i, 2 * POINT_BYTES * (i + 1)), p));
  }
  state.r.fill(0n);
  state.choices.fill(0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Sender (in DKLs23: Bob, the multiplication receiver, who learns both pads of every OT)

/** Consumes flight 1, answers with flight 2; returns both pads of every OT. Throws MulAbort. */
export function baseOtSenderRespond(sid: Uint8Array, msg: Uint8Array): { msg: Uint8Array; pads0: Uint8Array[]; pads1: Uint8Array[] } {
  const g = grp();
  const Fn = g.Fn;
  const rd = new Reader(msg, 'base-OT receiver message');
  rd.header(WIRE_VERSION, MSG_BASE_OT_RECEIVER);
  const seed = rd.take(BASE_OT_SEED_BYTES);
  const recs: Uint8Array[] = [];
  for (let i = 0; i < BASE_OT_BATCH; i++) recs.push(rd.take(REC_BYTES));
  rd.end();

  const h = hashToPoint(g, sid, seed);
  const hEnc = g.encode(h);
  const us: Pt[] = [];
  const vs: Pt[] = [];
  const commits: Pt[] = [];
  const c0s: bigint[] = [];
  const c1s: bigint[] = [];
  const z0s: bigint[] = [];
  const z1s: bigint[] = [];
  for (let i = 0; i < BASE_OT_BATCH; i++) {
    const rec = recs[i]!;
    const pt = (k: number): Uint8Array => rec.subarray(k * POINT_BYTES, (k + 1) * POINT_BYTES);
    const sc = (k: number): Uint8Array => rec.subarray(6 * POINT_BYTES + k * SCALAR_BYTES, 6 * POINT_BYTES + (k + 1) * SCALAR_BYTES);
    us.push(decodePoint(g, pt(0), 'base-OT u'));
    vs.push(decodePoint(g, pt(1), 'base-OT v'));
    for (let k = 2; k < 6; k++) commits.push(decodePoint(g, pt(k), 'base-OT proof commitment'));
    const c0 = decodeScalar(g, sc(0), 'base-OT challenge');
    z0s.push(decodeScalar(g, sc(1), 'base-OT response'));
    z1s.push(decodeScalar(g, sc(2), 'base-OT response'));
    const c = hashToScalar(g, TAG_OR, [sid, seed, i, hEnc, pt(0), pt(1), pt(2), pt(3), pt(4), pt(5)]);
    c0s.push(c0);
    c1s.push(Fn.sub(c, c0)); // c0 + c1 = c is enforced by construction
  }

  // Batch check of A_b = z_b*G + c_b*V_b and B_b = z_b*h + c_b*u (V_0 = v, V_1 = v - h), b = 0, 1:
  // sum of weighted right-hand sides, regrouped per base point, equals the weighted commitments.
  const w = randomBytes(16 * 4 * BASE_OT_BATCH);
  const ws: bigint[] = [];
  const pts: Pt[] = [g.generator, h];
  const scs: bigint[] = [];
  let gCoef = 0n;
  let hCoef = 0n;
  for (let i = 0; i < BASE_OT_BATCH; i++) {
    const [wA0, wB0, wA1, wB1] = [weight(w, 4 * i), weight(w, 4 * i + 1), weight(w, 4 * i + 2), weight(w, 4 * i + 3)];
    ws.push(wA0, wB0, wA1, wB1);
    const [c0, c1, z0, z1] = [c0s[i]!, c1s[i]!, z0s[i]!, z1s[i]!];
    gCoef += wA0 * z0 + wA1 * z1;
    hCoef += wB0 * z0 + wB1 * z1 - wA1 * c1;
    pts.push(vs[i]!, us[i]!);
    scs.push(Fn.create(wA0 * c0 + wA1 * c1), Fn.create(wB0 * c0 + wB1 * c1));
  }
  const left = g.msm(pts, [Fn.create(gCoef), Fn.create(hCoef), ...scs]);
  const right = g.msm(commits, ws);
  if (!g.eq(left, right)) throw new MulAbort('ot-check-failed', 'base OT: receiver proof does not verify');

  // Our key and its straight-line extractable proof of knowledge (Fischlin).
  const s = g.randomScalar();
  const zEnc = g.encode(g.baseMul(s));
  const out = new Uint8Array(BASE_OT_SENDER_MSG_BYTES);
  out[0] = WIRE_VERSION;
  out[1] = MSG_BASE_OT_SENDER;
  out.set(zEnc, 2);
  const ks: bigint[] = [];
  const commitBytes = out.subarray(2 + POINT_BYTES, 2 + POINT_BYTES + FISCHLIN_R * POINT_BYTES);
  for (let j = 0; j < FISCHLIN_R; j++) {
    const k = g.randomScalar();
    ks.push(k);
    commitBytes.set(g.encode(g.baseMul(k)), j * POINT_BYTES);
  }
  const prefix = sha256.create().update(encodeFields([TAG_DLOG, sid, zEnc, commitBytes]));
  const input = new Uint8Array(1 + 2 + SCALAR_BYTES);
  const idv = dataView(input);
  const slotBase = 2 + POINT_BYTES + FISCHLIN_R * POINT_BYTES;
  for (let j = 0; j < FISCHLIN_R; j++) {
    input[0] = j;
    let found = false;
    const rnd = randomBytes(2 * 1024);
    for (let t = 0; t < FISCHLIN_MAX_TRIES && !found; t++) {
      if (t > 0 && t % 1024 === 0) rnd.set(randomBytes(2 * 1024));
      const e = (rnd[2 * (t % 1024)]! << 8) | rnd[2 * (t % 1024) + 1]!;
      const resp = Fn.sub(ks[j]!, Fn.mul(BigInt(e), s));
      input[1] = e >> 8;
      input[2] = e & 0xff;
      writeU256(idv, 3, resp);
      if (prefix.clone().update(input).digest()[0] === 0) {
        out.set(input.subarray(1), slotBase + j * (2 + SCALAR_BYTES));
        found = true;
      }
    }
    if (!found) throw new Error('Fischlin proof search exhausted'); // probability about 2^-369
  }
  ks.fill(0n);

  // s*(v_i - h) = s*v_i - s*h: one variable-base multiplication per OT.
  const sh = g.mul(h, s);
  const pads0: Uint8Array[] = [];
  const pads1: Uint8Array[] = [];
  for (let i = 0; i < BASE_OT_BATCH; i++) {
    const uv = recs[i]!.subarray(0, 2 * POINT_BYTES);
    const sv = g.mul(vs[i]!, s);
    pads0.push(pad(sid, i, zEnc, uv, g.encode(sv)));
    pads1.push(pad(sid, i, zEnc, uv, g.encode(g.sub(sv, sh))));
  }
  return { msg: out, pads0, pads1 };
}

