/**
 * The coordinator's view of DKLs23 presignatures made ahead of time. The nodes keep the secret
 * halves sealed in their single-use pools; here we only track, per keyset, which signer set holds
 * which presignature ids and the public part the online round and combine need. Refills run in the
 * background, one refill per keyset at a time, with a few presigning sessions in flight so their
 * rounds share node calls (round-batcher.ts), each making a batch of presignatures in lockstep.
 * The pool is sized from observed demand: about two seconds' worth of requests, between `target`
 * and `max`.
 */
import type { Logger } from '../runtime/log.js';
import { DemandMeter } from './demand.js';

export interface PooledSigner {
  index: number;
  nodeId: string;
  presignatureId: string;
}

export interface ReadyPresignature {
  /** Sorted by party index, as the presigning session ran. */
  signers: PooledSigner[];
  sessionId: string;
  sid: Uint8Array;
  bigR: Uint8Array;
}

export interface PoolOptions {
  /** Presignatures to keep per keyset when demand is low. */
  target: number;
  /** Refill when the level drops below this (or below half the demand-sized target). */
  low: number;
  /** Most presignatures kept per keyset however high the demand (each is a sealed record on t nodes). */
  max: number;
  /** Presigning sessions a refill runs at once. */
  parallel: number;
  /** Presignatures one session makes, in lockstep (crypto/protocol-batch.ts). */
  batch: number;
}

/**
 * Four presignatures per session: a node then seals, signs, relays and stores once per peer and
 * round for four, and the coordinator drives one session instead of four (docs/benchmarks.md).
 */
export const DEFAULT_POOL: PoolOptions = { target: 8, low: 4, max: 64, parallel: 4, batch: 4 };

/** Demand is counted over this window; the pool aims to hold that many presignatures. */
const DEMAND_WINDOW_MS = 2_000;

/** Makes up to `count` presignatures (one session); none means stop (the loop waits for the next trigger). */
export type Produce = (count: number) => Promise<ReadyPresignature[]>;

/** Names a signer set whatever the order of its node ids. */
export const setKey = (nodeIds: readonly string[]) => [...nodeIds].sort().join('+');

export class PresignPool {
  private readonly ready = new Map<string, ReadyPresignature[]>();
  private readonly refilling = new Set<string>();
  private readonly demand: DemandMeter;

  constructor(
    private readonly log: Logger,
    readonly opts: PoolOptions = DEFAULT_POOL,
  ) {
    this.demand = new DemandMeter(DEMAND_WINDOW_MS, 4 * opts.max);
  }

  level(keysetId: string): number {
    return this.ready.get(keysetId)?.length ?? 0;
  }

  /**
   * Removes and returns a presignature made by exactly this signer set (oldest first). It leaves
   * the pool before use, so whatever happens next it is never handed out twice.
   */
  take(keysetId: string, nodeIds: readonly string[]): ReadyPresignature | undefined {
    this.demand.record(keysetId);
    const list = this.ready.get(keysetId);
    if (!list) return undefined;
    const want = setKey(nodeIds);
    const i = list.findIndex((p) => setKey(p.signers.map((s) => s.nodeId)) === want);
    return i < 0 ? undefined : list.splice(i, 1)[0];
  }

  /** Drops every presignature of a keyset (its pairwise setup changed). */
  dropKeyset(keysetId: string): void {
    this.ready.delete(keysetId);
  }

  /** Drops presignatures involving any of these nodes (banned for the keyset: never used again). */
  dropInvolving(keysetId: string, nodeIds: readonly string[]): void {
    const list = this.ready.get(keysetId);
    if (!list || !nodeIds.length) return;
    const bad = new Set(nodeIds);
    this.ready.set(keysetId, list.filter((p) => !p.signers.some((s) => bad.has(s.nodeId))));
  }

  /** How many presignatures the keyset should hold now: about DEMAND_WINDOW_MS of requests. */
  target(keysetId: string): number {
    const recent = this.demand.recent(keysetId);
    return Math.min(this.opts.max, Math.max(this.opts.target, recent));
  }

  /** Starts a background refill if the keyset is below the low mark and none is running. */
  maybeRefill(keysetId: string, produce: Produce): void {
    const low = Math.max(this.opts.low, Math.floor(this.target(keysetId) / 2));
    if (this.refilling.has(keysetId) || this.level(keysetId) >= low) return;
    this.refilling.add(keysetId);
    void this.refill(keysetId, produce).finally(() => this.refilling.delete(keysetId));
  }

  private async refill(keysetId: string, produce: Produce): Promise<void> {
    const started = Date.now();
    let made = 0;
    let inFlight = 0;
    let stop = false;
    const worker = async () => {
      for (;;) {
        const want = this.target(keysetId) - this.level(keysetId) - inFlight;
        if (stop || want <= 0) return;
        const count = Math.min(this.opts.batch, want);
        inFlight += count;
        let got: ReadyPresignature[];
        try {
          got = await produce(count);
        } catch (e) {
          stop = true;
          throw e;
        } finally {
          inFlight -= count;
        }
        if (!got.length) {
          stop = true;
          return;
        }
        let list = this.ready.get(keysetId);
        if (!list) this.ready.set(keysetId, (list = []));
        list.push(...got);
        made += got.length;
      }
    };
    // Every worker finishes before the refill counts as over, so refills never overlap.
    const failed = (await Promise.allSettled(Array.from({ length: this.opts.parallel }, worker))).find((r) => r.status === 'rejected');
    if (failed) {
      const e = failed.reason as unknown;
      this.log.warn({ keysetId, err: e instanceof Error ? e.message : String(e) }, 'presignature refill failed');
    }
    this.log.info({ keysetId, made, level: this.level(keysetId), ms: Date.now() - started }, 'presignature pool refilled');
  }
}
