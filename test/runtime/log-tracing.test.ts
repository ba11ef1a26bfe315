import { context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../runtime/log.js';
import { initTracing, shutdownTracing, tracer } from '../../runtime/tracing.js';

const exporter = new InMemorySpanExporter();

beforeAll(() => {
  initTracing('log-test', { exporter });
});

afterAll(async () => {
  await shutdownTracing();
});

function capture(): { lines: () => Record<string, unknown>[]; write: (s: string) => void } {
  const raw: string[] = [];
  return { lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>), write: (s) => void raw.push(s) };
}

describe('createLogger', () => {
  it('writes JSON with name, time and level, and respects the level', () => {
    const out = capture();
    const log = createLogger('svc', { level: 'warn', base: { nodeId: 'node-1' }, destination: out });
    log.info('hidden');
    log.warn({ x: 1 }, 'shown');
    const lines = out.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ name: 'svc', nodeId: 'node-1', msg: 'shown', x: 1 });
    expect(typeof lines[0]!.time).toBe('string');
    expect(lines[0]!.trace_id).toBeUndefined();
  });

  it('redacts secret-looking keys at the top level and one level down', () => {
    const out = capture();
    const log = createLogger('svc', { destination: out });
    log.info({ share: 'AAAA', nested: { seed: 'BBBB', mnemonic: 'CCCC', ok: 'visible' }, passphrase: 'DDDD' }, 'oops');
    const text = JSON.stringify(out.lines());
    for (const secret of ['AAAA', 'BBBB', 'CCCC', 'DDDD']) expect(text).not.toContain(secret);
    expect(text).toContain('visible');
    expect(text).toContain('[redacted]');
  });

  it('stamps trace and span ids of the active span, across awaits', async () => {
    const out = capture();
    const log = createLogger('svc', { destination: out });
    let ids: { traceId: string; spanId: string } | undefined;
    await tracer().startActiveSpan('work', async (span) => {
      ids = span.spanContext();
      await new Promise((r) => setTimeout(r, 5));
      log.info('inside');
      span.end();
    });
    log.info('outside');
    const [inside, outside] = out.lines();
    expect(inside).toMatchObject({ trace_id: ids!.traceId, span_id: ids!.spanId });
    expect(outside!.trace_id).toBeUndefined();
    expect(exporter.getFinishedSpans().map((s) => s.name)).toContain('work');
  });
});

describe('context manager', () => {
  it('keeps concurrent contexts apart and binds functions', async () => {
    const a = tracer().startSpan('a');
    const b = tracer().startSpan('b');
    const seen: string[] = [];
    const run = (s: typeof a) =>
      context.with(trace.setSpan(context.active(), s), async () => {
        await new Promise((r) => setTimeout(r, 2));
        seen.push(trace.getActiveSpan() === s ? 'ok' : 'wrong');
      });
    await Promise.all([run(a), run(b), run(a)]);
    expect(seen).toEqual(['ok', 'ok', 'ok']);
    const bound = context.bind(trace.setSpan(context.active(), b), () => trace.getActiveSpan());
    expect(bound()).toBe(b);
    expect(trace.getActiveSpan()).toBeUndefined();
    a.end();
    b.end();
  });
});
