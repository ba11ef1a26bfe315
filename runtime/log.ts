/**
 * Structured JSON logs (pino) on stderr, stamped with the active trace and span ids. Redaction of
 * secret-looking keys is a safety net only: code must never log key material in the first place.
 */
import { isSpanContextValid, trace } from '@opentelemetry/api';
import { pino } from 'pino';

export type Logger = pino.Logger;

export interface LoggerOptions {
  /** Defaults to CUSTODY_LOG_LEVEL, then 'info'. */
  level?: string;
  /** Fields on every line (e.g. `{ nodeId }`). */
  base?: Record<string, unknown>;
  /** Defaults to stderr; tests pass a stream to capture lines. */
  destination?: pino.DestinationStream;
}

/** Keys whose values are replaced with "[redacted]", at the top level and one level down. */
export const REDACTED_KEYS = [
  'share',
  'shares',
  'secret',
  'secretShare',
  'signingShare',
  'nonce',
  'nonces',
  'seed',
  'mnemonic',
  'passphrase',
  'password',
  'privateKey',
  'keyPem',
  'sealKey',
] as const;

const REDACT_PATHS = REDACTED_KEYS.flatMap((k) => [k, `*.${k}`]);

export function createLogger(name: string, opts: LoggerOptions = {}): Logger {
  const options: pino.LoggerOptions = {
    name,
    level: opts.level ?? process.env.CUSTODY_LOG_LEVEL ?? 'info',
    base: { pid: process.pid, ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    mixin() {
      const span = trace.getActiveSpan();
      if (!span) return {};
      const sc = span.spanContext();
      if (!isSpanContextValid(sc)) return {};
      return { trace_id: sc.traceId, span_id: sc.spanId };
    },
  };
  // Synchronous stderr so the last lines before process.exit() are not lost.
  return pino(options, opts.destination ?? pino.destination({ dest: 2, sync: true }));
}
