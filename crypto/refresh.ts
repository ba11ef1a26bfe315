/**
 * Proactive share refresh (Herzberg, Jarecki, Krawczyk, Yung 1995) as a sans-I/O state machine
 * (crypto/protocol.ts). Every member of a keyset adds a fresh sharing of zero to its Shamir share:
 * the group key and the threshold stay the same, and shares of different epochs do not combine.
 *
 *   start    check the local share and verifying shares; sample delta_i of degree t-1 with
 *            delta_i(0) = 0; broadcast (context, C_i1..C_i(t-1)) with C_ik = d_ik*G, and send
 *            delta_i(j) point-to-point to every j. C_i0 is the identity and never sent, so a
 *            party cannot move the key.
 *   step 1   check every broadcast (context, points) and every sub-share against its sender's
 *            commitments, then broadcast the digest of all round-1 broadcasts (echo broadcast).
 *   step 2   every echo digest must equal ours; output new share s + sum_i delta_i(self), every
 *            new verifying share Y_m + sum_i sum_k C_ik m^k, and the transcript hash.
 *
 * The context is a hash of every public input (session id, threshold, participants, public key,
 * current verifying shares): parties that hold different keysets, epochs or rosters abort in
 * round 1 instead of producing shares that do not fit together.
 *
 * Wire format (no protobuf schema; fixed layout since t and the point length are public):
 *   round 1 broadcast  context (32) || C_1 || ... || C_(t-1)   (encoded points)
 *   round 1 p2p        scalar delta_i(j) (group scalar encoding)
 *   round 2 broadcast  echo digest (32)
 */
import type { Group } from './group/index.js';
import { feldmanBlame, parseEach, powers, requireEcho, sumCommitments, throwIfBlamed } from './frost/dkg.js';
import { collectRound, ProtocolAbort, type Protocol, type ProtocolMessage, type Step } from './protocol.js';
import { evalPolynomial, lagrangeAtZero, randomPolynomial } from './shamir.js';
import { bytesEqual, hashFields, type Field } from './transcript.js';

export interface RefreshParams {
  sessionId: string;
  self: number;
  participants: readonly number[];
  threshold: number;
  group: Group<unknown>;
  /** This party's current share. */
  secretShare: bigint;
  /** Group encoding of the key (unchanged by the refresh). */
  publicKey: Uint8Array;
  /** Current verifying shares of every participant. */
  verifyingShares: ReadonlyMap<number, Uint8Array>;
}

export interface RefreshOutput {
  index: number;
  participants: readonly number[];
  threshold: number;
  /** The new share. */
  secretShare: bigint;
  /** Same as before. */
  publicKey: Uint8Array;
  /** New verifying shares, every participant, in index order. */
  verifyingShares: ReadonlyMap<number, Uint8Array>;
  /** Equal on every honest party. */
  transcriptHash: Uint8Array;
}

/** A validated round-1 broadcast: C_1..C_(t-1) decoded, plus their encodings for hashing. */
interface Round1View {
  readonly commitments: readonly unknown[];
  readonly commitmentBytes: readonly Uint8Array[];
}

interface RefreshCommon {
  readonly sessionId: string;
  readonly self: number;
  /** Sorted ascending. */
  readonly participants: readonly number[];
  readonly threshold: number;
  readonly group: Group<unknown>;
  readonly publicKey: Uint8Array;
  /** Current verifying shares, decoded. */
  readonly oldVerifying: ReadonlyMap<number, unknown>;
  /** Hash of every public input. */
  readonly context: Uint8Array;
  readonly own: Round1View;
  /** Set once a step has succeeded on this state: states are single-use. */
  consumed: boolean;
}

export interface RefreshRound1State extends RefreshCommon {
  readonly phase: 1;
  /** Current share plus delta_self(self); the rest of the polynomial was dropped at start. */
  partialShare: bigint;
}

export interface RefreshRound2State extends RefreshCommon {
  readonly phase: 2;
  /** Current share plus sum_i delta_i(self), checked; released only after the echo check. */
  newShare: bigint;
  /** sum_i C_ik for k = 1..t-1. */
  readonly summed: readonly unknown[];
  readonly round1Digest: Uint8Array;
}

export type RefreshState = RefreshRound1State | RefreshRound2State;

