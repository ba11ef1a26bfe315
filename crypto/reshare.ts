/**
 * Resharing a key to another threshold and member set (Desmedt and Jajodia's redistribution, with
 * Feldman checks as in Wong, Wang and Wing's verifiable variant), as a sans-I/O state machine
 * (crypto/protocol.ts). The key and the chain code never change; the old shares become useless.
 *
 *   start    dealer i (an old member; at least the old threshold of them deal) takes its weight
 *            w_i = lambda_i * s_i over the dealer set D, so sum_i w_i is the key; samples g_i of
 *            degree t'-1 with g_i(0) = w_i; broadcasts (context, C_i0..C_i(t'-1)), C_ik = a_ik*G,
 *            and sends g_i(j) point-to-point to every new member j. A party that only receives
 *            (an added node) broadcasts the context alone.
 *   step 1   every party checks every context, and C_i0 == lambda_i * Y_i against the old
 *            verifying share Y_i (public): a dealer cannot move the key. A new member checks its
 *            sub-shares against their commitments (a bad one names its dealer). Then it echoes a
 *            digest of all round-1 broadcasts.
 *   step 2   every echo must equal ours; a new member's share is sum_i g_i(j); every new verifying
 *            share is Y'_m = sum_i sum_k C_ik m^k, checked to be a t'-of-n' sharing of the key.
 *
 * The context hashes every public input (session, epoch, key, chain code, old threshold, old
 * members and verifying shares, dealers, new threshold and members): an added node, which knows
 * nothing of the keyset but what the coordinator told it, aborts unless every dealer (at least
 * one of them honest) holds the same keyset.
 *
 * Wire format (fixed layout; t' and the point length are public):
 *   round 1 broadcast  context (32) || C_i0 || ... || C_i(t'-1)   (dealers; the context alone otherwise)
 *   round 1 p2p        scalar g_i(j), dealer to new member
 *   round 2 broadcast  echo digest (32)
 */
import { concatBytes } from '@noble/hashes/utils.js';
import type { Group } from './group/index.js';
import { feldmanBlame, parseEach, powers, sumCommitments, throwIfBlamed } from './frost/dkg.js';
import { collectRound, ProtocolAbort, type Protocol, type ProtocolMessage, type Step } from './protocol.js';
import { checkEchoRound, consistentWithKey, malformed, parseSubShare } from './refresh.js';
import { evalPolynomial, lagrangeAtZero, randomPolynomial } from './shamir.js';
import { bytesEqual, hashFields, type Field } from './transcript.js';

export interface ReshareParams {
  sessionId: string;
  self: number;
  group: Group<unknown>;
  /** Group encoding of the key (unchanged). */
  publicKey: Uint8Array;
  chainCode: Uint8Array;
  /** The epoch of the old shares. */
  epoch: number;
  oldThreshold: number;
  /** Verifying shares of every current member. */
  oldVerifyingShares: ReadonlyMap<number, Uint8Array>;
  /** The current members that deal: at least the old threshold of them. */
  dealers: readonly number[];
  newThreshold: number;
  newMembers: readonly number[];
  /** Dealers only: this party's current share. */
  secretShare?: bigint;
}

export interface ReshareOutput {
  /** Set for new members; a dealer that leaves gets nothing. */
  secretShare?: bigint;
  threshold: number;
  /** The new members, ascending. */
  participants: readonly number[];
  publicKey: Uint8Array;
  /** New verifying shares of every new member. */
  verifyingShares: ReadonlyMap<number, Uint8Array>;
  /** Equal on every honest party. */
  transcriptHash: Uint8Array;
}

interface Common {
  readonly p: ReshareParams;
  /** Dealers and new members, ascending. */
  readonly participants: readonly number[];
  readonly dealers: readonly number[];
  readonly newMembers: readonly number[];
  readonly isMember: boolean;
  readonly oldVerifying: ReadonlyMap<number, unknown>;
  readonly key: unknown;
  readonly context: Uint8Array;
  /** Own commitments (dealers) and their encodings. */
  readonly own?: { commitments: unknown[]; bytes: Uint8Array[] };
  consumed: boolean;
}

