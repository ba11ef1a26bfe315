/**
 * OpenTelemetry setup shared by every process: one tracer provider, W3C trace context propagation
 * and an AsyncLocalStorage context manager. Without an exporter spans still get ids, so trace
 * context crosses gRPC hops and log lines carry trace ids.
 */
import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { AsyncLocalStorageContextManager } from './context-manager.js';
import { VERSION } from './version.js';
import { SpanFileExporter } from './span-file-exporter.js';

export const TRACER_NAME = 'custody';

export interface TracingOptions {
  /** Where finished spans go. Tests pass an InMemorySpanExporter. */
  exporter?: SpanExporter;
  /** Batch exports (production exporters); default exports each span as it ends. */
  batch?: boolean;
}

let provider: BasicTracerProvider | undefined;

/**
 * Installs the global tracer provider, propagator and context manager. Calling it again replaces
 * the previous setup (the old provider is shut down in the background).
 * `CUSTODY_OTEL_CONSOLE=1` adds a console exporter; `CUSTODY_OTEL_FILE=path` writes spans as JSON lines.
 */
export function initTracing(serviceName: string, opts: TracingOptions = {}): BasicTracerProvider {
  if (provider) {
    const old = provider;
    unregister();
    void old.shutdown().catch(() => undefined);
  }
  const spanProcessors: SpanProcessor[] = [];
  if (opts.exporter) {
    spanProcessors.push(opts.batch ? new BatchSpanProcessor(opts.exporter) : new SimpleSpanProcessor(opts.exporter));
  }
  if (process.env.CUSTODY_OTEL_CONSOLE === '1') spanProcessors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()));
  const file = process.env.CUSTODY_OTEL_FILE;
  if (file) spanProcessors.push(new SimpleSpanProcessor(new SpanFileExporter(file, serviceName)));

  provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName, 'service.version': VERSION }),
    spanProcessors,
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return provider;
}

/** The project's tracer (a no-op tracer until initTracing runs). */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME, VERSION);
}

/** Flushes pending spans and removes the global registrations. Safe to call when not initialised. */
export async function shutdownTracing(): Promise<void> {
  const p = provider;
  if (!p) return;
  unregister();
  await p.shutdown();
}

function unregister(): void {
  trace.disable();
  propagation.disable();
  context.disable();
  provider = undefined;
}
