/** The retry loop and error classification, without a database. */
import { describe, expect, test } from 'vitest';
import { DuplicateKeyError, isRetryable, sqlState, uniqueViolation, withRetry } from '../../coordinator/store/db.js';
import { AuditConflictError } from '../../coordinator/store/audit.js';

const dbError = (code: string, extra: Record<string, unknown> = {}): Error => Object.assign(new Error(`sqlstate ${code}`), { code, ...extra });

describe('isRetryable', () => {
  test('serialization failure and deadlock are retryable', () => {
    expect(isRetryable(dbError('40001'))).toBe(true);
    expect(isRetryable(dbError('40P01'))).toBe(true);
    expect(isRetryable(new AuditConflictError())).toBe(true);
    // wrapped by another layer
    expect(isRetryable(new Error('outer', { cause: dbError('40001') }))).toBe(true);
  });

  test('everything else is not', () => {
    for (const e of [dbError('23505'), dbError('40003'), dbError('57014'), new Error('40001'), 'x', null, undefined, { code: 40001 }]) {
      expect(isRetryable(e)).toBe(false);
    }
    // Node system errors carry non-SQLSTATE codes
    expect(sqlState(Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).toBeUndefined();
    expect(sqlState(Object.assign(new Error('pipe'), { code: 'EPIPE' }))).toBeUndefined();
  });

  test('unique violations name their constraint (CockroachDB only in the message)', () => {
    expect(uniqueViolation(dbError('23505', { constraint: 'k_uq' }))).toEqual({ constraint: 'k_uq' });
    expect(uniqueViolation(dbError('23505', { message: 'duplicate key value violates unique constraint "c_uq"' }))).toEqual({
      constraint: 'c_uq',
    });
    expect(uniqueViolation(dbError('40001'))).toBeUndefined();
    expect(new DuplicateKeyError('x', 'm').code).toBe('23505');
  });
});

describe('withRetry', () => {
  test('re-runs on retryable errors and returns the first success', async () => {
    const attempts: number[] = [];
    const result = await withRetry(
      async (attempt) => {
        attempts.push(attempt);
        if (attempt < 3) throw dbError('40001');
        return 'ok';
      },
      { baseDelayMs: 1 },
    );
    expect(result).toBe('ok');
    expect(attempts).toEqual([1, 2, 3]);
  });

  test('gives up after maxAttempts and rethrows the last error unchanged', async () => {
    let runs = 0;
    const errors: Error[] = [];
    const err = await withRetry(
      async () => {
        runs += 1;
        const e = dbError('40001');
        errors.push(e);
        throw e;
      },
      { maxAttempts: 4, baseDelayMs: 1 },
    ).catch((e: unknown) => e);
    expect(runs).toBe(4);
    expect(err).toBe(errors[3]);
  });

  test('does not retry other errors', async () => {
    let runs = 0;
    await expect(
      withRetry(async () => {
        runs += 1;
        throw dbError('23505');
      }),
    ).rejects.toThrow('23505');
    expect(runs).toBe(1);
  });

  test('backs off with jitter below an exponential ceiling', async () => {
    const delays: { attempt: number; delayMs: number }[] = [];
    await withRetry(
      async (attempt) => {
        if (attempt < 6) throw dbError('40P01');
      },
      { baseDelayMs: 2, maxDelayMs: 10, onRetry: ({ attempt, delayMs }) => delays.push({ attempt, delayMs }) },
    );
    expect(delays.map((d) => d.attempt)).toEqual([1, 2, 3, 4, 5]);
    for (const { attempt, delayMs } of delays) {
      expect(delayMs).toBeGreaterThanOrEqual(0);
      expect(delayMs).toBeLessThanOrEqual(Math.min(10, 2 * 2 ** (attempt - 1)));
    }
  });
});
