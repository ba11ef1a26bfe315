/**
 * DKLs23 two-party multiplication (crypto/ecdsa/mul.ts): pairwise setup over the real base OT,
 * many multiplications on one setup, serialisation, and every check firing on tampering.
 */
import { inspect } from 'node:util';
import { randomBytes } from '@noble/hashes/utils.js';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  _mulSenderRound2Skewed,
  decodeReceiverSetup,
  decodeReceiverState,
  decodeSenderSetup,
  encodeReceiverSetup,
  encodeReceiverState,
  encodeSenderSetup,
  MUL_INPUTS,
  MUL_OTS,
  MUL_ROUND1_BYTES,
  MUL_ROUND2_BYTES,
  MUL_SETUP_FIRST,
  MUL_SETUP_FLIGHTS,
  MulAbort,
  mulReceiverRound1,
  mulReceiverRound3,
  mulSenderRound2,
  mulSetupStart,
  mulSetupStep,
  type MulContext,
  type MulReceiverSetup,
  type MulRole,
  type MulSenderSetup,
  type MulSetupState,
} from '../../crypto/ecdsa/mul.js';
import { groupFor } from '../../crypto/group/index.js';

const grp = groupFor('secp256k1');
const n = grp.order;
const ctxOf = (): MulContext => ({ sessionId: randomBytes(32) });
const other = (r: MulRole): MulRole => (r === 'sender' ? 'receiver' : 'sender');

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

/** Runs the setup in memory, honouring the advertised flight order and count. */
function runSetup(ctx: MulContext, tamper?: (flight: number, msg: Uint8Array) => Uint8Array): { alice: MulSenderSetup; bob: MulReceiverSetup } {
  const starts = { sender: mulSetupStart('sender', ctx), receiver: mulSetupStart('receiver', ctx) };
  expect(starts[MUL_SETUP_FIRST].msg).toBeInstanceOf(Uint8Array);
  expect(starts[other(MUL_SETUP_FIRST)].msg).toBeUndefined();
  const states: Record<MulRole, MulSetupState | undefined> = { sender: starts.sender.state, receiver: starts.receiver.state };
  const done: Partial<Record<MulRole, MulSenderSetup | MulReceiverSetup>> = {};
  let msg = starts[MUL_SETUP_FIRST].msg;
  let to = other(MUL_SETUP_FIRST);
  let flights = 0;
  while (msg) {
    flights++;
    const st = states[to];
    if (!st) throw new Error(`flight ${flights} sent to ${to}, which already finished`);
    const r = mulSetupStep(st, tamper ? tamper(flights, msg) : msg);
    if ('done' in r) {
      done[to] = r.done;
      states[to] = undefined;
    } else states[to] = r.state;
    msg = r.msg;
    to = other(to);
  }
  expect(flights).toBe(MUL_SETUP_FLIGHTS);
  expect(done.sender?.role).toBe('sender');
  expect(done.receiver?.role).toBe('receiver');
  return { alice: done.sender as MulSenderSetup, bob: done.receiver as MulReceiverSetup };
}

function multiply(alice: MulSenderSetup, bob: MulReceiverSetup, inputs: bigint[], ctx = ctxOf()): { chi: bigint; a: bigint[]; b: bigint[] } {
  const r1 = mulReceiverRound1(bob, ctx);
  const r2 = mulSenderRound2(alice, ctx, inputs, r1.msg);
  const b = mulReceiverRound3(r1.state, r2.msg);
  return { chi: r1.chi, a: r2.shares, b };
}

function expectProduct(chi: bigint, inputs: bigint[], a: bigint[], b: bigint[]): void {
  expect(a.length).toBe(MUL_INPUTS);
  expect(b.length).toBe(MUL_INPUTS);
  for (let k = 0; k < MUL_INPUTS; k++) {
    expect(a[k]! >= 0n && a[k]! < n && b[k]! >= 0n && b[k]! < n).toBe(true);
    expect((a[k]! + b[k]!) % n).toBe((chi * inputs[k]!) % n);
  }
}

