/**
 * The presigning thread (presign-thread.ts is the other end): runs DKLs23 presigning sessions'
 * state machines, one message at a time in arrival order, at the priority it was given.
 * It never logs: errors go back to the main thread as the protocol's own abort or a message.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { decodeEcdsaKeyShare, type EcdsaKeyShare } from '../crypto/ecdsa/keygen.js';
import type { PresignParams } from '../crypto/ecdsa/presign.js';
import { parseGroupBackend, setGroupBackend } from '../crypto/group/index.js';
import { ProtocolAbort, type Protocol } from '../crypto/protocol.js';
import type { PresignReply, PresignRequest, PresignWorkerData } from './presign-thread.js';
import { presignProtocol } from './presign-protocol.js';

const port = parentPort!;
const data = workerData as PresignWorkerData;
setGroupBackend(parseGroupBackend(process.env.CUSTODY_GROUP_BACKEND));

/** Key versions seen (a handful per node: keysets times refreshes); the oldest goes past the bound. */
const MAX_KEYS = 256;
const keys = new Map<string, EcdsaKeyShare>();
const sessions = new Map<string, { protocol: Protocol<unknown, unknown, unknown>; state: unknown }>();

function lowerPriority(nice: number): PresignReply['nice'] {
  if (nice === 0) return { applied: 0 };
  try {
    // On Linux a thread is a task with its own nice value: /proc/thread-self names this one.
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    setPriority(tid, nice);
    return { applied: nice };
  } catch (e) {
    return { failed: e instanceof Error ? e.message : String(e) };
  }
}

function handle(m: Exclude<PresignRequest, { kind: 'drop' }>): PresignReply {
  if (m.kind === 'start') {
    if (m.key) {
      keys.set(m.keyRef, decodeEcdsaKeyShare(m.key));
      m.key.fill(0);
      if (keys.size > MAX_KEYS) keys.delete(keys.keys().next().value!);
    }
    const key = keys.get(m.keyRef);
    if (!key) throw new Error(`presigning thread: key ${m.keyRef} was not sent`);
    const params: PresignParams[] = m.instances.map((p) => ({ key, signers: p.signers, sessionId: p.sessionId, ...(p.tweak !== undefined ? { tweak: p.tweak } : {}) }));
    const protocol = presignProtocol(m.count, data.fault);
    const started = protocol.start(m.count === 1 ? params[0] : params);
    sessions.set(m.sessionId, { protocol, state: started.state });
    return { id: m.id, outgoing: started.outgoing };
  }
  const s = sessions.get(m.sessionId);
  if (!s) throw new Error(`presigning thread: no session ${m.sessionId}`);
  let next;
  try {
    next = s.protocol.step(s.state, m.incoming);
  } catch (e) {
    sessions.delete(m.sessionId);
    throw e;
  }
  if (!next.done) {
    s.state = next.state;
    return { id: m.id, outgoing: next.outgoing };
  }
  sessions.delete(m.sessionId);
  return { id: m.id, done: true, output: next.output, outgoing: next.outgoing };
}

port.on('message', (m: PresignRequest) => {
  if (m.kind === 'drop') {
    sessions.delete(m.sessionId);
    return;
  }
  let reply: PresignReply;
  try {
    reply = handle(m);
  } catch (e) {
    reply = {
      id: m.id,
      error: e instanceof ProtocolAbort ? { message: e.message, abort: { reason: e.reason, blame: [...e.blame] } } : { message: e instanceof Error ? e.message : String(e) },
    };
  }
  port.postMessage(reply);
});

port.postMessage({ id: 0, nice: lowerPriority(data.nice) } satisfies PresignReply);
