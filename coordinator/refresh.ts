/**
 * Proactive refresh of a keyset's shares, in two phases so that no crash leaves the keyset on two
 * epochs for good:
 *
 *   prepare  every member runs the refresh (ecdsa: then a fresh pairwise setup on the refreshed
 *            share) and seals the result as pending; all must report the same key and the same
 *            new verifying shares. The refresh is recorded as 'committing' with what to commit.
 *   commit   every member makes its pending share active, which overwrites (destroys) the old one.
 *            Once at least the threshold of members confirmed, the database takes the new
 *            verifying shares and epoch (audit `keyset.refreshed`); when all have,
 *            `keyset.refresh_completed`. A node that was down is committed when it is back: the
 *            coordinator retries 'committing' refreshes every few seconds and at start.
 *
 * Requests name the epoch the database has; a node on the other one refuses them plainly
 * (FAILED_PRECONDITION, no blame), so at every moment the nodes on the database's epoch (at least
 * the threshold, when all are up) sign, and the rest catch up.
 */
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { agreedResult, requireUp } from './keysets.js';
import type { NodeRegistry } from './node-registry.js';
import { finishAll } from './session-driver.js';
import { appendAudit } from './store/audit.js';
import type { Db } from './store/db.js';
import { durably } from './store/durably.js';
import { getKeyset, type KeysetRow } from './store/repo.js';

interface RefreshRow {
  refresh_id: string;
  keyset_id: string;
  from_epoch: number;
  commit_session: string;
  abort_session: string | null;
  verifying_shares: string[];
}

export class Refreshes {
  private timer?: NodeJS.Timeout;
  private running = false;

  constructor(
    private readonly db: Db,
    private readonly registry: NodeRegistry,
    private readonly log: Logger,
    /** Called once a refresh is complete: cached keyset state is stale. */
    private readonly onCommitted: (keysetId: string) => void,
  ) {}

  async refresh(keysetId: string, actor: string): Promise<{ row: KeysetRow; epoch: number; pending: string[] }> {
    const row = await getKeyset(this.db, keysetId);
    if (!row) throw new RpcError(status.NOT_FOUND, `keyset ${keysetId} not found`);
    const [busy] = await this.db.query("SELECT refresh_id FROM keyset_refreshes WHERE keyset_id = $1 AND status = 'committing'", [keysetId]);
    if (busy) throw new RpcError(status.FAILED_PRECONDITION, `a refresh of keyset ${keysetId} is still being committed; it completes when every node is up`);
    const participants = row.members.map((m) => ({ index: m.index, nodeId: m.nodeId }));
    await requireUp(this.registry, participants.map((p) => p.nodeId), 'refresh');
    const started = Date.now();

    const refreshed = await agreedResult(this.registry, participants, { case: 'refresh', value: { keysetId, epoch: row.epoch } }, 'refresh');
    let result = refreshed.result;
    let commitSession = refreshed.sessionId;
    let abortSession: string | null = null;
    if (row.scheme === 'ecdsa') {
      // Fresh OT setups for the refreshed shares: the new epoch never uses the old correlations.
      try {
        const setup = await agreedResult(this.registry, participants, { case: 'setup', value: { keysetId, refreshedSession: refreshed.sessionId } }, 'refresh (pairwise setup)');
        if (setup.result.verifyingShares.some((v, i) => bytesToHex(v) !== bytesToHex(result.verifyingShares[i]!))) {
          await finishAll(this.registry, participants, setup.sessionId, false);
          throw new RpcError(status.ABORTED, 'refresh aborted: the setup reports other verifying shares than the refresh');
        }
        result = setup.result;
        abortSession = refreshed.sessionId;
        commitSession = setup.sessionId;
      } catch (e) {
        await finishAll(this.registry, participants, refreshed.sessionId, false);
        throw e;
      }
    }
    if (bytesToHex(result.publicKey) !== bytesToHex(row.publicKey)) {
      await finishAll(this.registry, participants, commitSession, false);
      throw new RpcError(status.ABORTED, 'refresh aborted: the nodes report a different key');
    }
    const refreshId = randomUUID();
    await durably(this.log, 'record refresh', () =>
      this.db.tx(async (q) => {
        await q.query(
          `INSERT INTO keyset_refreshes (refresh_id, keyset_id, from_epoch, commit_session, abort_session, verifying_shares, status, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'committing', $7, $7)`,
          [refreshId, keysetId, row.epoch, commitSession, abortSession, JSON.stringify(result.verifyingShares.map((v) => bytesToHex(v))), new Date()],
        );
        await appendAudit(q, { actor, action: 'keyset.refresh_prepared', subject: keysetId, details: { refreshId, fromEpoch: row.epoch, transcriptHash: bytesToHex(result.transcriptHash) } });
      }),
    );
    // Test-only: a pause between the phases, so a test can take a node down in between.
    const hold = Number(process.env.CUSTODY_TEST_REFRESH_HOLD_MS ?? 0);
    if (hold > 0) await new Promise((res) => setTimeout(res, hold));
    const pending = await this.commit({
      refresh_id: refreshId,
      keyset_id: keysetId,
      from_epoch: row.epoch,
      commit_session: commitSession,
      abort_session: abortSession,
      verifying_shares: result.verifyingShares.map((v) => bytesToHex(v)),
    });
    const now = (await getKeyset(this.db, keysetId))!;
    if (now.epoch === row.epoch) {
      throw new RpcError(status.UNAVAILABLE, `refresh of ${keysetId} is prepared but committed on fewer than ${row.threshold} members (waiting: ${pending.join(', ')}); it completes by itself when they are reachable`);
    }
    this.log.info({ keysetId, epoch: now.epoch, pending, ms: Date.now() - started }, 'keyset refreshed');
    return { row: now, epoch: now.epoch, pending };
  }

