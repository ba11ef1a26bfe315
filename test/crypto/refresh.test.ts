/** Proactive share refresh (crypto/refresh.ts): same key, new shares, epochs do not mix, faults blamed. */
import { describe, expect, it } from 'vitest';
import { dealtVerifyingShares, deal } from '../../crypto/dealer.js';
import type { FrostScheme } from '../../crypto/frost/ciphersuite.js';
import { groupFor, type CurveName, type Group } from '../../crypto/group/index.js';
import { ProtocolAbort, type ProtocolMessage } from '../../crypto/protocol.js';
import { shareRefresh, type RefreshOutput, type RefreshParams } from '../../crypto/refresh.js';
import { interpolateAtZero } from '../../crypto/shamir.js';
import { pick, signAndVerify, subsets } from '../support/sharing.js';
import { runProtocol, type RunResult, type Tamper } from '../support/protocol-driver.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface Keyset {
  g: Group<unknown>;
  t: number;
  participants: number[];
  shares: Map<number, bigint>;
  publicKey: Uint8Array;
  verifyingShares: Map<number, Uint8Array>;
}

function keyset(curve: CurveName, t: number, n: number): Keyset {
  const g = groupFor(curve);
  const d = deal(g, g.randomScalar(), t, range(n));
  const commitments = d.commitments.map((c) => g.decode(c));
  return { g, t, participants: [...d.participants], shares: d.shares, publicKey: d.commitments[0]!, verifyingShares: dealtVerifyingShares(g, commitments, d.participants) };
}

function paramsFor(k: Keyset, self: number, sessionId = 'refresh-1'): RefreshParams {
  return {
    sessionId,
    self,
    participants: k.participants,
    threshold: k.t,
    group: k.g,
    secretShare: k.shares.get(self)!,
    publicKey: k.publicKey,
    verifyingShares: k.verifyingShares,
  };
}

function runRefresh(k: Keyset, tamper?: Tamper, edit: (p: RefreshParams) => RefreshParams = (p) => p): RunResult<RefreshOutput> {
  return runProtocol(shareRefresh, new Map(k.participants.map((i) => [i, edit(paramsFor(k, i))])), { tamper });
}

function expectAbort(r: RunResult<RefreshOutput>, victims: number[], reason: ProtocolAbort['reason'], blame: number[]) {
  for (const v of victims) {
    const a = r.aborts.get(v);
    expect(a, `party ${v} should abort`).toBeInstanceOf(ProtocolAbort);
    expect(a!.reason).toBe(reason);
    expect([...a!.blame]).toEqual(blame);
  }
  for (const v of victims) expect(r.outputs.has(v)).toBe(false);
}

const CURVES: CurveName[] = ['secp256k1', 'ed25519'];