interface Round1State extends Common {
  readonly phase: 1;
  /** g_self(self) for a dealer that stays; 0 otherwise. */
  ownSubShare: bigint;
}

interface Round2State extends Common {
  readonly phase: 2;
  newShare: bigint;
  /** sum over dealers of C_ik, k = 0..t'-1. */
  readonly summed: readonly unknown[];
  readonly digest: Uint8Array;
}

export type ReshareState = Round1State | Round2State;

const TAG_CONTEXT = 'custody-reshare-context-v1';
const TAG_ROUND1 = 'custody-reshare-round1-v1';
const TAG_TRANSCRIPT = 'custody-reshare-transcript-v1';
const DIGEST_LENGTH = 32;

function indexList(list: readonly number[], what: string): number[] {
  const sorted = [...list].sort((a, b) => a - b);
  if (sorted.some((i) => !Number.isInteger(i) || i < 1 || i > 0xffffffff)) throw new Error(`${what} indices must be positive 32-bit integers`);
  if (new Set(sorted).size !== sorted.length) throw new Error(`${what} indices must be distinct`);
  return sorted;
}

function reshareContext(p: ReshareParams, oldMembers: readonly number[], dealers: readonly number[], newMembers: readonly number[]): Uint8Array {
  const fields: Field[] = [p.group.curve, p.sessionId, p.epoch, p.publicKey, p.chainCode, p.oldThreshold, oldMembers.length];
  for (const i of oldMembers) fields.push(i, p.oldVerifyingShares.get(i)!);
  fields.push(dealers.length, ...dealers, p.newThreshold, newMembers.length, ...newMembers);
  return hashFields('sha256', TAG_CONTEXT, fields);
}

function validate(p: ReshareParams) {
  const g = p.group;
  if (typeof p.sessionId !== 'string' || p.sessionId.length === 0) throw new Error('sessionId must be a non-empty string');
  if (p.chainCode.length !== 32) throw new Error('the chain code must be 32 bytes');
  if (!Number.isInteger(p.epoch) || p.epoch < 0) throw new Error('epoch must be a non-negative integer');
  const oldMembers = indexList([...p.oldVerifyingShares.keys()], 'old member');
  const dealers = indexList(p.dealers, 'dealer');
  const newMembers = indexList(p.newMembers, 'new member');
  if (!Number.isInteger(p.oldThreshold) || p.oldThreshold < 2 || p.oldThreshold > oldMembers.length) throw new Error('the old threshold must satisfy 2 <= t <= n');
  if (dealers.some((i) => !oldMembers.includes(i))) throw new Error('every dealer must be a current member');
  if (dealers.length < p.oldThreshold) throw new Error(`a reshare needs at least ${p.oldThreshold} dealers, got ${dealers.length}`);
  // t' = 1 would make every new share the key itself.
  if (!Number.isInteger(p.newThreshold) || p.newThreshold < 2 || p.newThreshold > newMembers.length) throw new Error('the new threshold must satisfy 2 <= t <= n');
  const participants = [...new Set([...dealers, ...newMembers])].sort((a, b) => a - b);
  if (!participants.includes(p.self)) throw new Error('self is neither a dealer nor a new member');
  let key: unknown;
  const oldVerifying = new Map<number, unknown>();
  try {
    key = g.decode(p.publicKey);
    for (const i of oldMembers) oldVerifying.set(i, g.decode(p.oldVerifyingShares.get(i)!));
  } catch {
    throw new Error('the public key or a verifying share is not a valid point');
  }
  if (!consistentWithKey(g, oldVerifying, oldMembers, p.oldThreshold, key)) {
    throw new Error(`the verifying shares are not a ${p.oldThreshold}-of-${oldMembers.length} sharing of the public key`);
  }
  if (dealers.includes(p.self)) {
    const s = p.secretShare;
    if (typeof s !== 'bigint' || s <= 0n || s >= g.order) throw new Error('a dealer needs its current share');
    if (!g.eq(g.baseMul(s), oldVerifying.get(p.self))) throw new Error(`party ${p.self}: the secret share does not match its verifying share`);
  }
  return { oldMembers, dealers, newMembers, participants, key, oldVerifying };
}