const rnd = (): bigint[] => [grp.randomScalar(), grp.randomScalar()];
const flip = (m: Uint8Array, off: number, mask = 1): Uint8Array => {
  const c = m.slice();
  c[off]! ^= mask;
  return c;
};

let alice: MulSenderSetup;
let bob: MulReceiverSetup;
let setupMs = 0;

beforeAll(() => {
  const t = performance.now();
  ({ alice, bob } = runSetup(ctxOf()));
  setupMs = performance.now() - t;
}, 120_000);

describe('multiplication', () => {
  it('aliceShares[k] + bobShares[k] = chi * a[k] over many sessions on one setup', () => {
    const chis = new Set<bigint>();
    for (let t = 0; t < 40; t++) {
      const inputs = t === 0 ? [0n, n - 1n] : t === 1 ? [1n, 2n] : rnd();
      const { chi, a, b } = multiply(alice, bob, inputs);
      expectProduct(chi, inputs, a, b);
      chis.add(chi);
    }
    expect(chis.size).toBe(40); // chi is fresh every session
  });

  it('a repeated session id still gets fresh correlations on the honest side (defence in depth)', () => {
    const ctx = ctxOf();
    // Bob: two round-1 messages under one session id share nothing (fresh nonce_B keys the PRG).
    const x = mulReceiverRound1(bob, ctx);
    const y = mulReceiverRound1(bob, ctx);
    let same = 0;
    for (let i = 34; i < 34 + 4096; i++) same += x.msg[i] === y.msg[i] ? 1 : 0;
    expect(same).toBeLessThan(64); // ~16 expected by chance out of 4096 bytes
    // Alice answering the same round-1 message twice: without her fresh nonce_A the corrections
    // would differ by exactly a - a'; with it they are unrelated.
    const a = rnd();
    const a2 = rnd();
    const r2a = mulSenderRound2(alice, ctx, a, x.msg);
    const r2b = mulSenderRound2(alice, ctx, a2, x.msg);
    const scalar = (m: Uint8Array, k: number): bigint => BigInt('0x' + Buffer.from(m.subarray(34 + 32 * k, 66 + 32 * k)).toString('hex'));
    for (const j of [0, 1, 100]) {
      const d = (((scalar(r2a.msg, 3 * j) - scalar(r2b.msg, 3 * j)) % n) + n) % n;
      expect(d).not.toBe((((a[0]! - a2[0]!) % n) + n) % n);
    }
    expectProduct(x.chi, a, r2a.shares, mulReceiverRound3(x.state, r2a.msg));
  });

  it('messages have fixed sizes; Bob’s round 1 needs no input from Alice', () => {
    const ctx = ctxOf();
    const r1 = mulReceiverRound1(bob, ctx);
    expect(r1.msg.length).toBe(MUL_ROUND1_BYTES);
    const r2 = mulSenderRound2(alice, ctx, rnd(), r1.msg);
    expect(r2.msg.length).toBe(MUL_ROUND2_BYTES);
    expect(mulReceiverRound3(r1.state, r2.msg).length).toBe(MUL_INPUTS);
  });

  it('setups round-trip through their binary encodings', () => {
    const ea = encodeSenderSetup(alice);
    const eb = encodeReceiverSetup(bob);
    const a2 = decodeSenderSetup(ea);
    const b2 = decodeReceiverSetup(eb);
    expect(encodeSenderSetup(a2)).toEqual(ea);
    expect(encodeReceiverSetup(b2)).toEqual(eb);
    for (const [x, y] of [
      [a2, bob],
      [alice, b2],
      [a2, b2],
    ] as const) {
      const inputs = rnd();
      const { chi, a, b } = multiply(x, y, inputs);
      expectProduct(chi, inputs, a, b);
    }
    // Lengths, version and type are checked.
    expectAbort(() => decodeSenderSetup(ea.subarray(0, ea.length - 1)), 'malformed');
    expectAbort(() => decodeSenderSetup(new Uint8Array([...ea, 0])), 'malformed');
    expectAbort(() => decodeSenderSetup(flip(ea, 0, 3)), 'malformed');
    expectAbort(() => decodeSenderSetup(eb), 'malformed');
    expectAbort(() => decodeReceiverSetup(ea), 'malformed');
    expectAbort(() => decodeReceiverSetup(eb.subarray(0, 100)), 'malformed');
  });

  it('Bob’s state between rounds can be stored and is single use', () => {
    const ctx = ctxOf();
    const inputs = rnd();
    const r1 = mulReceiverRound1(bob, ctx);
    const stored = encodeReceiverState(r1.state);
    const r2 = mulSenderRound2(alice, ctx, inputs, r1.msg);
    const b = mulReceiverRound3(decodeReceiverState(stored, bob), r2.msg);
    expectProduct(r1.chi, inputs, r2.shares, b);
    // The original state object is still unused, but a used one is refused.
    expect(mulReceiverRound3(r1.state, r2.msg)).toEqual(b);
    expect(() => mulReceiverRound3(r1.state, r2.msg)).toThrow(/already used/);
    expect(() => encodeReceiverState(r1.state)).toThrow(/already used/);
    expectAbort(() => decodeReceiverState(stored.subarray(1), bob), 'malformed');
  });

  it('secret objects print as placeholders, never their bytes', () => {
    const r1 = mulReceiverRound1(bob, ctxOf());
    for (const x of [alice, bob, r1.state, mulSetupStart('sender', ctxOf()).state]) {
      expect(inspect(x, { depth: 10 })).toMatch(/^\[Mul\w+ \(secret\)\]$/);
      expect(JSON.stringify({ x })).toMatch(/^\{"x":"\[Mul\w+ \(secret\)\]"\}$/);
    }
    expect(String(inspect(alice)).length).toBeLessThan(40);
  });

  it('rejects bad inputs from the caller', () => {
    const ctx = ctxOf();
    const r1 = mulReceiverRound1(bob, ctx);
    expect(() => mulSenderRound2(alice, ctx, [1n], r1.msg)).toThrow(RangeError);
    expect(() => mulSenderRound2(alice, ctx, [1n, n], r1.msg)).toThrow(RangeError);
    expect(() => mulSenderRound2(alice, ctx, [-1n, 1n], r1.msg)).toThrow(RangeError);
    expect(() => mulReceiverRound1(bob, { sessionId: new Uint8Array(8) })).toThrow(TypeError);
    expect(() => mulSenderRound2(bob as unknown as MulSenderSetup, ctx, rnd(), r1.msg)).toThrow(TypeError);
  });
});