describe('share refresh: honest runs', () => {
  for (const curve of CURVES) {
    for (const [t, n] of [
      [2, 3],
      [3, 5],
    ] as const) {
      it(`${curve} ${t}-of-${n}: same key, new shares, epochs do not mix, FROST signs`, () => {
        const k = keyset(curve, t, n);
        const g = k.g;
        const secret = interpolateAtZero(g.Fn, pick(k.shares, range(t)));
        expect(hex(g.encode(g.baseMul(secret)))).toBe(hex(k.publicKey));

        const r = runRefresh(k);
        expect(r.aborts.size).toBe(0);
        expect(r.outputs.size).toBe(n);
        const first = r.outputs.get(1)!;
        const fresh = new Map<number, bigint>();
        for (const [i, o] of r.outputs) {
          expect(o.index).toBe(i);
          expect(o.threshold).toBe(t);
          expect([...o.participants]).toEqual(range(n));
          expect(hex(o.publicKey)).toBe(hex(k.publicKey));
          expect(hex(o.transcriptHash)).toBe(hex(first.transcriptHash));
          expect([...o.verifyingShares.keys()]).toEqual(range(n));
          for (const [m, v] of o.verifyingShares) expect(hex(v)).toBe(hex(first.verifyingShares.get(m)!));
          expect(o.secretShare).not.toBe(k.shares.get(i));
          expect(hex(g.encode(g.baseMul(o.secretShare)))).toBe(hex(first.verifyingShares.get(i)!));
          expect(hex(first.verifyingShares.get(i)!)).not.toBe(hex(k.verifyingShares.get(i)!));
          fresh.set(i, o.secretShare);
        }
        expect(first.transcriptHash.length).toBe(32);

        // Any t new shares give the old secret; fewer than t do not.
        for (const set of subsets(range(n), t)) expect(interpolateAtZero(g.Fn, pick(fresh, set))).toBe(secret);
        for (const set of subsets(range(n), t - 1)) expect(interpolateAtZero(g.Fn, pick(fresh, set))).not.toBe(secret);

        // Mixing epochs: any t shares with at least one old one do not give the secret.
        for (const set of subsets(range(n), t)) {
          for (let oldCount = 1; oldCount <= t - 1; oldCount++) {
            for (const olds of subsets(set, oldCount)) {
              const mixed = new Map(set.map((i) => [i, olds.includes(i) ? k.shares.get(i)! : fresh.get(i)!]));
              expect(interpolateAtZero(g.Fn, mixed), `old ${olds} new ${set.filter((i) => !olds.includes(i))}`).not.toBe(secret);
            }
          }
        }

        // Real signing with the new shares, verified by noble.
        const schemes: FrostScheme[] = curve === 'ed25519' ? ['ed25519'] : ['secp256k1', 'bip340'];
        for (const scheme of schemes) {
          for (const signers of [range(t), range(n).slice(n - t)]) signAndVerify(scheme, k.publicKey, fresh, first.verifyingShares, signers);
        }
      });
    }
  }

  it('refreshing twice keeps the key; every run gives other shares and another transcript', () => {
    const k = keyset('secp256k1', 2, 3);
    const a = runRefresh(k);
    const b = runRefresh(k);
    expect(hex(a.outputs.get(1)!.transcriptHash)).not.toBe(hex(b.outputs.get(1)!.transcriptHash));
    expect(a.outputs.get(1)!.secretShare).not.toBe(b.outputs.get(1)!.secretShare);
    const o = a.outputs.get(1)!;
    const k2: Keyset = { ...k, shares: new Map([...a.outputs].map(([i, x]) => [i, x.secretShare])), verifyingShares: new Map(o.verifyingShares) };
    const c = runRefresh(k2);
    expect(c.aborts.size).toBe(0);
    const secret = interpolateAtZero(k.g.Fn, pick(k.shares, [1, 2]));
    expect(interpolateAtZero(k.g.Fn, pick(new Map([...c.outputs].map(([i, x]) => [i, x.secretShare])), [2, 3]))).toBe(secret);
  });

  it('works with sparse, unsorted participant indices', () => {
    const g = groupFor('ed25519');
    const d = deal(g, g.randomScalar(), 2, [9, 2, 40]);
    const commitments = d.commitments.map((c) => g.decode(c));
    const k: Keyset = { g, t: 2, participants: [40, 2, 9], shares: d.shares, publicKey: d.commitments[0]!, verifyingShares: dealtVerifyingShares(g, commitments, d.participants) };
    const r = runRefresh(k);
    expect(r.aborts.size).toBe(0);
    expect([...r.outputs.get(9)!.participants]).toEqual([2, 9, 40]);
    expect([...r.outputs.get(9)!.verifyingShares.keys()]).toEqual([2, 9, 40]);
    const fresh = new Map([...r.outputs].map(([i, o]) => [i, o.secretShare]));
    expect(interpolateAtZero(g.Fn, pick(fresh, [9, 40]))).toBe(interpolateAtZero(g.Fn, pick(d.shares, [2, 9])));
  });

  it('states are single-use', () => {
    const k = keyset('ed25519', 2, 2);
    const s1 = shareRefresh.start(paramsFor(k, 1));
    const s2 = shareRefresh.start(paramsFor(k, 2));
    const r = shareRefresh.step(s1.state, s2.outgoing);
    expect(r.done).toBe(false);
    expect(() => shareRefresh.step(s1.state, s2.outgoing)).toThrow(/single-use/);
    const r2 = shareRefresh.step(s2.state, s1.outgoing);
    if (r.done || r2.done) throw new Error('expected round-2 states');
    const out = shareRefresh.step(r.state, r2.outgoing);
    expect(out.done).toBe(true);
    expect(() => shareRefresh.step(r.state, r2.outgoing)).toThrow(/single-use/);
  });
});

