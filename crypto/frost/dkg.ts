/**
 * FROST distributed key generation: Pedersen DKG with Schnorr proofs of knowledge (the frost-rs
 * shape that RFC 9591 leaves to companions), plus a commit-then-reveal chain code for HD
 * derivation, written as a sans-I/O state machine (crypto/protocol.ts).
 *
 *   start    broadcast DkgRound1: Feldman commitments C_k = a_k*G (k < t), a proof of knowledge of
 *            a_0, and H(sessionId, index, cc_i) for a random 32-byte chain-code contribution cc_i.
 *   step 1   check every round-1 broadcast, then send f_i(j) to each j point-to-point
 *            (DkgRound2Share) and broadcast cc_i (DkgRound2Reveal); both carry the digest of the
 *            round-1 broadcasts as this party saw them (echo broadcast against a lying relay).
 *   step 2   check digests, shares against commitments, and reveals against their commitments;
 *            output the share, group key, verifying shares, chain code and transcript hash.
 *
 * The proof of knowledge stops rogue-key attacks (a party cannot pick C_0 as a function of the
 * others' commitments without knowing its discrete log). Every commitment to a chain-code
 * contribution is fixed in round 1 before any is opened, so a last mover cannot choose the chain
 * code; it is then the hash of all contributions in index order, so no single party picks it.
 *
 * BIP-340: 'bip340' runs in the secp256k1 group and outputs an ordinary secp256k1 key that may
 * have odd Y. Even-Y normalisation (and any Taproot tweak) happens at signing time, not here;
 * 'bip340' differs from 'secp256k1' only in the domain of every hash, so the keys never mix.
 *
 * Session ids: messages carry only the payload; the node layer binds session ids to the
 * envelope. The session id also goes into every hash here, so proofs and commitments cannot be
 * replayed into another session.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { bytesToNumberBE, bytesToNumberLE } from '@noble/curves/utils.js';
import { randomBytes } from '@noble/hashes/utils.js';
import {
  DkgRound1Schema,
  DkgRound2RevealSchema,
  DkgRound2ShareSchema,
  type DkgRound1,
  type DkgRound2Reveal,
  type DkgRound2Share,
} from '../../proto/gen/custody/v1/wire_pb.js';
import { groupFor, type CurveName, type Group } from '../group/index.js';
import { collectRound, ProtocolAbort, type Protocol, type ProtocolMessage, type Step } from '../protocol.js';
import { evalPolynomial, randomPolynomial } from '../shamir.js';
import { bytesEqual, hashFields, type Field } from '../transcript.js';

export type DkgScheme = 'ed25519' | 'secp256k1' | 'bip340'; // bip340 and secp256k1 both use the secp256k1 group

export interface DkgParams {
  scheme: DkgScheme;
  sessionId: string;
  /** This party's index (1-based FROST identifier). */
  self: number;
  participants: readonly number[];
  threshold: number;
  /** Group backend; defaults to groupFor(curve of scheme). */
  group?: Group<unknown>;
}

export interface DkgOutput {
  secretShare: bigint;
  /** group.encode of the group key: 32 bytes (Ed25519) or 33 (compressed secp256k1). */
  groupPublicKey: Uint8Array;
  /** Every participant's verifying share (share * G), encoded. */
  verifyingShares: Map<number, Uint8Array>;
  /** 32-byte root chain code for HD derivation. */
  chainCode: Uint8Array;
  /** 32-byte hash of every public broadcast of both rounds; equal on every honest node. */
  transcriptHash: Uint8Array;
}

/** A validated round-1 broadcast: decoded points plus their canonical encodings for hashing. */
interface Round1View {
  readonly commitments: readonly unknown[];
  readonly commitmentBytes: readonly Uint8Array[];
  readonly r: unknown;
  readonly proofR: Uint8Array;
  readonly proofZ: Uint8Array;
  readonly chainCodeCommitment: Uint8Array;
}

