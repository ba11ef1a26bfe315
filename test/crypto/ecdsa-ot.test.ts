/**
 * The OT layer under DKLs23: primitives checked against @noble (SHA-256, ChaCha20) and against
 * slow reference code (GF(2^256), transpose, limb arithmetic), the endemic base OT (2022/1525) with
 * its proofs, and the OT extension with its SoftSpokenOT-style consistency check.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { chacha20 } from '@noble/ciphers/chacha.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { concatBytes, randomBytes } from '@noble/hashes/utils.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { MulAbort } from '../../crypto/ecdsa/ot/abort.js';
import {
  BASE_OT_BATCH,
  BASE_OT_RECEIVER_MSG_BYTES,
  BASE_OT_SENDER_MSG_BYTES,
  baseOtReceiverFinish,
  baseOtReceiverStart,
  baseOtSenderRespond,
  type BaseOtReceiverState,
} from '../../crypto/ecdsa/ot/base.js';
import { transposeColumns } from '../../crypto/ecdsa/ot/bitmatrix.js';
import { bytesOfWords, ctEqual } from '../../crypto/ecdsa/ot/bytes.js';
import {
  checkHash,
  deriveChallenge,
  expandColumns,
  OTE_KAPPA,
  oteColumnWords,
  oteReceive,
  oteSend,
} from '../../crypto/ecdsa/ot/extension.js';
import { ConstMul, gfMulSlow } from '../../crypto/ecdsa/ot/gf256.js';
import { fromLimbs, LimbMod, limbsFromBE, limbsToBE, toLimbs } from '../../crypto/ecdsa/ot/limbs.js';
import { prgExpand, prgNonce, RowHash } from '../../crypto/ecdsa/ot/prf.js';
import { groupFor } from '../../crypto/group/index.js';
import { encodeFields } from '../../crypto/transcript.js';

const N = groupFor('secp256k1').order;
const be32 = (x: number): Uint8Array => new Uint8Array([x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255]);
const words = (n: number): Uint32Array => new Uint32Array(randomBytes(4 * n).buffer);
const bit = (w: Uint32Array, k: number): number => (w[k >>> 5]! >>> (k & 31)) & 1;
const bigOf = (b: Uint8Array): bigint => BigInt('0x' + Buffer.from(b).toString('hex'));

/** Expects fn to throw MulAbort with the given reason. */
function expectAbort(fn: () => unknown, reason: MulAbort['reason']): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a MulAbort').toBeInstanceOf(MulAbort);
  expect((err as MulAbort).reason).toBe(reason);
}

describe('symmetric primitives', () => {
  it('RowHash is SHA-256(prefix || row || j || flag), then ChaCha20 keyed by the digest', () => {
    const tag = 'test/row';
    const field = randomBytes(20);
    const rh = new RowHash(tag, [field]);
    const prefix = sha512(encodeFields([tag, field]));
    for (let t = 0; t < 20; t++) {
      const row = words(8);
      const mask = words(8);
      const j = (Math.random() * 2 ** 32) >>> 0;
      const flag = t % 256;
      const out = new Uint32Array(32);
      rh.hash(row, 0, null, j, flag, out, 0, 8);
      const digest = sha256(concatBytes(prefix, bytesOfWords(row), be32(j), new Uint8Array([flag])));
      expect(bytesOfWords(out.subarray(0, 8))).toEqual(digest);
      rh.hash(row, 0, null, j, flag, out, 0, 24);
      expect(bytesOfWords(out.subarray(0, 24))).toEqual(chacha20(digest, new Uint8Array(12), new Uint8Array(96)));
      // The mask variant hashes row xor mask.
      const xored = new Uint32Array(8);
      for (let k = 0; k < 8; k++) xored[k] = row[k]! ^ mask[k]!;
      const a = new Uint32Array(24);
      const b = new Uint32Array(24);
      rh.hash(row, 0, mask, j, flag, a, 0, 24);
      rh.hash(xored, 0, null, j, flag, b, 0, 24);
      expect(a).toEqual(b);
      expect(a).not.toEqual(out.subarray(0, 24));
    }
  });

  it('prgExpand is the ChaCha20 keystream under the seed and the session nonce', () => {
    const nonce = prgNonce('test/prg', [randomBytes(32)]);
    expect(nonce.counter & 0xffff).toBe(0);
    const nonceBytes = bytesOfWords(new Uint32Array([nonce.n0, nonce.n1, nonce.n2]));
    for (const len of [1, 16, 21, 24, 40, 64, 1000]) {
      const key = words(8);
      const out = new Uint32Array(len);
      prgExpand(key, 0, nonce, out, 0, len, new Uint32Array(64));
      const ref = chacha20(bytesOfWords(key), nonceBytes, new Uint8Array(4 * len), undefined, nonce.counter);
      expect(bytesOfWords(out)).toEqual(ref);
    }
    // A different session gives an unrelated stream.
    const other = prgNonce('test/prg', [randomBytes(32)]);
    const key = words(8);
    const a = new Uint32Array(21);
    const b = new Uint32Array(21);
    prgExpand(key, 0, nonce, a, 0, 21, new Uint32Array(64));
    prgExpand(key, 0, other, b, 0, 21, new Uint32Array(64));
    expect(a).not.toEqual(b);
  });

  it('ctEqual compares whole strings', () => {
    const a = randomBytes(32);
    expect(ctEqual(a, a.slice())).toBe(true);
    for (const i of [0, 17, 31]) {
      const b = a.slice();
      b[i]! ^= 1;
      expect(ctEqual(a, b)).toBe(false);
    }
    expect(ctEqual(a, a.subarray(0, 31))).toBe(false);
  });
});

