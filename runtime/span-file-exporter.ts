/**
 * Writes finished spans as JSON lines to a file: a zero-infrastructure way to see one request's
 * trace across the coordinator and the nodes (`custody up --trace-files`), and what the end-to-end
 * tests read. Synchronous appends keep it simple; production exports over OTLP instead.
 */
import { appendFileSync } from 'node:fs';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

export interface SpanLine {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  status: number;
  startMs: number;
  durationMs: number;
  attributes: Record<string, unknown>;
}

export class SpanFileExporter implements SpanExporter {
  constructor(
    private readonly path: string,
    private readonly service: string,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    try {
      const lines = spans.map((s) => {
        const line: SpanLine = {
          service: this.service,
          traceId: s.spanContext().traceId,
          spanId: s.spanContext().spanId,
          parentSpanId: s.parentSpanContext?.spanId,
          name: s.name,
          kind: s.kind,
          status: s.status.code,
          startMs: s.startTime[0] * 1e3 + s.startTime[1] / 1e6,
          durationMs: s.duration[0] * 1e3 + s.duration[1] / 1e6,
          attributes: { ...s.attributes },
        };
        return JSON.stringify(line);
      });
      appendFileSync(this.path, lines.join('\n') + '\n', { mode: 0o600 });
      done({ code: ExportResultCode.SUCCESS });
    } catch (error) {
      done({ code: ExportResultCode.FAILED, error: error as Error });
    }
  }

  async shutdown(): Promise<void> {}
}
