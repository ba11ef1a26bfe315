/**
 * DKLs23 key generation (eprint 2023/765, section 3: the setup that Protocol 3.6 signs with),
 * as a sans-I/O state machine (crypto/protocol.ts).
 *
 * Three things are set up once per keyset, all in the same rounds:
 *  - Shamir shares of the key: the FROST Pedersen DKG with proofs of knowledge (crypto/frost/dkg.ts,
 *    scheme 'secp256k1'); DKLs23 only needs a t-of-n Shamir sharing with public verifying shares.
 *  - For every ordered pair (i, j), the two-party multiplication setup (base OT + OT-extension
 *    seeds, mul.ts): i is Alice ('sender') towards j in one instance and Bob ('receiver') in the
 *    other. Flight f of every instance travels in round f, point-to-point.
 *  - For every pair, a 32-byte seed for the zero-sharing F_Zero (DKLs23 section 3): the lower
 *    index samples it and sends it point-to-point (encrypted by the node layer). No
 *    commit-reveal: both ends of a pair learn the seed anyway, so a dishonest end gains nothing
 *    by choosing it, and an honest pair's seed is uniform and known to nobody else, which is
 *    all F_Zero needs.
 *
 * Rounds: max(DKG rounds, setup flights). Every round carries one point-to-point envelope per
 * peer (DKG share, mul flights, seed; absent parts empty) and, while the DKG runs, one broadcast
 * envelope wrapping the DKG broadcast. The DKG validates its own payloads; this layer validates
 * the envelopes and the flight schedule.
 *
 * The last two items (the "pairwise layer" below) are also run on their own, without a DKG, for
 * a sharing that already exists: ecdsaSetup (setup.ts) re-runs them to replace burnt OT
 * correlations, for a dealer-split imported key, and after resharing.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { frostDkg, type DkgOutput, type DkgState } from '../frost/dkg.js';
import { groupFor, type Group } from '../group/index.js';
import { collectRound, ProtocolAbort, type AbortReason, type Protocol, type ProtocolMessage, type Step } from '../protocol.js';
import type { ThresholdShare } from '../shamir.js';
import { hashFields } from '../transcript.js';
import {
  defaultMul,
  type MulBackend,
  type MulReceiverSetup,
  type MulRole,
  type MulSenderSetup,
  type MulSetupState,
} from './mul-backend.js';
import { encodeMessage, FieldReader, WireError } from './wire.js';

export interface EcdsaKeygenParams {
  sessionId: string;
  /** This party's 1-based index. */
  self: number;
  participants: readonly number[];
  threshold: number;
  group?: Group<unknown>;
  /** Two-party multiplication; defaults to crypto/ecdsa/mul.ts. Tests may inject another. */
  mul?: MulBackend;
}

/** One party's share of an ECDSA keyset. Secret: seal all of it (encodeEcdsaKeyShare). */
export interface EcdsaKeyShare extends ThresholdShare {
  /** Setups in which this party is Alice (sender) towards the peer. */
  readonly senderSetups: ReadonlyMap<number, MulSenderSetup>;
  /** Setups in which this party is Bob (receiver) towards the peer. */
  readonly receiverSetups: ReadonlyMap<number, MulReceiverSetup>;
  /** Pairwise zero-sharing seeds (32 bytes). */
  readonly zeroSeeds: ReadonlyMap<number, Uint8Array>;
}

export interface EcdsaKeygenState extends PairwiseSession {
  readonly dkg?: DkgState;
  readonly dkgOutput?: DkgOutput;
}

const TAG_BCAST = 'custody-ecdsa-keygen-b/v1';
const TAG_P2P = 'custody-ecdsa-keygen-p/v1';
const TAG_MUL_SID = 'custody-ecdsa-keygen-mul-sid-v1';
const TAG_SHARE = 'custody-ecdsa-keyshare/v1';
const SEED_LENGTH = 32;
const MAX_PARTIES = 1024;

// ---------------------------------------------------------------------------------------------
// The pairwise layer: multiplication setups for every ordered pair and zero-sharing seeds for
// every pair, over `mul.setupFlights` rounds of point-to-point envelopes
//   [head, flight of the instance where the sender is Alice, flight where it is Bob, seed]
// whose tag and head belong to the protocol running the layer (ecdsaKeygen: the DKG's
// point-to-point payload; ecdsaSetup: the digest of the public inputs). Shared with setup.ts;
// not part of the package's API.

