/**
 * Durable single-use pool of one-time secrets: FROST nonces now, ECDSA presignatures later
 * (DESIGN.md section 2: generated on the node, stored sealed, deleted before the share that used
 * them is returned, never reused, across restarts too).
 *
 * Layout:
 * - Each batch is one sealed ShareStore record, `nonce/<pool>/<seq>-<rand>`, holding its ids and
 *   secrets: one `add`, or several adds to the pool that arrived while the previous record was
 *   being written. Batch records are never rewritten, only deleted.
 * - `<dir>/tombstones.log` is a plain append-only list of consumed ids (ids are not secret).
 *   A take appends its id and fsyncs before it resolves; concurrent takes share one write+fsync
 *   (group commit). An id counts as consumed iff its line is in the log.
 * - `<dir>/LOCK` keeps a second process from loading the same pool: two processes holding the
 *   same batches could hand out one nonce twice. The folder must belong to exactly one ShareStore.
 *
 * Opening loads every batch, drops tombstoned ids, deletes batch records that are fully consumed
 * and then compacts the log. The order is what keeps it crash-safe: a batch record is deleted
 * (durably) before its tombstones leave the log, and the log is replaced atomically, so a
 * surviving batch never loses a tombstone. At runtime a fully consumed batch is deleted in the
 * background once all its takes are durable; its tombstones go at the next open.
 *
 * Consumed ids answer 'consumed' while their batch record exists, 'unknown' afterwards (the secret
 * is gone by then). When a pool holds more than `maxPerPool` live secrets after an add, whole
 * oldest batches are dropped (deleted, never handed out) until it fits; their ids become 'unknown'.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { wipe } from '../../crypto/seal.js';
import { ensureDir, fsyncDir, isErrno, readFileIfExists, unlinkDurable, writeAll, writeFileAtomic } from './durable-fs.js';
import type { ShareStore } from './share-store.js';

export type TakeResult = { status: 'ok'; secret: Uint8Array } | { status: 'consumed' } | { status: 'unknown' };

export interface NonceStoreOptions {
  /** Live secrets kept per pool; beyond it the oldest batches are dropped. Default 100_000. */
  maxPerPool?: number;
  /** Delete fully consumed batch records while running (default true); otherwise only at open. */
  reapConsumedBatches?: boolean;
}

export interface NonceStoreStats {
  /** Successful takes since open. */
  takes: number;
  /** Group commits: one write and one fdatasync of the tombstone log each. */
  logWrites: number;
  logSyncs: number;
  /** Batch records written by add (concurrent adds to a pool share one). */
  batchesWritten: number;
  /** Fully consumed batch records deleted (at open or at runtime). */
  batchesDeleted: number;
  /** Batches dropped unused because a pool went over maxPerPool. */
  batchesDropped: number;
  /** Background deletions that failed; the records are retried at the next open. */
  deleteFailures: number;
}

export class NonceStoreError extends Error {
  override readonly name = 'NonceStoreError';
}

export const DEFAULT_MAX_PER_POOL = 100_000;
const RECORD_PREFIX = 'nonce/';
const LOG_FILE = 'tombstones.log';
const LOCK_FILE = 'LOCK';
const LOG_HEADER = 'custody-nonce-tombstones v1\n';
const ID_BYTES = 16;
const ID_RE = /^[0-9a-f]{32}$/;
const POOL_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const BATCH_RE = /^(\d{16})-([0-9a-f]{8})$/;
const BATCH_MAGIC = Uint8Array.of(0x4e, 0x42, 0x01); // "NB" v1
const MAX_SECRET = 1 << 20;

/** Folders locked by this process, so a stale LOCK naming our own (recycled) pid is told apart from a live one. */
const heldLocks = new Set<string>();

interface Batch {
  readonly name: string;
  readonly seq: number;
  readonly ids: readonly string[];
  live: number;
  /** Takes detached from this batch whose tombstone is not yet durable. */
  pending: number;
  gone: boolean;
}

interface Entry {
  /** null once taken. */
  secret: Uint8Array | null;
  readonly batch: Batch;
}