describe('GF(2^256) and bit matrices', () => {
  it('x^256 + x^10 + x^5 + x^2 + 1 is irreducible (Rabin test)', () => {
    const f = (1n << 256n) | (1n << 10n) | (1n << 5n) | (1n << 2n) | 1n;
    const deg = (a: bigint): number => a.toString(2).length - 1;
    const mod = (a: bigint, m: bigint): bigint => {
      const dm = deg(m);
      while (a !== 0n && deg(a) >= dm) a ^= m << BigInt(deg(a) - dm);
      return a;
    };
    const mulmod = (a: bigint, b: bigint): bigint => {
      let r = 0n;
      while (b) {
        if (b & 1n) r ^= a;
        b >>= 1n;
        a <<= 1n;
        if (a >> 256n) a ^= f;
      }
      return r;
    };
    const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? a : gcd(b, mod(a, b)));
    let x = 2n;
    let half = 0n;
    for (let k = 1; k <= 256; k++) {
      x = mulmod(x, x);
      if (k === 128) half = x;
    }
    expect(x).toBe(2n); // x^(2^256) = x
    expect(gcd(f, half ^ 2n)).toBe(1n); // no factor of degree dividing 128
  });

  it('table multiplication matches the bit-by-bit product, and is a field multiplication', () => {
    for (let t = 0; t < 30; t++) {
      const a = words(8);
      const b = words(8);
      const c = words(8);
      const acc = new Uint32Array(8);
      new ConstMul(a).mulAcc(b, 0, 8, acc, 0);
      expect(acc).toEqual(gfMulSlow(a, b));
      expect(gfMulSlow(a, b)).toEqual(gfMulSlow(b, a));
      // a*(b+c) = a*b + a*c
      const bc = b.map((w, k) => w ^ c[k]!);
      const lhs = gfMulSlow(a, bc);
      const rhs = gfMulSlow(a, b).map((w, k) => w ^ gfMulSlow(a, c)[k]!);
      expect(lhs).toEqual(rhs);
      // Short sources are zero-padded.
      const acc2 = new Uint32Array(8);
      new ConstMul(a).mulAcc(b, 0, 5, acc2, 0);
      const b5 = new Uint32Array(8);
      b5.set(b.subarray(0, 5));
      expect(acc2).toEqual(gfMulSlow(a, b5));
    }
    // x * x^255 = x^256 = x^10 + x^5 + x^2 + 1
    const x1 = new Uint32Array(8);
    x1[0] = 2;
    const x255 = new Uint32Array(8);
    x255[7] = 0x80000000;
    expect(gfMulSlow(x1, x255)).toEqual(new Uint32Array([(1 << 10) | (1 << 5) | (1 << 2) | 1, 0, 0, 0, 0, 0, 0, 0]));
  });

  it('transposes columns into rows', () => {
    const cw = 21;
    const cols = words(256 * cw);
    const rows = transposeColumns(cols, 256, cw, 416);
    for (let r = 0; r < 416; r++) {
      for (let c = 0; c < 256; c++) {
        if (bit(rows.subarray(r * 8, r * 8 + 8), c) !== bit(cols.subarray(c * cw, c * cw + cw), r)) {
          throw new Error(`transpose mismatch at row ${r} column ${c}`);
        }
      }
    }
  });
});

