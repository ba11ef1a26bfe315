/**
 * Several instances of one protocol run in lockstep as one protocol (DKLs23 presigning makes a
 * batch of presignatures per session this way). Each round, the instances' messages from one party
 * to one party (or its broadcast) travel as one message, so the node layer seals or signs, the
 * coordinator relays and the node stores once per round instead of once per instance.
 *
 * The instances stay independent: each has its own parameters (its own session id) and state, and
 * sees exactly the messages it would see alone. A message that does not split into one part per
 * instance is malformed and blames its sender; an abort in any instance aborts the batch, with
 * that instance's reason and blame.
 */
import { decodeFields, WireError } from './ecdsa/wire.js';
import { ProtocolAbort, runSlices, type Protocol, type ProtocolMessage, type Step } from './protocol.js';
import { bytesEqual, encodeFields } from './transcript.js';

const TAG = 'custody/protocol-batch/v1';
const TAG_BYTES = new TextEncoder().encode(TAG);

/** Most instances per batch: bounds what one session may ask a node to hold and compute. */
export const MAX_PROTOCOL_BATCH = 16;

/**
 * The session id of instance i of a batch session of `count` (node.proto, EcdsaPresignParams.count):
 * a session of one keeps its own id. The node binds it into that instance; the coordinator names it.
 */
export function instanceSessionId(sessionId: string, count: number, i: number): string {
  return count === 1 ? sessionId : `${sessionId}/${i}`;
}

/** One message per (sender, receiver, round), carrying every instance's payload in instance order. */
function merge(perInstance: readonly ProtocolMessage[][]): ProtocolMessage[] {
  const key = (m: ProtocolMessage) => `${m.from}/${m.to}/${m.round}`;
  const merged = new Map<string, { head: ProtocolMessage; payloads: Uint8Array[] }>();
  perInstance.forEach((messages, i) => {
    for (const m of messages) {
      const k = key(m);
      let slot = merged.get(k);
      if (!slot) merged.set(k, (slot = { head: m, payloads: [] }));
      // Instances of one protocol with the same parties send the same messages in the same rounds.
      if (slot.payloads.length !== i) throw new Error(`batch instance ${i} left lockstep (message ${k})`);
      slot.payloads.push(m.payload);
    }
  });
  return [...merged.values()].map(({ head, payloads }) => {
    if (payloads.length !== perInstance.length) throw new Error(`batch instances left lockstep (message ${key(head)})`);
    return { from: head.from, to: head.to, round: head.round, payload: encodeFields([TAG, ...payloads]) };
  });
}

/** Each incoming message split into its instances' parts. */
function split(incoming: readonly ProtocolMessage[], count: number): ProtocolMessage[][] {
  const perInstance: ProtocolMessage[][] = Array.from({ length: count }, () => []);
  for (const m of incoming) {
    let parts: Uint8Array[];
    try {
      parts = decodeFields(m.payload);
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      parts = [];
    }
    if (parts.length !== count + 1 || !bytesEqual(parts[0]!, TAG_BYTES)) {
      throw new ProtocolAbort('malformed-message', [m.from], `round ${m.round}: message from party ${m.from} is not a batch of ${count}`);
    }
    for (let i = 0; i < count; i++) perInstance[i]!.push({ from: m.from, to: m.to, round: m.round, payload: parts[i + 1]! });
  }
  return perInstance;
}

export function batchOf<P, S, O>(protocol: Protocol<P, S, O>): Protocol<readonly P[], S[], O[]> {
  // One slice per instance: the instances are independent until their messages are merged.
  function* startSliced(params: readonly P[]): Generator<void, { state: S[]; outgoing: ProtocolMessage[] }, void> {
    if (params.length < 1 || params.length > MAX_PROTOCOL_BATCH) throw new RangeError(`a batch runs 1 to ${MAX_PROTOCOL_BATCH} instances`);
    const started: { state: S; outgoing: ProtocolMessage[] }[] = [];
    for (const p of params) {
      if (started.length) yield;
      started.push(protocol.start(p));
    }
    return { state: started.map((s) => s.state), outgoing: merge(started.map((s) => s.outgoing)) };
  }
  function* stepSliced(states: S[], incoming: readonly ProtocolMessage[]): Generator<void, Step<S[], O[]>, void> {
    const parts = split(incoming, states.length);
    const steps: Step<S, O>[] = [];
    for (const [i, s] of states.entries()) {
      if (i) yield;
      steps.push(protocol.step(s, parts[i]!));
    }
    const outgoing = merge(steps.map((s) => s.outgoing));
    const done = steps.filter((s) => s.done).length;
    if (done === steps.length) return { done: true, output: steps.map((s) => (s as Extract<Step<S, O>, { done: true }>).output), outgoing };
    if (done !== 0) throw new Error('batch instances left lockstep (some finished before others)');
    return { done: false, state: steps.map((s) => (s as Extract<Step<S, O>, { done: false }>).state), outgoing };
  }
  return {
    name: `${protocol.name}-batch`,
    rounds: protocol.rounds,
    start: (params) => runSlices(startSliced(params)),
    step: (states, incoming) => runSlices(stepSliced(states, incoming)),
    startSliced,
    stepSliced,
  };
}
