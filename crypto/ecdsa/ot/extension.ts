/**
 * OT extension: IKNP/KOS with the SoftSpokenOT-style consistency check, i.e. KOS15 Fig. 10 in its
 * corrected revision (eprint 2015/546: the original KOS check's proof was broken; the revision
 * replaces it by the check of Roy's SoftSpokenOT, eprint 2022/192, for k = 1), made non-interactive
 * with Fiat-Shamir as DKLs23 (eprint 2023/765) prescribes.
 *
 * Roles are those of the extension: the receiver (DKLs Bob) knows both base-OT seeds of each of the
 * OTE_KAPPA = 256 columns; the sender (DKLs Alice) knows Delta (256 bits) and seed_i^{Delta_i}.
 * For n extended OTs with choice bits beta, the receiver appends OTE_MASK_BITS = 256 fresh random
 * bits (x = beta || mask), expands every seed into an (n + 256)-bit column with a per-session PRG,
 * and sends U_i = T0_i xor T1_i xor x. The sender gets Q_i = PRG(seed_i^{Delta_i}) xor Delta_i*U_i
 * = T0_i xor Delta_i*x, so after transposing, row q_j = t_j xor beta_j*Delta.
 *
 * Check: chi_1..chi_m in GF(2^256) come from a hash of the session context and all of U. Each
 * column is split into m 256-bit chunks of the real part (zero padded) plus the mask chunk, and
 * hashed as H(c) = sum_k chi_k*c_k + c_mask (a linear universal hash; the mask chunk is a one-time
 * pad so x~ reveals nothing about beta). The receiver sends x~ = H(x) and t~_i = H(T0_i); the
 * sender accepts iff H(Q_i) = t~_i + Delta_i*x~ for every column. A receiver that used different x
 * in different columns passes only by guessing the Delta bits of those columns (each guess is a
 * selective-failure bit; the caller bans the peer on failure, so at most a few bits ever leak and
 * 256 - leaked bits of Delta remain) or by a hash collision (about m*2^-256 per Fiat-Shamir try).
 * The random-oracle row hash that turns q_j and q_j xor Delta into independent values is applied
 * by the caller (mul.ts), with the transcript bound in.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { encodeFields } from '../../transcript.js';
import { MulAbort } from './abort.js';
import { transposeColumns } from './bitmatrix.js';
import { bytesOfWords, sha256Bulk } from './bytes.js';
import { ConstMul } from './gf256.js';
import { prgExpand, type PrgNonce } from './prf.js';

export const OTE_KAPPA = 256;
export const OTE_MASK_BITS = 256;
const KW = OTE_KAPPA / 32; // words per row, and per GF(2^256) element

const TAG_CHI = 'custody/dkls23/ote/v1/chi';

/** Words per column for n extended OTs. */
export function oteColumnWords(n: number): number {
  if (n <= 0 || n % 32 !== 0) throw new RangeError('number of extended OTs must be a positive multiple of 32');
  return (n + OTE_MASK_BITS) / 32;
}

/** Expands one seed per column (seeds: OTE_KAPPA x 8 words) into OTE_KAPPA columns of `cw` words. */
export function expandColumns(seeds: Uint32Array, nonce: PrgNonce, cw: number): Uint32Array {
  const cols = new Uint32Array(OTE_KAPPA * cw);
  const scratch = new Uint32Array(64);
  for (let i = 0; i < OTE_KAPPA; i++) prgExpand(seeds, i * KW, nonce, cols, i * cw, cw, scratch);
  scratch.fill(0);
  return cols;
}

export interface OteChallenge {
  /** Hash of the context and U: binds later transcript hashes to this extension. */
  readonly digest: Uint8Array;
  readonly chis: ConstMul[];
}

/** Fiat-Shamir challenges from the session context and the whole matrix U. */
export function deriveChallenge(context: Uint8Array, u: Uint32Array, n: number): OteChallenge {
  const digest = sha256Bulk(TAG_CHI, [context, n], bytesOfWords(u));
  const m = Math.ceil(n / 256);
  const chis: ConstMul[] = [];
  for (let k = 0; k < m; k++) {
    const c = sha256(encodeFields([TAG_CHI, digest, k]));
    chis.push(new ConstMul(new Uint32Array(c.buffer, c.byteOffset, KW)));
  }
  return { digest, chis };
}

/**
 * acc ^= H(column): the real part is src[off .. off + nWords) (nWords = n / 32) in 8-word chunks,
 * the mask chunk follows it.
 */