interface Pool {
  /** Every id of every present batch, in insertion order. */
  readonly entries: Map<string, Entry>;
  /** Present batches, oldest first. */
  batches: Batch[];
  live: number;
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

function checkPool(pool: string): void {
  if (typeof pool !== 'string' || !POOL_RE.test(pool)) throw new NonceStoreError(`invalid pool name ${JSON.stringify(String(pool).slice(0, 64))}`);
}

function encodeBatch(pool: string, ids: readonly string[], secrets: readonly Uint8Array[]): Uint8Array {
  const poolBytes = Buffer.from(pool, 'latin1');
  let size = BATCH_MAGIC.length + 1 + poolBytes.length + 4;
  for (const s of secrets) size += ID_BYTES + 4 + s.length;
  const out = Buffer.alloc(size);
  let off = 0;
  out.set(BATCH_MAGIC, off);
  off += BATCH_MAGIC.length;
  out[off++] = poolBytes.length;
  out.set(poolBytes, off);
  off += poolBytes.length;
  out.writeUInt32BE(ids.length, off);
  off += 4;
  for (let i = 0; i < ids.length; i++) {
    out.write(ids[i]!, off, 'hex');
    off += ID_BYTES;
    out.writeUInt32BE(secrets[i]!.length, off);
    off += 4;
    out.set(secrets[i]!, off);
    off += secrets[i]!.length;
  }
  return out;
}

/** Secrets come back as fresh copies; the caller wipes `raw`. */
function decodeBatch(name: string, pool: string, raw: Uint8Array): { ids: string[]; secrets: Uint8Array[] } {
  const buf = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const bad = (what: string) => new NonceStoreError(`nonce batch ${name} is malformed: ${what}`);
  if (buf.length < BATCH_MAGIC.length + 5 || !BATCH_MAGIC.every((b, i) => buf[i] === b)) throw bad('unknown format');
  let off = BATCH_MAGIC.length;
  const plen = buf[off++]!;
  if (buf.toString('latin1', off, off + plen) !== pool) throw bad('pool name does not match the record name');
  off += plen;
  const count = buf.readUInt32BE(off);
  off += 4;
  const ids: string[] = [];
  const secrets: Uint8Array[] = [];
  try {
    for (let i = 0; i < count; i++) {
      if (off + ID_BYTES + 4 > buf.length) throw bad('truncated');
      ids.push(buf.toString('hex', off, off + ID_BYTES));
      off += ID_BYTES;
      const len = buf.readUInt32BE(off);
      off += 4;
      if (len === 0 || len > MAX_SECRET || off + len > buf.length) throw bad('bad secret length');
      secrets.push(new Uint8Array(buf.subarray(off, off + len))); // plain copy, not a Buffer view
      off += len;
    }
    if (off !== buf.length) throw bad('trailing bytes');
  } catch (err) {
    wipe(...secrets);
    throw err;
  }
  return { ids, secrets };
}

function parseLog(file: string, raw: Buffer | undefined): { exists: boolean; ids: string[]; clean: boolean } {
  if (raw === undefined) return { exists: false, ids: [], clean: false };
  const text = raw.toString('latin1');
  if (!text.startsWith(LOG_HEADER)) throw new NonceStoreError(`${file} is not a tombstone log`);
  const lines = text.slice(LOG_HEADER.length).split('\n');
  // The text after the last newline is either empty or a torn append whose take never returned.
  const tail = lines.pop()!;
  const ids: string[] = [];
  for (const [i, line] of lines.entries()) {
    // A bad complete line means the log was damaged; guessing could revive a used nonce, so refuse.
    if (!ID_RE.test(line)) throw new NonceStoreError(`${file} is corrupt at line ${i + 2}; refusing to open`);
    ids.push(line);
  }
  return { exists: true, ids, clean: tail === '' };
}

export class NonceStore {
  readonly dir: string;
  readonly #store: ShareStore;
  readonly #maxPerPool: number;
  readonly #reap: boolean;
  readonly #pools = new Map<string, Pool>();
  readonly #stats: NonceStoreStats = { takes: 0, logWrites: 0, logSyncs: 0, batchesWritten: 0, batchesDeleted: 0, batchesDropped: 0, deleteFailures: 0 };
  readonly #background = new Set<Promise<void>>();
  #log: FileHandle | null = null;
  #lastSeq = 0;
  #closed = false;
  /** Set when a log write or fsync failed: the log's tail is unknown, so nothing more may be taken. */
  #failure: NonceStoreError | null = null;
  #queue: string[] = [];
  #waiters: Waiter[] = [];
  /** Adds waiting per pool while that pool's record is being written. */
  readonly #adds = new Map<string, { secrets: Uint8Array[]; resolve(ids: string[]): void; reject(err: unknown): void }[]>();
  #flushing = false;
  #flushLoop: Promise<void> = Promise.resolve();