interface SetupSlot {
  readonly role: MulRole;
  readonly peer: number;
  state?: MulSetupState;
  done?: MulSenderSetup | MulReceiverSetup;
}

/** The state every protocol running the pairwise layer carries. */
export interface PairwiseSession {
  readonly sessionId: string;
  readonly self: number;
  /** Sorted ascending. */
  readonly participants: readonly number[];
  readonly threshold: number;
  readonly group: Group<unknown>;
  readonly mul: MulBackend;
  readonly rounds: number;
  /** The round whose messages the next step consumes. */
  readonly round: number;
  readonly slots: ReadonlyMap<string, SetupSlot>;
  readonly zeroSeeds: ReadonlyMap<number, Uint8Array>;
  /** States are single-use: a step consumes the state it was given. */
  consumed: boolean;
}

/** What distinguishes one protocol's use of the pairwise layer from another's. */
export interface PairwiseSpec<C> {
  /** Names the protocol in abort messages ("keygen round 2: ..."). */
  readonly label: string;
  /** Tag of the point-to-point envelope. */
  readonly p2pTag: string;
  /** Session id of the pair instance where `alice` is the sender and `bob` the receiver. */
  mulSessionId(c: C, alice: number, bob: number): Uint8Array;
}

type EnvelopeSpec = Pick<PairwiseSpec<unknown>, 'label' | 'p2pTag'>;

/** Pending outbound flights per peer: `asSender` is for the instance where we are Alice. */
export interface Outbox {
  asSender?: Uint8Array;
  asReceiver?: Uint8Array;
}

/** A decoded point-to-point envelope. */
export interface PairwiseEnvelope {
  /** The protocol's own field. */
  head: Uint8Array;
  /** Flight of the instance where the message's sender is Alice (we are Bob). */
  asSender: Uint8Array;
  /** Flight of the instance where the message's sender is Bob (we are Alice). */
  asReceiver: Uint8Array;
  seed: Uint8Array;
}

/** One round's progress of the pairwise layer. */
export interface PairwiseProgress {
  slots: Map<string, SetupSlot>;
  zeroSeeds: Map<number, Uint8Array>;
  /** What to send in the next round. */
  flights: Map<number, Outbox>;
}

const other = (r: MulRole): MulRole => (r === 'sender' ? 'receiver' : 'sender');
const slotKey = (role: MulRole, peer: number) => `${role}:${peer}`;

/** Which role sends flight f (1-based): flights alternate, starting with mul.setupFirst. */
function flightRole(mul: MulBackend, f: number): MulRole | undefined {
  if (f < 1 || f > mul.setupFlights) return undefined;
  return f % 2 === 1 ? mul.setupFirst : other(mul.setupFirst);
}

function malformed(from: number, what: string): ProtocolAbort {
  return new ProtocolAbort('malformed-message', [from], `party ${from}: ${what}`);
}

function mulAbortToReason(r: 'malformed' | 'ot-check-failed' | 'mul-check-failed'): AbortReason {
  return r === 'malformed' ? 'malformed-message' : r;
}

/** Sorted copy of the participant list, and the group and multiplication the layer runs on. */
export function pairwiseParams(p: { participants: readonly number[]; group?: Group<unknown>; mul?: MulBackend }): {
  participants: number[];
  group: Group<unknown>;
  mul: MulBackend;
} {
  const participants = [...p.participants].sort((a, b) => a - b);
  if (participants.length > MAX_PARTIES) throw new Error(`at most ${MAX_PARTIES} participants`);
  const group = p.group ?? groupFor('secp256k1');
  if (group.curve !== 'secp256k1') throw new Error('DKLs23 runs on secp256k1');
  const mul = p.mul ?? defaultMul;
  // setupStart cannot finish a setup, so the last flight is always an answer: at least two flights.
  if (!Number.isInteger(mul.setupFlights) || mul.setupFlights < 2) throw new Error('multiplication setup must have at least two flights');
  if (mul.inputs !== 2) throw new Error('DKLs23 signing needs a multiplication with 2 inputs');
  return { participants, group, mul };
}

