/**
 * Serves and calls protobuf-es services on @grpc/grpc-js (protobuf-es has no grpc-js generator).
 * Unary RPCs only. Every server call is authenticated by its client certificate's role, authorised
 * per method, traced (W3C trace context in metadata) and decoded inside the wrapper, so malformed
 * input is INVALID_ARGUMENT and unexpected failures never leak their text to the caller.
 */
import * as grpc from '@grpc/grpc-js';
import {
  create,
  fromBinary,
  toBinary,
  type DescMethod,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';
import {
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { Logger } from './log.js';
import { isRole, type Role } from './roles.js';
import { roleFromPeerCertificate } from './tls.js';
import { tracer } from './tracing.js';

export { ROLES, isRole, type Role } from './roles.js';

export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** Channel options for every client: bounded messages, keepalive to notice dead peers quickly. */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 5_000,
  // TLS SNI must not be an IP address (RFC 6066); server identity is checked by role instead (runtime/tls.ts).
  'grpc.ssl_target_name_override': 'localhost',
};

/** Options for `new grpc.Server(...)`. */
export const SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 10_000,
};

export interface CallContext {
  role: Role;
  /** Common name of the caller's certificate. */
  subject: string;
  metadata: grpc.Metadata;
  deadline?: Date;
  /** The server span of this RPC; handler code also runs inside its context. */
  span: Span;
  /** Aborted when the caller cancels or the deadline passes. */
  signal: AbortSignal;
}

type MethodOf<S extends DescService, M extends keyof S['method']> = S['method'][M] extends DescMethod ? S['method'][M] : never;

export type RequestShape<S extends DescService, M extends keyof S['method']> = MessageShape<MethodOf<S, M>['input']>;
export type RequestInit<S extends DescService, M extends keyof S['method']> = MessageInitShape<MethodOf<S, M>['input']>;
export type ResponseShape<S extends DescService, M extends keyof S['method']> = MessageShape<MethodOf<S, M>['output']>;
export type ResponseInit<S extends DescService, M extends keyof S['method']> = MessageInitShape<MethodOf<S, M>['output']>;

export type ServiceImpl<S extends DescService> = {
  [M in keyof S['method']]: (req: RequestShape<S, M>, ctx: CallContext) => Promise<ResponseInit<S, M>>;
};

export type AccessRules<S extends DescService> = { [M in keyof S['method']]?: readonly Role[] } | readonly Role[];

/**
 * An error whose code and message are meant for the caller. Messages are shown to clients: never
 * put secrets in them. `trailers` are sent as trailing metadata (e.g. which party to blame).
 */
export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    readonly trailers?: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

/**
 * What a client call rejects with when the server (or the channel) returns a non-OK status.
 * Deliberately not an RpcError: a handler that lets it escape answers INTERNAL instead of
 * forwarding another service's code and message as its own.
 */
export class RemoteRpcError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly metadata: grpc.Metadata,
    /** `custody.v1.Service/Method`. */
    readonly method: string,
  ) {
    super(details);
    this.name = 'RemoteRpcError';
  }

  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

export interface AddServiceOptions {
  logger: Logger;
  /** Name of the serving process in log lines and span attributes (e.g. `node-1`). */
  serviceName?: string;
}

// Trace context travels in gRPC metadata; the W3C propagator is used directly so it works even
// when no global propagator has been installed.
const propagator = new W3CTraceContextPropagator();

const metadataSetter: TextMapSetter<grpc.Metadata> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

const metadataGetter: TextMapGetter<grpc.Metadata> = {
  keys(carrier) {
    return Object.keys(carrier.getMap());
  },
  get(carrier, key) {
    const values = carrier.get(key).filter((v): v is string => typeof v === 'string');
    if (values.length === 0) return undefined;
    return values.length === 1 ? values[0] : values;
  },
};

interface Failure {
  code: grpc.status;
  details: string;
  metadata?: grpc.Metadata;
}

/** Registers `impl` on `server` with per-method role checks. Methods without rules deny everyone. */
export function addService<S extends DescService>(
  server: grpc.Server,
  service: S,
  impl: ServiceImpl<S>,
  access: AccessRules<S>,
  opts: AddServiceOptions,
): void {
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    if (method.methodKind !== 'unary') {
      throw new Error(`${service.typeName}/${method.name}: only unary methods are supported`);
    }
    const allowed = allowedRoles(access, method.localName);
    if (allowed.length === 0) {
      opts.logger.warn({ rpc: `${service.typeName}/${method.name}` }, 'no role may call this method');
    }
    const fn = (impl as Record<string, unknown>)[method.localName];
    const handler = typeof fn === 'function' ? (fn as UntypedHandler).bind(impl) : undefined;
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      // Raw bytes both ways: decoding happens in the wrapper, where a failure can be answered
      // with INVALID_ARGUMENT instead of grpc-js's INTERNAL.
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
      originalName: method.localName,
    };
    handlers[method.name] = unaryHandler(service, method, handler, allowed, opts);
  }
  server.addService(definition, handlers);
}

