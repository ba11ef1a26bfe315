/** Reshare to another threshold and member set (crypto/reshare.ts): same key, old shares useless, faults blamed. */
import { describe, expect, it } from 'vitest';
import { dealtVerifyingShares, deal } from '../../crypto/dealer.js';
import type { FrostScheme } from '../../crypto/frost/ciphersuite.js';
import { groupFor, type CurveName, type Group } from '../../crypto/group/index.js';
import { ProtocolAbort, type ProtocolMessage } from '../../crypto/protocol.js';
import { shareReshare, type ReshareOutput, type ReshareParams } from '../../crypto/reshare.js';
import { interpolateAtZero } from '../../crypto/shamir.js';
import { runProtocol, type RunResult, type Tamper } from '../support/protocol-driver.js';
import { pick, signAndVerify, subsets } from '../support/sharing.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

interface Keyset {
  g: Group<unknown>;
  t: number;
  members: number[];
  shares: Map<number, bigint>;
  publicKey: Uint8Array;
  verifyingShares: Map<number, Uint8Array>;
  chainCode: Uint8Array;
}

function keyset(curve: CurveName, t: number, members: number[]): Keyset {
  const g = groupFor(curve);
  const d = deal(g, g.randomScalar(), t, members);
  const commitments = d.commitments.map((c) => g.decode(c));
  return { g, t, members, shares: d.shares, publicKey: d.commitments[0]!, verifyingShares: dealtVerifyingShares(g, commitments, d.participants), chainCode: new Uint8Array(32).fill(7) };
}

interface Plan {
  dealers: number[];
  newThreshold: number;
  newMembers: number[];
}

function paramsFor(k: Keyset, plan: Plan, self: number): ReshareParams {
  return {
    sessionId: 'reshare-1',
    self,
    group: k.g,
    publicKey: k.publicKey,
    chainCode: k.chainCode,
    epoch: 0,
    oldThreshold: k.t,
    oldVerifyingShares: k.verifyingShares,
    dealers: plan.dealers,
    newThreshold: plan.newThreshold,
    newMembers: plan.newMembers,
    ...(plan.dealers.includes(self) ? { secretShare: k.shares.get(self)! } : {}),
  };
}

function runReshare(k: Keyset, plan: Plan, tamper?: Tamper, edit: (p: ReshareParams) => ReshareParams = (p) => p): RunResult<ReshareOutput> {
  const parties = [...new Set([...plan.dealers, ...plan.newMembers])];
  return runProtocol(shareReshare, new Map(parties.map((i) => [i, edit(paramsFor(k, plan, i))])), { tamper });
}

/** Runs the plan honestly and returns the keyset it leaves, after checking every output agrees. */
function reshared(k: Keyset, plan: Plan): Keyset {
  const r = runReshare(k, plan);
  expect([...r.aborts.values()].map((a) => a.message)).toEqual([]);
  const parties = [...new Set([...plan.dealers, ...plan.newMembers])];
  expect(r.outputs.size).toBe(parties.length);
  const first = r.outputs.get(plan.newMembers[0]!)!;
  const shares = new Map<number, bigint>();
  for (const [i, o] of r.outputs) {
    expect(hex(o.publicKey)).toBe(hex(k.publicKey));
    expect(o.threshold).toBe(plan.newThreshold);
    expect([...o.participants]).toEqual([...plan.newMembers].sort((a, b) => a - b));
    expect(hex(o.transcriptHash)).toBe(hex(first.transcriptHash));
    for (const [m, v] of o.verifyingShares) expect(hex(v)).toBe(hex(first.verifyingShares.get(m)!));
    if (plan.newMembers.includes(i)) {
      expect(hex(k.g.encode(k.g.baseMul(o.secretShare!)))).toBe(hex(first.verifyingShares.get(i)!));
      shares.set(i, o.secretShare!);
    } else {
      expect(o.secretShare).toBeUndefined();
    }
  }
  return { ...k, t: plan.newThreshold, members: [...plan.newMembers].sort((a, b) => a - b), shares, verifyingShares: new Map(first.verifyingShares) };
}

