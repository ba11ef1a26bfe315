import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClusterService } from '../../proto/gen/custody/v1/api_pb.js';
import {
  addService,
  bindServer,
  createClient,
  RemoteRpcError,
  RpcError,
  SERVER_OPTIONS,
  type CallContext,
  type ServiceImpl,
} from '../../runtime/grpc.js';
import { createLogger } from '../../runtime/log.js';
import { clientCredentials, ensureCa, ensureCert, serverCredentials, type Pem } from '../../runtime/tls.js';
import { initTracing, shutdownTracing, tracer } from '../../runtime/tracing.js';

type Mode = 'ok' | 'not-found' | 'crash' | 'slow' | 'late-signal';

interface Seen {
  role: string;
  subject: string;
  traceparent: string | undefined;
  deadline: Date | undefined;
}

let dir: string;
let ca: Pem;
let operator: Pem;
let payment: Pem;
let rogue: Pem;
let server: grpc.Server;
let address: string;
let mode: Mode = 'ok';
let seen: Seen[] = [];
let slowAborted: Promise<unknown> | undefined;
let lateSignal: { aborted: boolean; reason: unknown } | undefined;
const logLines: string[] = [];
const exporter = new InMemorySpanExporter();
const clients: { close(): void }[] = [];

const logger = createLogger('grpc-test', { level: 'debug', destination: { write: (line: string) => void logLines.push(line) } });

const impl: ServiceImpl<typeof ClusterService> = {
  async health(_req, ctx: CallContext) {
    const tp = ctx.metadata.get('traceparent')[0];
    seen.push({ role: ctx.role, subject: ctx.subject, traceparent: typeof tp === 'string' ? tp : undefined, deadline: ctx.deadline });
    logger.info({ subject: ctx.subject }, 'health handler ran');
    if (mode === 'not-found') throw new RpcError(grpc.status.NOT_FOUND, 'keyset k-42 not found', { 'custody-hint': 'k-42' });
    if (mode === 'crash') throw new Error('database password hunter2 rejected');
    if (mode === 'slow') {
      const signal = ctx.signal;
      slowAborted = new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
      await slowAborted;
    }
    if (mode === 'late-signal') {
      // Looks at the signal only after the deadline has passed.
      await new Promise((r) => setTimeout(r, 500));
      lateSignal = { aborted: ctx.signal.aborted, reason: ctx.signal.reason };
    }
    return { serving: true, version: 'test', nodesUp: 2, nodesTotal: 3, defaultThreshold: 2 };
  },
  async listNodes() {
    return { nodes: [{ nodeId: 'node-1', address: '127.0.0.1:1' }] };
  },
  async rewrapNodes() {
    return { nodes: [] };
  },
  async repairNode() {
    return { keysetIds: [] };
  },
};

function client(own: Pem, trustCa: Pem = ca) {
  const c = createClient(ClusterService, address, clientCredentials(trustCa, own));
  clients.push(c);
  return c;
}

async function rejection(p: Promise<unknown>): Promise<RemoteRpcError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(RemoteRpcError);
    return e as RemoteRpcError;
  }
  throw new Error('expected the call to fail');
}

beforeAll(async () => {
  initTracing('grpc-mtls-test', { exporter });
  dir = await mkdtemp(join(tmpdir(), 'custody-grpc-'));
  ca = await ensureCa(join(dir, 'pki'));
  const serverPem = await ensureCert(join(dir, 'pki'), ca, 'coordinator', 'coordinator');
  operator = await ensureCert(join(dir, 'pki'), ca, 'op-1', 'operator');
  payment = await ensureCert(join(dir, 'pki'), ca, 'pay-1', 'payment');
  const otherCa = await ensureCa(join(dir, 'other'));
  rogue = await ensureCert(join(dir, 'other'), otherCa, 'rogue', 'operator');

  server = new grpc.Server(SERVER_OPTIONS);
  addService(server, ClusterService, impl, ['operator'], { logger, serviceName: 'test-server' });
  const port = await bindServer(server, '127.0.0.1:0', serverCredentials(ca, serverPem));
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  for (const c of clients) c.close();
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  await shutdownTracing();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  mode = 'ok';
  seen = [];
  logLines.length = 0;
  exporter.reset();
});