interface DkgCommon {
  readonly scheme: DkgScheme;
  readonly sessionId: string;
  readonly self: number;
  /** Sorted ascending. */
  readonly participants: readonly number[];
  readonly threshold: number;
  readonly group: Group<unknown>;
  readonly ownRound1: Round1View;
  /** Secret until revealed in round 2; public afterwards. */
  readonly chainCodeContribution: Uint8Array;
  /** Set once a step has succeeded on this state: states are single-use. */
  consumed: boolean;
}

export interface DkgRound1State extends DkgCommon {
  readonly phase: 1;
  /** The secret polynomial: wiped (best effort; bigints cannot be erased) once round 2 is sent. */
  readonly coefficients: bigint[];
}

export interface DkgRound2State extends DkgCommon {
  readonly phase: 2;
  readonly round1: ReadonlyMap<number, Round1View>;
  readonly round1Digest: Uint8Array;
  /** f_self(self): this party's share of its own polynomial. */
  ownShare: bigint;
}

export type DkgState = DkgRound1State | DkgRound2State;

const TAG_POK = 'custody-dkg-pok-v1';
const TAG_CC_COMMIT = 'custody-dkg-chaincode-commit-v1';
const TAG_CC = 'custody-dkg-chaincode-v1';
const TAG_ROUND1 = 'custody-dkg-round1-v1';
const TAG_TRANSCRIPT = 'custody-dkg-transcript-v1';
const DIGEST_LENGTH = 32;
const CHAIN_CODE_LENGTH = 32;

function curveOf(scheme: DkgScheme): CurveName {
  return scheme === 'ed25519' ? 'ed25519' : 'secp256k1';
}

/**
 * PoK challenge. SHA-512 reduced mod L for Ed25519 (as RFC 8032 / RFC 9591 do); SHA-256 reduced
 * mod n for secp256k1 (as BIP-340 does: n is within 2^-128 of 2^256, so the bias is negligible).
 */
function pokChallenge(g: Group<unknown>, scheme: DkgScheme, sessionId: string, index: number, c0: Uint8Array, r: Uint8Array): bigint {
  const fields: Field[] = [scheme, sessionId, index, c0, r];
  const n =
    g.curve === 'ed25519'
      ? bytesToNumberLE(hashFields('sha512', TAG_POK, fields))
      : bytesToNumberBE(hashFields('sha256', TAG_POK, fields));
  return g.Fn.create(n);
}

function chainCodeCommitment(scheme: DkgScheme, sessionId: string, index: number, cc: Uint8Array): Uint8Array {
  return hashFields('sha256', TAG_CC_COMMIT, [scheme, sessionId, index, cc]);
}

/** [1, x, x^2, ..., x^(t-1)] mod the group order. Shared with crypto/refresh.ts. */
export function powers(g: Group<unknown>, x: number, t: number): bigint[] {
  const out = [1n];
  const bx = g.Fn.create(BigInt(x));
  for (let k = 1; k < t; k++) out.push(g.Fn.mul(out[k - 1]!, bx));
  return out;
}

function validateParams(p: DkgParams): { participants: number[]; group: Group<unknown> } {
  if (p.scheme !== 'ed25519' && p.scheme !== 'secp256k1' && p.scheme !== 'bip340') throw new Error('unknown DKG scheme');
  if (typeof p.sessionId !== 'string' || p.sessionId.length === 0) throw new Error('sessionId must be a non-empty string');
  const participants = [...p.participants].sort((a, b) => a - b);
  const n = participants.length;
  if (n < 2) throw new Error('a DKG needs at least 2 participants');
  for (const i of participants) {
    // uint32 keeps indices far below every group order and fits the transcript encoding.
    if (!Number.isInteger(i) || i < 1 || i > 0xffffffff) throw new Error('participant indices must be positive 32-bit integers');
  }
  if (new Set(participants).size !== n) throw new Error('participant indices must be distinct');
  if (!Number.isInteger(p.threshold) || p.threshold < 1 || p.threshold > n) throw new Error('threshold must satisfy 1 <= t <= n');
  if (!participants.includes(p.self)) throw new Error('self is not among the participants');
  const group = p.group ?? groupFor(curveOf(p.scheme));
  if (group.curve !== curveOf(p.scheme)) throw new Error(`group ${group.curve} does not match scheme ${p.scheme}`);
  return { participants, group };
}

