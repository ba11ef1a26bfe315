/**
 * Group commit for database writes on the request path: items submitted while a group's
 * transaction runs wait and go together into the next one, so under load one transaction (and one
 * read of the audit chain's head) serves many requests, and when idle an item waits one event-loop
 * turn. One group at a time: the groups grow with the load instead of the transactions piling up.
 */
interface Waiting<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export class GroupCommit<I, O> {
  private queue: Waiting<I, O>[] = [];
  private running = false;
  private scheduled = false;

  constructor(
    /** Writes a group; one settled result per item, in order. */
    private readonly write: (items: I[]) => Promise<PromiseSettledResult<O>[]>,
    private readonly maxGroup = 256,
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (!this.running && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    this.scheduled = false;
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length) {
        const group = this.queue.splice(0, this.maxGroup);
        let results: PromiseSettledResult<O>[];
        try {
          results = await this.write(group.map((w) => w.item));
        } catch (e) {
          results = group.map(() => ({ status: 'rejected', reason: e }));
        }
        group.forEach((w, i) => {
          const r = results[i]!;
          if (r.status === 'fulfilled') w.resolve(r.value);
          else w.reject(r.reason);
        });
      }
    } finally {
      this.running = false;
    }
  }
}