/** Opens both instances towards every peer and samples the seeds of the pairs where we are the lower index. */
export function pairwiseStart<C>(spec: PairwiseSpec<C>, c: C & { self: number; participants: readonly number[]; mul: MulBackend }): PairwiseProgress {
  const slots = new Map<string, SetupSlot>();
  const flights = new Map<number, Outbox>();
  const zeroSeeds = new Map<number, Uint8Array>();
  for (const j of c.participants) {
    if (j === c.self) continue;
    const box: Outbox = {};
    for (const role of ['sender', 'receiver'] as const) {
      const [alice, bob] = role === 'sender' ? [c.self, j] : [j, c.self];
      const r = c.mul.setupStart(role, { sessionId: spec.mulSessionId(c, alice, bob) });
      if ((r.msg !== undefined) !== (flightRole(c.mul, 1) === role)) throw new Error('multiplication setup broke its flight schedule');
      slots.set(slotKey(role, j), { role, peer: j, state: r.state });
      if (r.msg) box[role === 'sender' ? 'asSender' : 'asReceiver'] = r.msg;
    }
    flights.set(j, box);
    if (c.self < j) zeroSeeds.set(j, randomBytes(SEED_LENGTH));
  }
  return { slots, zeroSeeds, flights };
}

/** The round's point-to-point envelopes; our seeds travel in round 1. */
export function pairwiseEnvelopes(
  spec: EnvelopeSpec,
  s: { self: number; participants: readonly number[] },
  round: number,
  head: (peer: number) => Uint8Array | undefined,
  flights: ReadonlyMap<number, Outbox>,
  zeroSeeds: ReadonlyMap<number, Uint8Array>,
): ProtocolMessage[] {
  const empty = new Uint8Array(0);
  const out: ProtocolMessage[] = [];
  for (const j of s.participants) {
    if (j === s.self) continue;
    const f = flights.get(j);
    const seed = round === 1 && s.self < j ? zeroSeeds.get(j)! : empty;
    out.push({ from: s.self, to: j, round, payload: encodeMessage(spec.p2pTag, [head(j) ?? empty, f?.asSender ?? empty, f?.asReceiver ?? empty, seed]) });
  }
  return out;
}

function parseEnvelope(spec: EnvelopeSpec, s: PairwiseSession, from: number, payload: Uint8Array): PairwiseEnvelope {
  let p: PairwiseEnvelope;
  try {
    const r = new FieldReader(payload, spec.p2pTag);
    p = { head: r.bytes(), asSender: r.bytes(), asReceiver: r.bytes(), seed: r.bytes() };
    r.end();
  } catch (e) {
    if (e instanceof WireError) throw malformed(from, `round ${s.round} envelope: ${e.message}`);
    throw e;
  }
  const fr = flightRole(s.mul, s.round);
  // The schedule is public, so any deviation is the sender's fault.
  if ((p.asSender.length > 0) !== (fr === 'sender')) throw malformed(from, `unexpected or missing sender-side flight ${s.round}`);
  if ((p.asReceiver.length > 0) !== (fr === 'receiver')) throw malformed(from, `unexpected or missing receiver-side flight ${s.round}`);
  const seedExpected = s.round === 1 && from < s.self;
  if (seedExpected ? p.seed.length !== SEED_LENGTH : p.seed.length !== 0) throw malformed(from, 'zero-sharing seed missing, unexpected or not 32 bytes');
  return p;
}

/**
 * Decodes every peer's envelope, then runs `inspect` (the protocol's own checks of the head, which
 * throw ProtocolAbort), so the blame names every malformed sender, not just the first.
 */
export function parseEnvelopes(
  spec: EnvelopeSpec,
  s: PairwiseSession,
  p2p: ReadonlyMap<number, ProtocolMessage>,
  inspect?: (from: number, p: PairwiseEnvelope) => void,
): Map<number, PairwiseEnvelope> {
  const parsed = new Map<number, PairwiseEnvelope>();
  const bad: number[] = [];
  const why: string[] = [];
  for (const j of s.participants) {
    if (j === s.self) continue;
    try {
      const p = parseEnvelope(spec, s, j, p2p.get(j)!.payload);
      inspect?.(j, p);
      parsed.set(j, p);
    } catch (e) {
      if (!(e instanceof ProtocolAbort)) throw e;
      bad.push(j);
      why.push(e.message);
    }
  }
  if (bad.length > 0) throw new ProtocolAbort('malformed-message', bad, `${spec.label} round ${s.round}: ${why.join('; ')}`);
  return parsed;
}