type UntypedHandler = (req: unknown, ctx: CallContext) => Promise<unknown>;

function allowedRoles<S extends DescService>(access: AccessRules<S>, localName: string): readonly Role[] {
  const rules = isRoleList(access) ? access : (access as Record<string, readonly Role[] | undefined>)[localName];
  const roles = rules ?? [];
  for (const r of roles) if (!isRole(r)) throw new Error(`unknown role ${String(r)} in access rules`);
  return roles;
}

function isRoleList(access: unknown): access is readonly Role[] {
  return Array.isArray(access);
}

function unaryHandler(
  service: DescService,
  method: DescMethod,
  handler: UntypedHandler | undefined,
  allowed: readonly Role[],
  opts: AddServiceOptions,
): grpc.handleUnaryCall<Buffer, Buffer> {
  const rpc = `${service.typeName}/${method.name}`;
  const log = opts.logger;
  return (call, callback) => {
    const parent = propagator.extract(ROOT_CONTEXT, call.metadata, metadataGetter);
    const span = tracer().startSpan(
      rpc,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'rpc.system': 'grpc',
          'rpc.service': service.typeName,
          'rpc.method': method.name,
          ...(opts.serviceName ? { 'custody.server': opts.serviceName } : {}),
        },
      },
      parent,
    );
    const spanContext = trace.setSpan(parent, span);
    const traceId = span.spanContext().traceId;
    const abort = lazyAbort();
    call.once('cancelled', () => abort.abort(new RpcError(grpc.status.CANCELLED, 'call cancelled')));
    const deadline = toDate(call.getDeadline());
    // grpc-js answers DEADLINE_EXCEEDED by itself but does not tell the handler; the signal does.
    const timer = deadline
      ? setTimeout(() => abort.abort(new RpcError(grpc.status.DEADLINE_EXCEEDED, 'deadline exceeded')), Math.max(0, deadline.getTime() - Date.now()))
      : undefined;
    timer?.unref();

    const finish = (failure: Failure | undefined, response?: Buffer): void => {
      clearTimeout(timer);
      const code = failure?.code ?? grpc.status.OK;
      span.setAttribute('rpc.grpc.status_code', code);
      if (failure) span.setStatus({ code: SpanStatusCode.ERROR, message: grpc.status[code] ?? String(code) });
      span.end();
      if (failure) callback(failure);
      else callback(null, response);
    };

    context.with(spanContext, async () => {
      try {
        const id = roleFromPeerCertificate(call.getAuthContext()?.sslPeerCertificate);
        if (!id) {
          log.warn({ rpc, peer: call.getPeer() }, 'rejected call without a valid role certificate');
          return finish({ code: grpc.status.UNAUTHENTICATED, details: 'a client certificate with a custody role is required' });
        }
        span.setAttributes({ 'custody.caller.role': id.role, 'custody.caller.subject': id.subject });
        if (!allowed.includes(id.role)) {
          log.warn({ rpc, role: id.role, subject: id.subject }, 'permission denied');
          return finish({ code: grpc.status.PERMISSION_DENIED, details: `role ${id.role} may not call ${rpc}` });
        }
        if (!handler) return finish({ code: grpc.status.UNIMPLEMENTED, details: `${rpc} is not implemented` });

        let request: unknown;
        try {
          request = fromBinary(method.input, call.request);
        } catch {
          return finish({ code: grpc.status.INVALID_ARGUMENT, details: `malformed ${method.input.typeName}` });
        }
        const ctx: CallContext = {
          role: id.role,
          subject: id.subject,
          metadata: call.metadata,
          span,
          get signal() {
            return abort.signal();
          },
        };
        if (deadline) ctx.deadline = deadline;
        const out = await handler(request, ctx);
        const bytes = toBinary(method.output, create(method.output, out as MessageInitShape<typeof method.output>));
        return finish(undefined, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      } catch (e) {
        // An RpcError with code OK would end the call as a success without a response.
        if (e instanceof RpcError && e.code !== grpc.status.OK) {
          log.debug({ rpc, code: grpc.status[e.code], details: e.message }, 'call failed');
          const failure: Failure = { code: e.code, details: e.message };
          if (e.trailers) failure.metadata = toMetadata(e.trailers);
          return finish(failure);
        }
        log.error({ rpc, err: e }, 'unhandled error in handler');
        return finish({ code: grpc.status.INTERNAL, details: `internal error (see server log, trace ${traceId})` });
      }
    }).catch((e: unknown) => {
      // Only reachable if finish() itself throws; keep the process alive and the reason logged.
      log.error({ rpc, err: e }, 'failed to complete call');
    });
  };
}

export interface ClientOptions {
  /** Merged over CHANNEL_OPTIONS. */
  channelOptions?: grpc.ChannelOptions;
  /** Deadline for calls that do not pass one; none when unset. */
  defaultDeadlineMs?: number;
}