describe('share refresh: bad local input throws at start', () => {
  const k = keyset('secp256k1', 2, 3);
  const g = k.g;
  const start = (edit: (p: RefreshParams) => RefreshParams) => () => shareRefresh.start(edit(paramsFor(k, 1)));

  it('share that does not match the own verifying share', () => {
    const f = start((p) => ({ ...p, secretShare: g.Fn.add(p.secretShare, 1n) }));
    expect(f).toThrow(/does not match/);
    try {
      f();
    } catch (e) {
      expect(e).not.toBeInstanceOf(ProtocolAbort);
    }
  });

  it('verifying shares that are not a sharing of the key', () => {
    const other = new Map(k.verifyingShares);
    other.set(3, g.encode(g.baseMul(g.randomScalar())));
    expect(start((p) => ({ ...p, verifyingShares: other }))).toThrow(/not a 2-of-3 sharing/);
    expect(start((p) => ({ ...p, publicKey: g.encode(g.baseMul(g.randomScalar())) }))).toThrow(/not a 2-of-3 sharing/);
    const missing = new Map(k.verifyingShares);
    missing.delete(2);
    expect(start((p) => ({ ...p, verifyingShares: missing }))).toThrow(/exactly the participants/);
    expect(start((p) => ({ ...p, publicKey: new Uint8Array(33) }))).toThrow(/not a valid point/);
  });

  it('bad parameters', () => {
    expect(start((p) => ({ ...p, threshold: 1 }))).toThrow();
    expect(start((p) => ({ ...p, threshold: 4 }))).toThrow();
    expect(start((p) => ({ ...p, self: 4 }))).toThrow();
    expect(start((p) => ({ ...p, sessionId: '' }))).toThrow();
    expect(start((p) => ({ ...p, participants: [1, 1, 2] }))).toThrow();
    expect(start((p) => ({ ...p, secretShare: 0n }))).toThrow();
    expect(start((p) => p)).not.toThrow();
  });
});

/** Rewrites the payload of (from, round, broadcast|p2p) messages for the given receivers (all if omitted). */
function rewrite(from: number, round: number, kind: 'broadcast' | 'p2p', edit: (payload: Uint8Array) => Uint8Array, receivers?: number[]): Tamper {
  return (m, receiver) => {
    const matches = m.from === from && m.round === round && (kind === 'broadcast' ? m.to === 0 : m.to !== 0);
    if (!matches || (receivers && !receivers.includes(receiver))) return [m];
    return [{ ...m, payload: edit(m.payload) }];
  };
}