describe('limb arithmetic mod n', () => {
  it('matches BigInt arithmetic, including the edges', () => {
    const lm = new LimbMod(N);
    const A = new Uint32Array(8);
    const B = new Uint32Array(8);
    const O = new Uint32Array(8);
    const dvO = new DataView(O.buffer);
    const dvA = new DataView(A.buffer);
    const edges = [0n, 1n, N - 1n, N - 2n, 1n << 255n, (1n << 128n) - 1n];
    const rnd = (): bigint => bigOf(randomBytes(32)) % N;
    const pairs: [bigint, bigint][] = [];
    for (const a of edges) for (const b of edges) pairs.push([a, b]);
    for (let i = 0; i < 3000; i++) pairs.push([rnd(), rnd()]);
    for (const [a, b] of pairs) {
      toLimbs(a, A, 0);
      toLimbs(b, B, 0);
      lm.add(A, 0, B, 0, O, 0);
      expect(fromLimbs(dvO, 0)).toBe((a + b) % N);
      lm.sub(A, 0, B, 0, O, 0);
      expect(fromLimbs(dvO, 0)).toBe((((a - b) % N) + N) % N);
      expect(lm.geq(A, 0)).toBe(0);
    }
    for (const x of [N, N + 1n, (1n << 256n) - 1n, 0n, N - 1n, bigOf(randomBytes(32))]) {
      toLimbs(x, A, 0);
      expect(lm.geq(A, 0)).toBe(x >= N ? 1 : 0);
      lm.reduce(A, 0);
      expect(fromLimbs(dvA, 0)).toBe(x % N);
    }
    const be = new Uint8Array(32);
    const x = rnd();
    toLimbs(x, A, 0);
    limbsToBE(A, 0, new DataView(be.buffer), 0);
    expect(bigOf(be)).toBe(x);
    limbsFromBE(new DataView(be.buffer), 0, B, 0);
    expect(B).toEqual(A);
  });
});

