/**
 * Live protocol sessions on a node. One generic driver for every protocol (DESIGN.md section 4):
 * a session is a state machine plus who its peers are; a new protocol only adds a `SessionKind`.
 * Any failure drops the session: nothing half-done survives, and a retry starts a new session.
 */
import { status } from '@grpc/grpc-js';
import type { IdentityKeys } from '../crypto/peer-box.js';
import { ProtocolAbort, type Protocol, type ProtocolMessage, type Step } from '../crypto/protocol.js';
import type { PeerMessage } from '../proto/gen/custody/v1/node_pb.js';
import { RpcError } from '../runtime/grpc.js';
import { nextLoopTurn } from '../runtime/loop-turn.js';
import { unwrapIncoming, wrapOutgoing, type SessionPeers } from './envelope.js';
import type { Roster } from './roster.js';

/** What a protocol's output becomes on this node: sealed locally, and a public result for the coordinator. */
export interface SessionKind<P, S, O, R> {
  protocol: Protocol<P, S, O>;
  /** Persists the secret part of the output (pending until FinishSession) and returns the public part. */
  complete(sessionId: string, output: O): Promise<R>;
  commit(sessionId: string): Promise<void>;
  abort(sessionId: string): Promise<void>;
  /** Called (and awaited) when the protocol aborts, before the error goes back to the coordinator. */
  onProtocolAbort?(e: ProtocolAbort): Promise<void>;
  /**
   * Nothing to commit: the session is forgotten once its output is complete, so the coordinator
   * needs no FinishSession call (presignatures, sealed at completion).
   */
  releaseOnCompletion?: boolean;
  /** Runs the protocol elsewhere (presigning: nodes/presign-thread.ts); `protocol` runs here otherwise. */
  runner?: ProtocolRunner;
}

/** Where a session's state machine runs when not on this thread; the state it returns is opaque here. */
export interface ProtocolRunner {
  start(sessionId: string, params: unknown): Promise<{ state: unknown; outgoing: ProtocolMessage[] }>;
  step(sessionId: string, state: unknown, incoming: readonly ProtocolMessage[]): Promise<Step<unknown, unknown>>;
  /** The session ended before its output: forget its state. */
  drop(sessionId: string): void;
}

interface Live {
  peers: SessionPeers;
  /** The roster the session started with: its peers' keys stay the same for all its rounds. */
  roster: Roster;
  kind: SessionKind<unknown, unknown, unknown, unknown>;
  state: unknown;
  /** Round whose messages we expect next; 0 once completed. */
  nextRound: number;
  completed: boolean;
  /** A start or step is under way (it lets other calls run between its slices). */
  busy: boolean;
  expiresAt: number;
}

const SESSION_TTL_MS = 5 * 60_000;

/** Converts a protocol abort into a gRPC error that names the blamed parties in trailing metadata. */
export function abortToRpc(e: ProtocolAbort): RpcError {
  const code = e.reason === 'unexpected-message' || e.reason === 'missing-message' ? status.FAILED_PRECONDITION : status.INVALID_ARGUMENT;
  const blame = e.blame.length ? ` (blame: party ${e.blame.join(', ')})` : '';
  // The reason travels too: an OT or multiplication check failure gets the blamed party banned for the keyset.
  return new RpcError(code, `protocol aborted, ${e.reason}: ${e.message}${blame}`, { 'custody-blame': e.blame.join(','), 'custody-abort-reason': e.reason });
}

/** Runs the sliced form when the protocol has one, letting other work through between slices. */
async function sliced<T>(slices: Generator<void, T, void> | undefined, whole: () => T): Promise<T> {
  if (!slices) return whole();
  for (;;) {
    const r = slices.next();
    if (r.done) return r.value;
    await nextLoopTurn();
  }
}