function checkSharing(before: Keyset, after: Keyset) {
  const g = after.g;
  const secret = interpolateAtZero(g.Fn, pick(before.shares, before.members.slice(0, before.t)));
  for (const set of subsets(after.members, after.t)) expect(interpolateAtZero(g.Fn, pick(after.shares, set))).toBe(secret);
  for (const set of subsets(after.members, after.t - 1)) expect(interpolateAtZero(g.Fn, pick(after.shares, set))).not.toBe(secret);
  // Old shares do not combine with new ones (under either threshold).
  for (const t of new Set([before.t, after.t])) {
    for (const set of subsets([...new Set([...before.members, ...after.members])], t)) {
      for (const olds of subsets(set.filter((i) => before.shares.has(i)), 1)) {
        const news = set.filter((i) => !olds.includes(i));
        if (!news.every((i) => after.shares.has(i))) continue;
        const mixed = new Map(set.map((i) => [i, olds.includes(i) ? before.shares.get(i)! : after.shares.get(i)!]));
        expect(interpolateAtZero(g.Fn, mixed)).not.toBe(secret);
      }
    }
  }
}

function expectAbort(r: RunResult<ReshareOutput>, victims: number[], reason: ProtocolAbort['reason'], blame: number[]) {
  for (const v of victims) {
    const a = r.aborts.get(v);
    expect(a, `party ${v} should abort`).toBeInstanceOf(ProtocolAbort);
    expect(a!.reason).toBe(reason);
    expect([...a!.blame]).toEqual(blame);
    expect(r.outputs.has(v)).toBe(false);
  }
}

const CURVES: CurveName[] = ['secp256k1', 'ed25519'];
const schemesOf = (curve: CurveName): FrostScheme[] => (curve === 'ed25519' ? ['ed25519'] : ['secp256k1', 'bip340']);

describe('reshare: honest runs', () => {
  for (const curve of CURVES) {
    it(`${curve}: 2-of-3 to 3-of-4 (node 4 added) and back to 2-of-3 (node 4 removed); FROST signs each time`, () => {
      const k0 = keyset(curve, 2, [1, 2, 3]);
      const k1 = reshared(k0, { dealers: [1, 2, 3], newThreshold: 3, newMembers: [1, 2, 3, 4] });
      checkSharing(k0, k1);
      const k2 = reshared(k1, { dealers: [1, 2, 3, 4], newThreshold: 2, newMembers: [1, 2, 3] });
      checkSharing(k1, k2);
      for (const scheme of schemesOf(curve)) {
        signAndVerify(scheme, k0.publicKey, k1.shares, k1.verifyingShares, [2, 3, 4]);
        signAndVerify(scheme, k0.publicKey, k2.shares, k2.verifyingShares, [1, 3]);
      }
    });
  }

  it('only a threshold of the old members needs to deal; a leaving member that is down is simply left out', () => {
    const k0 = keyset('secp256k1', 2, [1, 2, 3]);
    // Node 2 is gone: 1 and 3 deal to {1, 3, 5}.
    const k1 = reshared(k0, { dealers: [1, 3], newThreshold: 2, newMembers: [1, 3, 5] });
    checkSharing(k0, k1);
    signAndVerify('bip340', k0.publicKey, k1.shares, k1.verifyingShares, [3, 5]);
  });

  it('a dealer that leaves outputs no share; a wholly new member set works', () => {
    const k0 = keyset('ed25519', 3, [1, 2, 3, 4, 5]);
    const k1 = reshared(k0, { dealers: [2, 4, 5], newThreshold: 2, newMembers: [6, 7, 8] });
    checkSharing(k0, k1);
    signAndVerify('ed25519', k0.publicKey, k1.shares, k1.verifyingShares, [6, 8]);
  });
});