describe('endemic base OT (eprint 2022/1525)', () => {
  const sid = randomBytes(32);
  const choices = randomBytes(32);
  let rstate: BaseOtReceiverState;
  let rmsg: Uint8Array;
  let smsg: Uint8Array;
  let pads0: Uint8Array[];
  let pads1: Uint8Array[];

  beforeAll(() => {
    ({ state: rstate, msg: rmsg } = baseOtReceiverStart(sid, choices));
    ({ msg: smsg, pads0, pads1 } = baseOtSenderRespond(sid, rmsg));
  }, 60_000);

  const choice = (i: number): number => (choices[i >> 3]! >> (i & 7)) & 1;
  const REC = (BASE_OT_RECEIVER_MSG_BYTES - 2 - 32) / BASE_OT_BATCH; // bytes per OT record
  const recOff = (i: number): number => 2 + 32 + i * REC;
  const mutated = (m: Uint8Array, f: (c: Uint8Array) => void): Uint8Array => {
    const c = m.slice();
    f(c);
    return c;
  };

  it('messages have the documented sizes', () => {
    expect(rmsg.length).toBe(BASE_OT_RECEIVER_MSG_BYTES);
    expect(smsg.length).toBe(BASE_OT_SENDER_MSG_BYTES);
  });

  it('rejects tampered sender messages', () => {
    // z is not a point / is the identity.
    expectAbort(() => baseOtReceiverFinish(rstate, mutated(smsg, (c) => c.fill(0xff, 3, 35))), 'malformed');
    expectAbort(() => baseOtReceiverFinish(rstate, mutated(smsg, (c) => c.fill(0, 2, 35))), 'malformed');
    // A Fischlin response, challenge or commitment changed: the proof of knowledge fails.
    const slot0 = 2 + 33 + 32 * 33;
    expectAbort(() => baseOtReceiverFinish(rstate, mutated(smsg, (c) => (c[slot0 + 2 + 31]! ^= 1))), 'ot-check-failed');
    expectAbort(() => baseOtReceiverFinish(rstate, mutated(smsg, (c) => (c[slot0 + 1]! ^= 1))), 'ot-check-failed');
    expectAbort(() => baseOtReceiverFinish(rstate, mutated(smsg, (c) => c.set(smsg.subarray(2 + 33 + 33, 2 + 33 + 66), 2 + 33))), 'ot-check-failed');
    // Two slots swapped together with their commitments: every Schnorr equation still holds, but
    // the commitments are hashed in order, so only the Fischlin work condition catches it.
    const swapped = mutated(smsg, (c) => {
      const cm = (j: number) => 2 + 33 + 33 * j;
      const sl = (j: number) => slot0 + 34 * j;
      c.set(smsg.subarray(cm(0), cm(1)), cm(1));
      c.set(smsg.subarray(cm(1), cm(2)), cm(0));
      c.set(smsg.subarray(sl(0), sl(1)), sl(1));
      c.set(smsg.subarray(sl(1), sl(2)), sl(0));
    });
    expectAbort(() => baseOtReceiverFinish(rstate, swapped), 'ot-check-failed');
    // A different key z with the old proof.
    const otherZ = secp256k1.Point.BASE.multiply(12345n).toBytes(true);
    expectAbort(() => baseOtReceiverFinish(rstate, mutated(smsg, (c) => c.set(otherZ, 2))), 'ot-check-failed');
    // Non-canonical response scalar (n itself).
    const nBytes = Buffer.from(N.toString(16).padStart(64, '0'), 'hex');
    expectAbort(() => baseOtReceiverFinish(rstate, mutated(smsg, (c) => c.set(nBytes, slot0 + 2))), 'malformed');
    expectAbort(() => baseOtReceiverFinish(rstate, smsg.subarray(0, smsg.length - 1)), 'malformed');
    expectAbort(() => baseOtReceiverFinish(rstate, concatBytes(smsg, new Uint8Array(1))), 'malformed');
    expectAbort(() => baseOtReceiverFinish(rstate, mutated(smsg, (c) => (c[0] = 2))), 'malformed');
  });

  it('the receiver gets exactly the chosen pad of every OT', () => {
    const got = baseOtReceiverFinish(rstate, smsg);
    expect(got.length).toBe(BASE_OT_BATCH);
    let ones = 0;
    for (let i = 0; i < BASE_OT_BATCH; i++) {
      const b = choice(i);
      ones += b;
      expect(got[i]).toEqual(b ? pads1[i] : pads0[i]);
      expect(got[i]).not.toEqual(b ? pads0[i] : pads1[i]);
      expect(pads0[i]).not.toEqual(pads1[i]);
    }
    expect(ones).toBeGreaterThan(64); // the choice bits were used, not constant
    expect(new Set(pads0.map((p) => Buffer.from(p).toString('hex'))).size).toBe(BASE_OT_BATCH);
  });

  it('rejects malformed receiver messages (lengths, versions, invalid points, identity)', () => {
    expectAbort(() => baseOtSenderRespond(sid, rmsg.subarray(0, rmsg.length - 1)), 'malformed');
    expectAbort(() => baseOtSenderRespond(sid, concatBytes(rmsg, new Uint8Array(1))), 'malformed');
    expectAbort(() => baseOtSenderRespond(sid, mutated(rmsg, (c) => (c[0] = 9))), 'malformed');
    expectAbort(() => baseOtSenderRespond(sid, mutated(rmsg, (c) => (c[1] = 2))), 'malformed');
    // u_0 with x >= p; v_0 the identity encoding; A0 of OT 0 with an x that is not on the curve.
    expectAbort(() => baseOtSenderRespond(sid, mutated(rmsg, (c) => c.fill(0xff, recOff(0) + 1, recOff(0) + 33))), 'malformed');
    expectAbort(() => baseOtSenderRespond(sid, mutated(rmsg, (c) => c.fill(0, recOff(0) + 33, recOff(0) + 66))), 'malformed');
    let x = 1n;
    for (;;) {
      const enc = new Uint8Array(33);
      enc[0] = 2;
      enc.set(Buffer.from(x.toString(16).padStart(64, '0'), 'hex'), 1);
      try {
        secp256k1.Point.fromBytes(enc);
      } catch {
        expectAbort(() => baseOtSenderRespond(sid, mutated(rmsg, (c) => c.set(enc, recOff(0) + 66))), 'malformed');
        break;
      }
      x++;
    }
    // Non-canonical proof scalar.
    const nBytes = Buffer.from(N.toString(16).padStart(64, '0'), 'hex');
    expectAbort(() => baseOtSenderRespond(sid, mutated(rmsg, (c) => c.set(nBytes, recOff(0) + 6 * 33))), 'malformed');
  });

  it('rejects receiver messages whose OR-proofs do not verify', () => {
    // A response changed.
    expectAbort(() => baseOtSenderRespond(sid, mutated(rmsg, (c) => (c[recOff(7) + 6 * 33 + 32 + 31]! ^= 1))), 'ot-check-failed');
    // v replaced by a valid point that is neither r*G nor r*G + h (here: u): the attempt to learn
    // both pads, or to hide which one was taken, is caught by the proof.
    expectAbort(() => baseOtSenderRespond(sid, mutated(rmsg, (c) => c.set(rmsg.subarray(recOff(3), recOff(3) + 33), recOff(3) + 33))), 'ot-check-failed');
    // The right message under a different session id (h and every challenge change).
    expectAbort(() => baseOtSenderRespond(randomBytes(32), rmsg), 'ot-check-failed');
  }, 60_000);
});