function malformed(from: number, what: string): ProtocolAbort {
  return new ProtocolAbort('malformed-message', [from], `party ${from}: ${what}`);
}

/** Decodes and validates every field of a round-1 broadcast (not the proof itself). */
function parseRound1(g: Group<unknown>, threshold: number, from: number, payload: Uint8Array): Round1View {
  let msg: DkgRound1;
  try {
    msg = fromBinary(DkgRound1Schema, payload);
  } catch {
    throw malformed(from, 'round-1 payload does not decode');
  }
  if (msg.commitments.length !== threshold) {
    throw malformed(from, `expected ${threshold} commitments, got ${msg.commitments.length}`);
  }
  if (msg.chainCodeCommitment.length !== DIGEST_LENGTH) throw malformed(from, 'chain-code commitment must be 32 bytes');
  try {
    // decode rejects the identity too: a zero coefficient is never honest and C_0 = 0 would be a zero secret.
    const commitments = msg.commitments.map((c) => g.decode(c));
    const r = g.decode(msg.proofR);
    g.scalarFromBytes(msg.proofZ);
    return {
      commitments,
      commitmentBytes: msg.commitments,
      r,
      proofR: msg.proofR,
      proofZ: msg.proofZ,
      chainCodeCommitment: msg.chainCodeCommitment,
    };
  } catch {
    throw malformed(from, 'invalid point or scalar in round-1 broadcast');
  }
}

/** R == z*G - c*C_0, all public inputs. */
function verifyPok(g: Group<unknown>, scheme: DkgScheme, sessionId: string, from: number, v: Round1View): boolean {
  const c = pokChallenge(g, scheme, sessionId, from, v.commitmentBytes[0]!, v.proofR);
  const z = g.scalarFromBytes(v.proofZ);
  return g.eq(v.r, g.msm([g.generator, v.commitments[0]!], [z, g.Fn.neg(c)]));
}

/** Digest of all round-1 broadcasts in index order, bound to the session parameters. */
function round1Digest(s: DkgCommon, views: ReadonlyMap<number, Round1View>): Uint8Array {
  const fields: Field[] = [s.scheme, s.sessionId, s.threshold, s.participants.length, ...s.participants];
  for (const i of s.participants) {
    const v = views.get(i)!;
    fields.push(i, v.commitmentBytes.length, ...v.commitmentBytes, v.proofR, v.proofZ, v.chainCodeCommitment);
  }
  return hashFields('sha256', TAG_ROUND1, fields);
}

export function throwIfBlamed(blame: number[], reason: 'malformed-message' | 'proof-failed' | 'check-failed', what: string): void {
  if (blame.length > 0) throw new ProtocolAbort(reason, blame, `${what}: parties ${blame.join(', ')}`);
}

/*
 * Generic Feldman-VSS pieces, shared by the DKG and proactive refresh (crypto/refresh.ts).
 */

/**
 * Parses one message per sender, checking every sender before aborting so that the blame names
 * all malformed senders, not just the first. `parse` throws a ProtocolAbort for a bad message.
 */
export function parseEach<T>(senders: readonly number[], round: number, parse: (from: number) => T): Map<number, T> {
  const views = new Map<number, T>();
  const bad: number[] = [];
  const why: string[] = [];
  for (const j of senders) {
    try {
      views.set(j, parse(j));
    } catch (e) {
      if (!(e instanceof ProtocolAbort)) throw e;
      bad.push(j);
      why.push(e.message);
    }
  }
  if (bad.length > 0) throw new ProtocolAbort('malformed-message', bad, `round ${round}: ${why.join('; ')}`);
  return views;
}

