/**
 * Proactive refresh of a keyset's shares, and reshare to another threshold and member set, in two
 * phases so that no crash leaves the keyset on two epochs for good:
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
 * A reshare (crypto/reshare.ts) runs the same way with the new members as the ones that commit:
 * the dealers are the current members that are up (at least the threshold), the database takes the
 * new threshold and members with the new epoch, and members that leave delete their shares when
 * their part of the session is committed (retried like the rest while the reshare commits).
 *
 * Requests name the epoch the database has; a node on the other one refuses them plainly
 * (FAILED_PRECONDITION, no blame), so at every moment the nodes on the database's epoch (at least
 * the threshold, when all are up) sign, and the rest catch up.
 */
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { schemeToProto } from '../proto/convert.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { agreedResult, requireUp } from './keysets.js';
import type { NodeRegistry } from './node-registry.js';
import { finishAll } from './session-driver.js';
import { appendAudit } from './store/audit.js';
import type { Db } from './store/db.js';
import { durably } from './store/durably.js';
import { getKeyset, type KeysetRow } from './store/repo.js';
import { planReshare, type Member, type ReshareRequest } from './reshare-plan.js';
import type { runSession } from './session-driver.js';

interface RefreshRow {
  refresh_id: string;
  keyset_id: string;
  from_epoch: number;
  commit_session: string;
  abort_session: string | null;
  /** Of the members after the refresh, in index order. */
  verifying_shares: string[];
  /** Reshares only: the new threshold and members. */
  new_threshold: number | null;
  new_members: Member[] | null;
  /** Reshares only: dealers that leave, and the session whose commit deletes their shares. */
  retiring: Member[];
  retire_session: string | null;
}

const ROW_COLUMNS = 'refresh_id, keyset_id, from_epoch, commit_session, abort_session, verifying_shares, new_threshold, new_members, retiring, retire_session';

export interface LifecycleOutcome {
  row: KeysetRow;
  epoch: number;
  /** New members not committed yet. */
  pending: string[];
  /** Members that left but still hold their old share (down at the commit). */
  unretired: string[];
}

export class Refreshes {
  private timer?: NodeJS.Timeout;
  private running = false;
  private readonly committing = new Map<string, Promise<{ pending: string[]; unretired: string[] }>>();

  constructor(
    private readonly db: Db,
    private readonly registry: NodeRegistry,
    private readonly log: Logger,
    /** Called once a refresh is complete: cached keyset state is stale. */
    private readonly onCommitted: (keysetId: string) => void,
  ) {}

  async refresh(keysetId: string, actor: string): Promise<LifecycleOutcome> {
    const row = await this.idle(keysetId);
    const participants = members(row);
    await requireUp(this.registry, participants.map((p) => p.nodeId), 'refresh');
    return this.run(row, actor, {
      what: 'refresh',
      participants,
      newMembers: participants,
      retiring: [],
      params: { case: 'refresh', value: { keysetId, epoch: row.epoch } },
    });
  }

  /**
   * Reshare to another threshold and/or member set. Every new member must be up; the current
   * members that are up deal (at least the threshold of them), so a member being removed because
   * its machine is gone is simply left out.
   */
  async reshare(keysetId: string, req: ReshareRequest, actor: string): Promise<LifecycleOutcome> {
    const row = await this.idle(keysetId);
    const target = planReshare(row, new Set(this.registry.nodes.keys()), req, await this.highestIndex(keysetId));
    await requireUp(this.registry, target.members.map((m) => m.nodeId), 'reshare');
    const old = members(row);
    const up = new Set(await this.registry.reprobe(old.map((m) => m.nodeId)));
    const dealers = old.filter((m) => up.has(m.nodeId));
    if (dealers.length < row.threshold) {
      throw new RpcError(status.UNAVAILABLE, `reshare needs at least ${row.threshold} current members up to deal, ${dealers.length} are; down: ${old.filter((m) => !up.has(m.nodeId)).map((m) => m.nodeId).join(', ')}`);
    }
    const participants = [...new Map([...dealers, ...target.members].map((m) => [m.index, m])).values()].sort((x, y) => x.index - y.index);
    return this.run(row, actor, {
      what: 'reshare',
      participants,
      newMembers: target.members,
      newThreshold: target.threshold,
      retiring: dealers.filter((d) => !target.members.some((m) => m.index === d.index)),
      params: {
        case: 'reshare',
        value: {
          keysetId,
          scheme: schemeToProto(row.scheme),
          epoch: row.epoch,
          threshold: row.threshold,
          members: old,
          verifyingShares: row.members.map((m) => m.verifyingShare),
          publicKey: row.publicKey,
          chainCode: row.chainCode,
          dealers: dealers.map((d) => d.index),
          newThreshold: target.threshold,
          newMembers: target.members,
        },
      },
      details: { threshold: target.threshold, added: target.added.map((m) => m.nodeId), removed: target.removed.map((m) => m.nodeId), dealers: dealers.map((d) => d.nodeId) },
    });
  }

