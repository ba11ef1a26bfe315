/**
 * Drives any multi-round protocol session across nodes (DESIGN.md section 4): starts it on every
 * participant (rounds of concurrent sessions share RunRounds calls, round-batcher.ts), relays each round's messages (ciphertext, for point-to-point ones) to their
 * receivers, and collects every node's output. On any failure it aborts the session everywhere
 * and reports who is to blame, so the caller can retry with another quorum.
 */
import { randomUUID } from 'node:crypto';
import type { PeerMessage, RunRoundRequest, RunRoundResponse } from '../proto/gen/custody/v1/node_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { RunRoundRequestSchema } from '../proto/gen/custody/v1/node_pb.js';
import { errorCode, errorMessage, isUnreachable, type NodeRegistry } from './node-registry.js';
import { RoundBatcher } from './round-batcher.js';

export interface SessionParticipant {
  index: number;
  nodeId: string;
}

export class SessionFailed extends Error {
  override readonly name = 'SessionFailed';
  constructor(
    message: string,
    /** Node ids blamed by a verifiable check. */
    readonly blamed: string[],
    /** Node ids that could not be reached. */
    readonly unreachable: string[],
    readonly code?: number,
    /** The protocol's abort reason as a node reported it (`custody-abort-reason`), e.g. 'ot-check-failed'. */
    readonly reason?: string,
  ) {
    super(message);
  }
}

const ROUND_DEADLINE_MS = 30_000;
const MAX_ROUNDS = 16;

type Params = MessageInitShape<typeof RunRoundRequestSchema>['params'];

/** One round batcher per node registry: rounds of concurrent sessions share RunRounds calls. */
const batchers = new WeakMap<NodeRegistry, RoundBatcher>();
function roundsOf(registry: NodeRegistry): RoundBatcher {
  let b = batchers.get(registry);
  if (!b) {
    b = new RoundBatcher(registry, ROUND_DEADLINE_MS);
    batchers.set(registry, b);
  }
  return b;
}

export async function runSession(
  registry: NodeRegistry,
  participants: readonly SessionParticipant[],
  params: Params,
  sessionId: string = randomUUID(),
): Promise<{ sessionId: string; outputs: Map<string, RunRoundResponse['output']> }> {
  const byIndex = new Map(participants.map((p) => [p.index, p.nodeId]));
  const outputs = new Map<string, RunRoundResponse['output']>();
  let inbox = new Map<string, PeerMessage[]>();

  const rounds = roundsOf(registry);
  const call = async (p: SessionParticipant, req: MessageInitShape<typeof RunRoundRequestSchema>) => {
    try {
      return await rounds.run(p.nodeId, req);
    } catch (e) {
      throw { participant: p, error: e };
    }
  };

  try {
    for (let round = 0; round <= MAX_ROUNDS; round++) {
      const pending = participants.filter((p) => !outputs.has(p.nodeId));
      if (pending.length === 0) return { sessionId, outputs };
      const results = await Promise.allSettled(
        pending.map((p) =>
          call(p, round === 0 ? { sessionId, round, params } : { sessionId, round, incoming: inbox.get(p.nodeId) ?? [] }),
        ),
      );
      const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as { participant: SessionParticipant; error: unknown }] : []));
      if (failures.length) throw failures;
      const next = new Map<string, PeerMessage[]>();
      results.forEach((r, i) => {
        const res = (r as PromiseFulfilledResult<RunRoundResponse>).value;
        const sender = pending[i]!;
        for (const m of res.outgoing) {
          if (m.from !== sender.index) throw [{ participant: sender, error: new Error(`node sent a message as party ${m.from}`) }];
          const receivers = m.to === 0 ? participants.filter((x) => x.index !== sender.index) : [{ nodeId: byIndex.get(m.to)! }];
          for (const rcv of receivers) {
            if (!rcv.nodeId) continue;
            const list = next.get(rcv.nodeId) ?? [];
            list.push(m);
            next.set(rcv.nodeId, list);
          }
        }
        if (res.output.case !== undefined) outputs.set(sender.nodeId, res.output);
      });
      inbox = next;
    }
    throw new SessionFailed(`session ${sessionId} did not finish in ${MAX_ROUNDS} rounds`, [], []);
  } catch (e) {
    await finishAll(registry, participants, sessionId, false);
    if (e instanceof SessionFailed) throw e;
    throw toSessionFailed(e as { participant: SessionParticipant; error: unknown }[] | unknown, byIndex);
  }
}

/** Commits or aborts a session on every participant; returns the node ids that failed to do it. */
export async function finishAll(
  registry: NodeRegistry,
  participants: readonly SessionParticipant[],
  sessionId: string,
  commit: boolean,
): Promise<string[]> {
  const results = await Promise.allSettled(
    participants.map((p) => registry.get(p.nodeId).client.finishSession({ sessionId, commit }, { deadlineMs: ROUND_DEADLINE_MS })),
  );
  return participants.filter((_, i) => results[i]!.status === 'rejected').map((p) => p.nodeId);
}

function toSessionFailed(failures: unknown, byIndex: Map<number, string>): SessionFailed {
  if (!Array.isArray(failures)) return new SessionFailed(errorMessage(failures), [], []);
  const blamed = new Set<string>();
  const unreachable: string[] = [];
  const messages: string[] = [];
  let code: number | undefined;
  let reason: string | undefined;
  for (const f of failures as { participant: SessionParticipant; error: unknown }[]) {
    const c = errorCode(f.error);
    code ??= c;
    messages.push(`${f.participant.nodeId}: ${errorMessage(f.error)}`);
    if (isUnreachable(c)) {
      unreachable.push(f.participant.nodeId);
      continue;
    }
    // A node that verified a peer's message names the faulty party in trailing metadata.
    reason ??= trailer(f.error, 'custody-abort-reason');
    for (const idx of blameOf(f.error)) {
      const id = byIndex.get(idx);
      if (id) blamed.add(id);
    }
  }
  return new SessionFailed(messages.join('; '), [...blamed], unreachable, code, reason);
}

function trailer(e: unknown, key: string): string | undefined {
  const md = (e as { metadata?: { get(key: string): unknown[] } }).metadata;
  const raw = md?.get?.(key)?.[0];
  return typeof raw === 'string' && raw !== '' ? raw : undefined;
}

function blameOf(e: unknown): number[] {
  const raw = trailer(e, 'custody-blame');
  if (raw === undefined) return [];
  return raw.split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
}

export type { RunRoundRequest };
