/** The coordinator's nonce-commitment cache: refill marks from demand, every commitment handed out once. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DemandMeter } from '../../coordinator/demand.js';
import { NonceCache } from '../../coordinator/nonce-cache.js';
import type { NodeRegistry } from '../../coordinator/node-registry.js';

/** A registry whose nodes answer ReserveNonces at once with fresh ids, recording what was asked. */
function fakeRegistry() {
  const calls: { nodeId: string; count: number; level: number }[] = [];
  /** How many commitments the cache holds for a node when it asks for more (set once the cache exists). */
  const probe: { level: (nodeId: string) => number } = { level: () => -1 };
  let next = 0;
  const registry = {
    get: (nodeId: string) => ({
      client: {
        reserveNonces: async (req: { count: number }) => {
          calls.push({ nodeId, count: req.count, level: probe.level(nodeId) });
          await new Promise((r) => setImmediate(r)); // a call takes at least a turn of the loop
          return { commitments: Array.from({ length: req.count }, () => ({ commitmentId: `c${++next}`, hiding: new Uint8Array(32), binding: new Uint8Array(32) })) };
        },
      },
    }),
    markSeen: () => undefined,
  };
  return { registry: registry as unknown as NodeRegistry, calls, probe };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

afterEach(() => {
  vi.useRealTimers();
});

describe('DemandMeter', () => {
  it('counts the events of the last window per key, and keeps at most maxKept', () => {
    const m = new DemandMeter(1_000, 3);
    m.record('a', 10_000);
    m.record('a', 10_500);
    m.record('b', 10_500);
    m.record('a', 11_500);
    expect(m.recent('a', 11_600)).toBe(1); // 10_000 and 10_500 are older than 10_600
    expect(m.recent('b', 11_400)).toBe(1);
    expect(m.recent('c', 11_400)).toBe(0);
    for (let i = 0; i < 10; i++) m.record('d', 20_000);
    expect(m.recent('d', 20_000)).toBe(3);
  });
});

describe('nonce cache', () => {
  it('refills below `lowWater` at a low rate and earlier as the rate rises, so a burst does not find it empty', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const f = fakeRegistry();
    const cache = new NonceCache(f.registry, { lowWater: 4, batch: 64 });
    f.probe.level = (nodeId) => cache.size(nodeId, 'ed25519');
    // Slow: a take every 300 ms, under four a second. Refills start on the take that leaves 3.
    for (let i = 0; i < 100; i++) {
      await cache.take('node-1', 'ed25519');
      vi.setSystemTime(Date.now() + 300);
      await settle();
    }
    const background = f.calls.slice(1); // the first filled an empty pool on demand
    expect(background.length).toBeGreaterThan(0);
    expect(background.map((c) => [c.count, c.level])).toEqual(background.map(() => [64, 3]));

    // Fast: 40 takes per turn of the event loop, 30 turns, all within one millisecond (1,200 a second).
    f.calls.length = 0;
    const ids = new Set<string>();
    for (let turn = 0; turn < 30; turn++) {
      for (const c of await Promise.all(Array.from({ length: 40 }, () => cache.take('node-1', 'ed25519')))) ids.add(c.id);
      await new Promise((r) => setImmediate(r));
    }
    expect(ids.size).toBe(1_200);
    // Refills now start while dozens are left (half a second of takes), reservations keep their size,
    // and no take found the pool empty.
    expect(Math.max(...f.calls.map((c) => c.level))).toBeGreaterThan(40);
    expect(f.calls.map((c) => c.count)).toEqual(f.calls.map(() => 64));
    expect(f.calls.filter((c) => c.level === 0)).toEqual([]);
  });

  it('every caller waiting on an empty pool gets its own commitment', async () => {
    const f = fakeRegistry();
    const cache = new NonceCache(f.registry, { lowWater: 4, batch: 8 });
    const got = await Promise.all(Array.from({ length: 50 }, () => cache.take('node-2', 'secp256k1')));
    expect(new Set(got.map((c) => c.id)).size).toBe(50);
    expect(f.calls.every((c) => c.nodeId === 'node-2')).toBe(true);
    expect(f.calls.length).toBeGreaterThan(1); // the first reservation (32) did not cover 50 waiters
  });
});