/** Coefficient-wise sum of commitment vectors: out[k] = sum_j vectors_j[k], for k < length. */
export function sumCommitments(g: Group<unknown>, vectors: Iterable<readonly unknown[]>, length: number): unknown[] {
  const out: unknown[] = Array.from({ length }, () => g.identity);
  for (const v of vectors) for (let k = 0; k < length; k++) out[k] = g.add(out[k], v[k]!);
  return out;
}

/**
 * Feldman share check per sender: the senders j whose share s_j fails
 * s_j*G == sum_k C_jk * xPowers[k] (xPowers = powers of the receiver's index, aligned with C_j).
 */
export function feldmanBlame(
  g: Group<unknown>,
  senders: readonly number[],
  shareOf: (j: number) => bigint,
  commitmentsOf: (j: number) => readonly unknown[],
  xPowers: readonly bigint[],
): number[] {
  return senders.filter((j) => !g.eq(g.baseMul(shareOf(j)), g.msm(commitmentsOf(j), xPowers)));
}

/**
 * Echo-broadcast check: every digest each sender reports must equal ours. On a mismatch nobody is
 * blamed: the relay, a sender that equivocated or the reporting party may be the liar.
 */
export function requireEcho(senders: readonly number[], digestsOf: (j: number) => readonly Uint8Array[], ours: Uint8Array, what: string): void {
  const disagree = senders.filter((j) => digestsOf(j).some((d) => !bytesEqual(d, ours)));
  if (disagree.length > 0) {
    throw new ProtocolAbort('inconsistent-broadcast', [], `parties ${disagree.join(', ')} saw different ${what} (the relay, a sender or those parties lied)`);
  }
}

/** Decodes one sender's round-2 pair; returns what is wrong with it, or undefined after `accept`. */
function parseRound2(
  g: Group<unknown>,
  sharePayload: Uint8Array,
  revealPayload: Uint8Array,
  accept: (share: { value: bigint; digest: Uint8Array }, reveal: DkgRound2Reveal) => void,
): string | undefined {
  let share: DkgRound2Share;
  let reveal: DkgRound2Reveal;
  try {
    share = fromBinary(DkgRound2ShareSchema, sharePayload);
  } catch {
    return 'share payload does not decode';
  }
  try {
    reveal = fromBinary(DkgRound2RevealSchema, revealPayload);
  } catch {
    return 'reveal payload does not decode';
  }
  if (share.round1Digest.length !== DIGEST_LENGTH || reveal.round1Digest.length !== DIGEST_LENGTH) return 'round-1 digest must be 32 bytes';
  if (reveal.chainCodeContribution.length !== CHAIN_CODE_LENGTH) return 'chain-code contribution must be 32 bytes';
  let value: bigint;
  try {
    value = g.scalarFromBytes(share.signingShare);
  } catch {
    return 'share is not a canonical scalar';
  }
  accept({ value, digest: share.round1Digest }, reveal);
  return undefined;
}

function start(params: DkgParams): { state: DkgState; outgoing: ProtocolMessage[] } {
  const { participants, group: g } = validateParams(params);
  const coefficients = randomPolynomial(g.randomScalar(), params.threshold, () => g.randomScalar());
  const commitments = coefficients.map((a) => g.baseMul(a));
  const commitmentBytes = commitments.map((c) => g.encode(c));
  const k = g.randomScalar();
  const r = g.baseMul(k);
  const proofR = g.encode(r);
  const c = pokChallenge(g, params.scheme, params.sessionId, params.self, commitmentBytes[0]!, proofR);
  const proofZ = g.scalarToBytes(g.Fn.add(k, g.Fn.mul(coefficients[0]!, c)));
  const cc = randomBytes(CHAIN_CODE_LENGTH);
  const ccCommit = chainCodeCommitment(params.scheme, params.sessionId, params.self, cc);

  const payload = toBinary(
    DkgRound1Schema,
    create(DkgRound1Schema, { commitments: commitmentBytes, proofR, proofZ, chainCodeCommitment: ccCommit }),
  );
  const state: DkgRound1State = {
    phase: 1,
    scheme: params.scheme,
    sessionId: params.sessionId,
    self: params.self,
    participants,
    threshold: params.threshold,
    group: g,
    ownRound1: {
      commitments,
      commitmentBytes,
      r,
      proofR,
      proofZ,
      chainCodeCommitment: ccCommit,
    },
    chainCodeContribution: cc,
    consumed: false,
    coefficients,
  };
  return { state, outgoing: [{ from: params.self, to: 0, round: 1, payload }] };
}

