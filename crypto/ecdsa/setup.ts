/**
 * DKLs23 "setup only": fresh pairwise multiplication setups and zero-sharing seeds for a Shamir
 * sharing that already exists, as a sans-I/O state machine (crypto/protocol.ts). It is the
 * pairwise layer of keygen.ts without the DKG:
 *  - clearing a selective-abort ban: the old OT correlations of the keyset are burnt, every pair
 *    gets new ones;
 *  - importing a legacy key: a trusted dealer splits it into Shamir shares once, the nodes then
 *    set up the pairwise multiplications without a DKG;
 *  - after resharing (proactive refresh), for the new shares.
 * The secret share, public key, verifying shares and chain code are kept as they are; the output is
 * a full EcdsaKeyShare with new senderSetups, receiverSetups, zeroSeeds and transcriptHash.
 *
 * Local input check (before any message; a plain Error, the caller's fault, not a ProtocolAbort):
 * secretShare*G is this party's verifying share, and the verifying shares lie on one polynomial of
 * degree < t whose value at 0 is the public key: the first t of them interpolate to the public key,
 * and so does every set of the first t-1 plus one other (two polynomials of degree < t that agree
 * on t-1 indices and at 0 are equal, so every share is on the polynomial of the first t).
 *
 * Agreement on the public inputs: inputs = H(session id, threshold, participants, public key, chain
 * code, verifying shares). It goes into the session id of every pair instance and heads every
 * envelope; a peer whose envelope carries another digest holds other public inputs (or runs another
 * session): 'check-failed', blaming the peers that disagree with us (a party with the wrong inputs
 * blames everyone, the others blame it). transcriptHash = H(inputs): there is no broadcast, so
 * every honest party reports the same value and the coordinator compares them.
 *
 * Rounds: mul.setupFlights, point-to-point only.
 */
import type { Group } from '../group/index.js';
import { collectRound, ProtocolAbort, type Protocol, type ProtocolMessage, type Step } from '../protocol.js';
import { lagrangeAtZero } from '../shamir.js';
import { bytesEqual, hashFields, type Field } from '../transcript.js';
import {
  pairwiseEnvelopes,
  pairwiseParams,
  pairwiseKeyShare,
  pairwiseStart,
  pairwiseStep,
  parseEnvelopes,
  singleUse,
  type EcdsaKeyShare,
  type Outbox,
  type PairwiseSession,
  type PairwiseSpec,
} from './keygen.js';
import { defaultMul, type MulBackend } from './mul-backend.js';

/** The sharing ecdsaSetup keeps. An EcdsaKeyShare fits; its participants, threshold and index are then checked too. */
export interface EcdsaExistingSharing {
  readonly secretShare: bigint;
  /** 33-byte compressed secp256k1 group key. */
  readonly publicKey: Uint8Array;
  /** Every participant's verifying share (secretShare*G), 33-byte compressed. */
  readonly verifyingShares: ReadonlyMap<number, Uint8Array>;
  /** 32 bytes. */
  readonly chainCode: Uint8Array;
  readonly participants?: readonly number[];
  readonly threshold?: number;
  readonly index?: number;
}

export interface EcdsaSetupParams {
  sessionId: string;
  /** This party's 1-based index. */
  self: number;
  /** Any order; must be the sharing's participants. */
  participants: readonly number[];
  /** Must be the sharing's threshold. */
  threshold: number;
  /** The existing sharing; the secret share, public key, verifying shares and chain code are kept as they are. */
  existing: EcdsaExistingSharing;
  group?: Group<unknown>;
  /** Two-party multiplication; defaults to crypto/ecdsa/mul.ts. Tests may inject another. */
  mul?: MulBackend;
}

export interface EcdsaSetupState extends PairwiseSession {
  /** Digest of the public inputs (file comment). */
  readonly inputs: Uint8Array;
  readonly secretShare: bigint;
  readonly publicKey: Uint8Array;
  readonly verifyingShares: ReadonlyMap<number, Uint8Array>;
  readonly chainCode: Uint8Array;
}

const TAG_INPUTS = 'custody-ecdsa-setup-inputs-v1';
const TAG_MUL_SID = 'custody-ecdsa-setup-mul-sid-v1';
const TAG_TRANSCRIPT = 'custody-ecdsa-setup-transcript-v1';
const TAG_P2P = 'custody-ecdsa-setup-p/v1';
const DIGEST_LENGTH = 32;
const CHAIN_CODE_LENGTH = 32;