describe('Bob’s round-1 message is checked by Alice (OT-extension consistency)', () => {
  const U_OFF = 2 + 32;
  const U_LEN = 256 * ((MUL_OTS + 256) / 8);
  const cases: [string, number][] = [
    ['nonce_B', 2 + 5],
    ['U, first column', U_OFF + 3],
    ['U, middle column', U_OFF + 130 * ((MUL_OTS + 256) / 8) + 40],
    ['U, mask part of the last column', U_OFF + U_LEN - 1],
    ['x~', U_OFF + U_LEN + 7],
    ['t~, first', U_OFF + U_LEN + 32],
    ['t~, last', MUL_ROUND1_BYTES - 1],
  ];
  for (const [what, off] of cases) {
    it(`a flipped bit in ${what} makes Alice abort with 'ot-check-failed'`, () => {
      const ctx = ctxOf();
      const r1 = mulReceiverRound1(bob, ctx);
      expectAbort(() => mulSenderRound2(alice, ctx, rnd(), flip(r1.msg, off, 0x10)), 'ot-check-failed');
      // The untampered message still works (Alice keeps no state between attempts).
      const inputs = rnd();
      const r2 = mulSenderRound2(alice, ctx, inputs, r1.msg);
      expectProduct(r1.chi, inputs, r2.shares, mulReceiverRound3(r1.state, r2.msg));
    });
  }

  it('malformed round-1 messages are rejected as such', () => {
    const ctx = ctxOf();
    const r1 = mulReceiverRound1(bob, ctx);
    expectAbort(() => mulSenderRound2(alice, ctx, rnd(), r1.msg.subarray(0, r1.msg.length - 1)), 'malformed');
    expectAbort(() => mulSenderRound2(alice, ctx, rnd(), new Uint8Array([...r1.msg, 0])), 'malformed');
    expectAbort(() => mulSenderRound2(alice, ctx, rnd(), flip(r1.msg, 0, 2)), 'malformed');
    expectAbort(() => mulSenderRound2(alice, ctx, rnd(), flip(r1.msg, 1, 1)), 'malformed');
    expectAbort(() => mulSenderRound2(alice, ctx, rnd(), new Uint8Array(0)), 'malformed');
  });

  it('a session id that differs between the two sides fails the extension check', () => {
    const r1 = mulReceiverRound1(bob, ctxOf());
    expectAbort(() => mulSenderRound2(alice, ctxOf(), rnd(), r1.msg), 'ot-check-failed');
  });
});

