/**
 * One test per DKLs23 check: each tampers with exactly one thing and asserts the abort reason and
 * the blamed party at the honest receiver.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { commitInstancePoint, ecdsaPresign, type PresignRound1State, type PresignState } from '../../crypto/ecdsa/presign.js';
import { combine, presignaturePublic, signRound } from '../../crypto/ecdsa/sign.js';
import { decodeFields } from '../../crypto/ecdsa/wire.js';
import { ecdsaKeygen, type EcdsaKeyShare } from '../../crypto/ecdsa/keygen.js';
import { groupFor } from '../../crypto/group/index.js';
import { ProtocolAbort, type ProtocolMessage } from '../../crypto/protocol.js';
import { encodeFields } from '../../crypto/transcript.js';
import { keygenAll, keygenAllAsync, presignAll, presignRun, range, runProtocol, runProtocolAsync, type Tamper } from './support/ecdsa-driver.js';
import { fakeMul } from './support/fake-mul.js';

const g = groupFor('secp256k1');

// One real 2-of-3 keyset (the multiplication setup dominates keygen time); three-signer cases use
// all three of its parties (|S| > t is allowed).
let keys: Map<number, EcdsaKeyShare>;
beforeAll(async () => {
  keys = await keygenAllAsync(3, 2);
}, 600_000);

/** Field layout (index 0 is the versioned tag). */
const R1B = { sid: 1, commitment: 2 };
const R1P = { sid: 1, mul: 2 };
const R2B = { sid: 1, R: 2, salt: 3, pk: 4 };
const R2P = { sid: 1, echo: 2, mul: 3, gammaU: 4, gammaV: 5, psi: 6 };

/** Rewrites field `field` of the round-`round` message from `from` (to `to`, 0 = broadcast), as seen by `receiver` (all if omitted). */
function editField(
  from: number,
  to: number,
  round: number,
  field: number,
  edit: (f: Uint8Array) => Uint8Array,
  receiver?: number,
): Tamper {
  return (m, r) => {
    if (m.from !== from || m.to !== to || m.round !== round || (receiver !== undefined && r !== receiver)) return [m];
    const fields = decodeFields(m.payload);
    fields[field] = edit(fields[field]!);
    return [{ ...m, payload: encodeFields(fields) }];
  };
}

/** Flips one bit near the end: inside the content, past any length header. */
const flipMiddle = (f: Uint8Array) => {
  const c = f.slice();
  c[c.length - 3] ^= 0x01;
  return c;
};
const randomPoint = () => g.encode(g.baseMul(g.randomScalar()));

function expectAbort(r: { aborts: Map<number, ProtocolAbort> }, at: number, reason: string, blame: number[]): ProtocolAbort {
  const a = r.aborts.get(at);
  expect(a, `party ${at} should abort`).toBeInstanceOf(ProtocolAbort);
  expect(a!.reason).toBe(reason);
  expect([...a!.blame]).toEqual(blame);
  return a!;
}