const TAG_CONTEXT = 'custody-refresh-context-v1';
const TAG_ROUND1 = 'custody-refresh-round1-v1';
const TAG_TRANSCRIPT = 'custody-refresh-transcript-v1';
const DIGEST_LENGTH = 32;

/** Hash of the public inputs every party must share. */
export function refreshContext(
  g: Group<unknown>,
  sessionId: string,
  threshold: number,
  participants: readonly number[],
  publicKey: Uint8Array,
  verifyingShares: ReadonlyMap<number, Uint8Array>,
): Uint8Array {
  const fields: Field[] = [g.curve, sessionId, threshold, participants.length];
  for (const i of participants) fields.push(i, verifyingShares.get(i)!);
  fields.push(publicKey);
  return hashFields('sha256', TAG_CONTEXT, fields);
}

/** sum_{i in set} lambda_i * Y_i: the group key the given t points of a degree t-1 sharing fix. */
export function interpolatePoints(g: Group<unknown>, points: ReadonlyMap<number, unknown>, set: readonly number[]): unknown {
  return g.msm(
    set.map((i) => points.get(i)!),
    set.map((i) => lagrangeAtZero(g.Fn, i, set)),
  );
}

/**
 * Whether the points are a degree < t sharing of the key: the first t fix a polynomial F with
 * F(0) = key; every other Y_m, swapped in for the last of them, must give the key again (F and the
 * polynomial through the swapped set agree at t points: 0 and the t-1 shared indices). Shared
 * with crypto/reshare.ts.
 */
export function consistentWithKey(g: Group<unknown>, points: ReadonlyMap<number, unknown>, participants: readonly number[], t: number, key: unknown): boolean {
  const base = participants.slice(0, t);
  if (!g.eq(interpolatePoints(g, points, base), key)) return false;
  const keep = base.slice(0, t - 1);
  return participants.slice(t).every((m) => g.eq(interpolatePoints(g, points, [...keep, m]), key));
}

function validateParams(p: RefreshParams): { participants: number[]; key: unknown; oldVerifying: Map<number, unknown> } {
  const g = p.group;
  if (typeof p.sessionId !== 'string' || p.sessionId.length === 0) throw new Error('sessionId must be a non-empty string');
  const participants = [...p.participants].sort((a, b) => a - b);
  const n = participants.length;
  if (n < 2) throw new Error('a refresh needs at least 2 participants');
  for (const i of participants) {
    if (!Number.isInteger(i) || i < 1 || i > 0xffffffff) throw new Error('participant indices must be positive 32-bit integers');
  }
  if (new Set(participants).size !== n) throw new Error('participant indices must be distinct');
  // With t = 1 every share is the secret itself: there is nothing to re-randomize.
  if (!Number.isInteger(p.threshold) || p.threshold < 2 || p.threshold > n) throw new Error('threshold must satisfy 2 <= t <= n');
  if (!participants.includes(p.self)) throw new Error('self is not among the participants');
  if (typeof p.secretShare !== 'bigint' || p.secretShare <= 0n || p.secretShare >= g.order) throw new Error('the secret share is not a valid non-zero scalar');
  if (p.verifyingShares.size !== n || participants.some((i) => !p.verifyingShares.has(i))) {
    throw new Error('verifying shares must be given for exactly the participants');
  }
  let key: unknown;
  const oldVerifying = new Map<number, unknown>();
  try {
    key = g.decode(p.publicKey);
    for (const i of participants) oldVerifying.set(i, g.decode(p.verifyingShares.get(i)!));
  } catch {
    throw new Error('the public key or a verifying share is not a valid point');
  }
  if (!g.eq(g.baseMul(p.secretShare), oldVerifying.get(p.self))) throw new Error(`party ${p.self}: the secret share does not match its verifying share`);
  if (!consistentWithKey(g, oldVerifying, participants, p.threshold, key)) {
    throw new Error(`the verifying shares are not a ${p.threshold}-of-${n} sharing of the public key`);
  }
  return { participants, key, oldVerifying };
}

export function malformed(from: number, what: string): ProtocolAbort {
  return new ProtocolAbort('malformed-message', [from], `party ${from}: ${what}`);
}

