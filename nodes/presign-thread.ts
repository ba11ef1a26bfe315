/**
 * DKLs23 presigning on a thread of its own (presign-worker.ts is the other end), at a lower
 * scheduling priority than the node's main thread. Presigning is background work that refills the
 * coordinator's pool; the main thread answers SignShares, which completes a signature someone is
 * waiting for. On a multi-core machine the two run in parallel; where the cores are shared (several
 * nodes and the coordinator on one machine) the scheduler runs the waiting request first.
 *
 * The thread holds the protocol states; the main thread keeps the session table, the envelopes and
 * the peer keys (nodes/sessions.ts), and seals the presignatures the thread returns. A key share
 * crosses once per key version, encoded, and stays in the thread's memory like the main thread's.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { encodeEcdsaKeyShare, type EcdsaKeyShare } from '../crypto/ecdsa/keygen.js';
import type { PresignParams } from '../crypto/ecdsa/presign.js';
import { ProtocolAbort, type AbortReason, type ProtocolMessage, type Step } from '../crypto/protocol.js';
import { wholeNumberFromEnv } from '../runtime/env-number.js';
import type { Logger } from '../runtime/log.js';
import type { ProtocolRunner } from './sessions.js';
import type { Fault } from './signer.js';

/** One presignature's parameters without the key share (the thread has that under `keyRef`). */
export interface PresignInstance {
  sessionId: string;
  signers: readonly number[];
  tweak: bigint | undefined;
}

/** A call that gets an answer. */
type PresignCall =
  | { kind: 'start'; sessionId: string; keyRef: string; key?: Uint8Array; count: number; instances: PresignInstance[] }
  | { kind: 'step'; sessionId: string; incoming: readonly ProtocolMessage[] };

export type PresignRequest = (PresignCall & { id: number }) | { id: 0; kind: 'drop'; sessionId: string };

export interface PresignReply {
  id: number;
  outgoing?: ProtocolMessage[];
  done?: boolean;
  output?: unknown;
  /** The thread's priority as set at start (id 0), or why it could not be lowered. */
  nice?: { applied: number } | { failed: string };
  error?: { message: string; abort?: { reason: AbortReason; blame: number[] } };
}

export interface PresignWorkerData {
  nice: number;
  fault?: Fault;
}

export const DEFAULT_PRESIGN_NICE = 10;
const NICE_ENV = 'CUSTODY_PRESIGN_NICE';
const THREAD_ENV = 'CUSTODY_PRESIGN_THREAD';

/** The nice value for the presigning thread: CUSTODY_PRESIGN_NICE (0 to 19; 0 keeps the node's priority). */
export function presignNice(env: NodeJS.ProcessEnv = process.env): number {
  return wholeNumberFromEnv(env, NICE_ENV, DEFAULT_PRESIGN_NICE, 19, "keeps the node's priority");
}

/** The compiled worker, unless CUSTODY_PRESIGN_THREAD=0 or running from the TypeScript sources (presigning then runs on the main thread). */
export function presignWorkerFile(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env[THREAD_ENV] === '0') return undefined;
  const file = fileURLToPath(new URL('./presign-worker.js', import.meta.url));
  return existsSync(file) ? file : undefined;
}

function toError(e: NonNullable<PresignReply['error']>): Error {
  return e.abort ? new ProtocolAbort(e.abort.reason, e.abort.blame, e.message) : new Error(e.message);
}

/** Names one version of a key share: a refresh (epoch) or a setup re-run (transcript) makes a new one. */
export function keyRef(keysetId: string, epoch: number, key: EcdsaKeyShare): string {
  return `${keysetId}/${epoch}/${Buffer.from(key.transcriptHash).toString('hex')}`;
}

export class PresignThread {
  private worker: Worker | undefined;
  private readonly waiting = new Map<number, { resolve: (r: PresignReply) => void; reject: (e: Error) => void }>();
  /** Key versions the current worker has been sent. */
  private sent = new Set<string>();
  private nextId = 1;

  constructor(
    private readonly file: string,
    private readonly data: PresignWorkerData,
    private readonly log: Logger,
  ) {}

  /** A runner for one presigning session of `count` under this key version. */
  runner(ref: string, key: EcdsaKeyShare, count: number): ProtocolRunner {
    return {
      start: async (sessionId, params) => {
        const list = (count === 1 ? [params] : params) as PresignParams[];
        const instances = list.map((p) => ({ sessionId: p.sessionId, signers: p.signers, tweak: p.tweak }));
        const worker = this.current();
        let bytes: Uint8Array | undefined;
        if (!this.sent.has(ref)) {
          bytes = encodeEcdsaKeyShare(key);
          this.sent.add(ref);
        }
        const reply = this.call(worker, { kind: 'start', sessionId, keyRef: ref, ...(bytes ? { key: bytes } : {}), count, instances });
        // postMessage has copied it; this copy of the secret goes now, not after the thread answers.
        bytes?.fill(0);
        return { state: null, outgoing: (await reply).outgoing ?? [] };
      },
      step: async (sessionId, _state, incoming): Promise<Step<unknown, unknown>> => {
        const r = await this.call(this.current(), { kind: 'step', sessionId, incoming });
        return r.done ? { done: true, output: r.output, outgoing: r.outgoing ?? [] } : { done: false, state: null, outgoing: r.outgoing ?? [] };
      },
      drop: (sessionId) => this.worker?.postMessage({ id: 0, kind: 'drop', sessionId } satisfies PresignRequest),
    };
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    for (const waiting of this.waiting.values()) waiting.reject(new Error('the node is stopping'));
    this.waiting.clear();
    await w?.terminate();
  }

  private current(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(this.file, { workerData: this.data });
    worker.unref();
    this.worker = worker;
    this.sent = new Set();
    worker.on('message', (r: PresignReply) => {
      if (r.id === 0) {
        if (r.nice && 'failed' in r.nice) this.log.warn({ reason: r.nice.failed }, 'could not lower the presigning thread priority; it runs at the node priority');
        else if (r.nice) this.log.info({ nice: r.nice.applied }, 'presigning thread started');
        return;
      }
      const w = this.waiting.get(r.id);
      if (!w) return;
      this.waiting.delete(r.id);
      w.resolve(r);
    });
    const fail = (e: Error) => {
      if (this.worker !== worker) return;
      // Sessions on the lost thread fail at their next round; the next session starts a new thread.
      this.worker = undefined;
      for (const w of this.waiting.values()) w.reject(e);
      this.waiting.clear();
      this.log.error({ err: e.message }, 'presigning thread stopped');
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the presigning thread exited (code ${code})`)));
    return worker;
  }

  private call(worker: Worker, m: PresignCall): Promise<PresignReply> {
    const id = this.nextId++;
    return new Promise<PresignReply>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ ...m, id } satisfies PresignRequest);
    }).then((r) => {
      if (r.error) throw toError(r.error);
      return r;
    });
  }
}