describe('grpc over mutual TLS', () => {
  it('lets an allowed role call, with identity and deadline from the certificate and call', async () => {
    const res = await client(operator).health({}, { deadlineMs: 5_000 });
    expect(res.serving).toBe(true);
    expect(res.nodesTotal).toBe(3);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.role).toBe('operator');
    expect(seen[0]!.subject).toBe('op-1');
    expect(seen[0]!.deadline).toBeInstanceOf(Date);
    expect(seen[0]!.deadline!.getTime()).toBeGreaterThan(Date.now());
  });

  it('denies a role that is not allowed, naming the method', async () => {
    const err = await rejection(client(payment).health({}));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe('role payment may not call custody.v1.ClusterService/Health');
    expect(seen).toHaveLength(0);
  });

  it('refuses a client certificate from another CA at the handshake', async () => {
    const err = await rejection(client(rogue).health({}, { deadlineMs: 5_000 }));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(seen).toHaveLength(0);
  });

  it('refuses a client without a certificate', async () => {
    const c = createClient(ClusterService, address, grpc.credentials.createSsl(Buffer.from(ca.certPem)));
    clients.push(c);
    const err = await rejection(c.health({}, { deadlineMs: 5_000 }));
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(seen).toHaveLength(0);
  });

  it('passes RpcError code, message and trailers to the client', async () => {
    mode = 'not-found';
    const err = await rejection(client(operator).health({}));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.details).toBe('keyset k-42 not found');
    expect(err.message).toBe('keyset k-42 not found');
    expect(err.metadata.get('custody-hint')).toEqual(['k-42']);
  });

  it('turns any other error into INTERNAL without its text, and logs it with the trace id', async () => {
    mode = 'crash';
    const err = await rejection(client(operator).health({}));
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.details).not.toContain('hunter2');
    const m = /^internal error \(see server log, trace ([0-9a-f]{32})\)$/.exec(err.details);
    expect(m).not.toBeNull();
    const errorLine = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'unhandled error in handler');
    expect(errorLine).toBeDefined();
    expect(errorLine!.trace_id).toBe(m![1]);
    expect(JSON.stringify(errorLine!.err)).toContain('hunter2');
  });

  it('tells the handler through ctx.signal when the deadline passes', async () => {
    mode = 'slow';
    const err = await rejection(client(operator).health({}, { deadlineMs: 300 }));
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const reason = await slowAborted;
    expect(reason).toBeInstanceOf(RpcError);
    expect([grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED]).toContain((reason as RpcError).code);
  });

  it('a signal first asked for after the deadline is already aborted, with the deadline as its reason', async () => {
    mode = 'late-signal';
    lateSignal = undefined;
    const err = await rejection(client(operator).health({}, { deadlineMs: 200 }));
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await vi.waitFor(() => expect(lateSignal).toBeDefined(), { timeout: 3000 });
    expect(lateSignal!.aborted).toBe(true);
    expect(lateSignal!.reason).toBeInstanceOf(RpcError);
    expect([grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED]).toContain((lateSignal!.reason as RpcError).code);
  });

  it('answers malformed protobuf with INVALID_ARGUMENT', async () => {
    const raw = new grpc.Client(address, clientCredentials(ca, operator));
    clients.push(raw);
    const identity = (b: Buffer) => b;
    const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
      raw.makeUnaryRequest(
        '/custody.v1.ClusterService/Health',
        identity,
        identity,
        Buffer.from([0xff, 0xff, 0xff]),
        (e: grpc.ServiceError | null) => (e ? resolve(e) : reject(new Error('malformed request was accepted'))),
      );
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe('malformed custody.v1.HealthRequest');
    expect(seen).toHaveLength(0);
  });

  it('propagates one trace from client to server and stamps handler logs with it', async () => {
    const c = client(operator);
    await tracer().startActiveSpan('test-root', async (root) => {
      await c.health({});
      root.end();
    });
    const spans = exporter.getFinishedSpans();
    const rootSpan = spans.find((s) => s.name === 'test-root')!;
    const clientSpan = spans.find((s) => s.kind === SpanKind.CLIENT)!;
    const serverSpan = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(rootSpan && clientSpan && serverSpan).toBeTruthy();

    const traceId = rootSpan.spanContext().traceId;
    expect(clientSpan.spanContext().traceId).toBe(traceId);
    expect(serverSpan.spanContext().traceId).toBe(traceId);
    expect(clientSpan.parentSpanContext?.spanId).toBe(rootSpan.spanContext().spanId);
    expect(serverSpan.parentSpanContext?.spanId).toBe(clientSpan.spanContext().spanId);
    expect(serverSpan.parentSpanContext?.isRemote).toBe(true);

    expect(serverSpan.name).toBe('custody.v1.ClusterService/Health');
    expect(serverSpan.attributes['rpc.system']).toBe('grpc');
    expect(serverSpan.attributes['rpc.service']).toBe('custody.v1.ClusterService');
    expect(serverSpan.attributes['rpc.method']).toBe('Health');
    expect(serverSpan.attributes['rpc.grpc.status_code']).toBe(grpc.status.OK);
    expect(clientSpan.attributes['rpc.grpc.status_code']).toBe(grpc.status.OK);

    expect(seen[0]!.traceparent).toBe(`00-${traceId}-${clientSpan.spanContext().spanId}-01`);

    const line = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'health handler ran');
    expect(line).toBeDefined();
    expect(line!.trace_id).toBe(traceId);
    expect(line!.span_id).toBe(serverSpan.spanContext().spanId);
  });

  it('records the status code on failed spans', async () => {
    await rejection(client(payment).health({}));
    const serverSpan = exporter.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER)!;
    expect(serverSpan.attributes['rpc.grpc.status_code']).toBe(grpc.status.PERMISSION_DENIED);
    expect(serverSpan.attributes['custody.caller.role']).toBe('payment');
  });
});

describe('access rules', () => {
  it('applies per-method rules and denies methods without a rule', async () => {
    const s = new grpc.Server(SERVER_OPTIONS);
    addService(s, ClusterService, impl, { listNodes: ['payment'] }, { logger });
    const serverPem = await ensureCert(join(dir, 'pki'), ca, 'coordinator', 'coordinator');
    const port = await bindServer(s, '127.0.0.1:0', serverCredentials(ca, serverPem));
    const c = createClient(ClusterService, `127.0.0.1:${port}`, clientCredentials(ca, payment));
    try {
      const res = await c.listNodes({});
      expect(res.nodes[0]!.nodeId).toBe('node-1');
      const err = await rejection(c.health({}));
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    } finally {
      c.close();
      s.forceShutdown();
    }
  });

  it('answers UNAUTHENTICATED when the transport carries no role certificate', async () => {
    const s = new grpc.Server(SERVER_OPTIONS);
    addService(s, ClusterService, impl, ['operator'], { logger });
    const port = await bindServer(s, '127.0.0.1:0', grpc.ServerCredentials.createInsecure());
    const c = createClient(ClusterService, `127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const err = await rejection(c.health({}));
      expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(seen).toHaveLength(0);
    } finally {
      c.close();
      s.forceShutdown();
    }
  });
});