describe('share refresh: faults are caught and blamed', () => {
  for (const curve of CURVES) {
    describe(curve, () => {
      const k = keyset(curve, 2, 3);
      const g = k.g;
      const L = g.pointLength;
      const bump = (p: Uint8Array) => g.scalarToBytes(g.Fn.add(g.scalarFromBytes(p), 1n));
      const replaceCommitment = (p: Uint8Array, c: Uint8Array) => {
        const out = p.slice();
        out.set(c, 32);
        return out;
      };

      it('tampered sub-share is blamed on its sender', () => {
        const r = runRefresh(k, rewrite(2, 1, 'p2p', bump, [3]));
        expectAbort(r, [3], 'proof-failed', [2]);
        // Party 3 stops, so the others miss its echo.
        expectAbort(r, [1, 2], 'missing-message', [3]);
      });

      it('tampered commitment is blamed on its sender', () => {
        const r = runRefresh(k, rewrite(2, 1, 'broadcast', (p) => replaceCommitment(p, g.encode(g.baseMul(g.randomScalar())))));
        expectAbort(r, [1, 3], 'proof-failed', [2]);
      });

      it('every bad sender is blamed', () => {
        const k4 = keyset(curve, 2, 4);
        const a = rewrite(2, 1, 'p2p', bump, [1]);
        const b = rewrite(4, 1, 'p2p', bump, [1]);
        const r = runRefresh(k4, (m, receiver) => a(m, receiver).flatMap((x) => b(x, receiver)));
        expectAbort(r, [1], 'proof-failed', [2, 4]);
      });

      it('malformed messages are blamed', () => {
        const invalidPoint = curve === 'ed25519' ? new Uint8Array(32).fill(0xff) : Uint8Array.of(0x02, ...new Uint8Array(32).fill(0xff));
        expectAbort(runRefresh(k, rewrite(2, 1, 'broadcast', (p) => replaceCommitment(p, invalidPoint))), [1, 3], 'malformed-message', [2]);
        expectAbort(runRefresh(k, rewrite(2, 1, 'broadcast', (p) => replaceCommitment(p, new Uint8Array(L)))), [1, 3], 'malformed-message', [2]);
        expectAbort(runRefresh(k, rewrite(2, 1, 'broadcast', (p) => p.subarray(0, p.length - 1))), [1, 3], 'malformed-message', [2]);
        expectAbort(runRefresh(k, rewrite(2, 1, 'broadcast', (p) => Uint8Array.of(...p, ...p.subarray(32)))), [1, 3], 'malformed-message', [2]);
        expectAbort(runRefresh(k, rewrite(2, 1, 'p2p', () => new Uint8Array(32).fill(0xff))), [1, 3], 'malformed-message', [2]);
        expectAbort(runRefresh(k, rewrite(2, 1, 'p2p', (p) => p.subarray(1))), [1, 3], 'malformed-message', [2]);
        expectAbort(runRefresh(k, rewrite(2, 2, 'broadcast', (p) => p.subarray(1))), [1, 3], 'malformed-message', [2]);
      });

      it('a commitment to a non-zero constant cannot be smuggled in (C_0 is implicit)', () => {
        // Party 2 deals delta(x) = c + d*x but only d*G fits the wire: the shares fail the check.
        const c = g.randomScalar();
        const r = runRefresh(k, rewrite(2, 1, 'p2p', (p) => g.scalarToBytes(g.Fn.add(g.scalarFromBytes(p), c))));
        expectAbort(r, [1, 3], 'proof-failed', [2]);
      });

      it('inconsistent broadcast: a party equivocates with two valid dealings', () => {
        // Party 3 deals a second, individually valid polynomial to party 1 only (commitments and
        // sub-share both), the original to party 2. Round 1 passes everywhere; the echo catches it.
        const alt = shareRefresh.start(paramsFor(k, 3)).outgoing;
        const altBroadcast = alt.find((m) => m.to === 0)!.payload;
        const altShare = alt.find((m) => m.to === 1)!.payload;
        const r = runRefresh(k, (m, receiver) => {
          if (m.from !== 3 || m.round !== 1 || receiver !== 1) return [m];
          return [{ ...m, payload: m.to === 0 ? altBroadcast : altShare }];
        });
        expect(r.aborts.size).toBe(3);
        expectAbort(r, [1, 2, 3], 'inconsistent-broadcast', []);
      });

      it('a party that lies about its round-1 view aborts everyone without blame', () => {
        const r = runRefresh(k, rewrite(2, 2, 'broadcast', () => new Uint8Array(32).fill(1)));
        expectAbort(r, [1, 3], 'inconsistent-broadcast', []);
      });

      it('mismatched public inputs abort', () => {
        const only3 = (edit: (p: RefreshParams) => RefreshParams) => (p: RefreshParams) => (p.self === 3 ? edit(p) : p);
        expectAbort(runRefresh(k, undefined, only3((p) => ({ ...p, sessionId: 'other-session' }))), [1, 2, 3], 'inconsistent-broadcast', []);
        expectAbort(runRefresh(k, undefined, only3((p) => ({ ...p, threshold: 3 }))), [1, 2, 3], 'inconsistent-broadcast', []);
        // Party 3 thinks party 2 is at another (self-consistent) sharing of the same key.
        const sparse: Keyset = { ...k, participants: [1, 3], t: 2, verifyingShares: new Map([...k.verifyingShares].filter(([i]) => i !== 2)) };
        const r = runProtocol(
          shareRefresh,
          new Map<number, RefreshParams>([
            [1, paramsFor(k, 1)],
            [2, paramsFor(k, 2)],
            [3, { ...paramsFor(k, 3), participants: [1, 3], verifyingShares: sparse.verifyingShares }],
          ]),
        );
        expect(r.outputs.size).toBe(0);
      });

      it('duplicate, missing and stranger messages', () => {
        const dup: Tamper = (m, receiver) => (m.from === 2 && m.round === 1 && m.to !== 0 && receiver === 1 ? [m, m] : [m]);
        expectAbort(runRefresh(k, dup), [1], 'unexpected-message', [2]);
        const drop: Tamper = (m, receiver) => (m.from === 3 && m.round === 1 && m.to !== 0 && receiver === 1 ? [] : [m]);
        expectAbort(runRefresh(k, drop), [1], 'missing-message', [3]);
        const dropEcho: Tamper = (m) => (m.from === 1 && m.round === 2 ? [] : [m]);
        expectAbort(runRefresh(k, dropEcho), [2, 3], 'missing-message', [1]);
        const stranger: Tamper = (m, receiver) => (m.from === 2 && m.round === 1 && receiver === 1 ? [m, { ...m, from: 7 } as ProtocolMessage] : [m]);
        expectAbort(runRefresh(k, stranger), [1], 'unexpected-message', []);
      });

      it('replayed round-1 messages from another session do not pass', () => {
        const old = new Map<number, ProtocolMessage[]>();
        for (const i of k.participants) old.set(i, shareRefresh.start(paramsFor(k, i, 'refresh-0')).outgoing);
        const replay: Tamper = (m) => (m.from === 2 && m.round === 1 ? [old.get(2)!.find((x) => x.to === m.to)!] : [m]);
        expectAbort(runRefresh(k, replay), [1, 3], 'inconsistent-broadcast', []);
      });
    });
  }
});