describe('OT extension with the SoftSpokenOT-style check', () => {
  /** Stands in for the base OTs: Delta, both seeds per column, and the chosen ones. */
  function fakeSeeds(): { delta: Uint32Array; seeds0: Uint32Array; seeds1: Uint32Array; chosen: Uint32Array } {
    const delta = words(8);
    const seeds0 = words(OTE_KAPPA * 8);
    const seeds1 = words(OTE_KAPPA * 8);
    const chosen = new Uint32Array(OTE_KAPPA * 8);
    for (let i = 0; i < OTE_KAPPA; i++) chosen.set((bit(delta, i) ? seeds1 : seeds0).subarray(8 * i, 8 * i + 8), 8 * i);
    return { delta, seeds0, seeds1, chosen };
  }
  const ctx = randomBytes(32);
  const nonce = prgNonce('test/ote', [ctx]);

  for (const n of [416, 1024, 4096]) {
    it(`delivers q_j = t_j xor beta_j*Delta for ${n} OTs`, () => {
      const { delta, seeds0, seeds1, chosen } = fakeSeeds();
      const x = words(oteColumnWords(n));
      const r = oteReceive(seeds0, seeds1, nonce, ctx, x, n);
      const s = oteSend(delta, chosen, nonce, ctx, r.u, r.xTilde, r.tTilde, n);
      expect(s.rows.length).toBe(n * 8);
      let ones = 0;
      for (let j = 0; j < n; j++) {
        const b = bit(x, j);
        ones += b;
        for (let k = 0; k < 8; k++) {
          if (s.rows[8 * j + k] !== ((r.rows[8 * j + k]! ^ (b ? delta[k]! : 0)) >>> 0)) throw new Error(`row ${j} differs`);
        }
      }
      expect(ones).toBeGreaterThan(n / 4);
      expect(ctEqual(s.challenge.digest, r.challenge.digest)).toBe(true);
    });
  }

  const n = 416;
  const cw = oteColumnWords(n);
  let base: ReturnType<typeof fakeSeeds>;
  let x: Uint32Array;
  let honest: ReturnType<typeof oteReceive>;
  beforeAll(() => {
    base = fakeSeeds();
    // Make sure both kinds of column exist where the tests pick them.
    base.delta[0] = (base.delta[0]! & ~3) | 1; // Delta_0 = 1, Delta_1 = 0
    for (let i = 0; i < 2; i++) base.chosen.set((bit(base.delta, i) ? base.seeds1 : base.seeds0).subarray(8 * i, 8 * i + 8), 8 * i);
    x = words(cw);
    honest = oteReceive(base.seeds0, base.seeds1, nonce, ctx, x, n);
  });
  const send = (u: Uint32Array, xt: Uint32Array, tt: Uint32Array) => oteSend(base.delta, base.chosen, nonce, ctx, u, xt, tt, n);

  it('accepts the honest receiver', () => {
    expect(() => send(honest.u, honest.xTilde, honest.tTilde)).not.toThrow();
  });

  it('a corrupted column, row, x~ or t~ fails the check', () => {
    for (const col of [0, 1, 100, 255]) {
      for (const w of [0, 7, 12, 13, 20]) {
        const u = honest.u.slice();
        u[col * cw + w]! ^= 1 << (w % 32);
        expectAbort(() => send(u, honest.xTilde, honest.tTilde), 'ot-check-failed');
      }
    }
    // A "row": the same bit j flipped in every column, without recomputing x~.
    const u = honest.u.slice();
    for (let i = 0; i < OTE_KAPPA; i++) u[i * cw + 3]! ^= 1 << 9;
    expectAbort(() => send(u, honest.xTilde, honest.tTilde), 'ot-check-failed');
    const xt = honest.xTilde.slice();
    xt[5]! ^= 0x100;
    expectAbort(() => send(honest.u, xt, honest.tTilde), 'ot-check-failed');
    for (const col of [0, 1, 200]) {
      const tt = honest.tTilde.slice();
      tt[col * 8 + 2]! ^= 1;
      expectAbort(() => send(honest.u, honest.xTilde, tt), 'ot-check-failed');
    }
    // Seeds or session of the wrong extension.
    expectAbort(() => oteSend(base.delta, base.chosen, prgNonce('test/ote', [randomBytes(32)]), ctx, honest.u, honest.xTilde, honest.tTilde, n), 'ot-check-failed');
    expectAbort(() => oteSend(base.delta, base.chosen, nonce, randomBytes(32), honest.u, honest.xTilde, honest.tTilde, n), 'ot-check-failed');
    expectAbort(() => send(honest.u.subarray(1), honest.xTilde, honest.tTilde), 'malformed');
  });

  /**
   * The attack the check exists for: a receiver that uses other choice bits in one column and
   * computes its check values honestly for everything else. It passes only if it guessed that
   * column's Delta bit (Delta_i = 0: the column does not depend on U_i), i.e. learning one bit of
   * Delta costs a 1/2 chance of being caught and banned.
   */
  it('catches a receiver with inconsistent choice bits exactly when Delta_i = 1', () => {
    for (const col of [0, 1]) {
      const t0 = expandColumns(base.seeds0, nonce, cw);
      const t1 = expandColumns(base.seeds1, nonce, cw);
      const u = new Uint32Array(OTE_KAPPA * cw);
      for (let i = 0; i < OTE_KAPPA; i++) {
        for (let w = 0; w < cw; w++) {
          const xi = i === col && w === 2 ? x[w]! ^ 0x10 : x[w]!; // flip choice bit 68 in this column only
          u[i * cw + w] = t0[i * cw + w]! ^ t1[i * cw + w]! ^ xi;
        }
      }
      const ch = deriveChallenge(ctx, u, n);
      const xt = new Uint32Array(8);
      checkHash(ch, x, 0, n / 32, xt, 0);
      const tt = new Uint32Array(OTE_KAPPA * 8);
      for (let i = 0; i < OTE_KAPPA; i++) checkHash(ch, t0, i * cw, n / 32, tt, i * 8);
      if (bit(base.delta, col) === 1) expectAbort(() => send(u, xt, tt), 'ot-check-failed');
      else expect(() => send(u, xt, tt)).not.toThrow();
    }
  });
});