/** Feeds this round's flights to their instances and keeps the seeds that arrived. */
export function pairwiseStep(s: PairwiseSession, parsed: ReadonlyMap<number, PairwiseEnvelope>): PairwiseProgress {
  const round = s.round;
  const slots = new Map<string, SetupSlot>();
  const flights = new Map<number, Outbox>();
  const fr = flightRole(s.mul, round);
  const nextFr = flightRole(s.mul, round + 1);
  for (const j of s.participants) {
    if (j === s.self) continue;
    const box: Outbox = {};
    for (const role of ['sender', 'receiver'] as const) {
      const old = s.slots.get(slotKey(role, j))!;
      const slot: SetupSlot = { ...old };
      slots.set(slotKey(role, j), slot);
      if (fr !== other(role)) continue; // the peer sends nothing to this instance this round
      const p = parsed.get(j)!;
      // Our role 'receiver' is fed by the peer's sender-side flight, and vice versa.
      const msg = role === 'receiver' ? p.asSender : p.asReceiver;
      if (!slot.state) throw malformed(j, `multiplication flight ${round} after the setup finished`);
      let r;
      try {
        r = s.mul.setupStep(slot.state, msg);
      } catch (e) {
        const reason = s.mul.abortReason(e);
        if (reason === undefined) throw e;
        throw new ProtocolAbort(mulAbortToReason(reason), [j], `party ${j}: multiplication setup (${role} side) failed: ${reason}`);
      }
      if ('done' in r) {
        slot.done = r.done;
        delete slot.state;
      } else slot.state = r.state;
      if ((r.msg !== undefined) !== (nextFr === role)) throw new Error('multiplication setup broke its flight schedule');
      if (r.msg) box[role === 'sender' ? 'asSender' : 'asReceiver'] = r.msg;
    }
    flights.set(j, box);
  }

  // Round-1 seeds from lower indices.
  const zeroSeeds = new Map(s.zeroSeeds);
  if (round === 1) for (const [j, p] of parsed) if (j < s.self) zeroSeeds.set(j, p.seed);
  return { slots, zeroSeeds, flights };
}

/** The finished layer joined to the sharing it was run for; throws (a bug) if an instance did not finish in its flights. */
export function pairwiseKeyShare(
  s: PairwiseSession,
  sharing: Pick<EcdsaKeyShare, 'secretShare' | 'publicKey' | 'verifyingShares' | 'chainCode' | 'transcriptHash'>,
  done: Pick<PairwiseProgress, 'slots' | 'zeroSeeds'>,
): EcdsaKeyShare {
  const senderSetups = new Map<number, MulSenderSetup>();
  const receiverSetups = new Map<number, MulReceiverSetup>();
  for (const slot of done.slots.values()) {
    if (!slot.done) throw new Error('multiplication setup did not finish in its flights');
    if (slot.role === 'sender') senderSetups.set(slot.peer, slot.done as MulSenderSetup);
    else receiverSetups.set(slot.peer, slot.done as MulReceiverSetup);
  }
  const { secretShare, publicKey, verifyingShares, chainCode, transcriptHash } = sharing;
  return {
    index: s.self,
    participants: s.participants,
    threshold: s.threshold,
    secretShare,
    publicKey,
    verifyingShares,
    chainCode,
    transcriptHash,
    senderSetups,
    receiverSetups,
    zeroSeeds: done.zeroSeeds,
  };
}

/** Wraps a step so that a state cannot be stepped twice. */
export function singleUse<S extends { consumed: boolean }, O>(label: string, step: (s: S, incoming: readonly ProtocolMessage[]) => Step<S, O>) {
  return (s: S, incoming: readonly ProtocolMessage[]): Step<S, O> => {
    if (s.consumed) throw new Error(`${label} state already used: states are single-use`);
    return step(s, incoming);
  };
}

// ---------------------------------------------------------------------------------------------
// Keygen: the DKG alongside the pairwise layer.

