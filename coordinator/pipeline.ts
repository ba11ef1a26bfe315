/**
 * Asynchronous intake over NATS JetStream (docs/pipeline.md).
 *
 *   custody.requests.<client>  work-queue stream CUSTODY_REQUESTS; body: custody.v1.SignRequest;
 *                              Nats-Msg-Id = idempotency key (JetStream drops repeats in its window)
 *   custody.results.<client>   stream CUSTODY_RESULTS; body: custody.v1.SignResult; Nats-Msg-Id = request id
 *
 * One durable pull consumer shared by every coordinator: a message goes to one of them. It is
 * acked only after its request is committed to the database, so a crash before that redelivers
 * it, and the database's idempotency keys make the redelivery harmless. Results leave through an
 * outbox: stored with the request, published after the commit with the request id as message id
 * (JetStream drops a re-publish), marked published, and swept again after a crash.
 */
import { create, fromBinary, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import { SignRequestSchema, SignResultSchema } from '../proto/gen/custody/v1/api_pb.js';
import type { Logger } from '../runtime/log.js';
import { signRequestToProto, signResultToProto } from './api.js';
import { isTerminal, type Accepted, type RequestService, type SubmitItem } from './requests.js';
import type { Db } from './store/db.js';
import { durably } from './store/durably.js';
import { markResultsPublished, unpublishedResults, type SignRequestRow } from './store/repo.js';

export const REQUEST_STREAM = 'CUSTODY_REQUESTS';
export const RESULT_STREAM = 'CUSTODY_RESULTS';
export const REQUEST_SUBJECT = 'custody.requests';
export const RESULT_SUBJECT = 'custody.results';
export const CONSUMER = 'custody-coordinator';
const DUPLICATE_WINDOW_MS = 2 * 60_000;
// A coordinator that dies holding fetched messages delays them by this much; repeats are harmless.
const ACK_WAIT_MS = 20_000;
const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/;

export interface PipelineOptions {
  url: string;
  name: string;
  requests: RequestService;
  db: Db;
  log: Logger;
  /** Messages fetched per pull. */
  batch?: number;
  /** Requests being signed at once before the intake stops pulling. */
  maxInflight?: number;
}

interface Decoded {
  msg: JsMsg;
  client?: string;
  item?: SubmitItem;
  error?: string;
}

export class NatsPipeline {
  private stopped = false;
  private inflight = 0;
  private loopDone?: Promise<void>;
  private sweepTimer?: NodeJS.Timeout;
  private readonly toMark: string[] = [];
  private markTimer?: NodeJS.Timeout;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly opts: PipelineOptions,
  ) {}

  static async start(opts: PipelineOptions): Promise<NatsPipeline> {
    const nc = await connect({ servers: opts.url, name: opts.name, maxReconnectAttempts: -1, reconnectTimeWait: 250, waitOnFirstConnect: true });
    const jsm = await jetstreamManager(nc);
    await ensureStream(jsm, { name: REQUEST_STREAM, subjects: [`${REQUEST_SUBJECT}.>`], retention: RetentionPolicy.Workqueue });
    await ensureStream(jsm, { name: RESULT_STREAM, subjects: [`${RESULT_SUBJECT}.>`], retention: RetentionPolicy.Limits });
    await jsm.consumers.add(REQUEST_STREAM, {
      durable_name: CONSUMER,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(ACK_WAIT_MS),
      max_ack_pending: 10_000,
    });
    const p = new NatsPipeline(nc, jetstream(nc), opts);
    p.loopDone = p.loop();
    p.sweepTimer = setInterval(() => void p.sweep(), 2_000);
    p.sweepTimer.unref();
    void p.sweep();
    opts.log.info({ url: opts.url }, 'NATS intake started');
    return p;
  }

  /** Called by the request service when a request is stored as finished. */
  onFinished(row: SignRequestRow): void {
    if (row.source === 'nats') void this.publish(row);
  }

  private async loop(): Promise<void> {
    const { log } = this.opts;
    const max = this.opts.batch ?? 128;
    const maxInflight = this.opts.maxInflight ?? 2_048;
    while (!this.stopped) {
      try {
        if (this.inflight >= maxInflight) {
          await sleep(20);
          continue;
        }
        const consumer = await this.js.consumers.get(REQUEST_STREAM, CONSUMER);
        const batch: JsMsg[] = [];
        for await (const m of await consumer.fetch({ max_messages: Math.min(max, maxInflight - this.inflight), expires: 1_000 })) batch.push(m);
        if (batch.length) await this.handle(batch);
      } catch (e) {
        if (this.stopped) break;
        log.warn({ err: e instanceof Error ? e.message : String(e) }, 'NATS intake: fetch failed, retrying');
        await sleep(500);
      }
    }
  }

  private async handle(batch: JsMsg[]): Promise<void> {
    const decoded = batch.map(decode);
    for (const d of decoded.filter((x) => x.error)) {
      // Refused before acceptance: answer the client if we know it, and never redeliver.
      if (d.client) await this.publishResult(d.client, { errorCode: status.INVALID_ARGUMENT, errorMessage: d.error! }, `err-${d.msg.seq}`).catch(() => undefined);
      d.msg.term(d.error);
    }
    const byClient = new Map<string, Decoded[]>();
    for (const d of decoded.filter((x) => x.item)) byClient.set(d.client!, [...(byClient.get(d.client!) ?? []), d]);
    for (const [client, group] of byClient) {
      const accepted = await this.opts.requests.accept(group.map((d) => d.item!), { actor: `nats:${client}`, source: 'nats', clientId: client });
      // Committed: only now may the messages go.
      for (const d of group) d.msg.ack();
      accepted.forEach((a, i) => this.follow(a, group[i]!, client));
    }
  }

  private follow(a: Accepted, d: Decoded, client: string): void {
    if ('error' in a) {
      void this.publishResult(client, signResultToProto(a, d.item!.idempotencyKey), `err-${d.msg.seq}`).catch(() => undefined);
      return;
    }
    if (!a.fresh) {
      // A repeat: finished ones are answered again (JetStream drops the copy if the first is still
      // in its window); unfinished ones belong to a coordinator that will publish, or to the resumer.
      if (isTerminal(a.request)) void this.publish(a.request);
      return;
    }
    this.inflight++;
    void this.opts.requests
      .execute(a.request)
      .catch((e: unknown) => this.opts.log.error({ requestId: a.request.requestId, err: e }, 'pipeline request failed'))
      .finally(() => this.inflight--);
  }

  private async publish(row: SignRequestRow): Promise<void> {
    try {
      await this.publishResult(row.clientId, { request: signRequestToProto(row), idempotencyKey: row.idempotencyKey ?? '' }, row.requestId);
      this.markPublished(row.requestId);
    } catch (e) {
      // Left in the outbox: the sweep publishes it again.
      this.opts.log.warn({ requestId: row.requestId, err: e instanceof Error ? e.message : String(e) }, 'result publish failed; will retry');
    }
  }

  private async publishResult(client: string, result: MessageInitShape<typeof SignResultSchema>, msgID: string): Promise<void> {
    await this.js.publish(`${RESULT_SUBJECT}.${client}`, toBinary(SignResultSchema, create(SignResultSchema, result)), { msgID, timeout: 5_000 });
  }

  private markPublished(requestId: string): void {
    this.toMark.push(requestId);
    if (!this.markTimer) {
      this.markTimer = setTimeout(() => void this.flushMarks(), 50);
    }
  }

  private async flushMarks(): Promise<void> {
    this.markTimer = undefined;
    const ids = this.toMark.splice(0);
    await durably(this.opts.log, 'mark results published', () => this.opts.db.tx((q) => markResultsPublished(q, ids))).catch((e: unknown) =>
      this.opts.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'could not mark results published; the sweep republishes them'),
    );
  }

  /** Publishes finished NATS results that were not marked published (after a crash or outage). */
  private async sweep(): Promise<void> {
    if (this.stopped) return;
    try {
      const rows = await unpublishedResults(this.opts.db, 500);
      for (const r of rows) await this.publish(r);
    } catch (e) {
      this.opts.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'outbox sweep failed');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await this.loopDone;
    await this.opts.requests.drain();
    if (this.markTimer) {
      clearTimeout(this.markTimer);
      await this.flushMarks();
    }
    await this.nc.drain().catch(() => undefined);
  }
}