  private constructor(store: ShareStore, dir: string, opts: NonceStoreOptions) {
    this.#store = store;
    this.dir = dir;
    this.#maxPerPool = opts.maxPerPool ?? DEFAULT_MAX_PER_POOL;
    this.#reap = opts.reapConsumedBatches ?? true;
    if (!Number.isSafeInteger(this.#maxPerPool) || this.#maxPerPool < 1) throw new RangeError('maxPerPool must be a positive integer');
  }

  static async open(store: ShareStore, dir: string, opts: NonceStoreOptions = {}): Promise<NonceStore> {
    const ns = new NonceStore(store, path.resolve(dir), opts);
    await ensureDir(ns.dir);
    await ns.#lock();
    try {
      await ns.#load();
    } catch (err) {
      ns.#wipeAll();
      await ns.#log?.close().catch(() => undefined);
      await ns.#unlock();
      throw err;
    }
    return ns;
  }

  // ---- locking ---------------------------------------------------------------------------

  async #lock(): Promise<void> {
    const file = path.join(this.dir, LOCK_FILE);
    if (heldLocks.has(this.dir)) throw new NonceStoreError(`nonce store ${this.dir} is already open in this process`);
    const me = `${process.pid}@${os.hostname()}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fh = await fs.open(file, 'wx', 0o600);
        await writeAll(fh, Buffer.from(me + '\n'));
        await fh.sync();
        await fh.close();
        await fsyncDir(this.dir);
        heldLocks.add(this.dir);
        return;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      const owner = ((await readFileIfExists(file))?.toString('utf8') ?? '').trim();
      const [pidText, host] = owner.split('@');
      const pid = Number(pidText);
      if (host !== os.hostname() || !Number.isSafeInteger(pid) || pid <= 0) break;
      // Our own pid here means a previous incarnation (pid recycled, e.g. PID 1 in a container).
      if (pid !== process.pid && processAlive(pid)) break;
      await unlinkDurable(file);
    }
    throw new NonceStoreError(
      `nonce store ${this.dir} is locked by another process (${LOCK_FILE}); remove it only if no process uses this folder`,
    );
  }

  async #unlock(): Promise<void> {
    if (!heldLocks.delete(this.dir)) return;
    await unlinkDurable(path.join(this.dir, LOCK_FILE)).catch(() => undefined);
  }

  // ---- open --------------------------------------------------------------------------------

  async #load(): Promise<void> {
    const logPath = path.join(this.dir, LOG_FILE);
    const log = parseLog(logPath, await readFileIfExists(logPath));
    const tombstones = new Set(log.ids);
    const names = await this.#store.list(RECORD_PREFIX);
    const batches: { pool: string; name: string; seq: number }[] = [];
    for (const name of names) {
      const [, pool, base, ...rest] = name.split('/');
      const m = base === undefined ? null : BATCH_RE.exec(base);
      if (pool === undefined || !POOL_RE.test(pool) || m === null || rest.length > 0) {
        throw new NonceStoreError(`unexpected record ${name} under ${RECORD_PREFIX}`);
      }
      batches.push({ pool, name, seq: Number(m[1]) });
    }
    batches.sort((a, b) => a.seq - b.seq || (a.name < b.name ? -1 : 1));
    // open() writes the log before any add can run, so batches without a log mean it was lost or the
    // folder changed: loading them would revive every nonce already used.
    if (!log.exists && batches.length > 0) {
      throw new NonceStoreError(
        `${logPath} is missing but ${batches.length} nonce batch record(s) exist; refusing to open (used nonces would come back). ` +
          `Restore the log, or delete the ${RECORD_PREFIX} records to start the pools empty`,
      );
    }

    const consumed: string[] = [];
    const keep: string[] = [];
    const seen = new Set<string>();
    for (const { pool, name, seq } of batches) {
      this.#lastSeq = Math.max(this.#lastSeq, seq);
      const raw = await this.#store.get(name);
      if (raw === undefined) continue;
      let decoded: { ids: string[]; secrets: Uint8Array[] };
      try {
        decoded = decodeBatch(name, pool, raw);
      } finally {
        wipe(raw);
      }
      const batch: Batch = { name, seq, ids: decoded.ids, live: 0, pending: 0, gone: false };
      const entries: [string, Entry][] = [];
      for (const [i, id] of decoded.ids.entries()) {
        if (seen.has(id)) {
          wipe(...decoded.secrets);
          throw new NonceStoreError(`nonce id appears in two batches (${name}); refusing to open`);
        }
        seen.add(id);
        if (tombstones.has(id)) {
          wipe(decoded.secrets[i]);
          entries.push([id, { secret: null, batch }]);
        } else {
          batch.live++;
          entries.push([id, { secret: decoded.secrets[i]!, batch }]);
        }
      }
      if (batch.live === 0) {
        consumed.push(name);
        continue;
      }
      for (const id of decoded.ids) if (tombstones.has(id)) keep.push(id);
      const p = this.#pool(pool);
      for (const [id, e] of entries) p.entries.set(id, e);
      p.batches.push(batch);
      p.live += batch.live;
    }

    // Crash-safe order: records first (durably), then the log without their tombstones.
    for (const name of consumed) {
      await this.#store.delete(name);
      this.#stats.batchesDeleted++;
    }
    if (!log.clean || keep.length !== log.ids.length) {
      const keepSet = new Set(keep);
      const ordered = log.ids.filter((id) => keepSet.delete(id));
      await writeFileAtomic(logPath, Buffer.from(LOG_HEADER + ordered.map((id) => id + '\n').join(''), 'latin1'));
    }
    this.#log = await fs.open(logPath, 'a', 0o600);

    // maxPerPool may have been lowered since the last run.
    for (const pool of this.#pools.keys()) await this.#enforceCap(pool, null);
  }

  // ---- pools -------------------------------------------------------------------------------

  #pool(pool: string): Pool {
    let p = this.#pools.get(pool);
    if (!p) {
      p = { entries: new Map(), batches: [], live: 0 };
      this.#pools.set(pool, p);
    }
    return p;
  }

  #check(): void {
    if (this.#closed) throw new NonceStoreError(`nonce store ${this.dir} is closed`);
    if (this.#failure) throw this.#failure;
  }

  /**
   * Persists a batch of fresh secrets (sealed) before returning; ids are random 128-bit hex. Secrets
   * are copied. Adds to one pool that arrive while a write is under way share the next record
   * (group commit): a DKLs23 presignature is one secret, and one sealed write with its fsyncs per
   * presignature cost more than the presignature's own storage.
   */
  async add(pool: string, secrets: Uint8Array[]): Promise<string[]> {
    this.#check();
    checkPool(pool);
    if (!Array.isArray(secrets) || secrets.length === 0) throw new RangeError('add needs at least one secret');
    if (secrets.length > this.#maxPerPool) throw new RangeError(`batch of ${secrets.length} exceeds maxPerPool ${this.#maxPerPool}`);
    for (const s of secrets) {
      if (!(s instanceof Uint8Array) || s.length === 0 || s.length > MAX_SECRET) throw new RangeError(`each secret must be 1..${MAX_SECRET} bytes`);
    }
    const copies = secrets.map((s) => Uint8Array.from(s));
    return new Promise<string[]>((resolve, reject) => {
      const item = { secrets: copies, resolve, reject };
      const queued = this.#adds.get(pool);
      if (queued) {
        queued.push(item);
        return;
      }
      this.#adds.set(pool, [item]);
      void this.#writeAdds(pool);
    });
  }

  /** Writes a pool's queued adds, as many per record as maxPerPool allows, until none are left. */
  async #writeAdds(pool: string): Promise<void> {
    const queue = this.#adds.get(pool)!;
    while (queue.length > 0) {
      let count = queue[0]!.secrets.length;
      let n = 1;
      while (n < queue.length && count + queue[n]!.secrets.length <= this.#maxPerPool) count += queue[n++]!.secrets.length;
      const group = queue.splice(0, n);
      try {
        const ids = await this.#writeBatch(pool, group.flatMap((g) => g.secrets));
        let off = 0;
        for (const g of group) {
          g.resolve(ids.slice(off, off + g.secrets.length));
          off += g.secrets.length;
        }
      } catch (err) {
        for (const g of group) g.reject(err);
      }
    }
    this.#adds.delete(pool);
  }

  /** One batch record for these secrets (owned from here: kept in memory or wiped). */
  async #writeBatch(pool: string, copies: Uint8Array[]): Promise<string[]> {
    try {
      this.#check();
    } catch (err) {
      wipe(...copies);
      throw err;
    }
    const p = this.#pools.get(pool);
    const ids: string[] = [];
    const fresh = new Set<string>();
    while (ids.length < copies.length) {
      const id = randomBytes(ID_BYTES).toString('hex');
      if (fresh.has(id) || p?.entries.has(id)) continue; // 2^-128; cheap to be sure
      fresh.add(id);
      ids.push(id);
    }
    const seq = (this.#lastSeq = Math.max(this.#lastSeq + 1, Date.now() * 1000));
    const name = `${RECORD_PREFIX}${pool}/${String(seq).padStart(16, '0')}-${randomBytes(4).toString('hex')}`;
    const encoded = encodeBatch(pool, ids, copies);
    try {
      await this.#store.put(name, encoded);
    } catch (err) {
      wipe(...copies);
      throw err;
    } finally {
      wipe(encoded);
    }
    this.#stats.batchesWritten++;
    if (this.#closed) {
      // Durable already; the next open serves it.
      wipe(...copies);
      throw new NonceStoreError(`nonce store ${this.dir} closed during add`);
    }
    const batch: Batch = { name, seq, ids, live: ids.length, pending: 0, gone: false };
    const target = this.#pool(pool);
    ids.forEach((id, i) => target.entries.set(id, { secret: copies[i]!, batch }));
    // Concurrent adds can finish out of order; keep batches sorted so "oldest" stays true.
    let at = target.batches.length;
    while (at > 0 && target.batches[at - 1]!.seq > seq) at--;
    target.batches.splice(at, 0, batch);
    target.live += batch.live;
    await this.#enforceCap(pool, batch);
    return ids;
  }

  /** Drops the oldest batches (never `keep`) until the pool fits; they were never handed out, so nothing is lost but supply. */
  async #enforceCap(pool: string, keep: Batch | null): Promise<void> {
    const p = this.#pools.get(pool);
    if (!p) return;
    while (p.live > this.#maxPerPool) {
      const victim = p.batches.find((b) => b !== keep);
      if (!victim) return;
      // Out of memory first, so no take can hand out a secret from a batch being dropped.
      this.#detachBatch(pool, victim);
      this.#stats.batchesDropped++;
      try {
        await this.#store.delete(victim.name);
      } catch {
        this.#stats.deleteFailures++; // still on disk: reloaded (and capped) at the next open
      }
    }
  }

  #detachBatch(pool: string, batch: Batch): void {
    const p = this.#pools.get(pool);
    batch.gone = true;
    if (!p) return;
    p.batches = p.batches.filter((b) => b !== batch);
    for (const id of batch.ids) {
      const e = p.entries.get(id);
      if (e?.batch !== batch) continue;
      if (e.secret) {
        wipe(e.secret);
        p.live--;
        batch.live--;
      }
      p.entries.delete(id);
    }
    if (p.entries.size === 0) this.#pools.delete(pool);
  }