const KEYGEN: PairwiseSpec<{ sessionId: string; threshold: number; participants: readonly number[] }> = {
  label: 'keygen',
  p2pTag: TAG_P2P,
  mulSessionId: (c, sender, receiver) =>
    hashFields('sha256', TAG_MUL_SID, [c.sessionId, c.threshold, c.participants.length, ...c.participants, sender, receiver]),
};

function buildOutgoing(s: PairwiseSession, round: number, dkgOut: readonly ProtocolMessage[], flights: ReadonlyMap<number, Outbox>): ProtocolMessage[] {
  const out: ProtocolMessage[] = [];
  const bcast = dkgOut.find((m) => m.to === 0);
  if (bcast) out.push({ from: s.self, to: 0, round, payload: encodeMessage(TAG_BCAST, [bcast.payload]) });
  out.push(...pairwiseEnvelopes(KEYGEN, s, round, (j) => dkgOut.find((m) => m.to === j)?.payload, flights, s.zeroSeeds));
  return out;
}

function start(params: EcdsaKeygenParams): { state: EcdsaKeygenState; outgoing: ProtocolMessage[] } {
  const { participants, group, mul } = pairwiseParams(params);
  // frostDkg.start validates indices, threshold and self.
  const dkg = frostDkg.start({
    scheme: 'secp256k1',
    sessionId: params.sessionId,
    self: params.self,
    participants,
    threshold: params.threshold,
    group,
  });
  const common = { sessionId: params.sessionId, self: params.self, participants, threshold: params.threshold, group, mul };
  const { slots, zeroSeeds, flights } = pairwiseStart(KEYGEN, common);
  const state: EcdsaKeygenState = {
    ...common,
    rounds: Math.max(frostDkg.rounds, mul.setupFlights),
    round: 1,
    dkg: dkg.state,
    slots,
    zeroSeeds,
    consumed: false,
  };
  return { state, outgoing: buildOutgoing(state, 1, dkg.outgoing, flights) };
}

function step(s: EcdsaKeygenState, incoming: readonly ProtocolMessage[]): Step<EcdsaKeygenState, EcdsaKeyShare> {
  const round = s.round;
  const g = s.group;
  const p2p = collectRound(incoming, round, s.self, s.participants, 'p2p');
  const dkgRunning = s.dkg !== undefined;
  const bcast = dkgRunning ? collectRound(incoming, round, s.self, s.participants, 'broadcast') : new Map<number, ProtocolMessage>();

  // Decode every envelope first so the blame names every malformed sender.
  const dkgIn: ProtocolMessage[] = [];
  const parsed = parseEnvelopes(KEYGEN, s, p2p, (j, p) => {
    if (!dkgRunning) {
      if (p.head.length > 0) throw malformed(j, 'DKG payload after the DKG finished');
      return;
    }
    let inner: Uint8Array;
    try {
      const r = new FieldReader(bcast.get(j)!.payload, TAG_BCAST);
      inner = r.bytes();
      r.end();
    } catch (e) {
      if (e instanceof WireError) throw malformed(j, `broadcast envelope: ${e.message}`);
      throw e;
    }
    if (p.head.length > 0) dkgIn.push({ from: j, to: s.self, round, payload: p.head });
    dkgIn.push({ from: j, to: 0, round, payload: inner });
  });

  // DKG first: its checks (proofs of knowledge, shares against commitments) gate everything.
  let dkg = s.dkg;
  let dkgOutput = s.dkgOutput;
  let dkgOut: ProtocolMessage[] = [];
  if (dkg) {
    const r = frostDkg.step(dkg, dkgIn);
    dkgOut = r.outgoing.map((m) => ({ ...m, round: round + 1 }));
    if (r.done) {
      dkg = undefined;
      dkgOutput = r.output;
    } else dkg = r.state;
  }

  const { slots, zeroSeeds, flights } = pairwiseStep(s, parsed);

  s.consumed = true;
  if (round < s.rounds) {
    const next: EcdsaKeygenState = { ...s, round: round + 1, dkg, dkgOutput, slots, zeroSeeds, consumed: false };
    return { done: false, state: next, outgoing: buildOutgoing(next, round + 1, dkgOut, flights) };
  }

  if (!dkgOutput || dkg) throw new Error('DKG did not finish in its rounds');
  if (!g.eq(g.baseMul(dkgOutput.secretShare), g.decode(dkgOutput.verifyingShares.get(s.self)!))) {
    throw new Error('DKG share does not match its verifying share'); // the DKG checked it: unreachable
  }
  const { groupPublicKey: publicKey, ...sharing } = dkgOutput;
  return { done: true, outgoing: [], output: pairwiseKeyShare(s, { ...sharing, publicKey }, { slots, zeroSeeds }) };
}