function decode(msg: JsMsg): Decoded {
  const client = msg.subject.slice(REQUEST_SUBJECT.length + 1);
  if (!CLIENT_ID.test(client)) return { msg, error: `subject ${msg.subject} does not name a client (${REQUEST_SUBJECT}.<client>)` };
  let body;
  try {
    body = fromBinary(SignRequestSchema, msg.data);
  } catch {
    return { msg, client, error: 'malformed custody.v1.SignRequest' };
  }
  const header = msg.headers?.get('Nats-Msg-Id') ?? '';
  if (body.idempotencyKey && header && body.idempotencyKey !== header) {
    return { msg, client, error: 'idempotency_key and Nats-Msg-Id differ' };
  }
  return { msg, client, item: { keysetId: body.keysetId, walletId: body.walletId, digest: body.digest, ethTx: body.ethTx, idempotencyKey: body.idempotencyKey || header } };
}

async function ensureStream(
  jsm: Awaited<ReturnType<typeof jetstreamManager>>,
  cfg: { name: string; subjects: string[]; retention: (typeof RetentionPolicy)[keyof typeof RetentionPolicy] },
): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
  } catch {
    await jsm.streams.add({ ...cfg, storage: StorageType.File, duplicate_window: nanos(DUPLICATE_WINDOW_MS) });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