  /** The highest index any earlier reshare gave out or retired, so that a joining node never reuses one. */
  private async highestIndex(keysetId: string): Promise<number> {
    const rows = await this.db.query<{ new_members: Member[] | null; retiring: Member[] }>('SELECT new_members, retiring FROM keyset_refreshes WHERE keyset_id = $1', [keysetId]);
    return Math.max(0, ...rows.flatMap((r) => [...(r.new_members ?? []), ...r.retiring].map((m) => m.index)));
  }

  /** The keyset, with no refresh or reshare of it still being committed. */
  private async idle(keysetId: string): Promise<KeysetRow> {
    const row = await getKeyset(this.db, keysetId);
    if (!row) throw new RpcError(status.NOT_FOUND, `keyset ${keysetId} not found`);
    const [busy] = await this.db.query("SELECT refresh_id FROM keyset_refreshes WHERE keyset_id = $1 AND status = 'committing'", [keysetId]);
    if (busy) throw new RpcError(status.FAILED_PRECONDITION, `a refresh or reshare of keyset ${keysetId} is still being committed; it completes when every node is up`);
    return row;
  }

  /** First phase (all participants, then ecdsa's fresh pairwise setup on the new members), the record, then the commit. */
  private async run(row: KeysetRow, actor: string, op: Operation): Promise<LifecycleOutcome> {
    const keysetId = row.keysetId;
    const started = Date.now();
    const first = await agreedResult(this.registry, op.participants, op.params, op.what, op.newMembers.length);
    let result = first.result;
    let commitSession = first.sessionId;
    let abortSession: string | null = null;
    if (row.scheme === 'ecdsa') {
      // Fresh OT setups for the new shares: the new epoch never uses the old correlations.
      try {
        const setup = await agreedResult(this.registry, op.newMembers, { case: 'setup', value: { keysetId, refreshedSession: first.sessionId } }, `${op.what} (pairwise setup)`);
        if (setup.result.verifyingShares.some((v, i) => bytesToHex(v) !== bytesToHex(result.verifyingShares[i]!))) {
          await finishAll(this.registry, op.newMembers, setup.sessionId, false);
          throw new RpcError(status.ABORTED, `${op.what} aborted: the setup reports other verifying shares than the ${op.what}`);
        }
        result = setup.result;
        abortSession = first.sessionId;
        commitSession = setup.sessionId;
      } catch (e) {
        await finishAll(this.registry, op.participants, first.sessionId, false);
        throw e;
      }
    }
    if (bytesToHex(result.publicKey) !== bytesToHex(row.publicKey) || bytesToHex(result.chainCode) !== bytesToHex(row.chainCode)) {
      await finishAll(this.registry, op.participants, commitSession, false);
      if (abortSession) await finishAll(this.registry, op.participants, abortSession, false);
      throw new RpcError(status.ABORTED, `${op.what} aborted: the nodes report a different key`);
    }
    const r: RefreshRow = {
      refresh_id: randomUUID(),
      keyset_id: keysetId,
      from_epoch: row.epoch,
      commit_session: commitSession,
      abort_session: abortSession,
      verifying_shares: result.verifyingShares.map((v) => bytesToHex(v)),
      new_threshold: op.newThreshold ?? null,
      new_members: op.newThreshold === undefined ? null : op.newMembers,
      retiring: op.retiring,
      retire_session: op.retiring.length ? first.sessionId : null,
    };
    await durably(this.log, `record ${op.what}`, () =>
      this.db.tx(async (q) => {
        await q.query(
          `INSERT INTO keyset_refreshes (refresh_id, keyset_id, from_epoch, commit_session, abort_session, verifying_shares, status, created_at, updated_at,
                                         new_threshold, new_members, retiring, retire_session)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'committing', $7, $7, $8, $9::jsonb, $10::jsonb, $11)`,
          [r.refresh_id, keysetId, r.from_epoch, r.commit_session, r.abort_session, JSON.stringify(r.verifying_shares), new Date(),
            r.new_threshold, r.new_members && JSON.stringify(r.new_members), JSON.stringify(r.retiring), r.retire_session],
        );
        await appendAudit(q, { actor, action: `keyset.${op.what}_prepared`, subject: keysetId, details: { refreshId: r.refresh_id, fromEpoch: row.epoch, transcriptHash: bytesToHex(result.transcriptHash), ...op.details } });
      }),
    );
    // Test-only: a pause between the phases, so a test can take a node down in between.
    const hold = Number(process.env.CUSTODY_TEST_REFRESH_HOLD_MS ?? 0);
    if (hold > 0) await new Promise((res) => setTimeout(res, hold));
    const { pending, unretired } = await this.commit(r);
    const now = (await getKeyset(this.db, keysetId))!;
    if (now.epoch === row.epoch) {
      throw new RpcError(status.UNAVAILABLE, `${op.what} of ${keysetId} is prepared but committed on fewer than ${op.newThreshold ?? row.threshold} members (waiting: ${pending.join(', ')}); it completes by itself when they are reachable`);
    }
    this.log.info({ keysetId, epoch: now.epoch, pending, unretired, ms: Date.now() - started }, `keyset ${op.what} done`);
    return { row: now, epoch: now.epoch, pending, unretired };
  }