function start(p: ReshareParams): { state: ReshareState; outgoing: ProtocolMessage[] } {
  const g = p.group;
  const v = validate(p);
  const context = reshareContext(p, v.oldMembers, v.dealers, v.newMembers);
  const isMember = v.newMembers.includes(p.self);
  const outgoing: ProtocolMessage[] = [];
  let own: Common['own'];
  let ownSubShare = 0n;
  if (v.dealers.includes(p.self)) {
    const weight = g.Fn.mul(lagrangeAtZero(g.Fn, p.self, v.dealers), p.secretShare!);
    const poly = randomPolynomial(weight, p.newThreshold, () => g.randomScalar());
    const commitments = poly.map((a) => g.baseMul(a));
    own = { commitments, bytes: commitments.map((c) => g.encode(c)) };
    outgoing.push({ from: p.self, to: 0, round: 1, payload: concatBytes(context, ...own.bytes) });
    for (const j of v.newMembers) {
      if (j === p.self) ownSubShare = evalPolynomial(g.Fn, poly, BigInt(j));
      else outgoing.push({ from: p.self, to: j, round: 1, payload: g.scalarToBytes(evalPolynomial(g.Fn, poly, BigInt(j))) });
    }
    // Every sub-share is out: the polynomial is never needed again (best effort, bigints cannot be erased).
    poly.fill(0n);
  } else {
    outgoing.push({ from: p.self, to: 0, round: 1, payload: context.slice() });
  }
  const state: Round1State = {
    phase: 1,
    p: { ...p, secretShare: undefined },
    participants: v.participants,
    dealers: v.dealers,
    newMembers: v.newMembers,
    isMember,
    oldVerifying: v.oldVerifying,
    key: v.key,
    context,
    ...(own ? { own } : {}),
    consumed: false,
    ownSubShare,
  };
  return { state, outgoing };
}

function parseCommitments(g: Group<unknown>, t: number, from: number, payload: Uint8Array): { commitments: unknown[]; bytes: Uint8Array[] } {
  const expected = DIGEST_LENGTH + t * g.pointLength;
  if (payload.length !== expected) throw malformed(from, `a dealer's round-1 broadcast must be ${expected} bytes, got ${payload.length}`);
  const bytes: Uint8Array[] = [];
  for (let k = 0; k < t; k++) bytes.push(payload.slice(DIGEST_LENGTH + k * g.pointLength, DIGEST_LENGTH + (k + 1) * g.pointLength));
  try {
    // decode rejects the identity: an honest coefficient (and weight) is never zero.
    return { commitments: bytes.map((b) => g.decode(b)), bytes };
  } catch {
    throw malformed(from, 'invalid point in round-1 commitments');
  }
}

