/**
 * Public nonce commitments the coordinator holds for each node, per curve, so online signing is
 * one round trip. They stay encoded: the signers validate every peer point themselves, and the
 * coordinator decodes them only when a signature fails and it must find out who cheated
 * (signing.ts). Pools refill in the background when they run low; an empty pool is filled on demand.
 * The low mark follows the load: a pool refills below about half a second of takes, so at a high
 * rate it does not run dry while a reservation is on its way. Reservations keep one size: larger
 * ones were measured to lengthen the latency tail (each is a burst of multiplications and a sealed
 * write on the node, and the nodes refill at the same moments).
 */
import { Curve } from '../proto/gen/custody/v1/common_pb.js';
import type { CurveName } from '../crypto/group/index.js';
import { DemandMeter } from './demand.js';
import type { NodeRegistry } from './node-registry.js';

export interface CachedCommitment {
  id: string;
  hiding: Uint8Array;
  binding: Uint8Array;
}

export interface NonceCacheOptions {
  /** Refill below this many (or below half a second of demand, if more). */
  lowWater: number;
  /** Reserve this many per refill. */
  batch: number;
}

const DEFAULTS: NonceCacheOptions = { lowWater: 64, batch: 256 };
/** Larger reservations keep a node busy for seconds on the noble backend (two base multiplications per nonce pair). */
const MAX_RESERVE = 512;
/** Demand is counted over one second: takes per second. */
const DEMAND_WINDOW_MS = 1_000;

export class NonceCache {
  private readonly pools = new Map<string, CachedCommitment[]>();
  private readonly refilling = new Map<string, Promise<void>>();
  /** Callers waiting for a refill, per pool: the next refill asks for at least that many. */
  private readonly waiting = new Map<string, number>();
  private readonly demand = new DemandMeter(DEMAND_WINDOW_MS, 4 * MAX_RESERVE);
  private readonly opts: NonceCacheOptions;

  constructor(
    private readonly registry: NodeRegistry,
    opts: Partial<NonceCacheOptions> = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  size(nodeId: string, curve: CurveName): number {
    return this.pools.get(`${nodeId}/${curve}`)?.length ?? 0;
  }

  /**
   * Takes one commitment for the node. When the pool is empty every caller waits for a refill
   * sized to how many are waiting, and tries again: under load hundreds arrive at once.
   * Throws only when the node cannot be reached.
   */
  async take(nodeId: string, curve: CurveName): Promise<CachedCommitment> {
    const key = `${nodeId}/${curve}`;
    this.demand.record(key);
    for (;;) {
      const pool = this.pools.get(key);
      const c = pool?.shift();
      if (c) {
        if (pool!.length < this.lowWater(key)) void this.refill(nodeId, curve, this.opts.batch).catch(() => undefined);
        return c;
      }
      this.waiting.set(key, (this.waiting.get(key) ?? 0) + 1);
      try {
        await this.refill(nodeId, curve, Math.min(MAX_RESERVE, Math.max(32, (this.waiting.get(key) ?? 0) + this.opts.lowWater)));
      } finally {
        this.waiting.set(key, (this.waiting.get(key) ?? 1) - 1);
      }
    }
  }

  /** Half a second of takes at the recent rate, at least `lowWater`, at most MAX_RESERVE. */
  private lowWater(key: string): number {
    return Math.min(MAX_RESERVE, Math.max(this.opts.lowWater, Math.ceil(this.demand.recent(key) / 2)));
  }

  /** Drops a node's commitments (it restarted or misbehaved); they are never reused. */
  forget(nodeId: string): void {
    for (const curve of ['ed25519', 'secp256k1'] as const) this.pools.delete(`${nodeId}/${curve}`);
  }

  refill(nodeId: string, curve: CurveName, count: number): Promise<void> {
    const key = `${nodeId}/${curve}`;
    const inflight = this.refilling.get(key);
    if (inflight) return inflight;
    const p = (async () => {
      const node = this.registry.get(nodeId);
      const res = await node.client.reserveNonces({ curve: curve === 'ed25519' ? Curve.ED25519 : Curve.SECP256K1, count }, { deadlineMs: 10_000 });
      const fresh = res.commitments.map((c) => ({ id: c.commitmentId, hiding: c.hiding, binding: c.binding }));
      const pool = this.pools.get(key) ?? [];
      pool.push(...fresh);
      this.pools.set(key, pool);
      this.registry.markSeen(nodeId);
    })().finally(() => this.refilling.delete(key));
    this.refilling.set(key, p);
    return p;
  }
}
