/**
 * Sans-I/O protocol engine (DESIGN.md section 4).
 *
 * Every multi-party protocol is a pure state machine: `start(params) -> {state, outgoing}` and
 * `step(state, incoming) -> {state, outgoing} | {output}`. Nodes wrap it with storage and peer
 * encryption; the coordinator wraps it with routing, deadlines and retries. Parties are named by
 * their 1-based index in the keyset (the FROST identifier).
 */

export interface ProtocolMessage {
  /** Sender's party index. */
  from: number;
  /** Receiver's party index, or 0 for a broadcast to every other party. */
  to: number;
  round: number;
  /** Plain payload; the node layer encrypts point-to-point payloads and signs broadcasts. */
  payload: Uint8Array;
}

export type Step<S, O> =
  | { done: false; state: S; outgoing: ProtocolMessage[] }
  | { done: true; output: O; outgoing: ProtocolMessage[] };

export interface Protocol<P, S, O> {
  readonly name: string;
  /** Number of rounds that take incoming messages (start produces round 1's outgoing). */
  readonly rounds: number;
  start(params: P): { state: S; outgoing: ProtocolMessage[] };
  step(state: S, incoming: readonly ProtocolMessage[]): Step<S, O>;
  /**
   * Optional: `start` and `step` cut into slices, for protocols whose rounds are long (a batch of
   * DKLs23 presignatures). Each `next()` does one slice; the result is the generator's return value
   * and equals what start / step return. A caller runs other work between slices, so one heavy round
   * does not hold up short requests behind it.
   */
  startSliced?(params: P): Generator<void, { state: S; outgoing: ProtocolMessage[] }, void>;
  stepSliced?(state: S, incoming: readonly ProtocolMessage[]): Generator<void, Step<S, O>, void>;
}

/** Runs a sliced start / step to its end without pausing (what start / step do for batchOf). */
export function runSlices<T>(slices: Generator<void, T, void>): T {
  for (;;) {
    const r = slices.next();
    if (r.done) return r.value;
  }
}

/**
 * Why a protocol aborted. `blame` names the parties whose messages failed a check (identifiable
 * abort); empty when the fault cannot be attributed (e.g. an inconsistent relay by the coordinator).
 */
export type AbortReason =
  | 'malformed-message' // payload does not decode, wrong lengths, invalid points
  | 'missing-message' // an expected message did not arrive
  | 'unexpected-message' // wrong round, unknown sender, duplicate
  | 'proof-failed' // proof of knowledge or share verification failed
  | 'inconsistent-broadcast' // parties saw different broadcast transcripts
  | 'ot-check-failed' // OT-extension consistency check (DKLs23): the counterparty is banned for the keyset
  | 'mul-check-failed' // multiplication / Gamma consistency check (DKLs23): banned likewise
  | 'check-failed'; // any other protocol check

export class ProtocolAbort extends Error {
  override readonly name = 'ProtocolAbort';
  constructor(
    readonly reason: AbortReason,
    readonly blame: readonly number[],
    message: string,
  ) {
    super(message);
  }
}

/** Checks that exactly one message arrived from each expected sender for this round. */
export function collectRound(
  incoming: readonly ProtocolMessage[],
  round: number,
  self: number,
  senders: readonly number[],
  kind: 'broadcast' | 'p2p',
): Map<number, ProtocolMessage> {
  const got = new Map<number, ProtocolMessage>();
  for (const m of incoming) {
    if (m.round !== round) continue;
    if (kind === 'broadcast' ? m.to !== 0 : m.to !== self) continue;
    if (!senders.includes(m.from) || m.from === self) {
      throw new ProtocolAbort('unexpected-message', [], `round ${round}: message from unexpected party ${m.from}`);
    }
    if (got.has(m.from)) {
      throw new ProtocolAbort('unexpected-message', [m.from], `round ${round}: duplicate message from party ${m.from}`);
    }
    got.set(m.from, m);
  }
  const missing = senders.filter((s) => s !== self && !got.has(s));
  if (missing.length > 0) {
    throw new ProtocolAbort('missing-message', missing, `round ${round}: no ${kind} message from parties ${missing.join(', ')}`);
  }
  return got;
}
