/**
 * The node's session driver (nodes/sessions.ts) with a protocol that has sliced rounds: other work
 * runs between the slices, a second call for a session that is still working is refused, and a
 * session ended while its round ran neither completes nor answers as if it had.
 */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import type { IdentityKeys } from '../../crypto/peer-box.js';
import { runSlices, type Protocol, type Step } from '../../crypto/protocol.js';
import type { SessionPeers } from '../../nodes/envelope.js';
import type { Roster } from '../../nodes/roster.js';
import { Sessions, type SessionKind } from '../../nodes/sessions.js';
import { RpcError } from '../../runtime/grpc.js';

const SLICES = 4;

/** Counts to `rounds` with no messages (so no envelopes are needed); every call takes SLICES slices. */
function counter(rounds: number): Protocol<number, number, string> {
  function* startSliced(p: number): Generator<void, { state: number; outgoing: [] }, void> {
    for (let i = 1; i < SLICES; i++) yield;
    return { state: p, outgoing: [] };
  }
  function* stepSliced(state: number): Generator<void, Step<number, string>, void> {
    for (let i = 1; i < SLICES; i++) yield;
    return state + 1 === rounds ? { done: true, output: `counted to ${rounds}`, outgoing: [] } : { done: false, state: state + 1, outgoing: [] };
  }
  return { name: 'counter', rounds, start: (p) => runSlices(startSliced(p)), step: (s) => runSlices(stepSliced(s)), startSliced, stepSliced };
}

function kindOf(protocol: Protocol<number, number, string>) {
  const completed: string[] = [];
  const kind: SessionKind<number, number, string, string> = {
    protocol,
    complete: async (_id, out) => (completed.push(out), out),
    commit: async () => undefined,
    abort: async () => undefined,
    releaseOnCompletion: true,
  };
  return { kind, completed };
}

const identity = {} as IdentityKeys;
const roster = { nodes: new Map() } as unknown as Roster;
const peers = (sessionId: string): SessionPeers => ({ sessionId, selfIndex: 1, selfNodeId: 'node-1', nodeIds: new Map([[1, 'node-1']]) });

async function codeOf(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(RpcError);
    return (e as RpcError).code;
  }
}

describe('node sessions with sliced rounds', () => {
  it('lets other work run between the slices of a round and completes as a whole round would', async () => {
    const sessions = new Sessions(identity);
    const { kind, completed } = kindOf(counter(2));
    const order: string[] = [];
    const started = sessions.start(roster, peers('s1'), kind, 0).then(() => order.push('start done'));
    setImmediate(() => order.push('other work'));
    await started;
    expect(order).toEqual(['other work', 'start done']);
    expect(await sessions.step('s1', 1, [])).toEqual({ outgoing: [] });
    expect(await sessions.step('s1', 2, [])).toEqual({ outgoing: [], result: 'counted to 2' });
    expect(completed).toEqual(['counted to 2']);
    // Released on completion.
    expect(sessions.has('s1')).toBe(false);
    sessions.close();
  });

  it('refuses a second call for a session while its round is running, and the first still completes', async () => {
    const sessions = new Sessions(identity);
    const { kind, completed } = kindOf(counter(1));
    const start = sessions.start(roster, peers('s2'), kind, 0);
    // The id is taken as soon as the start begins.
    expect(await codeOf(sessions.start(roster, peers('s2'), kind, 0))).toBe(status.ALREADY_EXISTS);
    expect(await codeOf(sessions.step('s2', 1, []))).toBe(status.FAILED_PRECONDITION);
    await start;
    const first = sessions.step('s2', 1, []);
    const second = sessions.step('s2', 1, []);
    expect(await codeOf(second)).toBe(status.FAILED_PRECONDITION);
    expect(await first).toEqual({ outgoing: [], result: 'counted to 1' });
    expect(completed).toEqual(['counted to 1']);
    sessions.close();
  });

  it('does not complete a session that was aborted while its round ran', async () => {
    const sessions = new Sessions(identity);
    const { kind, completed } = kindOf(counter(1));
    await sessions.start(roster, peers('s3'), kind, 0);
    const step = sessions.step('s3', 1, []);
    await sessions.finish('s3', false);
    expect(await codeOf(step)).toBe(status.ABORTED);
    expect(completed).toEqual([]);
    expect(sessions.has('s3')).toBe(false);
    // Nothing is left to step.
    expect(await codeOf(sessions.step('s3', 1, []))).toBe(status.NOT_FOUND);
    sessions.close();
  });

  it('runs a protocol without sliced forms in one go', async () => {
    const sessions = new Sessions(identity);
    const sliced = counter(1);
    const { kind, completed } = kindOf({ name: 'whole', rounds: 1, start: sliced.start, step: sliced.step });
    await sessions.start(roster, peers('s4'), kind, 0);
    expect(await sessions.step('s4', 1, [])).toEqual({ outgoing: [], result: 'counted to 1' });
    expect(completed).toEqual(['counted to 1']);
    sessions.close();
  });
});