describe('reshare: bad local input throws at start', () => {
  const k = keyset('secp256k1', 2, [1, 2, 3]);
  const plan = { dealers: [1, 2, 3], newThreshold: 3, newMembers: [1, 2, 3, 4] };
  const start = (self: number, edit: (p: ReshareParams) => ReshareParams) => () => shareReshare.start(edit(paramsFor(k, plan, self)));

  it.each([
    ['fewer dealers than the old threshold', 1, (p: ReshareParams) => ({ ...p, dealers: [1] }), /at least 2 dealers/],
    ['a dealer that is not a member', 1, (p: ReshareParams) => ({ ...p, dealers: [1, 9] }), /current member/],
    ['a new threshold above the new member count', 1, (p: ReshareParams) => ({ ...p, newThreshold: 5 }), /new threshold/],
    ['a new threshold of 1', 1, (p: ReshareParams) => ({ ...p, newThreshold: 1 }), /new threshold/],
    ['self neither dealer nor member', 7, (p: ReshareParams) => p, /neither a dealer nor a new member/],
    ['a dealer without its share', 1, (p: ReshareParams) => ({ ...p, secretShare: undefined }), /needs its current share/],
    ['a share that does not match its verifying share', 1, (p: ReshareParams) => ({ ...p, secretShare: p.secretShare! + 1n }), /does not match/],
    ['verifying shares that are not a sharing of the key', 4, (p: ReshareParams) => ({ ...p, oldVerifyingShares: new Map([...p.oldVerifyingShares].map(([i, v]) => [i, i === 3 ? k.verifyingShares.get(1)! : v])) }), /not a 2-of-3 sharing/],
    ['a short chain code', 4, (p: ReshareParams) => ({ ...p, chainCode: new Uint8Array(31) }), /chain code/],
  ])('%s', (_what, self, edit, message) => {
    expect(start(self, edit)).toThrow(message);
  });
});

describe('reshare: faults are caught and blamed', () => {
  const curve: CurveName = 'secp256k1';
  const plan = { dealers: [1, 2, 3], newThreshold: 3, newMembers: [1, 2, 3, 4] };

  it('a dealer that sends a bad sub-share to the new node is named', () => {
    const k = keyset(curve, 2, [1, 2, 3]);
    const r = runReshare(k, plan, (m, receiver) => {
      if (m.round === 1 && m.from === 2 && receiver === 4 && m.to === 4) {
        const bad = k.g.scalarToBytes(k.g.Fn.add(k.g.scalarFromBytes(m.payload), 1n));
        return [{ ...m, payload: bad }];
      }
      return [m];
    });
    expectAbort(r, [4], 'proof-failed', [2]);
  });

  it('a dealer that tries to move the key (another constant term) is named by everyone', () => {
    const k = keyset(curve, 2, [1, 2, 3]);
    const g = k.g;
    const r = runReshare(k, plan, (m) => {
      if (m.round === 1 && m.from === 3 && m.to === 0) {
        const payload = m.payload.slice();
        payload.set(g.encode(g.baseMul(g.randomScalar())), 32);
        return [{ ...m, payload }];
      }
      return [m];
    });
    expectAbort(r, [1, 2, 4], 'proof-failed', [3]);
  });

  it('an added node told another keyset than the dealers hold aborts', () => {
    const k = keyset(curve, 2, [1, 2, 3]);
    const other = keyset(curve, 2, [1, 2, 3]);
    const r = runReshare(k, plan, undefined, (p) => (p.self === 4 ? { ...p, publicKey: other.publicKey, oldVerifyingShares: other.verifyingShares } : p));
    expectAbort(r, [1, 2, 3, 4], 'inconsistent-broadcast', []);
  });

  it('parties that saw different round-1 broadcasts abort on the echo, blaming nobody', () => {
    const k = keyset(curve, 2, [1, 2, 3]);
    const r = runReshare(k, plan, (m: ProtocolMessage, receiver) => (m.round === 2 && m.from === 1 && receiver === 4 ? [{ ...m, payload: new Uint8Array(32).fill(9) }] : [m]));
    expectAbort(r, [4], 'inconsistent-broadcast', []);
  });

  it('a leaving dealer rejects a sub-share addressed to it', () => {
    const k = keyset(curve, 2, [1, 2, 3]);
    const back = { dealers: [1, 2, 3], newThreshold: 2, newMembers: [1, 2] };
    const stray = k.g.scalarToBytes(k.g.randomScalar());
    const r = runReshare(k, back, (m, receiver) => (m.round === 1 && m.from === 1 && m.to === 0 && receiver === 3 ? [m, { ...m, to: 3, payload: stray }] : [m]));
    expect(r.aborts.get(3)?.reason).toBe('unexpected-message');
  });

  it('states are single-use', () => {
    const k = keyset('ed25519', 2, [1, 2]);
    const p = { dealers: [1, 2], newThreshold: 2, newMembers: [1, 2] };
    const s1 = shareReshare.start(paramsFor(k, p, 1));
    const s2 = shareReshare.start(paramsFor(k, p, 2));
    const r = shareReshare.step(s1.state, s2.outgoing);
    expect(r.done).toBe(false);
    expect(() => shareReshare.step(s1.state, s2.outgoing)).toThrow(/single-use/);
  });
});