  /**
   * Removes a secret for one use. Resolves only after the consumption is durable (fsync'd), so a
   * crash after the caller returns a share can never lead to reuse. On 'ok' the caller owns the
   * returned bytes (the store keeps no copy) and should wipe them after use.
   */
  async take(pool: string, id: string): Promise<TakeResult> {
    this.#check();
    checkPool(pool);
    if (typeof id !== 'string' || !ID_RE.test(id)) return { status: 'unknown' };
    const p = this.#pools.get(pool);
    const entry = p?.entries.get(id);
    if (!p || !entry) return { status: 'unknown' };
    const secret = entry.secret;
    if (secret === null) return { status: 'consumed' };
    // Detach synchronously: a concurrent take of the same id now sees 'consumed'.
    entry.secret = null;
    entry.batch.live--;
    entry.batch.pending++;
    p.live--;
    try {
      await this.#commit(id);
    } catch (err) {
      // Not durable: never hand it out. It stays unusable in memory; after a restart it is simply unused.
      wipe(secret);
      throw err;
    } finally {
      entry.batch.pending--;
    }
    this.#stats.takes++;
    this.#maybeReap(pool, entry.batch);
    return { status: 'ok', secret };
  }

  /** Live secrets in `pool`. */
  count(pool: string): number {
    return this.#pools.get(pool)?.live ?? 0;
  }