  /**
   * Second phase. The database (and so every request) moves to the new epoch as soon as at least
   * the (new) threshold of new members committed, so that a quorum always shares one epoch;
   * members still on the old one sit out (they refuse the new epoch) until a retry commits them.
   */
  private commit(r: RefreshRow): Promise<{ pending: string[]; unretired: string[] }> {
    // The operator's command and the resume timer may both get here: one run per refresh at a time.
    let p = this.committing.get(r.refresh_id);
    if (!p) {
      p = this.commitOnce(r).finally(() => this.committing.delete(r.refresh_id));
      this.committing.set(r.refresh_id, p);
    }
    return p;
  }

  private async commitOnce(r: RefreshRow): Promise<{ pending: string[]; unretired: string[] }> {
    const row = await getKeyset(this.db, r.keyset_id);
    if (!row) return { pending: [], unretired: [] };
    const newMembers = r.new_members ?? members(row);
    const threshold = r.new_threshold ?? row.threshold;
    const pending = await finishAll(this.registry, newMembers, r.commit_session, true);
    const unretired = r.retiring.length ? await finishAll(this.registry, r.retiring, r.retire_session!, true) : [];
    if (pending.length || unretired.length) this.log.warn({ keysetId: r.keyset_id, pending, unretired }, 'new shares not yet committed (or old ones not yet deleted) on every node; will retry');
    const reshare = r.new_members !== null;
    const what = reshare ? 'reshare' : 'refresh';
    if (row.epoch === r.from_epoch && newMembers.length - pending.length >= threshold) {
      await durably(this.log, 'switch epoch', () =>
        this.db.tx(async (q) => {
          // Only one commit moves the epoch (another coordinator, or the resume timer, may race
          // this one): the rest of the switch and its audit record happen only if this did.
          const moved = await q.query('UPDATE keysets SET epoch = $2 WHERE keyset_id = $1 AND epoch = $3 RETURNING keyset_id', [r.keyset_id, r.from_epoch + 1, r.from_epoch]);
          if (moved.length === 0) return;
          if (reshare) {
            await q.query('DELETE FROM keyset_members WHERE keyset_id = $1', [r.keyset_id]);
            for (const [i, m] of newMembers.entries()) {
              await q.query('INSERT INTO keyset_members (keyset_id, party_index, node_id, verifying_share) VALUES ($1, $2, $3, $4)', [r.keyset_id, m.index, m.nodeId, hexToBytes(r.verifying_shares[i]!)]);
            }
            await q.query('UPDATE keysets SET threshold = $2 WHERE keyset_id = $1', [r.keyset_id, threshold]);
          } else {
            for (const [i, m] of row.members.entries()) {
              await q.query('UPDATE keyset_members SET verifying_share = $3 WHERE keyset_id = $1 AND party_index = $2', [r.keyset_id, m.index, hexToBytes(r.verifying_shares[i]!)]);
            }
          }
          const details = reshare ? { threshold, members: newMembers.map((m) => m.nodeId) } : {};
          await appendAudit(q, { actor: 'coordinator', action: reshare ? 'keyset.reshared' : 'keyset.refreshed', subject: r.keyset_id, details: { refreshId: r.refresh_id, epoch: r.from_epoch + 1, pending, ...details } });
        }),
      );
      this.onCommitted(r.keyset_id);
    }
    // Done once every new member committed. A member that left and stays unreachable is not waited
    // for (the keyset may be reshared precisely because it is gone); the audit record names it.
    if (pending.length === 0 && (unretired.length === 0 || reshare)) {
      if (r.abort_session) await finishAll(this.registry, newMembers, r.abort_session, false);
      await durably(this.log, `complete ${what}`, () =>
        this.db.tx(async (q) => {
          const done = await q.query("UPDATE keyset_refreshes SET status = 'done', updated_at = $2 WHERE refresh_id = $1 AND status = 'committing' RETURNING refresh_id", [r.refresh_id, new Date()]);
          if (done.length) await appendAudit(q, { actor: 'coordinator', action: `keyset.${what}_completed`, subject: r.keyset_id, details: { refreshId: r.refresh_id, epoch: r.from_epoch + 1, ...(reshare ? { unretired } : {}) } });
        }),
      );
    }
    return { pending, unretired };
  }

  /** Finishes refreshes a crash or a down node left in 'committing'. */
  async resume(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const rows = await this.db.query<RefreshRow>(`SELECT ${ROW_COLUMNS} FROM keyset_refreshes WHERE status = 'committing'`);
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

interface Operation {
  what: 'refresh' | 'reshare';
  /** Everyone in the first session: the members (refresh), or the dealers and new members (reshare). */
  participants: Member[];
  /** Who holds a share afterwards and commits it. */
  newMembers: Member[];
  /** Reshares only. */
  newThreshold?: number;
  retiring: Member[];
  params: Parameters<typeof runSession>[2];
  details?: Record<string, unknown>;
}

const members = (row: KeysetRow): Member[] => row.members.map((m) => ({ index: m.index, nodeId: m.nodeId }));
