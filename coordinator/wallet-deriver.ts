/**
 * Derives wallet keys and addresses for batch creation on worker threads, so a batch of 100,000
 * neither blocks the coordinator's event loop (signing keeps its latency) nor waits for one core.
 * Without the compiled worker file (tests running the TypeScript sources) it derives inline.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ExtendedPublicKey, HdScheme } from '../crypto/hd/derive.js';
import { deriveWalletBatch, type DerivedWallets } from '../crypto/hd/wallets.js';

export interface DeriveJob {
  id: number;
  scheme: HdScheme;
  root: ExtendedPublicKey;
  from: number;
  count: number;
}

export type DeriveReply = { id: number; batch: DerivedWallets } | { id: number; error: string };

/** Below this many wallets a job is not split across workers. */
const MIN_SLICE = 500;

export class WalletDeriver {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (b: DerivedWallets) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private turn = 0;

  /** The compiled worker, or undefined (tests on the TypeScript sources derive inline). */
  private readonly file?: string;

  constructor(private readonly size = Math.min(2, availableParallelism())) {
    const file = fileURLToPath(new URL('./wallet-derive-worker.js', import.meta.url));
    if (existsSync(file)) this.file = file;
  }

  /** Workers start with the first batch, not with the coordinator: most coordinators never make wallets. */
  private startWorkers(): void {
    if (!this.file || this.workers.length) return;
    for (let i = 0; i < this.size; i++) {
      const w = new Worker(this.file);
      w.unref();
      w.on('message', (reply: DeriveReply) => this.settle(reply));
      w.on('error', (e) => this.failAll(e));
      this.workers.push(w);
    }
  }

  /** Keys and addresses of wallets from .. from+count-1, split across the workers. */
  async derive(scheme: HdScheme, root: ExtendedPublicKey, from: number, count: number): Promise<DerivedWallets> {
    this.startWorkers();
    if (this.workers.length === 0) return deriveWalletBatch(scheme, root, from, count);
    const slices = Math.max(1, Math.min(this.workers.length, Math.floor(count / MIN_SLICE)));
    const size = Math.ceil(count / slices);
    const parts = await Promise.all(
      Array.from({ length: slices }, (_, s) => {
        const start = from + s * size;
        return this.run({ scheme, root, from: start, count: Math.min(size, from + count - start) });
      }),
    );
    return { publicKeys: parts.flatMap((p) => p.publicKeys), addresses: parts.flatMap((p) => p.addresses) };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }

  private run(job: Omit<DeriveJob, 'id'>): Promise<DerivedWallets> {
    const id = this.nextId++;
    const worker = this.workers[this.turn++ % this.workers.length]!;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ ...job, id } satisfies DeriveJob);
    }).finally(() => {
      if (this.pending.size === 0) for (const w of this.workers) w.unref();
    }) as Promise<DerivedWallets>;
  }

  private settle(reply: DeriveReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    if ('error' in reply) p.reject(new Error(reply.error));
    else p.resolve(reply.batch);
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