export interface CallOptions {
  deadlineMs?: number;
  metadata?: grpc.Metadata;
  /** Wait (until the deadline) for a channel in reconnect backoff instead of failing at once. */
  waitForReady?: boolean;
}

export type Client<S extends DescService> = {
  [M in keyof S['method']]: (req: RequestInit<S, M>, callOpts?: CallOptions) => Promise<ResponseShape<S, M>>;
} & {
  /** Closes the channel; pending calls fail with CANCELLED or UNAVAILABLE. */
  close(): void;
};

/** A typed client for `service`. Calls reject with RemoteRpcError on a non-OK status. */
export function createClient<S extends DescService>(
  service: S,
  address: string,
  creds: grpc.ChannelCredentials,
  opts: ClientOptions = {},
): Client<S> {
  const raw = new grpc.Client(address, creds, { ...CHANNEL_OPTIONS, ...opts.channelOptions });
  const client: Record<string, unknown> = {
    close: () => raw.close(),
  };
  for (const method of service.methods) {
    if (method.methodKind !== 'unary') continue;
    if (method.localName in client) throw new Error(`${service.typeName}: method name ${method.localName} clashes with the client API`);
    client[method.localName] = (req: unknown, callOpts: CallOptions = {}) => callUnary(raw, service, method, req, callOpts, opts);
  }
  return client as Client<S>;
}

async function callUnary(
  raw: grpc.Client,
  service: DescService,
  method: DescMethod,
  req: unknown,
  callOpts: CallOptions,
  opts: ClientOptions,
): Promise<unknown> {
  const rpc = `${service.typeName}/${method.name}`;
  const path = `/${rpc}`;
  const body = toBinary(method.input, create(method.input, req as MessageInitShape<typeof method.input>));
  const span = tracer().startSpan(rpc, {
    kind: SpanKind.CLIENT,
    attributes: { 'rpc.system': 'grpc', 'rpc.service': service.typeName, 'rpc.method': method.name },
  });
  const spanContext: Context = trace.setSpan(context.active(), span);
  const metadata = callOpts.metadata?.clone() ?? new grpc.Metadata();
  if (callOpts.waitForReady) metadata.setOptions({ waitForReady: true });
  propagator.inject(spanContext, metadata, metadataSetter);
  const deadlineMs = callOpts.deadlineMs ?? opts.defaultDeadlineMs;
  const options: grpc.CallOptions = deadlineMs !== undefined ? { deadline: new Date(Date.now() + deadlineMs) } : {};

  try {
    const response = await new Promise<Buffer>((resolve, reject) => {
      raw.makeUnaryRequest<Buffer, Buffer>(path, identity, identity, Buffer.from(body.buffer, body.byteOffset, body.byteLength), metadata, options, (err, value) => {
        if (err) reject(new RemoteRpcError(err.code, err.details, err.metadata, rpc));
        else if (!value) reject(new RemoteRpcError(grpc.status.INTERNAL, `empty response from ${rpc}`, new grpc.Metadata(), rpc));
        else resolve(value);
      });
    });
    let decoded: unknown;
    try {
      decoded = fromBinary(method.output, response);
    } catch {
      throw new RemoteRpcError(grpc.status.INTERNAL, `malformed ${method.output.typeName} from server`, new grpc.Metadata(), rpc);
    }
    span.setAttribute('rpc.grpc.status_code', grpc.status.OK);
    return decoded;
  } catch (e) {
    const code = e instanceof RemoteRpcError ? e.code : grpc.status.UNKNOWN;
    span.setAttribute('rpc.grpc.status_code', code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: grpc.status[code] ?? String(code) });
    throw e;
  } finally {
    span.end();
  }
}

/** Binds `server` to `address` (e.g. `127.0.0.1:0`) and resolves with the bound port. */
export function bindServer(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, creds, (err, port) => (err ? reject(err) : resolve(port))));
}

function identity(b: Buffer): Buffer {
  return b;
}

/**
 * The handler's abort signal, made only when a handler asks for it. On Node 20 every AbortSignal
 * builds fresh hidden classes in the old generation (it is an EventTarget given another
 * prototype): a third of the coordinator's on the ECDSA path (docs/benchmarks.md), for a signal
 * most handlers never look at.
 */
function lazyAbort(): { abort(reason: RpcError): void; signal(): AbortSignal } {
  let controller: AbortController | undefined;
  let reason: RpcError | undefined;
  return {
    abort(why) {
      if (reason) return;
      reason = why;
      controller?.abort(why);
    },
    signal() {
      if (!controller) {
        controller = new AbortController();
        if (reason) controller.abort(reason);
      }
      return controller.signal;
    },
  };
}

function toDate(deadline: grpc.Deadline): Date | undefined {
  if (deadline instanceof Date) return deadline;
  return Number.isFinite(deadline) ? new Date(deadline) : undefined;
}

function toMetadata(trailers: Readonly<Record<string, string>>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(trailers)) md.set(k, v);
  return md;
}