describe('DKLs23 presign: every check aborts with the right reason and blame', () => {
  it('bad commitment opening of R_j (salt altered) -> check-failed, blame j', () => {
    const r = presignRun(keys, [1, 2], { tamper: editField(2, 0, 2, R2B.salt, flipMiddle) });
    expectAbort(r, 1, 'check-failed', [2]);
  });

  it('R_j swapped for another valid point -> opening fails, blame j', () => {
    const r = presignRun(keys, [1, 2], { tamper: editField(2, 0, 2, R2B.R, randomPoint) });
    expectAbort(r, 1, 'check-failed', [2]);
  });

  it('Gamma_u altered -> mul-check-failed, blame j', () => {
    const r = presignRun(keys, [1, 2], { tamper: editField(2, 1, 2, R2P.gammaU, randomPoint) });
    expectAbort(r, 1, 'mul-check-failed', [2]);
    expect(r.aborts.get(1)!.message).toMatch(/Gamma_u/);
  });

  it('Gamma_v altered -> mul-check-failed, blame j', () => {
    const r = presignRun(keys, [1, 2, 3], { tamper: editField(3, 1, 2, R2P.gammaV, randomPoint) });
    expectAbort(r, 1, 'mul-check-failed', [3]);
    expect(r.aborts.get(1)!.message).toMatch(/Gamma_v/);
    expect(r.aborts.has(2)).toBe(false); // only party 1 got the bad Gamma
  });

  it('pk_j altered in transit -> the per-counterparty Gamma_v check catches it first, blame j', () => {
    const r = presignRun(keys, [1, 2], { tamper: editField(2, 0, 2, R2B.pk, randomPoint) });
    expectAbort(r, 1, 'mul-check-failed', [2]);
  });

  describe('a signer with a wrong key share (consistent pk_j and multiplication inputs) fails the sum check', () => {
    const liar = (k: EcdsaKeyShare): EcdsaKeyShare => ({ ...k, secretShare: g.Fn.add(k.secretShare, 1n) });

    it('2 signers: the only peer is blamed', () => {
      const r = presignRun(keys, [1, 2], { keyOverride: new Map([[2, liar(keys.get(2)!)]]) });
      const a = expectAbort(r, 1, 'check-failed', [2]);
      expect(a.message).toMatch(/do not add up/);
    });

    it('3 signers: the sum cannot name the cheater, nobody is blamed', () => {
      const r = presignRun(keys, [1, 2, 3], { keyOverride: new Map([[3, liar(keys.get(3)!)]]) });
      expectAbort(r, 1, 'check-failed', []);
      expectAbort(r, 2, 'check-failed', []);
    });
  });

  it('R = identity (a rushing signer cancels the other instance point) -> check-failed', () => {
    // Party 2 plays k_2 = -k_1: only possible by seeing R_1 before committing, which the
    // commitment forbids; the test grants it that power to reach the check.
    const afterStart = (states: Map<number, PresignState>, outgoing: ProtocolMessage[]) => {
      const s1 = states.get(1)! as PresignRound1State;
      const s2 = states.get(2)! as { -readonly [K in keyof PresignRound1State]: PresignRound1State[K] };
      s2.k = g.Fn.neg(s1.k);
      s2.R = g.neg(s1.R);
      s2.RBytes = g.encode(s2.R);
      s2.commitment = commitInstancePoint(s2.sid, 2, s2.RBytes, s2.salt);
      return outgoing.map((m) =>
        m.from === 2 && m.to === 0 ? { ...m, payload: encodeFields(['custody-ecdsa-presign-r1b/v1', s2.sid, s2.commitment]) } : m,
      );
    };
    const r = presignRun(keys, [1, 2], { afterStart });
    const a = expectAbort(r, 1, 'check-failed', [2]);
    expect(a.message).toMatch(/identity/);
  });

  it('invalid point bytes (x not on the curve) -> malformed-message, blame j', () => {
    const bad = new Uint8Array(33).fill(0xff);
    bad[0] = 0x02;
    const r = presignRun(keys, [1, 2], { tamper: editField(2, 0, 2, R2B.R, () => bad) });
    expectAbort(r, 1, 'malformed-message', [2]);
  });

  it('identity point where a point is required -> malformed-message, blame j', () => {
    const r = presignRun(keys, [1, 2], { tamper: editField(2, 1, 2, R2P.gammaU, () => new Uint8Array(33)) });
    expectAbort(r, 1, 'malformed-message', [2]);
  });

  it('non-canonical psi (>= n) -> malformed-message, blame j', () => {
    const r = presignRun(keys, [1, 2], { tamper: editField(2, 1, 2, R2P.psi, () => new Uint8Array(32).fill(0xff)) });
    expectAbort(r, 1, 'malformed-message', [2]);
  });

  it('multiplication round-2 message altered (Alice -> Bob) -> mul-check-failed, blame j', () => {
    const r = presignRun(keys, [1, 2], { tamper: editField(2, 1, 2, R2P.mul, flipMiddle) });
    expectAbort(r, 1, 'mul-check-failed', [2]);
  });

  it('multiplication round-1 message altered (Bob -> Alice) -> ot-check-failed, blame j', () => {
    const r = presignRun(keys, [1, 2], { tamper: editField(2, 1, 1, R1P.mul, flipMiddle) });
    expectAbort(r, 1, 'ot-check-failed', [2]);
  });

  it('several peers fail at once: blame names each of them', () => {
    const tamper: Tamper = (m, rcv) =>
      [editField(2, 1, 1, R1P.mul, flipMiddle), editField(3, 1, 1, R1P.mul, flipMiddle)].reduce<ProtocolMessage[]>(
        (ms, t) => ms.flatMap((x) => t(x, rcv)),
        [m],
      );
    const r = presignRun(keys, [1, 2, 3], { tamper });
    expectAbort(r, 1, 'ot-check-failed', [2, 3]);
  });

  it('a peer whose multiplication shares are wrong (Gamma_u honest for its c_u) -> mul-check-failed, blame j', () => {
    // Targeted fault, needs the stand-in on both ends: party 2's Alice shares are off by one.
    const honest = fakeMul();
    const corrupt = { ...honest, senderRound2: fakeMul({ corruptSenderShares: true }).senderRound2 };
    const fkeys = keygenAll(3, 2, honest);
    const params = new Map([1, 2].map((i) => [i, { key: fkeys.get(i)!, signers: [1, 2], sessionId: 'corrupt', mul: i === 2 ? corrupt : honest }]));
    const r = runProtocol(ecdsaPresign, params);
    expectAbort(r, 1, 'mul-check-failed', [2]);
  });

  it('truncated payload -> malformed-message, blame j', () => {
    const truncate: Tamper = (m) => (m.from === 2 && m.round === 2 && m.to === 1 ? [{ ...m, payload: m.payload.subarray(0, m.payload.length - 5) }] : [m]);
    expectAbort(presignRun(keys, [1, 2], { tamper: truncate }), 1, 'malformed-message', [2]);
    const trailing: Tamper = (m) => (m.from === 2 && m.round === 1 && m.to === 0 ? [{ ...m, payload: new Uint8Array([...m.payload, 0, 0, 0, 0]) }] : [m]);
    expectAbort(presignRun(keys, [1, 2], { tamper: trailing }), 1, 'malformed-message', [2]);
  });

  it('wrong tag (message of another kind or version) -> malformed-message, blame j', () => {
    const r = presignRun(keys, [1, 2], { tamper: editField(2, 0, 1, 0, () => new TextEncoder().encode('custody-ecdsa-presign-r1b/v0')) });
    expectAbort(r, 1, 'malformed-message', [2]);
  });

  it('equivocated round-1 commitment (party 1 sees another one) -> inconsistent-broadcast, no blame', () => {
    const r = presignRun(keys, [1, 2, 3], { tamper: editField(3, 0, 1, R1B.commitment, () => randomBytes(32), 1) });
    expectAbort(r, 1, 'inconsistent-broadcast', []);
    expectAbort(r, 2, 'inconsistent-broadcast', []);
  });

  it('a signer in another session (different tweak) -> unexpected-message, no blame', () => {
    const params = new Map([1, 2].map((i) => [i, { key: keys.get(i)!, signers: [1, 2], sessionId: 'same', tweak: BigInt(i) }]));
    const r = runProtocol(ecdsaPresign, params);
    expectAbort(r, 1, 'unexpected-message', []);
  });

  it('a missing message -> missing-message, blame j', () => {
    const drop: Tamper = (m) => (m.from === 2 && m.round === 2 && m.to === 0 ? [] : [m]);
    expectAbort(presignRun(keys, [1, 2], { tamper: drop }), 1, 'missing-message', [2]);
  });

  it('a state is single-use', () => {
    const p = presignAll(keys, [1, 2]); // sanity: honest run works
    expect(p.size).toBe(2);
    const params = new Map([1, 2].map((i) => [i, { key: keys.get(i)!, signers: [1, 2], sessionId: 'reuse' }]));
    const presign = ecdsaPresign;
    const s1 = presign.start(params.get(1)!);
    const s2 = presign.start(params.get(2)!);
    const inbox = s2.outgoing.filter((m) => m.to === 0 || m.to === 1);
    presign.step(s1.state, inbox);
    expect(() => presign.step(s1.state, inbox)).toThrow(/single-use/);
  });
});