function parseRound1(g: Group<unknown>, threshold: number, from: number, payload: Uint8Array): Round1View {
  const expected = DIGEST_LENGTH + (threshold - 1) * g.pointLength;
  if (payload.length !== expected) throw malformed(from, `round-1 broadcast must be ${expected} bytes, got ${payload.length}`);
  const commitmentBytes: Uint8Array[] = [];
  for (let k = 0; k < threshold - 1; k++) {
    const off = DIGEST_LENGTH + k * g.pointLength;
    commitmentBytes.push(payload.slice(off, off + g.pointLength));
  }
  try {
    // decode rejects the identity: an honest coefficient is never zero.
    return { commitments: commitmentBytes.map((c) => g.decode(c)), commitmentBytes };
  } catch {
    throw malformed(from, 'invalid point in round-1 commitments');
  }
}

/**
 * Round 2 of an echo broadcast (shared with crypto/reshare.ts): every other party's 32-byte digest
 * of the round-1 broadcasts must equal ours.
 */
export function checkEchoRound(incoming: readonly ProtocolMessage[], self: number, participants: readonly number[], ours: Uint8Array): void {
  const echoes = collectRound(incoming, 2, self, participants, 'broadcast');
  const others = participants.filter((i) => i !== self);
  const digests = parseEach(others, 2, (j) => {
    const p = echoes.get(j)!.payload;
    if (p.length !== DIGEST_LENGTH) throw malformed(j, 'echo digest must be 32 bytes');
    return p;
  });
  requireEcho(others, (j) => [digests.get(j)!], ours, 'round-1 broadcasts');
}

export function parseSubShare(g: Group<unknown>, from: number, payload: Uint8Array): bigint {
  try {
    return g.scalarFromBytes(payload);
  } catch {
    throw malformed(from, 'sub-share is not a canonical scalar');
  }
}

/** Digest of all round-1 broadcasts in index order, bound to the context. */
function round1Digest(s: RefreshCommon, views: ReadonlyMap<number, Round1View>): Uint8Array {
  const fields: Field[] = [s.context, s.participants.length];
  for (const i of s.participants) {
    const v = views.get(i)!;
    fields.push(i, v.commitmentBytes.length, ...v.commitmentBytes);
  }
  return hashFields('sha256', TAG_ROUND1, fields);
}

function start(params: RefreshParams): { state: RefreshState; outgoing: ProtocolMessage[] } {
  const g = params.group;
  const { participants, oldVerifying } = validateParams(params);
  const context = refreshContext(g, params.sessionId, params.threshold, participants, params.publicKey, params.verifyingShares);

  const delta = randomPolynomial(0n, params.threshold, () => g.randomScalar());
  const commitments = delta.slice(1).map((d) => g.baseMul(d));
  const commitmentBytes = commitments.map((c) => g.encode(c));
  const broadcast = new Uint8Array(DIGEST_LENGTH + commitmentBytes.length * g.pointLength);
  broadcast.set(context, 0);
  commitmentBytes.forEach((c, k) => broadcast.set(c, DIGEST_LENGTH + k * g.pointLength));

  const outgoing: ProtocolMessage[] = [{ from: params.self, to: 0, round: 1, payload: broadcast }];
  for (const j of participants) {
    if (j === params.self) continue;
    outgoing.push({ from: params.self, to: j, round: 1, payload: g.scalarToBytes(evalPolynomial(g.Fn, delta, BigInt(j))) });
  }
  const partialShare = g.Fn.add(params.secretShare, evalPolynomial(g.Fn, delta, BigInt(params.self)));
  // Every sub-share is out: the polynomial is never needed again (best effort, bigints cannot be erased).
  delta.fill(0n);

  const state: RefreshRound1State = {
    phase: 1,
    sessionId: params.sessionId,
    self: params.self,
    participants,
    threshold: params.threshold,
    group: g,
    publicKey: params.publicKey.slice(),
    oldVerifying,
    context,
    own: { commitments, commitmentBytes },
    consumed: false,
    partialShare,
  };
  return { state, outgoing };
}