describe('Alice’s round-2 message is checked by Bob (multiplication check)', () => {
  const A_OFF = 2 + 32;
  const ETA_OFF = A_OFF + MUL_OTS * 3 * 32;
  const cases: [string, number][] = [
    ['nonce_A', 2 + 1],
    ['a~ of OT 0, input 0 (low bit)', A_OFF + 31],
    ['a~ of OT 200, input 1', A_OFF + (200 * 3 + 1) * 32 + 20],
    ['a~ of the last OT, check input', ETA_OFF - 1],
    ['eta', ETA_OFF + 31],
    ['H(mu)', MUL_ROUND2_BYTES - 1],
    ['H(mu), first byte', ETA_OFF + 32],
  ];
  for (const [what, off] of cases) {
    it(`a flipped bit in ${what} makes Bob abort with 'mul-check-failed'`, () => {
      const ctx = ctxOf();
      const r1 = mulReceiverRound1(bob, ctx);
      const state = encodeReceiverState(r1.state);
      const inputs = rnd();
      const r2 = mulSenderRound2(alice, ctx, inputs, r1.msg);
      expectAbort(() => mulReceiverRound3(r1.state, flip(r2.msg, off)), 'mul-check-failed');
      // The same state with the genuine message succeeds.
      expectProduct(r1.chi, inputs, r2.shares, mulReceiverRound3(decodeReceiverState(state, bob), r2.msg));
    });
  }

  it('malformed round-2 messages are rejected as such', () => {
    const ctx = ctxOf();
    const r1 = mulReceiverRound1(bob, ctx);
    const state = encodeReceiverState(r1.state);
    const r2 = mulSenderRound2(alice, ctx, rnd(), r1.msg);
    const again = () => decodeReceiverState(state, bob);
    expectAbort(() => mulReceiverRound3(again(), r2.msg.subarray(0, r2.msg.length - 1)), 'malformed');
    expectAbort(() => mulReceiverRound3(again(), new Uint8Array([...r2.msg, 0])), 'malformed');
    expectAbort(() => mulReceiverRound3(again(), flip(r2.msg, 1, 7)), 'malformed');
    const big = r2.msg.slice();
    big.fill(0xff, A_OFF + 32 * 10, A_OFF + 32 * 11); // a~ >= n
    expectAbort(() => mulReceiverRound3(again(), big), 'malformed');
    const bigEta = r2.msg.slice();
    bigEta.fill(0xff, ETA_OFF, ETA_OFF + 32);
    expectAbort(() => mulReceiverRound3(again(), bigEta), 'malformed');
  });

  /**
   * The attack the check is for: Alice uses a different input in a single OT j (inconsistent
   * correlations) and computes everything else honestly. Bob's output for that OT only depends on
   * Alice's correction when beta_j = 1, so she is caught exactly then; when beta_j = 0 the cheat had
   * no effect and the product is still right, but she learned beta_j: one bit per attempt, which is
   * why the caller must ban her after the first abort.
   */
  it('catches a cheating Alice with inconsistent correlations exactly when it matters', () => {
    let caught = 0;
    let passed = 0;
    for (let t = 0; t < 6; t++) {
      const ctx = ctxOf();
      const r1 = mulReceiverRound1(bob, ctx);
      const st = encodeReceiverState(r1.state);
      const beta = st.subarray(2 + 32 + 32, 2 + 32 + 32 + MUL_OTS / 8);
      const j = 17 + 50 * t;
      const bj = (beta[j >> 3]! >> (j & 7)) & 1;
      const inputs = rnd();
      const r2 = _mulSenderRound2Skewed(alice, ctx, inputs, r1.msg, (k) => (k === j ? 12345n : 0n));
      if (bj === 1) {
        expectAbort(() => mulReceiverRound3(r1.state, r2.msg), 'mul-check-failed');
        caught++;
      } else {
        expectProduct(r1.chi, inputs, r2.shares, mulReceiverRound3(r1.state, r2.msg));
        passed++;
      }
    }
    // A skew on every OT is always caught (beta is not all zero).
    const ctx = ctxOf();
    const r1 = mulReceiverRound1(bob, ctx);
    const r2 = _mulSenderRound2Skewed(alice, ctx, rnd(), r1.msg, (k) => BigInt(k + 1));
    expectAbort(() => mulReceiverRound3(r1.state, r2.msg), 'mul-check-failed');
    expect(caught + passed).toBe(6);
  });
});

