/**
 * Many calls per node RPC: items queued for the same node in one event-loop turn go out as one
 * call (at most `maxBatch` items), which is what lets throughput grow with load. SignShares
 * (share-batcher.ts) and RunRounds (round-batcher.ts) are built on it.
 */
interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class NodeBatcher<I, O> {
  private readonly queues = new Map<string, Waiting<I, O>[]>();

  constructor(
    /** Sends one batch to a node: one settled result per item, in order. A throw fails every item. */
    private readonly send: (nodeId: string, items: I[]) => Promise<PromiseSettledResult<O>[]>,
    private readonly maxBatch = 256,
  ) {}

  request(nodeId: string, item: I): Promise<O> {
    return new Promise((resolve, reject) => {
      let q = this.queues.get(nodeId);
      if (!q) {
        q = [];
        this.queues.set(nodeId, q);
        setImmediate(() => this.flush(nodeId));
      }
      q.push({ item, resolve, reject });
    });
  }

  private flush(nodeId: string): void {
    const all = this.queues.get(nodeId) ?? [];
    this.queues.delete(nodeId);
    for (let i = 0; i < all.length; i += this.maxBatch) void this.dispatch(nodeId, all.slice(i, i + this.maxBatch));
  }

  private async dispatch(nodeId: string, batch: Waiting<I, O>[]): Promise<void> {
    let results: PromiseSettledResult<O>[];
    try {
      results = await this.send(
        nodeId,
        batch.map((w) => w.item),
      );
    } catch (e) {
      for (const w of batch) w.reject(e);
      return;
    }
    batch.forEach((w, i) => {
      const r = results[i];
      if (r?.status === 'fulfilled') w.resolve(r.value);
      else w.reject(r ? r.reason : new Error(`node ${nodeId} returned no result for item ${i}`));
    });
  }
}