export function checkHash(ch: OteChallenge, src: Uint32Array, off: number, nWords: number, acc: Uint32Array, aoff: number): void {
  for (let k = 0; k < ch.chis.length; k++) {
    const start = k * KW;
    ch.chis[k]!.mulAcc(src, off + start, Math.min(KW, nWords - start), acc, aoff);
  }
  for (let w = 0; w < KW; w++) acc[aoff + w] = acc[aoff + w]! ^ src[off + nWords + w]!;
}

export interface OteReceiverOutput {
  /** OTE_KAPPA columns of cw words: the message body U. */
  readonly u: Uint32Array;
  /** x~ = H(x), 8 words. */
  readonly xTilde: Uint32Array;
  /** t~_i = H(T0_i), OTE_KAPPA x 8 words. */
  readonly tTilde: Uint32Array;
  /** n rows t_j of 8 words (secret). */
  readonly rows: Uint32Array;
  readonly challenge: OteChallenge;
}

/**
 * Receiver side. `x` holds cw words: the n choice bits, then OTE_MASK_BITS fresh random bits.
 * seeds0/seeds1: both base-OT seeds per column (OTE_KAPPA x 8 words each).
 */
export function oteReceive(seeds0: Uint32Array, seeds1: Uint32Array, nonce: PrgNonce, context: Uint8Array, x: Uint32Array, n: number): OteReceiverOutput {
  const cw = oteColumnWords(n);
  if (x.length !== cw) throw new RangeError('oteReceive: choice vector has the wrong length');
  const t0 = expandColumns(seeds0, nonce, cw);
  const u = expandColumns(seeds1, nonce, cw);
  for (let i = 0; i < OTE_KAPPA; i++) {
    const base = i * cw;
    for (let w = 0; w < cw; w++) u[base + w] = u[base + w]! ^ t0[base + w]! ^ x[w]!;
  }
  const challenge = deriveChallenge(context, u, n);
  const nWords = n / 32;
  const xTilde = new Uint32Array(KW);
  checkHash(challenge, x, 0, nWords, xTilde, 0);
  const tTilde = new Uint32Array(OTE_KAPPA * KW);
  for (let i = 0; i < OTE_KAPPA; i++) checkHash(challenge, t0, i * cw, nWords, tTilde, i * KW);
  const rows = transposeColumns(t0, OTE_KAPPA, cw, n);
  t0.fill(0);
  return { u, xTilde, tTilde, rows, challenge };
}

/**
 * Sender side: runs the consistency check (throws MulAbort 'ot-check-failed') and returns the n
 * rows q_j = t_j xor beta_j*Delta (secret). `delta` is 8 words, `seeds` OTE_KAPPA x 8 words.
 */
export function oteSend(
  delta: Uint32Array,
  seeds: Uint32Array,
  nonce: PrgNonce,
  context: Uint8Array,
  u: Uint32Array,
  xTilde: Uint32Array,
  tTilde: Uint32Array,
  n: number,
): { rows: Uint32Array; challenge: OteChallenge } {
  const cw = oteColumnWords(n);
  if (u.length !== OTE_KAPPA * cw || xTilde.length !== KW || tTilde.length !== OTE_KAPPA * KW) {
    throw new MulAbort('malformed', 'OT extension message has the wrong size');
  }
  const q = expandColumns(seeds, nonce, cw);
  for (let i = 0; i < OTE_KAPPA; i++) {
    const mask = -((delta[i >>> 5]! >>> (i & 31)) & 1); // all ones iff Delta_i = 1, without a branch
    const base = i * cw;
    for (let w = 0; w < cw; w++) q[base + w] = q[base + w]! ^ (u[base + w]! & mask);
  }
  const challenge = deriveChallenge(context, u, n);
  const nWords = n / 32;
  const acc = new Uint32Array(KW);
  let diff = 0;
  for (let i = 0; i < OTE_KAPPA; i++) {
    acc.fill(0);
    checkHash(challenge, q, i * cw, nWords, acc, 0);
    const mask = -((delta[i >>> 5]! >>> (i & 31)) & 1);
    for (let w = 0; w < KW; w++) diff |= acc[w]! ^ tTilde[i * KW + w]! ^ (xTilde[w]! & mask);
  }
  acc.fill(0);
  if (diff !== 0) {
    q.fill(0);
    throw new MulAbort('ot-check-failed', 'OT extension consistency check failed');
  }
  const rows = transposeColumns(q, OTE_KAPPA, cw, n);
  q.fill(0);
  return { rows, challenge };
}