describe('setup', () => {
  it('a setup from another pair does not interoperate', () => {
    const { alice: a2 } = runSetup(ctxOf());
    const ctx = ctxOf();
    const r1 = mulReceiverRound1(bob, ctx);
    expectAbort(() => mulSenderRound2(a2, ctx, rnd(), r1.msg), 'ot-check-failed');
  }, 120_000);

  it('tampered setup flights abort with the right reason', () => {
    const ctx = ctxOf();
    // Flight 1 (Alice's base-OT message): an invalid point, then a broken proof.
    expect(() => runSetup(ctx, (f, m) => (f === 1 ? m.subarray(0, 100) : m))).toThrow(MulAbort);
    expectAbort(() => runSetup(ctxOf(), (f, m) => (f === 1 ? flip(m, 2 + 32, 0x04) : m)), 'malformed'); // u_0 prefix 0x06/0x07
    expectAbort(() => runSetup(ctxOf(), (f, m) => (f === 1 ? flip(m, m.length - 1) : m)), 'ot-check-failed');
    // Flight 2 (Bob's key and proof of knowledge): a broken Fischlin response.
    expectAbort(() => runSetup(ctxOf(), (f, m) => (f === 2 ? flip(m, m.length - 1) : m)), 'ot-check-failed');
  }, 120_000);

  it('a setup state is single use', () => {
    const { state } = mulSetupStart('receiver', ctxOf());
    expect(() => mulSetupStep(state, new Uint8Array(3))).toThrow(MulAbort);
    expect(() => mulSetupStep(state, new Uint8Array(3))).toThrow(/already used/);
  });
});

describe('timing (noble backend)', () => {
  it('reports setup and per-multiplication cost', () => {
    const times: number[][] = [];
    for (let t = 0; t < 60; t++) {
      const ctx = ctxOf();
      const inputs = rnd();
      const t0 = performance.now();
      const r1 = mulReceiverRound1(bob, ctx);
      const t1 = performance.now();
      const r2 = mulSenderRound2(alice, ctx, inputs, r1.msg);
      const t2 = performance.now();
      mulReceiverRound3(r1.state, r2.msg);
      const t3 = performance.now();
      times.push([t1 - t0, t2 - t1, t3 - t2, t3 - t0]);
    }
    const med = (k: number): string => {
      const v = times.slice(10).map((x) => x[k]!).sort((a, b) => a - b);
      return v[v.length >> 1]!.toFixed(2);
    };
    console.log(
      `DKLs23 mul (xi=${MUL_OTS}): setup of one ordered pair ${setupMs.toFixed(0)} ms; ` +
        `multiplication median: Bob r1 ${med(0)} ms, Alice r2 ${med(1)} ms, Bob r3 ${med(2)} ms, total ${med(3)} ms; ` +
        `messages ${MUL_ROUND1_BYTES} + ${MUL_ROUND2_BYTES} bytes`,
    );
    expect(times.length).toBe(60);
  });
});