describe('DKLs23 sign: combine checks', () => {  const digest = sha256(new TextEncoder().encode('combine'));

  it('a corrupted w_i or u_i makes the signature fail -> check-failed (the paper allows no per-share blame)', () => {
    const presigs = presignAll(keys, [1, 3]);
    const shares = new Map([...presigs].map(([i, p]) => [i, signRound(p, digest).payload]));
    const f = decodeFields(shares.get(3)!);
    f[4] = g.scalarToBytes(g.Fn.add(g.scalarFromBytes(f[4]!), 1n));
    shares.set(3, encodeFields(f));
    let err: unknown;
    try {
      combine(presignaturePublic(presigs.get(1)!), digest, shares);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProtocolAbort);
    expect((err as ProtocolAbort).reason).toBe('check-failed');
    expect((err as ProtocolAbort).blame).toEqual([]);
  });

  it('w_i or u_i that cancel out (s = 0 or sum u = 0) -> check-failed, never a division by zero', () => {
    const presigs = presignAll(keys, [1, 3]);
    const pub = presignaturePublic(presigs.get(1)!);
    for (const [field, message] of [[4, /s = 0/], [5, /sum of u_i is zero/]] as const) {
      const shares = new Map([...presigs].map(([i, p]) => [i, signRound(p, digest).payload]));
      const mine = decodeFields(shares.get(1)!);
      const f = decodeFields(shares.get(3)!);
      f[field] = g.scalarToBytes(g.Fn.neg(g.scalarFromBytes(mine[field]!)));
      shares.set(3, encodeFields(f));
      let err: unknown;
      try {
        combine(pub, digest, shares);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ProtocolAbort);
      expect((err as ProtocolAbort).reason).toBe('check-failed');
      expect((err as ProtocolAbort).message).toMatch(message);
    }
  });

  it('malformed, missing, foreign and extra shares', () => {
    const presigs = presignAll(keys, [1, 3]);
    const pub = presignaturePublic(presigs.get(1)!);
    const good = () => new Map([...presigs].map(([i, p]) => [i, signRound(p, digest).payload]));
    const reasonOf = (shares: Map<number, Uint8Array>, d = digest) => {
      try {
        combine(pub, d, shares);
      } catch (e) {
        if (e instanceof ProtocolAbort) return [e.reason, [...e.blame]];
        throw e;
      }
      return ['ok', []];
    };
    expect(reasonOf(good())).toEqual(['ok', []]);
    const trunc = good();
    trunc.set(3, trunc.get(3)!.subarray(1));
    expect(reasonOf(trunc)).toEqual(['malformed-message', [3]]);
    const missing = good();
    missing.delete(1);
    expect(reasonOf(missing)).toEqual(['missing-message', [1]]);
    const extra = good();
    extra.set(2, extra.get(1)!);
    expect(reasonOf(extra)).toEqual(['unexpected-message', [2]]);
    const other = good();
    other.set(3, signRound(presigs.get(3)!, sha256(new Uint8Array([1]))).payload);
    expect(reasonOf(other)).toEqual(['inconsistent-broadcast', []]);
    const liar = good();
    liar.set(1, liar.get(3)!); // party 3's share presented as party 1's
    expect(reasonOf(liar)).toEqual(['malformed-message', [1]]);
  });
});