  /** Live ids in `pool`, oldest first (what a node hands out with its commitments). */
  ids(pool: string, limit = Infinity): string[] {
    const out: string[] = [];
    const p = this.#pools.get(pool);
    if (!p) return out;
    for (const [id, e] of p.entries) {
      if (out.length >= limit) break;
      if (e.secret) out.push(id);
    }
    return out;
  }

  stats(): Readonly<NonceStoreStats> {
    return { ...this.#stats };
  }

  // ---- group commit ------------------------------------------------------------------------

  #commit(id: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push(id);
      this.#waiters.push({ resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        this.#flushLoop = this.#runFlush();
      }
    });
  }

  async #runFlush(): Promise<void> {
    try {
      // Yield once so takes issued in the same tick join the first group.
      await Promise.resolve();
      while (this.#queue.length > 0) {
        const ids = this.#queue;
        const waiters = this.#waiters;
        this.#queue = [];
        this.#waiters = [];
        try {
          if (this.#failure) throw this.#failure;
          if (!this.#log) throw new NonceStoreError(`nonce store ${this.dir} is closed`);
          await writeAll(this.#log, Buffer.from(ids.join('\n') + '\n', 'latin1'));
          this.#stats.logWrites++;
          await this.#log.datasync();
          this.#stats.logSyncs++;
          for (const w of waiters) w.resolve();
        } catch (err) {
          this.#failure ??= new NonceStoreError(`tombstone log of ${this.dir} failed; reopen the store`, { cause: err });
          for (const w of waiters) w.reject(this.#failure);
        }
      }
    } finally {
      // Cleared in the same microtask the loop ends in, so no commit is ever stranded.
      this.#flushing = false;
    }
  }

  #maybeReap(pool: string, batch: Batch): void {
    // After close the record stays; the next open finds it fully consumed and deletes it.
    if (!this.#reap || this.#closed || batch.live > 0 || batch.pending > 0 || batch.gone) return;
    batch.gone = true;
    const job = this.#store
      .delete(batch.name)
      .then(() => {
        this.#stats.batchesDeleted++;
        // Only now do its ids turn 'unknown': the record (with the secrets) no longer exists.
        if (!this.#closed) this.#detachBatch(pool, batch);
      })
      .catch(() => {
        this.#stats.deleteFailures++; // fully consumed and tombstoned: deleted at the next open
      })
      .finally(() => this.#background.delete(job));
    this.#background.add(job);
  }

  // ---- close -------------------------------------------------------------------------------

  #wipeAll(): void {
    for (const p of this.#pools.values()) for (const e of p.entries.values()) wipe(e.secret);
    this.#pools.clear();
  }

  /** Waits for in-flight takes and deletions, wipes every secret held in memory, releases the folder. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#flushLoop;
    await Promise.all([...this.#background]);
    this.#wipeAll();
    await this.#log?.close();
    this.#log = null;
    await this.#unlock();
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return !isErrno(err, 'ESRCH'); // EPERM: alive, owned by someone else
  }
}