function stepRound1(s: Round1State, incoming: readonly ProtocolMessage[]): Step<ReshareState, ReshareOutput> {
  const g = s.p.group;
  const t = s.p.newThreshold;
  const broadcasts = collectRound(incoming, 1, s.p.self, s.participants, 'broadcast');
  const others = s.participants.filter((i) => i !== s.p.self);
  const differ = others.filter((j) => {
    const payload = broadcasts.get(j)!.payload;
    return payload.length < DIGEST_LENGTH || !bytesEqual(payload.subarray(0, DIGEST_LENGTH), s.context);
  });
  if (differ.length > 0) {
    throw new ProtocolAbort('inconsistent-broadcast', [], `parties ${differ.join(', ')} reshare other public inputs (keyset, epoch, members or thresholds)`);
  }
  const otherDealers = s.dealers.filter((i) => i !== s.p.self);
  parseEach(others.filter((j) => !s.dealers.includes(j)), 1, (j) => {
    if (broadcasts.get(j)!.payload.length !== DIGEST_LENGTH) throw malformed(j, 'a party that does not deal broadcasts the context alone');
    return true;
  });
  const views = parseEach(otherDealers, 1, (j) => parseCommitments(g, t, j, broadcasts.get(j)!.payload));

  // C_j0 must be the dealer's weighted old verifying share: the sum over dealers is then the key.
  throwIfBlamed(
    otherDealers.filter((j) => !g.eq(views.get(j)!.commitments[0], g.mul(s.oldVerifying.get(j)!, lagrangeAtZero(g.Fn, j, s.dealers)))),
    'proof-failed',
    "constant-term commitment is not the dealer's weighted verifying share",
  );

  let newShare = 0n;
  if (s.isMember) {
    const subShares = collectRound(incoming, 1, s.p.self, s.dealers, 'p2p');
    const shares = parseEach(otherDealers, 1, (j) => parseSubShare(g, j, subShares.get(j)!.payload));
    throwIfBlamed(
      feldmanBlame(g, otherDealers, (j) => shares.get(j)!, (j) => views.get(j)!.commitments, powers(g, s.p.self, t)),
      'proof-failed',
      'sub-share does not match its commitments',
    );
    newShare = s.ownSubShare;
    for (const j of otherDealers) newShare = g.Fn.add(newShare, shares.get(j)!);
  } else {
    // A leaving dealer expects no sub-share: anything addressed to it is out of protocol.
    collectRound(incoming, 1, s.p.self, [], 'p2p');
  }
  if (s.own) views.set(s.p.self, s.own);

  const fields: Field[] = [s.context, s.dealers.length];
  for (const i of s.dealers) fields.push(i, ...views.get(i)!.bytes);
  const digest = hashFields('sha256', TAG_ROUND1, fields);

  s.ownSubShare = 0n;
  s.consumed = true;
  const { ownSubShare: _, phase: __, ...common } = s;
  const next: Round2State = {
    ...common,
    phase: 2,
    consumed: false,
    newShare,
    summed: sumCommitments(g, s.dealers.map((i) => views.get(i)!.commitments), t),
    digest,
  };
  return { done: false, state: next, outgoing: [{ from: s.p.self, to: 0, round: 2, payload: digest }] };
}

function stepRound2(s: Round2State, incoming: readonly ProtocolMessage[]): Step<ReshareState, ReshareOutput> {
  const g = s.p.group;
  const t = s.p.newThreshold;
  checkEchoRound(incoming, s.p.self, s.participants, s.digest);

  // Both checks follow from the per-dealer ones by linear algebra: defence in depth.
  if (!g.eq(s.summed[0], s.key)) throw new ProtocolAbort('check-failed', [], 'the dealt constant terms do not add up to the public key');
  const newVerifying = new Map<number, unknown>(s.newMembers.map((m) => [m, g.msm(s.summed, powers(g, m, t))]));
  if (!consistentWithKey(g, newVerifying, s.newMembers, t, s.key)) {
    throw new ProtocolAbort('check-failed', [], 'new verifying shares do not interpolate to the public key');
  }
  if (s.isMember && !g.eq(g.baseMul(s.newShare), newVerifying.get(s.p.self))) {
    throw new ProtocolAbort('check-failed', [], 'new share does not match the new verifying share');
  }
  const secretShare = s.newShare;
  s.newShare = 0n;
  s.consumed = true;
  return {
    done: true,
    outgoing: [],
    output: {
      ...(s.isMember ? { secretShare } : {}),
      threshold: t,
      participants: s.newMembers,
      publicKey: s.p.publicKey.slice(),
      verifyingShares: new Map(s.newMembers.map((m) => [m, g.encode(newVerifying.get(m))])),
      transcriptHash: hashFields('sha256', TAG_TRANSCRIPT, [s.digest]),
    },
  };
}

export const shareReshare: Protocol<ReshareParams, ReshareState, ReshareOutput> = {
  name: 'share-reshare',
  rounds: 2,
  start,
  step(state, incoming) {
    if (state.consumed) throw new Error('reshare state already used: states are single-use');
    return state.phase === 1 ? stepRound1(state, incoming) : stepRound2(state, incoming);
  },
};