export class Sessions {
  private readonly live = new Map<string, Live>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly identity: IdentityKeys) {
    this.timer = setInterval(() => void this.sweep(), 30_000);
    this.timer.unref();
  }

  has(sessionId: string): boolean {
    return this.live.has(sessionId);
  }

  async start<P, S, O, R>(
    roster: Roster,
    peers: SessionPeers,
    kind: SessionKind<P, S, O, R>,
    params: P,
  ): Promise<PeerMessage[]> {
    const sessionId = peers.sessionId;
    if (this.live.has(sessionId)) throw new RpcError(status.ALREADY_EXISTS, `session ${sessionId} already exists`);
    const s: Live = {
      peers,
      roster,
      kind: kind as SessionKind<unknown, unknown, unknown, unknown>,
      state: undefined,
      nextRound: 1,
      completed: false,
      busy: true,
      expiresAt: Date.now() + SESSION_TTL_MS,
    };
    // Registered before the work: a second start with this id is refused while this one runs.
    this.live.set(sessionId, s);
    let started;
    try {
      started = kind.runner
        ? await kind.runner.start(sessionId, params)
        : await sliced(kind.protocol.startSliced?.(params), () => kind.protocol.start(params));
    } catch (e) {
      if (this.live.get(sessionId) === s) this.live.delete(sessionId);
      throw e;
    }
    this.ensureLive(sessionId, s, 0);
    s.state = started.state;
    s.busy = false;
    return wrapOutgoing(this.identity, roster, peers, started.outgoing);
  }

  async step(sessionId: string, round: number, incoming: readonly PeerMessage[]): Promise<{ outgoing: PeerMessage[]; result?: unknown }> {
    const s = this.live.get(sessionId);
    if (!s) throw new RpcError(status.NOT_FOUND, `unknown or expired session ${sessionId}`);
    if (s.busy) throw new RpcError(status.FAILED_PRECONDITION, `session ${sessionId} is busy with an earlier call; send the next round after that one answers`);
    if (s.completed || round !== s.nextRound) {
      throw new RpcError(status.FAILED_PRECONDITION, `session ${sessionId} expects round ${s.nextRound}, got round ${round}`);
    }
    let next;
    s.busy = true;
    try {
      const messages = unwrapIncoming(this.identity, s.roster, s.peers, round, incoming);
      const { protocol, runner } = s.kind;
      next = runner
        ? await runner.step(sessionId, s.state, messages)
        : await sliced(protocol.stepSliced?.(s.state, messages), () => protocol.step(s.state, messages));
    } catch (e) {
      // A session ended meanwhile (finish, expiry) was dropped by whoever ended it.
      if (this.live.get(sessionId) === s) await this.drop(sessionId);
      if (e instanceof ProtocolAbort) {
        await s.kind.onProtocolAbort?.(e);
        throw abortToRpc(e);
      }
      throw e;
    } finally {
      s.busy = false;
    }
    this.ensureLive(sessionId, s, round);
    const outgoing = wrapOutgoing(this.identity, s.roster, s.peers, next.outgoing);
    if (!next.done) {
      s.state = next.state;
      s.nextRound = round + 1;
      return { outgoing };
    }
    s.completed = true;
    s.state = undefined;
    try {
      const result = await s.kind.complete(sessionId, next.output);
      if (s.kind.releaseOnCompletion) this.live.delete(sessionId);
      return { outgoing, result };
    } catch (e) {
      await this.drop(sessionId);
      throw e;
    }
  }

  /** After the slices: the session may have been finished or swept meanwhile; its result is then void. */
  private ensureLive(sessionId: string, s: Live, round: number): void {
    if (this.live.get(sessionId) !== s) {
      throw new RpcError(status.ABORTED, `session ${sessionId} ended while ${round ? `round ${round}` : 'its start'} ran`);
    }
  }

  async finish(sessionId: string, commit: boolean): Promise<void> {
    const s = this.live.get(sessionId);
    if (!s) throw new RpcError(status.NOT_FOUND, `unknown or expired session ${sessionId}`);
    if (commit && !s.completed) throw new RpcError(status.FAILED_PRECONDITION, `session ${sessionId} has not completed`);
    this.live.delete(sessionId);
    if (!s.completed) s.kind.runner?.drop(sessionId);
    if (commit) await s.kind.commit(sessionId);
    else await s.kind.abort(sessionId);
  }

  private async drop(sessionId: string): Promise<void> {
    const s = this.live.get(sessionId);
    this.live.delete(sessionId);
    if (s && !s.completed) s.kind.runner?.drop(sessionId);
    if (s) await s.kind.abort(sessionId).catch(() => undefined);
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const [id, s] of this.live) if (s.expiresAt < now) await this.drop(id);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