const SETUP: PairwiseSpec<{ inputs: Uint8Array }> = {
  label: 'setup',
  p2pTag: TAG_P2P,
  mulSessionId: (c, sender, receiver) => hashFields('sha256', TAG_MUL_SID, [c.inputs, sender, receiver]),
};

const bad = (what: string) => new Error(`ecdsaSetup: ${what}`);

/** Digest of everything the parties must agree on (file comment). */
function inputsDigest(sessionId: string, threshold: number, participants: readonly number[], publicKey: Uint8Array, chainCode: Uint8Array, verifyingShares: ReadonlyMap<number, Uint8Array>): Uint8Array {
  const fields: Field[] = [sessionId, threshold, participants.length, ...participants, publicKey, chainCode];
  for (const i of participants) fields.push(verifyingShares.get(i)!);
  return hashFields('sha256', TAG_INPUTS, fields);
}

function decodePoint(g: Group<unknown>, b: unknown, what: string): unknown {
  if (!(b instanceof Uint8Array)) throw bad(`${what} must be bytes`);
  try {
    return g.decode(b);
  } catch {
    throw bad(`${what} is not a valid non-identity compressed secp256k1 point`);
  }
}

/** Indices, threshold and self (the checks frostDkg.start makes for keygen), and agreement with the sharing's own. */
function checkIndices(p: EcdsaSetupParams, participants: readonly number[]): void {
  const n = participants.length;
  if (n < 2) throw bad('needs at least 2 participants');
  if (participants.some((i) => !Number.isInteger(i) || i < 1 || i > 0xffffffff)) throw bad('participant indices must be positive 32-bit integers');
  if (new Set(participants).size !== n) throw bad('participant indices must be distinct');
  if (!Number.isInteger(p.threshold) || p.threshold < 1 || p.threshold > n) throw bad(`threshold ${p.threshold} must satisfy 1 <= t <= ${n}`);
  if (!participants.includes(p.self)) throw bad(`self ${p.self} is not among the participants`);
  const e = p.existing;
  if (e.participants !== undefined) {
    const theirs = [...e.participants].sort((a, b) => a - b);
    if (theirs.length !== n || theirs.some((i, k) => i !== participants[k])) throw bad(`participants ${participants.join(',')} differ from the sharing's ${theirs.join(',')}`);
  }
  if (e.threshold !== undefined && e.threshold !== p.threshold) throw bad(`threshold ${p.threshold} differs from the sharing's ${e.threshold}`);
  if (e.index !== undefined && e.index !== p.self) throw bad(`self ${p.self} differs from the sharing's index ${e.index}`);
}

/** Checks the existing sharing against itself and this party (file comment); throws a precise Error. */
function checkSharing(g: Group<unknown>, p: EcdsaSetupParams, participants: readonly number[]): void {
  const e = p.existing;
  const t = p.threshold;
  if (typeof e.secretShare !== 'bigint' || e.secretShare <= 0n || e.secretShare >= g.order) throw bad('secretShare must be a scalar in [1, group order)');
  if (!(e.chainCode instanceof Uint8Array) || e.chainCode.length !== CHAIN_CODE_LENGTH) throw bad(`chainCode must be ${CHAIN_CODE_LENGTH} bytes`);
  const publicKey = decodePoint(g, e.publicKey, 'publicKey');
  const extra = [...e.verifyingShares.keys()].filter((i) => !participants.includes(i));
  if (extra.length > 0) throw bad(`verifying shares of non-participants ${extra.join(', ')}`);
  const V = new Map<number, unknown>();
  for (const i of participants) {
    if (!e.verifyingShares.has(i)) throw bad(`no verifying share for party ${i}`);
    V.set(i, decodePoint(g, e.verifyingShares.get(i), `verifying share of party ${i}`));
  }
  if (!g.eq(g.baseMul(e.secretShare), V.get(p.self)!)) throw bad(`secretShare * G is not party ${p.self}'s verifying share`);
  const interpolate = (set: readonly number[]) =>
    g.msm(
      set.map((i) => V.get(i)!),
      set.map((i) => lagrangeAtZero(g.Fn, i, set)),
    );
  const base = participants.slice(0, t);
  if (!g.eq(interpolate(base), publicKey)) throw bad(`the verifying shares of parties ${base.join(', ')} do not interpolate to publicKey`);
  const anchor = participants.slice(0, t - 1);
  for (const j of participants.slice(t)) {
    if (!g.eq(interpolate([...anchor, j]), publicKey)) {
      throw bad(`the verifying share of party ${j} is not on the sharing polynomial (parties ${[...anchor, j].join(', ')} do not interpolate to publicKey)`);
    }
  }
}

