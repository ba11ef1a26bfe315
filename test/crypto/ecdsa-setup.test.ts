/**
 * ecdsaSetup (crypto/ecdsa/setup.ts): new pairwise OT setups and zero-sharing seeds for an existing
 * Shamir sharing, after keygen (burnt correlations) and for a trusted-dealer import.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeEcdsaKeyShare, ecdsaKeygen, encodeEcdsaKeyShare, type EcdsaKeyShare } from '../../crypto/ecdsa/keygen.js';
import { defaultMul, type MulBackend } from '../../crypto/ecdsa/mul-backend.js';
import { ecdsaSetup, type EcdsaExistingSharing, type EcdsaSetupParams, type EcdsaSetupState } from '../../crypto/ecdsa/setup.js';
import { decodeFields } from '../../crypto/ecdsa/wire.js';
import { groupFor } from '../../crypto/group/index.js';
import { ProtocolAbort, type ProtocolMessage } from '../../crypto/protocol.js';
import { evalPolynomial, randomPolynomial } from '../../crypto/shamir.js';
import { encodeFields } from '../../crypto/transcript.js';
import {
  keygenAll,
  keygenAllAsync,
  kSubsets,
  nobleAccepts,
  presignRun,
  range,
  runProtocol,
  runProtocolAsync,
  setupAll,
  setupAllAsync,
  setupParams,
  signAll,
  type RunResult,
  type Tamper,
} from './support/ecdsa-driver.js';
import { fakeMul } from './support/fake-mul.js';

const g = groupFor('secp256k1');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const digestOf = (s: string) => sha256(new TextEncoder().encode(s));
const SLOW = 600_000;

/** Envelope layout (index 0 is the tag), the same as keygen's point-to-point envelope. */
const ENV = { inputs: 1, asSender: 2, asReceiver: 3, seed: 4 };

/** A trusted dealer's t-of-n Shamir split of a random key, with a random chain code. */
function dealerSharing(n: number, t: number): { secret: bigint; publicKey: Uint8Array; sharings: Map<number, EcdsaExistingSharing> } {
  const secret = g.randomScalar();
  const poly = randomPolynomial(secret, t, () => g.randomScalar());
  const publicKey = g.encode(g.baseMul(secret));
  const chainCode = randomBytes(32);
  const shares = new Map(range(n).map((i) => [i, evalPolynomial(g.Fn, poly, BigInt(i))]));
  const verifyingShares = new Map([...shares].map(([i, s]) => [i, g.encode(g.baseMul(s))]));
  return { secret, publicKey, sharings: new Map([...shares].map(([i, secretShare]) => [i, { secretShare, publicKey, verifyingShares, chainCode }])) };
}

/** The same sharing shifted by delta (a consistent sharing of key + delta: what a non-hardened child key looks like). */
function shifted(s: EcdsaExistingSharing, delta: bigint): EcdsaExistingSharing {
  const shift = (p: Uint8Array) => g.encode(g.add(g.decode(p), g.baseMul(delta)));
  return {
    secretShare: g.Fn.add(s.secretShare, delta),
    publicKey: shift(s.publicKey),
    verifyingShares: new Map([...s.verifyingShares].map(([i, v]) => [i, shift(v)])),
    chainCode: s.chainCode,
  };
}

/** Rewrites the fields of the round-`round` envelope from `from` to `to`. */
function editEnvelope(from: number, to: number, round: number, edit: (fields: Uint8Array[]) => void): Tamper {
  return (m) => {
    if (m.from !== from || m.to !== to || m.round !== round) return [m];
    const fields = decodeFields(m.payload);
    edit(fields);
    return [{ ...m, payload: encodeFields(fields) }];
  };
}

function abortOf(r: RunResult<unknown>, at: number): { reason: string; blame: number[]; message: string } {
  const a = r.aborts.get(at);
  if (!(a instanceof ProtocolAbort)) throw new Error(`party ${at} did not abort (outputs from ${[...r.outputs.keys()].join(', ') || 'nobody'})`);
  return { reason: a.reason, blame: [...a.blame], message: a.message };
}

