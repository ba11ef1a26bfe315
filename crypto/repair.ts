/**
 * Repairing a lost share (Laing and Stinson's enrollment/repair): t helpers rebuild the share of
 * party r without any of them revealing its own share, and without r learning anything but s_r.
 *
 *   start   helper i computes x_i = lambda_i(r) * s_i, where lambda_i(r) is i's Lagrange
 *           coefficient for evaluating the sharing polynomial at r over the helper set H (so
 *           sum x_i = f(r) = s_r), splits x_i into |H| random additive pieces and sends piece j to
 *           helper j point-to-point (the node layer encrypts it).
 *   step 1  helper j adds the pieces it received to its own: sigma_j, a uniformly random mask of
 *           nothing, sent to r point-to-point with a digest of the public keyset data it holds.
 *   step 2  r adds the sigmas: s_r. It checks s_r*G against its verifying share and that every
 *           helper described the same keyset (public key, verifying shares, chain code) as the
 *           parameters it was given, so a relay cannot hand it a forged chain code or key.
 *
 * Each piece a helper receives is uniform on its own; sigma_j is uniform given everything r sees
 * except the sum. Nothing here is blamed on one helper when s_r is wrong: sigmas carry no proof.
 */
import type { Group } from './group/index.js';
import { collectRound, ProtocolAbort, type Protocol, type ProtocolMessage } from './protocol.js';
import { bytesEqual, hashFields } from './transcript.js';

export interface RepairParams {
  sessionId: string;
  self: number;
  /** The helper set H (exactly the threshold), not containing `lost`. */
  helpers: readonly number[];
  lost: number;
  threshold: number;
  group: Group<unknown>;
  /** Helpers only: this party's share. */
  secretShare?: bigint;
  publicKey: Uint8Array;
  /** Every member's verifying share, including the lost party's. */
  verifyingShares: ReadonlyMap<number, Uint8Array>;
  chainCode: Uint8Array;
}

/** transcriptHash: the digest of the keyset every party agreed on (the same for all). */
export type RepairOutput = { role: 'helper'; transcriptHash: Uint8Array } | { role: 'receiver'; secretShare: bigint; transcriptHash: Uint8Array };

interface RepairState {
  readonly p: RepairParams;
  readonly helpers: readonly number[];
  readonly keysetDigest: Uint8Array;
  /** Helpers: the piece of its own x_i this party keeps. */
  readonly own?: bigint;
  round: number;
  consumed: boolean;
}

const TAG = 'custody-repair/v1';

/** What every party must agree the keyset is. */
function keysetDigest(p: RepairParams, helpers: readonly number[]): Uint8Array {
  const members = [...p.verifyingShares.keys()].sort((a, b) => a - b);
  return hashFields('sha256', TAG, [p.sessionId, p.threshold, p.lost, helpers.length, ...helpers, p.publicKey, p.chainCode, members.length, ...members.flatMap((m) => [m, p.verifyingShares.get(m)!])]);
}

/** lambda_i(x) over the set: the weight of f(i) in f(x). */
function lagrangeAt(g: Group<unknown>, i: number, set: readonly number[], x: number): bigint {
  let num = 1n;
  let den = 1n;
  for (const j of set) {
    if (j === i) continue;
    num = g.Fn.mul(num, g.Fn.create(BigInt(x - j)));
    den = g.Fn.mul(den, g.Fn.create(BigInt(i - j)));
  }
  return g.Fn.div(num, den);
}

export const shareRepair: Protocol<RepairParams, RepairState, RepairOutput> = {
  name: 'share-repair',
  rounds: 2,
  start(p) {
    const helpers = [...p.helpers].sort((a, b) => a - b);
    if (helpers.length !== p.threshold || new Set(helpers).size !== helpers.length) throw new Error(`repair needs exactly ${p.threshold} distinct helpers`);
    if (helpers.includes(p.lost)) throw new Error('the lost party cannot help');
    if (!p.verifyingShares.has(p.lost) || helpers.some((h) => !p.verifyingShares.has(h))) throw new Error('verifying shares must cover the helpers and the lost party');
    const g = p.group;
    const digest = keysetDigest(p, helpers);
    const outgoing: ProtocolMessage[] = [];
    let own: bigint | undefined;
    if (p.self !== p.lost) {
      if (!helpers.includes(p.self)) throw new Error(`party ${p.self} is neither a helper nor the lost party`);
      if (p.secretShare === undefined || !g.eq(g.baseMul(p.secretShare), g.decode(p.verifyingShares.get(p.self)!))) throw new Error('this helper\'s share does not match its verifying share');
      const x = g.Fn.mul(lagrangeAt(g, p.self, helpers, p.lost), p.secretShare);
      let rest = x;
      for (const j of helpers) {
        if (j === p.self) continue;
        const piece = g.randomScalar();
        rest = g.Fn.sub(rest, piece);
        outgoing.push({ from: p.self, to: j, round: 1, payload: g.scalarToBytes(piece) });
      }
      own = rest;
    }
    return { state: { p, helpers, keysetDigest: digest, own, round: 1, consumed: false }, outgoing };
  },
  step(s, incoming) {
    if (s.consumed) throw new Error('repair state already used: states are single-use');
    s.consumed = true;
    const { p } = s;
    const g = p.group;
    if (s.round === 1) {
      if (p.self === p.lost) return { done: false, state: { ...s, round: 2, consumed: false }, outgoing: [] };
      const got = collectRound(incoming, 1, p.self, s.helpers, 'p2p');
      let sigma = s.own!;
      for (const [from, m] of got) {
        try {
          sigma = g.Fn.add(sigma, g.scalarFromBytes(m.payload));
        } catch {
          throw new ProtocolAbort('malformed-message', [from], `party ${from}: repair piece is not a scalar`);
        }
      }
      const payload = new Uint8Array(64);
      payload.set(g.scalarToBytes(sigma), 0);
      payload.set(s.keysetDigest, 32);
      return { done: false, state: { ...s, round: 2, consumed: false }, outgoing: [{ from: p.self, to: p.lost, round: 2, payload }] };
    }
    if (p.self !== p.lost) return { done: true, outgoing: [], output: { role: 'helper', transcriptHash: s.keysetDigest } };
    const got = collectRound(incoming, 2, p.self, s.helpers, 'p2p');
    let share = 0n;
    for (const [from, m] of got) {
      if (m.payload.length !== 64) throw new ProtocolAbort('malformed-message', [from], `party ${from}: repair sum must be 64 bytes`);
      if (!bytesEqual(m.payload.subarray(32), s.keysetDigest)) throw new ProtocolAbort('inconsistent-broadcast', [], `party ${from} describes another keyset than the repair parameters`);
      try {
        share = g.Fn.add(share, g.scalarFromBytes(m.payload.subarray(0, 32)));
      } catch {
        throw new ProtocolAbort('malformed-message', [from], `party ${from}: repair sum is not a scalar`);
      }
    }
    if (!g.eq(g.baseMul(share), g.decode(p.verifyingShares.get(p.lost)!))) throw new ProtocolAbort('check-failed', [], 'the rebuilt share does not match its verifying share');
    return { done: true, outgoing: [], output: { role: 'receiver', secretShare: share, transcriptHash: s.keysetDigest } };
  },
};
