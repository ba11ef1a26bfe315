/**
 * Recent demand per key (takes from a pool, hits and misses alike), so pools size themselves from
 * the load they see rather than from a fixed guess: the presignature pool and the nonce cache.
 */
export class DemandMeter {
  private readonly times = new Map<string, number[]>();

  constructor(
    private readonly windowMs: number,
    /** Most events kept per key: bounds memory when a key is hammered. */
    private readonly maxKept: number,
  ) {}

  record(key: string, now = Date.now()): void {
    let times = this.times.get(key);
    if (!times) this.times.set(key, (times = []));
    times.push(now);
    if (times.length > this.maxKept) times.splice(0, times.length - this.maxKept);
  }

  /** Events for `key` within the last window. */
  recent(key: string, now = Date.now()): number {
    const times = this.times.get(key);
    if (!times) return 0;
    const since = now - this.windowMs;
    let old = 0;
    while (old < times.length && times[old]! < since) old++;
    if (old) times.splice(0, old);
    return times.length;
  }
}