/** Same sharing and public data; new setups, seeds and transcript; the new keys sign for every t-subset. */
function expectFreshSetup(old: Map<number, EcdsaKeyShare>, fresh: Map<number, EcdsaKeyShare>, n: number, t: number, mul: MulBackend = defaultMul): void {
  expect([...fresh.keys()].sort()).toEqual(range(n));
  const transcript = hex(fresh.get(1)!.transcriptHash);
  for (const [i, k] of fresh) {
    const o = old.get(i)!;
    expect([k.index, k.threshold, k.participants]).toEqual([o.index, o.threshold, o.participants]);
    expect(k.secretShare).toBe(o.secretShare);
    expect(hex(k.publicKey)).toBe(hex(o.publicKey));
    expect(hex(k.chainCode)).toBe(hex(o.chainCode));
    expect([...k.verifyingShares].map(([j, v]) => [j, hex(v)])).toEqual([...o.verifyingShares].map(([j, v]) => [j, hex(v)]));
    expect(hex(k.transcriptHash)).toBe(transcript);
    expect(hex(k.transcriptHash)).not.toBe(hex(o.transcriptHash));
    for (const j of range(n).filter((x) => x !== i)) {
      expect(hex(mul.encodeSenderSetup(k.senderSetups.get(j)!))).not.toBe(hex(mul.encodeSenderSetup(o.senderSetups.get(j)!)));
      expect(hex(mul.encodeReceiverSetup(k.receiverSetups.get(j)!))).not.toBe(hex(mul.encodeReceiverSetup(o.receiverSetups.get(j)!)));
      expect(hex(k.zeroSeeds.get(j)!)).not.toBe(hex(o.zeroSeeds.get(j)!));
      expect(hex(k.zeroSeeds.get(j)!)).toBe(hex(fresh.get(j)!.zeroSeeds.get(i)!));
    }
  }
  expectSigns(fresh, n, t, old.get(1)!.publicKey, mul === defaultMul ? undefined : mul);
}

function expectSigns(keys: ReadonlyMap<number, EcdsaKeyShare>, n: number, t: number, publicKey: Uint8Array, mul?: MulBackend): void {
  const sets = [...kSubsets(range(n), t), range(n)];
  for (const signers of sets) {
    const digest = digestOf(`setup ${n} ${signers.join(',')}`);
    const sig = signAll(keys, signers, digest, mul ? { mul } : {});
    expect(nobleAccepts(sig, digest, publicKey), `signers ${signers.join(',')}`).toBe(true);
  }
}

