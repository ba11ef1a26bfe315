/** The presignature pool: parallel refills sized from demand, single use, no overlapping refills. */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { PresignPool, type ReadyPresignature } from '../../coordinator/presign-pool.js';

const silent = pino({ level: 'silent' });
const opts = { target: 4, low: 2, max: 12, parallel: 3, batch: 1 };
let n = 0;
const presig = (): ReadyPresignature => ({
  signers: [
    { index: 1, nodeId: 'node-1', presignatureId: `p${++n}` },
    { index: 2, nodeId: 'node-2', presignatureId: `q${n}` },
  ],
  sessionId: `s${n}`,
  sid: new Uint8Array(32),
  bigR: new Uint8Array(33),
});

/** A producer whose calls wait until released, so a test can see how many run at once. */
function gatedProducer() {
  const waiting: (() => void)[] = [];
  let running = 0;
  let most = 0;
  let calls = 0;
  const counts: number[] = [];
  const produce = async (count: number) => {
    calls++;
    counts.push(count);
    running++;
    most = Math.max(most, running);
    await new Promise<void>((r) => waiting.push(r));
    running--;
    return Array.from({ length: count }, presig);
  };
  const releaseAll = async () => {
    while (waiting.length || running) {
      waiting.splice(0).forEach((r) => r());
      await new Promise((r) => setImmediate(r));
    }
  };
  /** Lets the oldest waiting call finish and the pool react to it. */
  const releaseOne = async () => {
    waiting.shift()?.();
    await new Promise((r) => setTimeout(r, 5));
  };
  return { produce, releaseAll, releaseOne, running: () => running, stats: () => ({ most, calls, counts }) };
}

describe('presignature pool', () => {
  it('fills to the target with up to `parallel` sessions at once, and hands each presignature out once', async () => {
    const pool = new PresignPool(silent, opts);
    const g = gatedProducer();
    pool.maybeRefill('k', g.produce);
    pool.maybeRefill('k', g.produce); // a refill is running: no second one
    await new Promise((r) => setImmediate(r));
    expect(g.stats().most).toBe(3);
    await g.releaseAll();
    await new Promise((r) => setTimeout(r, 10));
    expect(pool.level('k')).toBe(4);
    expect(g.stats().calls).toBe(4);
    const taken = new Set<string>();
    for (let i = 0; i < 4; i++) taken.add(pool.take('k', ['node-2', 'node-1'])!.sessionId);
    expect(taken.size).toBe(4);
    expect(pool.take('k', ['node-1', 'node-2'])).toBeUndefined();
    expect(pool.take('k', ['node-1', 'node-3'])).toBeUndefined();
  });

  it('grows the target with demand (hits and misses) up to max, and back when demand stops', async () => {
    const pool = new PresignPool(silent, opts);
    expect(pool.target('k')).toBe(4);
    for (let i = 0; i < 7; i++) pool.take('k', ['node-1', 'node-2']);
    expect(pool.target('k')).toBe(7);
    for (let i = 0; i < 20; i++) pool.take('k', ['node-1', 'node-2']);
    expect(pool.target('k')).toBe(12);
    const g = gatedProducer();
    pool.maybeRefill('k', g.produce);
    await g.releaseAll();
    await new Promise((r) => setTimeout(r, 10));
    expect(pool.level('k')).toBe(12);
    expect(pool.target('other')).toBe(4);
  });

  it('asks each session for a batch, never more than the target needs', async () => {
    const pool = new PresignPool(silent, { ...opts, target: 10, batch: 4 });
    const g = gatedProducer();
    pool.maybeRefill('k', g.produce);
    await g.releaseAll();
    await new Promise((r) => setTimeout(r, 10));
    expect(pool.level('k')).toBe(10);
    // Three sessions at once: 4 + 4 + 2 fill the target exactly.
    expect(g.stats().counts.sort()).toEqual([2, 4, 4]);
    const ids = new Set<string>();
    for (let i = 0; i < 10; i++) ids.add(pool.take('k', ['node-1', 'node-2'])!.signers[0]!.presignatureId);
    expect(ids.size).toBe(10);
  });

  it('runs one session at a time while the pool keeps up, and up to `parallel` once it falls below half its low mark', async () => {
    // Target 8, low mark 4: a second session only below 2 presignatures.
    const pool = new PresignPool(silent, { target: 8, low: 4, max: 8, parallel: 3, batch: 1 });
    const cold = gatedProducer();
    pool.maybeRefill('k', cold.produce);
    await new Promise((r) => setImmediate(r));
    expect(cold.running()).toBe(3); // empty: fill fast
    await cold.releaseAll();
    await new Promise((r) => setTimeout(r, 10));
    expect(pool.level('k')).toBe(8);

    const take = (n: number) => {
      for (let i = 0; i < n; i++) expect(pool.take('k', ['node-1', 'node-2'])).toBeDefined();
    };
    take(5); // level 3: below the low mark, not behind
    const g = gatedProducer();
    pool.maybeRefill('k', g.produce);
    await new Promise((r) => setImmediate(r));
    expect(g.running()).toBe(1);
    await g.releaseOne(); // level 4
    expect(g.running()).toBe(1);
    take(4); // level 0 while a session runs
    await g.releaseOne(); // level 1: behind, so three at once
    expect(g.running()).toBe(3);
    await g.releaseAll();
    await new Promise((r) => setTimeout(r, 10));
    expect(pool.level('k')).toBe(8);
  });

  it('a producer that fails or says stop ends the refill, and the next trigger starts a new one', async () => {
    const pool = new PresignPool(silent, opts);
    let calls = 0;
    pool.maybeRefill('k', async () => {
      calls++;
      if (calls === 2) throw new Error('node down');
      return calls === 1 ? [presig()] : [];
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(pool.level('k')).toBeLessThan(4);
    const before = pool.level('k');
    pool.maybeRefill('k', async (count) => Array.from({ length: count }, presig));
    await new Promise((r) => setTimeout(r, 20));
    expect(pool.level('k')).toBe(4);
    expect(before).toBeLessThan(4);
    // A producer that throws instead of rejecting ends the refill the same way.
    pool.maybeRefill('j', () => {
      throw new Error('bad producer');
    });
    await new Promise((r) => setTimeout(r, 10));
    pool.maybeRefill('j', async (count) => Array.from({ length: count }, presig));
    await new Promise((r) => setTimeout(r, 20));
    expect(pool.level('j')).toBe(4);
  });
});