export const ecdsaKeygen: Protocol<EcdsaKeygenParams, EcdsaKeygenState, EcdsaKeyShare> & {
  /** Rounds depend on the multiplication backend's flight count. */
  roundsFor(mul?: MulBackend): number;
} = {
  name: 'dkls23-keygen',
  rounds: Math.max(frostDkg.rounds, defaultMul.setupFlights),
  roundsFor: (mul = defaultMul) => Math.max(frostDkg.rounds, mul.setupFlights),
  start,
  step: singleUse('keygen', step),
};

// ---------------------------------------------------------------------------------------------
// Sealing codec. The result is secret: the node seals it (crypto/seal.ts) before it touches disk.

export function encodeEcdsaKeyShare(k: EcdsaKeyShare, mul: MulBackend = defaultMul): Uint8Array {
  const g = groupFor('secp256k1');
  const fields: (Uint8Array | number)[] = [k.index, k.threshold, k.participants.length, ...k.participants];
  fields.push(g.scalarToBytes(k.secretShare), k.publicKey, k.chainCode, k.transcriptHash);
  for (const i of k.participants) fields.push(k.verifyingShares.get(i)!);
  for (const j of k.participants) {
    if (j === k.index) continue;
    fields.push(mul.encodeSenderSetup(k.senderSetups.get(j)!), mul.encodeReceiverSetup(k.receiverSetups.get(j)!), k.zeroSeeds.get(j)!);
  }
  return encodeMessage(TAG_SHARE, fields);
}

/** Parses and validates a sealed key share; throws Error (never returns a partial share). */
export function decodeEcdsaKeyShare(bytes: Uint8Array, mul: MulBackend = defaultMul): EcdsaKeyShare {
  const g = groupFor('secp256k1');
  try {
    const r = new FieldReader(bytes, TAG_SHARE);
    const index = r.u32();
    const threshold = r.u32();
    const n = r.count(MAX_PARTIES);
    const participants: number[] = [];
    for (let i = 0; i < n; i++) participants.push(r.u32());
    for (let i = 0; i < n; i++) if (participants[i]! < 1 || (i > 0 && participants[i]! <= participants[i - 1]!)) throw new WireError('participants must be positive and strictly ascending');
    if (!participants.includes(index)) throw new WireError('index is not a participant');
    if (threshold < 1 || threshold > n || n < 2) throw new WireError('bad threshold');
    const secretShare = r.scalar(g);
    const publicKey = r.point(g).bytes;
    const chainCode = r.bytes(32);
    const transcriptHash = r.bytes(32);
    const verifyingShares = new Map<number, Uint8Array>();
    for (const i of participants) verifyingShares.set(i, r.point(g).bytes);
    const senderSetups = new Map<number, MulSenderSetup>();
    const receiverSetups = new Map<number, MulReceiverSetup>();
    const zeroSeeds = new Map<number, Uint8Array>();
    for (const j of participants) {
      if (j === index) continue;
      senderSetups.set(j, mul.decodeSenderSetup(r.bytes()));
      receiverSetups.set(j, mul.decodeReceiverSetup(r.bytes()));
      zeroSeeds.set(j, r.bytes(SEED_LENGTH));
    }
    r.end();
    if (!g.eq(g.baseMul(secretShare), g.decode(verifyingShares.get(index)!))) throw new WireError('secret share does not match its verifying share');
    return { index, participants, threshold, secretShare, publicKey, verifyingShares, chainCode, transcriptHash, senderSetups, receiverSetups, zeroSeeds };
  } catch (e) {
    throw new Error(`invalid ECDSA key share encoding: ${e instanceof Error ? e.message : 'unknown error'}`);
  }
}
