/**
 * The coordinator's view of DKLs23 presignatures made ahead of time. The nodes keep the secret
 * halves sealed in their single-use pools; here we only track, per keyset, which signer set holds
 * which presignature ids and the public part the online round and combine need. Refills run in the
 * background, one refill per keyset at a time, each session making a batch of presignatures in
 * lockstep; a few sessions run at once only while the pool falls behind.
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
  /** Most presigning sessions a refill runs at once (more than one only while the pool falls behind). */
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
  /** Per keyset, oldest first, each with its signer set's key (setKey), computed once when it arrives. */
  private readonly ready = new Map<string, { set: string; presig: ReadyPresignature }[]>();
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
    const i = list.findIndex((p) => p.set === want);
    return i < 0 ? undefined : list.splice(i, 1)[0]!.presig;
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
    this.ready.set(keysetId, list.filter((p) => !p.presig.signers.some((s) => bad.has(s.nodeId))));
  }

  /** How many presignatures the keyset should hold now: about DEMAND_WINDOW_MS of requests. */
  target(keysetId: string): number {
    const recent = this.demand.recent(keysetId);
    return Math.min(this.opts.max, Math.max(this.opts.target, recent));
  }

  /** Refills start below this level: half the demand-sized target, at least `low`. */
  private lowMark(keysetId: string): number {
    return Math.max(this.opts.low, Math.floor(this.target(keysetId) / 2));
  }

  /** Starts a background refill if the keyset is below the low mark and none is running. */
  maybeRefill(keysetId: string, produce: Produce): void {
    if (this.refilling.has(keysetId) || this.level(keysetId) >= this.lowMark(keysetId)) return;
    this.refilling.add(keysetId);
    void this.refill(keysetId, produce).finally(() => this.refilling.delete(keysetId));
  }

  /**
   * One session at a time while the pool keeps up; up to `parallel` while it is below half its low
   * mark (demand outruns one session). Sessions in parallel arrive at the nodes as bursts that
   * signing requests wait behind, so they are kept for when the pool would otherwise run dry.
   */
  private async refill(keysetId: string, produce: Produce): Promise<void> {
    const started = Date.now();
    let made = 0;
    let inFlight = 0;
    let sessions = 0;
    let stop = false;
    let failure: unknown;
    await new Promise<void>((over) => {
      const launch = (): void => {
        for (;;) {
          const level = this.level(keysetId);
          const want = this.target(keysetId) - level - inFlight;
          const behind = level < Math.ceil(this.lowMark(keysetId) / 2);
          if (stop || want <= 0 || sessions >= this.opts.parallel || (sessions > 0 && !behind)) break;
          const count = Math.min(this.opts.batch, want);
          inFlight += count;
          sessions += 1;
          // Through an async wrapper: a producer that throws instead of rejecting still ends its session here.
          (async () => produce(count))()
            .then(
              (got) => {
                if (!got.length) {
                  stop = true;
                  return;
                }
                let list = this.ready.get(keysetId);
                if (!list) this.ready.set(keysetId, (list = []));
                for (const presig of got) list.push({ set: setKey(presig.signers.map((s) => s.nodeId)), presig });
                made += got.length;
              },
              (e: unknown) => {
                stop = true;
                failure ??= e;
              },
            )
            .finally(() => {
              inFlight -= count;
              sessions -= 1;
              launch();
              // Every session ends before the refill counts as over, so refills never overlap.
              if (sessions === 0) over();
            });
        }
      };
      launch();
      if (sessions === 0) over();
    });
    if (failure !== undefined) {
      this.log.warn({ keysetId, err: failure instanceof Error ? failure.message : String(failure) }, 'presignature refill failed');
    }
    this.log.info({ keysetId, made, level: this.level(keysetId), ms: Date.now() - started }, 'presignature pool refilled');
  }
}