describe('ecdsaSetup after keygen (new OT correlations for the same key)', () => {
  // Real multiplication for 2-of-3: keygen, then a setup of its outputs. 3-of-5 runs the same
  // pairwise code over the test stand-in multiplication (one real 3-of-5 keygen plus setup costs
  // over a minute of the suite's budget; the real OT path is what 2-of-3 covers).
  const mul35 = fakeMul();
  let keys23: Map<number, EcdsaKeyShare>;
  let new23: Map<number, EcdsaKeyShare>;
  let keys35: Map<number, EcdsaKeyShare>;
  let new35: Map<number, EcdsaKeyShare>;
  const ms: Record<string, number> = {};
  beforeAll(async () => {
    const timed = async <T>(label: string, f: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      const r = await f();
      ms[label] = performance.now() - t0;
      return r;
    };
    keys23 = await timed('keygen 2-of-3', () => keygenAllAsync(3, 2));
    new23 = await timed('setup 2-of-3', () => setupAllAsync(keys23, 2));
    keys35 = await timed('keygen 3-of-5 (stand-in mul)', () => keygenAllAsync(5, 3, mul35));
    new35 = await timed('setup 3-of-5 (stand-in mul)', () => setupAllAsync(keys35, 3, mul35));
  }, SLOW);

  it('2-of-3: same shares and public data, new setups, seeds and transcript; every signer set signs', () => {
    expectFreshSetup(keys23, new23, 3, 2);
  });

  it('3-of-5 likewise', () => {
    expectFreshSetup(keys35, new35, 5, 3, mul35);
    console.log(`ecdsaSetup timings (real multiplication, all parties in one process): ${Object.entries(ms).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')}`);
  });

  it('the new shares survive the sealing codec and still sign', () => {
    const restored = new Map([...new23].map(([i, k]) => [i, decodeEcdsaKeyShare(encodeEcdsaKeyShare(k))]));
    for (const [i, k] of restored) expect(hex(encodeEcdsaKeyShare(k))).toBe(hex(encodeEcdsaKeyShare(new23.get(i)!)));
    const digest = digestOf('sealed after setup');
    expect(nobleAccepts(signAll(restored, [1, 3], digest), digest, keys23.get(1)!.publicKey)).toBe(true);
  });

  describe('mixing old and new setups never signs', () => {
    const signers = [1, 2, 3];
    const pk = () => keys23.get(1)!.publicKey;

    it('control: all new keys presign and sign', () => {
      const digest = digestOf('control');
      expect(nobleAccepts(signAll(new23, signers, digest), digest, pk())).toBe(true);
    });

    it('party 2 on its whole old key share: the session binding (transcript hash) differs, presign aborts', () => {
      const r = presignRun(new23, signers, { keyOverride: new Map([[2, keys23.get(2)!]]) });
      expect(r.outputs.size).toBe(0);
      expect(r.aborts.size).toBe(3);
    });

    it('party 2 with the new transcript but its old OT setups: the OT / multiplication checks abort', () => {
      const k = new23.get(2)!;
      const stale: EcdsaKeyShare = { ...k, senderSetups: keys23.get(2)!.senderSetups, receiverSetups: keys23.get(2)!.receiverSetups };
      const r = presignRun(new23, signers, { keyOverride: new Map([[2, stale]]) });
      expect(r.outputs.size).toBe(0);
      for (const i of [1, 3]) {
        const a = abortOf(r, i);
        expect(['ot-check-failed', 'mul-check-failed']).toContain(a.reason);
        expect(a.blame).toEqual([2]);
      }
    });

    it('party 2 with only its old sender setups (receiver setups new): party 2\'s own OT check fails, nobody signs', () => {
      // Alice runs the OT-extension check, so here the stale party is the one that detects it.
      const stale: EcdsaKeyShare = { ...new23.get(2)!, senderSetups: keys23.get(2)!.senderSetups };
      const r = presignRun(new23, [1, 2], { keyOverride: new Map([[2, stale]]) });
      expect(r.outputs.size).toBe(0);
      expect(abortOf(r, 2)).toMatchObject({ reason: 'ot-check-failed', blame: [1] });
      expect(abortOf(r, 1)).toMatchObject({ reason: 'missing-message', blame: [2] });
    });

    it('party 2 with its old zero seeds: the zero shares do not cancel, the sum check aborts', () => {
      const stale: EcdsaKeyShare = { ...new23.get(2)!, zeroSeeds: keys23.get(2)!.zeroSeeds };
      const r = presignRun(new23, signers, { keyOverride: new Map([[2, stale]]) });
      expect(r.outputs.size).toBe(0);
      expect(abortOf(r, 1).reason).toBe('check-failed');
    });
  });
});

describe('ecdsaSetup for a trusted-dealer sharing (key import)', () => {
  it('2-of-3: a dealer-split key gets its setups without a DKG and signs under the dealer key', async () => {
    const { secret, publicKey, sharings } = dealerSharing(3, 2);
    const t0 = performance.now();
    const keys = await setupAllAsync(sharings, 2);
    console.log(`ecdsaSetup 2-of-3 dealer import: ${(performance.now() - t0).toFixed(0)} ms`);
    expect(hex(g.encode(g.baseMul(secret)))).toBe(hex(publicKey));
    for (const [i, k] of keys) {
      expect(k.secretShare).toBe(sharings.get(i)!.secretShare);
      expect(hex(k.publicKey)).toBe(hex(publicKey));
      expect(hex(k.chainCode)).toBe(hex(sharings.get(i)!.chainCode));
      expect(hex(k.transcriptHash)).toBe(hex(keys.get(1)!.transcriptHash));
    }
    expectSigns(keys, 3, 2, publicKey);
  }, SLOW);
});

