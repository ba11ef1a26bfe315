/**
 * In-memory driver for any crypto/ state machine: all parties in one process, messages routed by
 * `to` (0 = every other party). Test helper only: it holds every party's secrets at once.
 */
import { ProtocolAbort, type Protocol, type ProtocolMessage } from '../../crypto/protocol.js';

/** Sees every (message, receiver) delivery; returns what the receiver actually gets. */
export type Tamper = (m: ProtocolMessage, receiver: number) => ProtocolMessage[];

export interface RunResult<O> {
  outputs: Map<number, O>;
  aborts: Map<number, ProtocolAbort>;
}

export interface DriveOptions<S> {
  tamper?: Tamper;
  afterStart?: (states: Map<number, S>, outgoing: ProtocolMessage[]) => ProtocolMessage[];
}

/** The routing loop, pausing (yield) after every party's start and step; returns the result. */
function* drive<P, S, O>(proto: Protocol<P, S, O>, params: ReadonlyMap<number, P>, opts: DriveOptions<S>): Generator<void, RunResult<O>> {
  const tamper = opts.tamper ?? ((m) => [m]);
  const states = new Map<number, S>();
  let outgoing: ProtocolMessage[] = [];
  for (const [i, p] of params) {
    const r = proto.start(p);
    states.set(i, r.state);
    outgoing.push(...r.outgoing);
    yield;
  }
  if (opts.afterStart) outgoing = opts.afterStart(states, outgoing);
  const outputs = new Map<number, O>();
  const aborts = new Map<number, ProtocolAbort>();
  for (let guard = 0; guard < 64 && outputs.size + aborts.size < params.size; guard++) {
    const next: ProtocolMessage[] = [];
    for (const i of params.keys()) {
      if (outputs.has(i) || aborts.has(i)) continue;
      const inbox = outgoing.filter((m) => m.from !== i && (m.to === 0 || m.to === i)).flatMap((m) => tamper(m, i));
      try {
        const r = proto.step(states.get(i)!, inbox);
        next.push(...r.outgoing);
        if (r.done) outputs.set(i, r.output);
        else states.set(i, r.state);
      } catch (e) {
        if (!(e instanceof ProtocolAbort)) throw e;
        aborts.set(i, e);
      }
      yield;
    }
    outgoing = next;
  }
  return { outputs, aborts };
}

export function runProtocol<P, S, O>(proto: Protocol<P, S, O>, params: ReadonlyMap<number, P>, opts: DriveOptions<S> = {}): RunResult<O> {
  const it = drive(proto, params, opts);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
  }
}

/**
 * Same routing, but yields to the event loop between party steps: a multi-second synchronous
 * keygen would otherwise starve vitest's worker RPC ("Timeout calling onTaskUpdate").
 */
export async function runProtocolAsync<P, S, O>(proto: Protocol<P, S, O>, params: ReadonlyMap<number, P>, opts: DriveOptions<S> = {}): Promise<RunResult<O>> {
  const it = drive(proto, params, opts);
  for (;;) {
    const r = it.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
