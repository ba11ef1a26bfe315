/**
 * Many calls per node RPC: items queued for the same node in one event-loop turn go out as one
 * call (at most `maxBatch` items), which is what lets throughput grow with load. SignShares
 * (share-batcher.ts) and RunRounds (round-batcher.ts) are built on it.
 *
 * With `maxInFlight`, at most that many calls per key are outstanding; items that arrive meanwhile
 * wait and leave together when one returns. Light load is unchanged (nothing is in flight, the
 * turn's items leave at once); under load the batches grow by themselves instead of each arrival
 * paying a call of its own. No item waits longer than `maxWaitMs` for that: a call that hangs
 * until its deadline does not hold back what comes after it.
 */
interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class NodeBatcher<I, O> {
  private readonly queues = new Map<string, Waiting<I, O>[]>();
  private readonly scheduled = new Set<string>();
  private readonly inFlight = new Map<string, number>();
  private readonly waitTimers = new Map<string, NodeJS.Timeout>();

  constructor(
    /** Sends one batch to a node: one settled result per item, in order. A throw fails every item. */
    private readonly send: (nodeId: string, items: I[]) => Promise<PromiseSettledResult<O>[]>,
    private readonly maxBatch = 256,
    private readonly maxInFlight = Infinity,
    private readonly maxWaitMs = 1_000,
  ) {}

  request(nodeId: string, item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      let q = this.queues.get(nodeId);
      if (!q) this.queues.set(nodeId, (q = []));
      q.push({ item, resolve, reject });
      if (this.scheduled.has(nodeId)) return;
      if ((this.inFlight.get(nodeId) ?? 0) < this.maxInFlight) {
        this.scheduled.add(nodeId);
        setImmediate(() => this.flush(nodeId));
      } else this.waitAtMost(nodeId);
    });
  }

  private waitAtMost(nodeId: string): void {
    if (this.waitTimers.has(nodeId)) return;
    const t = setTimeout(() => {
      this.waitTimers.delete(nodeId);
      this.flush(nodeId, true);
    }, this.maxWaitMs);
    t.unref();
    this.waitTimers.set(nodeId, t);
  }

  /** Sends what is queued for the key, as far as the in-flight limit allows (all of it when `force`). */
  private flush(nodeId: string, force = false): void {
    this.scheduled.delete(nodeId);
    const q = this.queues.get(nodeId) ?? [];
    while (q.length > 0 && (force || (this.inFlight.get(nodeId) ?? 0) < this.maxInFlight)) {
      void this.dispatch(nodeId, q.splice(0, this.maxBatch));
    }
    if (q.length > 0) {
      this.waitAtMost(nodeId);
      return;
    }
    this.queues.delete(nodeId);
    clearTimeout(this.waitTimers.get(nodeId));
    this.waitTimers.delete(nodeId);
  }

  private async dispatch(nodeId: string, batch: Waiting<I, O>[]): Promise<void> {
    this.inFlight.set(nodeId, (this.inFlight.get(nodeId) ?? 0) + 1);
    let results: PromiseSettledResult<O>[];
    try {
      results = await this.send(
        nodeId,
        batch.map((w) => w.item),
      );
    } catch (e) {
      for (const w of batch) w.reject(e);
      return;
    } finally {
      const n = (this.inFlight.get(nodeId) ?? 1) - 1;
      if (n === 0) this.inFlight.delete(nodeId);
      else this.inFlight.set(nodeId, n);
      // What waited for this call leaves now, as one batch.
      if (this.queues.has(nodeId) && !this.scheduled.has(nodeId)) this.flush(nodeId);
    }
    batch.forEach((w, i) => {
      const r = results[i];
      if (r?.status === 'fulfilled') w.resolve(r.value);
      else w.reject(r ? r.reason : new Error(`node ${nodeId} returned no result for item ${i}`));
    });
  }
}