describe('ecdsaSetup: rounds and schedule', () => {
  for (const flights of [2, 3, 4, 5]) {
    for (const first of ['sender', 'receiver'] as const) {
      it(`${flights} setup flights, ${first} first: exactly ${flights} rounds, no DKG, and the result signs`, () => {
        const mul = fakeMul({ flights, first });
        expect(ecdsaSetup.roundsFor(mul)).toBe(flights);
        const { publicKey, sharings } = dealerSharing(3, 2);
        const rounds = new Set<number>();
        const r = runProtocol(ecdsaSetup, setupParams(sharings, 2, mul, `rounds-${flights}-${first}`), { tamper: (m) => (rounds.add(m.round), [m]) });
        expect(r.aborts.size).toBe(0);
        expect([...rounds].sort()).toEqual(range(flights));
        expectSigns(r.outputs, 3, 2, publicKey, mul);
      });
    }
  }

  it('the default backend: mul.setupFlights rounds, no more than keygen', () => {
    expect(ecdsaSetup.name).toBe('dkls23-setup');
    expect(ecdsaSetup.rounds).toBe(defaultMul.setupFlights);
    expect(ecdsaSetup.rounds).toBeLessThanOrEqual(ecdsaKeygen.rounds);
  });

  it('every party reports the same transcript hash; another session gives another one', () => {
    const mul = fakeMul();
    const { sharings } = dealerSharing(3, 2);
    const a = setupAll(sharings, 2, mul, 'same-key-a');
    const b = setupAll(sharings, 2, mul, 'same-key-b');
    expect(new Set([...a.values()].map((k) => hex(k.transcriptHash))).size).toBe(1);
    expect(hex(a.get(1)!.transcriptHash)).not.toBe(hex(b.get(1)!.transcriptHash));
  });
});

describe('ecdsaSetup: parties with other public inputs abort', () => {
  // The agreement check runs before any flight reaches the multiplication: the stand-in suffices.
  const mul = fakeMul();

  function runWith(overrides: Map<number, Partial<EcdsaSetupParams>>): RunResult<EcdsaKeyShare> {
    const { sharings } = dealerSharing(3, 2);
    const params = setupParams(sharings, 2, mul, 'disagree');
    for (const [i, o] of overrides) params.set(i, { ...params.get(i)!, ...o });
    return runProtocol(ecdsaSetup, params);
  }

  function expectDisagreement(r: RunResult<EcdsaKeyShare>, odd: number, n: number): void {
    expect(r.outputs.size).toBe(0);
    for (const i of range(n)) {
      const a = abortOf(r, i);
      expect(a.reason).toBe('check-failed');
      expect(a.blame).toEqual(i === odd ? range(n).filter((j) => j !== odd) : [odd]);
      expect(a.message).toMatch(/public inputs of part(y|ies) [\d, ]+ differ from ours/);
    }
  }

  it('one party holds a different (but self-consistent) public key and shares', () => {
    const { sharings } = dealerSharing(3, 2);
    const params = setupParams(sharings, 2, mul, 'other-key');
    params.set(3, { ...params.get(3)!, existing: shifted(sharings.get(3)!, 7n) });
    expectDisagreement(runProtocol(ecdsaSetup, params), 3, 3);
  });

  it('one party holds a different chain code', () => {
    const { sharings } = dealerSharing(3, 2);
    const params = setupParams(sharings, 2, mul, 'other-chain-code');
    params.set(2, { ...params.get(2)!, existing: { ...sharings.get(2)!, chainCode: randomBytes(32) } });
    expectDisagreement(runProtocol(ecdsaSetup, params), 2, 3);
  });

  it('one party runs with another threshold', () => {
    expectDisagreement(runWith(new Map([[1, { threshold: 3 }]])), 1, 3);
  });

  it('one party runs another session id', () => {
    expectDisagreement(runWith(new Map([[3, { sessionId: 'another' }]])), 3, 3);
  });

  it('a party that copies the others\' digest into its envelopes is still caught: the pair session ids bind the inputs', () => {
    const { sharings } = dealerSharing(3, 2);
    const params = setupParams(sharings, 2, mul, 'lying-digest');
    params.set(3, { ...params.get(3)!, existing: { ...sharings.get(3)!, chainCode: randomBytes(32) } });
    const afterStart = (states: Map<number, EcdsaSetupState>, outgoing: ProtocolMessage[]) => {
      const honest = states.get(1)!.inputs;
      return outgoing.map((m) => {
        if (m.from !== 3) return m;
        const f = decodeFields(m.payload);
        f[ENV.inputs] = honest;
        return { ...m, payload: encodeFields(f) };
      });
    };
    const r = runProtocol(ecdsaSetup, params, { afterStart });
    expect(r.outputs.size).toBe(0);
    for (const i of [1, 2]) expect(abortOf(r, i)).toMatchObject({ reason: 'malformed-message', blame: [3] });
    expect(abortOf(r, 1).message).toMatch(/multiplication setup/);
  });
});