describe('DKLs23 keygen: envelopes and setup flights', () => {
  // Envelope and schedule checks belong to keygen.ts, not to the multiplication: the cheap
  // stand-in drives them; the last test uses the real multiplication.
  const mul = fakeMul();

  it('a truncated keygen envelope -> malformed-message, blame j', () => {
    const parties = range(3);
    const params = new Map(parties.map((i) => [i, { sessionId: 'kg-tamper', self: i, participants: parties, threshold: 2, mul }]));
    const r = runProtocol(ecdsaKeygen, params, {
      tamper: (m) => (m.from === 3 && m.to === 1 && m.round === 1 ? [{ ...m, payload: m.payload.subarray(0, 10) }] : [m]),
    });
    expectAbort(r, 1, 'malformed-message', [3]);
  });

  it('a flight out of schedule -> malformed-message, blame j', () => {
    const parties = range(3);
    const mul3 = fakeMul({ flights: 3, first: 'sender' });
    const params = new Map(parties.map((i) => [i, { sessionId: 'kg-sched', self: i, participants: parties, threshold: 2, mul: mul3 }]));
    // Swap the two flight fields of 2 -> 1 in round 1: the receiver-side slot gets a flight it must not.
    const r = runProtocol(ecdsaKeygen, params, {
      tamper: (m) => {
        if (!(m.from === 2 && m.to === 1 && m.round === 1)) return [m];
        const f = decodeFields(m.payload);
        [f[2], f[3]] = [f[3]!, f[2]!];
        return [{ ...m, payload: encodeFields(f) }];
      },
    });
    expectAbort(r, 1, 'malformed-message', [2]);
  });

  it('a zero-sharing seed of the wrong length -> malformed-message, blame the lower index', () => {
    const parties = range(3);
    const params = new Map(parties.map((i) => [i, { sessionId: 'kg-seed', self: i, participants: parties, threshold: 2, mul }]));
    const r = runProtocol(ecdsaKeygen, params, {
      tamper: (m) => {
        if (!(m.from === 1 && m.to === 3 && m.round === 1)) return [m];
        const f = decodeFields(m.payload);
        f[4] = f[4]!.subarray(0, 31);
        return [{ ...m, payload: encodeFields(f) }];
      },
    });
    expectAbort(r, 3, 'malformed-message', [1]);
  });

  it('a corrupted setup flight aborts the keygen and blames its sender', async () => {
    const parties = range(3);
    const params = new Map(parties.map((i) => [i, { sessionId: 'kg-flight', self: i, participants: parties, threshold: 2 }]));
    const r = await runProtocolAsync(ecdsaKeygen, params, {
      tamper: (m) => {
        if (!(m.from === 2 && m.to === 1 && m.round === 1)) return [m];
        const f = decodeFields(m.payload);
        const k = f[2]!.length > 0 ? 2 : 3;
        f[k] = f[k]!.subarray(0, f[k]!.length >> 1);
        return [{ ...m, payload: encodeFields(f) }];
      },
    });
    const a = r.aborts.get(1);
    expect(a).toBeInstanceOf(ProtocolAbort);
    expect(a!.reason).toBe('malformed-message');
    expect([...a!.blame]).toEqual([2]);
  }, 600_000);
});