function stepRound1(s: RefreshRound1State, incoming: readonly ProtocolMessage[]): Step<RefreshState, RefreshOutput> {
  const g = s.group;
  const broadcasts = collectRound(incoming, 1, s.self, s.participants, 'broadcast');
  const subShares = collectRound(incoming, 1, s.self, s.participants, 'p2p');
  const others = s.participants.filter((i) => i !== s.self);

  // Different public inputs (keyset, epoch, roster, session): nobody can tell whose are wrong.
  const differ = others.filter((j) => {
    const p = broadcasts.get(j)!.payload;
    return p.length < DIGEST_LENGTH || !bytesEqual(p.subarray(0, DIGEST_LENGTH), s.context);
  });
  if (differ.length > 0) {
    throw new ProtocolAbort('inconsistent-broadcast', [], `parties ${differ.join(', ')} refresh other public inputs (session, threshold, participants or key)`);
  }

  const parsed = parseEach(others, 1, (j) => ({
    view: parseRound1(g, s.threshold, j, broadcasts.get(j)!.payload),
    share: parseSubShare(g, j, subShares.get(j)!.payload),
  }));

  // delta_j(self)*G == sum_{k>=1} C_jk self^k (C_j0 is the identity).
  const selfPowers = powers(g, s.self, s.threshold).slice(1);
  throwIfBlamed(
    feldmanBlame(g, others, (j) => parsed.get(j)!.share, (j) => parsed.get(j)!.view.commitments, selfPowers),
    'proof-failed',
    'sub-share does not match its commitments',
  );

  const views = new Map<number, Round1View>([[s.self, s.own]]);
  let newShare = s.partialShare;
  for (const j of others) {
    views.set(j, parsed.get(j)!.view);
    newShare = g.Fn.add(newShare, parsed.get(j)!.share);
  }
  const ordered = new Map(s.participants.map((i) => [i, views.get(i)!]));
  const digest = round1Digest(s, ordered);

  s.partialShare = 0n;
  s.consumed = true;
  const next: RefreshRound2State = {
    phase: 2,
    sessionId: s.sessionId,
    self: s.self,
    participants: s.participants,
    threshold: s.threshold,
    group: g,
    publicKey: s.publicKey,
    oldVerifying: s.oldVerifying,
    context: s.context,
    own: s.own,
    consumed: false,
    newShare,
    summed: sumCommitments(g, [...ordered.values()].map((v) => v.commitments), s.threshold - 1),
    round1Digest: digest,
  };
  return { done: false, state: next, outgoing: [{ from: s.self, to: 0, round: 2, payload: digest }] };
}

function stepRound2(s: RefreshRound2State, incoming: readonly ProtocolMessage[]): Step<RefreshState, RefreshOutput> {
  const g = s.group;
  checkEchoRound(incoming, s.self, s.participants, s.round1Digest);

  const newVerifying = new Map<number, unknown>();
  for (const m of s.participants) {
    newVerifying.set(m, g.add(s.oldVerifying.get(m)!, g.msm(s.summed, powers(g, m, s.threshold).slice(1))));
  }
  const key = g.decode(s.publicKey);
  // Both hold by linear algebra once every sub-share matched its commitments: defence in depth.
  if (!g.eq(g.baseMul(s.newShare), newVerifying.get(s.self))) {
    throw new ProtocolAbort('check-failed', [], 'new share does not match the new verifying share');
  }
  if (!consistentWithKey(g, newVerifying, s.participants, s.threshold, key)) {
    throw new ProtocolAbort('check-failed', [], 'new verifying shares do not interpolate to the public key');
  }

  const secretShare = s.newShare;
  s.newShare = 0n;
  s.consumed = true;
  return {
    done: true,
    outgoing: [],
    output: {
      index: s.self,
      participants: s.participants,
      threshold: s.threshold,
      secretShare,
      publicKey: s.publicKey.slice(),
      verifyingShares: new Map(s.participants.map((m) => [m, g.encode(newVerifying.get(m))])),
      transcriptHash: hashFields('sha256', TAG_TRANSCRIPT, [s.round1Digest]),
    },
  };
}

export const shareRefresh: Protocol<RefreshParams, RefreshState, RefreshOutput> = {
  name: 'share-refresh',
  rounds: 2,
  start,
  step(state, incoming) {
    if (state.consumed) throw new Error('refresh state already used: states are single-use');
    return state.phase === 1 ? stepRound1(state, incoming) : stepRound2(state, incoming);
  },
};