describe('ecdsaSetup: bad local input throws before any message', () => {
  const { sharings, publicKey } = dealerSharing(5, 3);
  const base = setupParams(sharings, 3, fakeMul(), 'local').get(1)!;
  const start = (existing: Partial<EcdsaExistingSharing>, o: Partial<EcdsaSetupParams> = {}) => () =>
    ecdsaSetup.start({ ...base, ...o, existing: { ...base.existing, ...existing } });
  const expectLocalError = (f: () => unknown, re: RegExp) => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(ProtocolAbort);
    expect((err as Error).message).toMatch(re);
  };

  it('control: the honest input starts', () => {
    expect(start({})().outgoing.length).toBe(4);
  });

  it('a secret share that does not match the verifying share', () => {
    expectLocalError(start({ secretShare: g.Fn.add(base.existing.secretShare, 1n) }), /secretShare \* G is not party 1's verifying share/);
  });

  it('verifying shares that do not interpolate to the public key', () => {
    expectLocalError(start({ publicKey: g.encode(g.baseMul(g.randomScalar())) }), /parties 1, 2, 3 do not interpolate to publicKey/);
  });

  it('one verifying share off the sharing polynomial (even though t others interpolate)', () => {
    const verifyingShares = new Map(sharings.get(1)!.verifyingShares);
    verifyingShares.set(5, g.encode(g.baseMul(g.randomScalar())));
    expectLocalError(start({ verifyingShares }), /verifying share of party 5 is not on the sharing polynomial/);
    const missing = new Map([...sharings.get(1)!.verifyingShares].filter(([i]) => i !== 4));
    expectLocalError(start({ verifyingShares: missing }), /no verifying share for party 4/);
  });

  it('malformed public data', () => {
    expectLocalError(start({ chainCode: new Uint8Array(31) }), /chainCode must be 32 bytes/);
    expectLocalError(start({ publicKey: new Uint8Array(33) }), /publicKey is not a valid/);
    expectLocalError(start({ secretShare: 0n }), /secretShare must be a scalar/);
    expectLocalError(start({ secretShare: g.order }), /secretShare must be a scalar/);
    expect(hex(publicKey)).toBe(hex(sharings.get(1)!.publicKey));
  });

  it('parameters that disagree with an EcdsaKeyShare given as the existing sharing, and bad indices', () => {
    const asKey = { ...sharings.get(1)!, index: 1, participants: range(5), threshold: 3 };
    expectLocalError(start(asKey, { threshold: 2 }), /threshold 2 differs from the sharing's 3/);
    expectLocalError(start(asKey, { participants: [1, 2, 3, 4] }), /participants 1,2,3,4 differ/);
    expectLocalError(start({ ...asKey, index: 2 }), /differs from the sharing's index 2/);
    expectLocalError(start({}, { self: 6 }), /self 6 is not among the participants/);
    expectLocalError(start({}, { sessionId: '' }), /sessionId/);
    expectLocalError(start({}, { participants: [1, 1, 2, 3, 4] }), /distinct/);
  });
});

describe('ecdsaSetup: tampered envelopes and flights are blamed like in keygen', () => {
  const mul = fakeMul();

  it('a truncated envelope -> malformed-message, blame the sender', () => {
    const { sharings } = dealerSharing(3, 2);
    const r = runProtocol(ecdsaSetup, setupParams(sharings, 2, mul, 'st-trunc'), {
      tamper: (m) => (m.from === 3 && m.to === 1 && m.round === 1 ? [{ ...m, payload: m.payload.subarray(0, 10) }] : [m]),
    });
    expect(abortOf(r, 1)).toMatchObject({ reason: 'malformed-message', blame: [3] });
  });

  it('a public-input digest of the wrong length -> malformed-message, blame the sender', () => {
    const { sharings } = dealerSharing(3, 2);
    const r = runProtocol(ecdsaSetup, setupParams(sharings, 2, mul, 'st-digest'), {
      tamper: editEnvelope(2, 3, 1, (f) => void (f[ENV.inputs] = f[ENV.inputs]!.subarray(1))),
    });
    expect(abortOf(r, 3)).toMatchObject({ reason: 'malformed-message', blame: [2] });
  });

  it('a flight out of schedule -> malformed-message, blame the sender', () => {
    const { sharings } = dealerSharing(3, 2);
    const r = runProtocol(ecdsaSetup, setupParams(sharings, 2, fakeMul({ flights: 3, first: 'sender' }), 'st-sched'), {
      tamper: editEnvelope(2, 1, 1, (f) => void ([f[ENV.asSender], f[ENV.asReceiver]] = [f[ENV.asReceiver]!, f[ENV.asSender]!])),
    });
    expect(abortOf(r, 1)).toMatchObject({ reason: 'malformed-message', blame: [2] });
  });

  it('a zero-sharing seed of the wrong length -> malformed-message, blame the lower index', () => {
    const { sharings } = dealerSharing(3, 2);
    const r = runProtocol(ecdsaSetup, setupParams(sharings, 2, mul, 'st-seed'), {
      tamper: editEnvelope(1, 3, 1, (f) => void (f[ENV.seed] = f[ENV.seed]!.subarray(0, 31))),
    });
    expect(abortOf(r, 3)).toMatchObject({ reason: 'malformed-message', blame: [1] });
  });

  it('a corrupted flight of the real multiplication setup aborts and blames its sender', async () => {
    const { sharings } = dealerSharing(2, 2);
    const r = await runProtocolAsync(ecdsaSetup, setupParams(sharings, 2, undefined, 'st-flight'), {
      tamper: editEnvelope(2, 1, 1, (f) => {
        const k = f[ENV.asSender]!.length > 0 ? ENV.asSender : ENV.asReceiver;
        f[k] = f[k]!.subarray(0, f[k]!.length >> 1);
      }),
    });
    expect(r.outputs.size).toBe(0);
    expect(abortOf(r, 1)).toMatchObject({ reason: 'malformed-message', blame: [2] });
    expect(abortOf(r, 1).message).toMatch(/multiplication setup/);
  }, SLOW);

  it('a state is single-use', () => {
    const { sharings } = dealerSharing(2, 2);
    const params = setupParams(sharings, 2, mul, 'st-reuse');
    const s1 = ecdsaSetup.start(params.get(1)!);
    const s2 = ecdsaSetup.start(params.get(2)!);
    ecdsaSetup.step(s1.state, s2.outgoing);
    expect(() => ecdsaSetup.step(s1.state, s2.outgoing)).toThrow(/single-use/);
  });
});

// keygenAll with the stand-in: the setup also runs on keygen outputs handed over as EcdsaKeyShare.
describe('ecdsaSetup on a keygen output with the stand-in multiplication', () => {
  it('takes an EcdsaKeyShare as the existing sharing', () => {
    const mul = fakeMul({ flights: 2, first: 'sender' });
    const old = keygenAll(4, 3, mul);
    const fresh = setupAll(old, 3, mul);
    for (const [i, k] of fresh) {
      expect(k.secretShare).toBe(old.get(i)!.secretShare);
      expect(hex(k.transcriptHash)).not.toBe(hex(old.get(i)!.transcriptHash));
    }
    expectSigns(fresh, 4, 3, old.get(1)!.publicKey, mul);
  });
});