function stepRound1(s: DkgRound1State, incoming: readonly ProtocolMessage[]): Step<DkgState, DkgOutput> {
  const g = s.group;
  const got = collectRound(incoming, 1, s.self, s.participants, 'broadcast');
  const others = s.participants.filter((i) => i !== s.self);

  // Check every sender before aborting, so the blame names all of them, not just the first.
  const views = parseEach(others, 1, (j) => parseRound1(g, s.threshold, j, got.get(j)!.payload));

  throwIfBlamed(
    others.filter((j) => !verifyPok(g, s.scheme, s.sessionId, j, views.get(j)!)),
    'proof-failed',
    'proof of knowledge failed',
  );
  views.set(s.self, s.ownRound1);
  const digest = round1Digest(s, views);

  const outgoing: ProtocolMessage[] = [];
  for (const j of others) {
    const share = evalPolynomial(g.Fn, s.coefficients, BigInt(j));
    const payload = toBinary(
      DkgRound2ShareSchema,
      create(DkgRound2ShareSchema, { signingShare: g.scalarToBytes(share), round1Digest: digest }),
    );
    outgoing.push({ from: s.self, to: j, round: 2, payload });
  }
  outgoing.push({
    from: s.self,
    to: 0,
    round: 2,
    payload: toBinary(
      DkgRound2RevealSchema,
      create(DkgRound2RevealSchema, { chainCodeContribution: s.chainCodeContribution, round1Digest: digest }),
    ),
  });
  const ownShare = evalPolynomial(g.Fn, s.coefficients, BigInt(s.self));

  // The polynomial is never needed again: wipe it so a replayed state cannot deal a second time.
  s.coefficients.fill(0n);
  s.coefficients.length = 0;
  s.consumed = true;

  const next: DkgRound2State = {
    phase: 2,
    scheme: s.scheme,
    sessionId: s.sessionId,
    self: s.self,
    participants: s.participants,
    threshold: s.threshold,
    group: g,
    ownRound1: s.ownRound1,
    chainCodeContribution: s.chainCodeContribution,
    consumed: false,
    round1: views,
    round1Digest: digest,
    ownShare,
  };
  return { done: false, state: next, outgoing };
}