function start(params: EcdsaSetupParams): { state: EcdsaSetupState; outgoing: ProtocolMessage[] } {
  if (typeof params.sessionId !== 'string' || params.sessionId.length === 0) throw bad('sessionId must be a non-empty string');
  if (typeof params.existing !== 'object' || params.existing === null) throw bad('existing sharing missing');
  const { participants, group, mul } = pairwiseParams(params);
  checkIndices(params, participants);
  checkSharing(group, params, participants);
  const e = params.existing;
  const verifyingShares = new Map(participants.map((i) => [i, e.verifyingShares.get(i)!.slice()]));
  const publicKey = e.publicKey.slice();
  const chainCode = e.chainCode.slice();
  const inputs = inputsDigest(params.sessionId, params.threshold, participants, publicKey, chainCode, verifyingShares);
  const common = { sessionId: params.sessionId, self: params.self, participants, threshold: params.threshold, group, mul, inputs };
  const { slots, zeroSeeds, flights } = pairwiseStart(SETUP, common);
  const state: EcdsaSetupState = {
    ...common,
    secretShare: e.secretShare,
    publicKey,
    verifyingShares,
    chainCode,
    rounds: mul.setupFlights,
    round: 1,
    slots,
    zeroSeeds,
    consumed: false,
  };
  return { state, outgoing: envelopes(state, 1, flights) };
}

function envelopes(s: EcdsaSetupState, round: number, flights: ReadonlyMap<number, Outbox>): ProtocolMessage[] {
  return pairwiseEnvelopes(SETUP, s, round, () => s.inputs, flights, s.zeroSeeds);
}

function step(s: EcdsaSetupState, incoming: readonly ProtocolMessage[]): Step<EcdsaSetupState, EcdsaKeyShare> {
  const round = s.round;
  const p2p = collectRound(incoming, round, s.self, s.participants, 'p2p');
  const parsed = parseEnvelopes(SETUP, s, p2p, (j, p) => {
    if (p.head.length !== DIGEST_LENGTH) throw new ProtocolAbort('malformed-message', [j], `party ${j}: public-input digest must be ${DIGEST_LENGTH} bytes`);
  });
  // Agreement before any flight reaches the multiplication.
  const disagree = [...parsed].filter(([, p]) => !bytesEqual(p.head, s.inputs)).map(([j]) => j);
  if (disagree.length > 0) {
    throw new ProtocolAbort(
      'check-failed',
      disagree,
      `setup round ${round}: the public inputs of part${disagree.length > 1 ? 'ies' : 'y'} ${disagree.join(', ')} differ from ours ` +
        `(public key, verifying shares, chain code, participants, threshold or session id)`,
    );
  }

  const { slots, zeroSeeds, flights } = pairwiseStep(s, parsed);
  s.consumed = true;
  if (round < s.rounds) {
    const next: EcdsaSetupState = { ...s, round: round + 1, slots, zeroSeeds, consumed: false };
    return { done: false, state: next, outgoing: envelopes(next, round + 1, flights) };
  }
  const transcriptHash = hashFields('sha256', TAG_TRANSCRIPT, [s.inputs]);
  return { done: true, outgoing: [], output: pairwiseKeyShare(s, { ...s, transcriptHash }, { slots, zeroSeeds }) };
}

export const ecdsaSetup: Protocol<EcdsaSetupParams, EcdsaSetupState, EcdsaKeyShare> & {
  /** Rounds are the multiplication backend's setup flights. */
  roundsFor(mul?: MulBackend): number;
} = {
  name: 'dkls23-setup',
  rounds: defaultMul.setupFlights,
  roundsFor: (mul = defaultMul) => mul.setupFlights,
  start,
  step: singleUse('setup', step),
};