  /**
   * Second phase. The database (and so every request) moves to the new epoch as soon as at least
   * the threshold of members committed, so that a quorum always shares one epoch; members still
   * on the old one sit out (they refuse the new epoch) until a retry commits them. Returns the
   * members not committed yet.
   */
  private async commit(r: RefreshRow): Promise<string[]> {
    const row = await getKeyset(this.db, r.keyset_id);
    if (!row) return [];
    const participants = row.members.map((m) => ({ index: m.index, nodeId: m.nodeId }));
    const pending = await finishAll(this.registry, participants, r.commit_session, true);
    if (pending.length) this.log.warn({ keysetId: r.keyset_id, pending }, 'refresh not yet committed on every node; will retry');
    const committed = participants.length - pending.length;
    if (row.epoch === r.from_epoch && committed >= row.threshold) {
      await durably(this.log, 'switch epoch', () =>
        this.db.tx(async (q) => {
          for (const [i, m] of row.members.entries()) {
            await q.query('UPDATE keyset_members SET verifying_share = $3 WHERE keyset_id = $1 AND party_index = $2', [r.keyset_id, m.index, hexToBytes(r.verifying_shares[i]!)]);
          }
          await q.query('UPDATE keysets SET epoch = $2 WHERE keyset_id = $1 AND epoch = $3', [r.keyset_id, r.from_epoch + 1, r.from_epoch]);
          await appendAudit(q, { actor: 'coordinator', action: 'keyset.refreshed', subject: r.keyset_id, details: { refreshId: r.refresh_id, epoch: r.from_epoch + 1, pending } });
        }),
      );
      this.onCommitted(r.keyset_id);
    }
    if (pending.length === 0) {
      if (r.abort_session) await finishAll(this.registry, participants, r.abort_session, false);
      await durably(this.log, 'complete refresh', () =>
        this.db.tx(async (q) => {
          const done = await q.query("UPDATE keyset_refreshes SET status = 'done', updated_at = $2 WHERE refresh_id = $1 AND status = 'committing' RETURNING refresh_id", [r.refresh_id, new Date()]);
          if (done.length) await appendAudit(q, { actor: 'coordinator', action: 'keyset.refresh_completed', subject: r.keyset_id, details: { refreshId: r.refresh_id, epoch: r.from_epoch + 1 } });
        }),
      );
    }
    return pending;
  }

  /** Finishes refreshes a crash or a down node left in 'committing'. */
  async resume(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const rows = await this.db.query<RefreshRow>(
        "SELECT refresh_id, keyset_id, from_epoch, commit_session, abort_session, verifying_shares FROM keyset_refreshes WHERE status = 'committing'",
      );
      for (const r of rows) await this.commit(r);
    } finally {
      this.running = false;
    }
  }

  start(intervalMs = 5_000): void {
    const tick = () => void this.resume().catch((e: unknown) => this.log.warn({ err: e instanceof Error ? e.message : String(e) }, 'refresh resume failed'));
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