function stepRound2(s: DkgRound2State, incoming: readonly ProtocolMessage[]): Step<DkgState, DkgOutput> {
  const g = s.group;
  const shareMsgs = collectRound(incoming, 2, s.self, s.participants, 'p2p');
  const revealMsgs = collectRound(incoming, 2, s.self, s.participants, 'broadcast');
  const others = s.participants.filter((i) => i !== s.self);

  // Decode everything first, so a malformed message is blamed before any semantic check.
  const shares = new Map<number, { value: bigint; digest: Uint8Array }>();
  const reveals = new Map<number, DkgRound2Reveal>();
  const bad: number[] = [];
  const why: string[] = [];
  for (const j of others) {
    const problem = parseRound2(g, shareMsgs.get(j)!.payload, revealMsgs.get(j)!.payload, (share, reveal) => {
      shares.set(j, share);
      reveals.set(j, reveal);
    });
    if (problem) {
      bad.push(j);
      why.push(`party ${j}: ${problem}`);
    }
  }
  if (bad.length > 0) throw new ProtocolAbort('malformed-message', bad, `round 2: ${why.join('; ')}`);

  // Echo check first: if j saw other round-1 broadcasts than we did, j's share was dealt against
  // commitments we never saw, and blaming j for it could be wrong. Either the relay showed
  // different broadcasts to different parties, a sender equivocated, or j lies about its view;
  // this layer cannot tell which, so nobody is blamed.
  requireEcho(others, (j) => [shares.get(j)!.digest, reveals.get(j)!.round1Digest], s.round1Digest, 'round-1 broadcasts');

  // Sum the commitments coefficient-wise once: summed[k] = sum_j C_jk. Each verifying share is
  // then one t-term MSM, and summed[0] is the group key.
  const summed = sumCommitments(g, [...s.round1.values()].map((v) => v.commitments), s.threshold);
  let secretShare = s.ownShare;
  for (const j of others) secretShare = g.Fn.add(secretShare, shares.get(j)!.value);
  const selfVerifying = g.msm(summed, powers(g, s.self, s.threshold));

  // Share check, batched: (sum_j f_j(self))*G == sum_k summed[k] * self^k. When it holds, the share
  // we output is exactly the one the public commitments promise (individual errors that cancel
  // change nothing we keep). Only on failure is each f_j(self)*G == sum_k C_jk * self^k checked,
  // to name the sender(s).
  if (!g.eq(g.baseMul(secretShare), selfVerifying)) {
    const blame = feldmanBlame(g, others, (j) => shares.get(j)!.value, (j) => s.round1.get(j)!.commitments, powers(g, s.self, s.threshold));
    throwIfBlamed(blame, 'proof-failed', 'secret share does not match commitments');
    throw new ProtocolAbort('check-failed', [], 'secret share does not match the summed commitments'); // linear algebra says unreachable
  }

  throwIfBlamed(
    others.filter(
      (j) =>
        !bytesEqual(
          chainCodeCommitment(s.scheme, s.sessionId, j, reveals.get(j)!.chainCodeContribution),
          s.round1.get(j)!.chainCodeCommitment,
        ),
    ),
    'check-failed',
    'chain-code reveal does not open its commitment',
  );

  const groupKey = summed[0]!;
  // Every C_j0 carries a proof of knowledge, so nobody can cancel the others; this is defence in depth.
  if (g.isIdentity(groupKey)) throw new ProtocolAbort('check-failed', [], 'group public key is the identity');

  const verifyingShares = new Map<number, Uint8Array>();
  for (const i of s.participants) {
    verifyingShares.set(i, g.encode(i === s.self ? selfVerifying : g.msm(summed, powers(g, i, s.threshold))));
  }

  const contributions: Field[] = [];
  for (const i of s.participants) {
    contributions.push(i, i === s.self ? s.chainCodeContribution : reveals.get(i)!.chainCodeContribution);
  }
  const chainCode = hashFields('sha256', TAG_CC, [s.scheme, s.sessionId, s.participants.length, ...contributions]);
  // Round 2's public broadcasts are the reveals, each carrying the (now checked equal) digest.
  const transcriptHash = hashFields('sha256', TAG_TRANSCRIPT, [s.round1Digest, s.participants.length, ...contributions]);

  s.ownShare = 0n;
  s.consumed = true;
  return {
    done: true,
    output: { secretShare, groupPublicKey: g.encode(groupKey), verifyingShares, chainCode, transcriptHash },
    outgoing: [],
  };
}

export const frostDkg: Protocol<DkgParams, DkgState, DkgOutput> = {
  name: 'frost-dkg',
  rounds: 2,
  start,
  step(state, incoming) {
    if (state.consumed) throw new Error('DKG state already used: states are single-use');
    return state.phase === 1 ? stepRound1(state, incoming) : stepRound2(state, incoming);
  },
};
