import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KdfParams } from '../../crypto/seal.js';
import { LocalSealer } from '../../nodes/store/local-sealer.js';
import { NonceStore, NonceStoreError, type NonceStoreOptions, type TakeResult } from '../../nodes/store/nonce-store.js';
import { SealedFileStore } from '../../nodes/store/sealed-file-store.js';

const FAST: KdfParams = { memoryKiB: 8, iterations: 1, parallelism: 1 };

let tmp: string;
let store: SealedFileStore;
const open: NonceStore[] = [];

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'custody-nonces-'));
  const sealer = await LocalSealer.open(path.join(tmp, 'keystore'), 'pw', { kdf: FAST });
  store = await SealedFileStore.open(path.join(tmp, 'sealed'), sealer);
});
afterEach(async () => {
  for (const ns of open.splice(0)) await ns.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

async function openNonces(opts?: NonceStoreOptions): Promise<NonceStore> {
  const ns = await NonceStore.open(store, path.join(tmp, 'nonces'), opts);
  open.push(ns);
  return ns;
}

async function restart(ns: NonceStore, opts?: NonceStoreOptions): Promise<NonceStore> {
  await ns.close();
  return openNonces(opts);
}

/** Compares without ever printing secret bytes in a failure diff. */
const took = (r: TakeResult, expected: Uint8Array | undefined) =>
  r.status === 'ok' && expected !== undefined && r.secret.constructor === Uint8Array && Buffer.from(r.secret).equals(Buffer.from(expected));
const secrets = (n: number, len = 64) => Array.from({ length: n }, () => new Uint8Array(randomBytes(len)));
const batchFiles = async (pool: string) => (await fs.readdir(path.join(tmp, 'sealed', 'nonce', pool)).catch(() => [])).sort();
const logText = () => fs.readFile(path.join(tmp, 'nonces', 'tombstones.log'), 'latin1');

describe('NonceStore', () => {
  it('hands a secret out once; later takes say consumed, also after a restart', async () => {
    let ns = await openNonces();
    const s = secrets(3);
    const ids = await ns.add('ed25519', s);
    expect(ids).toHaveLength(3);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(ns.count('ed25519')).toBe(3);
    expect(ns.ids('ed25519')).toEqual(ids);

    const first = await ns.take('ed25519', ids[0]!);
    expect(took(first, s[0])).toBe(true);
    expect(await ns.take('ed25519', ids[0]!)).toEqual({ status: 'consumed' });
    expect(ns.count('ed25519')).toBe(2);
    expect(ns.ids('ed25519')).toEqual(ids.slice(1));

    ns = await restart(ns);
    expect(ns.count('ed25519')).toBe(2);
    expect(await ns.take('ed25519', ids[0]!)).toEqual({ status: 'consumed' });
    expect(took(await ns.take('ed25519', ids[1]!), s[1])).toBe(true);

    ns = await restart(ns);
    expect(await ns.take('ed25519', ids[1]!)).toEqual({ status: 'consumed' });
    expect(ns.count('ed25519')).toBe(1);
  });

  it('answers unknown for ids it never issued, wrong pools and garbage', async () => {
    const ns = await openNonces();
    const [id] = await ns.add('ed25519', secrets(1));
    expect(await ns.take('ed25519', randomBytes(16).toString('hex'))).toEqual({ status: 'unknown' });
    expect(await ns.take('secp256k1', id!)).toEqual({ status: 'unknown' });
    expect(await ns.take('ed25519', 'not-an-id')).toEqual({ status: 'unknown' });
    expect(await ns.take('ed25519', id!.toUpperCase())).toEqual({ status: 'unknown' });
    await expect(ns.take('../etc', id!)).rejects.toThrow(NonceStoreError);
    await expect(ns.add('ed25519', [])).rejects.toThrow(RangeError);
    expect(ns.count('nobody')).toBe(0);
  });

  it('copies added secrets, so the caller may wipe its own', async () => {
    const ns = await openNonces();
    const s = secrets(1);
    const keep = Uint8Array.from(s[0]!);
    const [id] = await ns.add('ed25519', s);
    s[0]!.fill(0);
    expect(took(await ns.take('ed25519', id!), keep)).toBe(true);
  });

  it('gives a secret to exactly one of many concurrent takers', async () => {
    const ns = await openNonces();
    const [id] = await ns.add('ed25519', secrets(1));
    const results = await Promise.all(Array.from({ length: 10 }, () => ns.take('ed25519', id!)));
    expect(results.filter((r) => r.status === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'consumed')).toHaveLength(9);
  });

  it('group-commits concurrent takes: 200 takes, far fewer fsyncs', async () => {
    const ns = await openNonces();
    const s = secrets(200);
    const ids = await ns.add('ed25519', s);
    const before = ns.stats();
    const results = await Promise.all(ids.map((id) => ns.take('ed25519', id)));
    results.forEach((r, i) => expect(took(r, s[i])).toBe(true));
    const after = ns.stats();
    const syncs = after.logSyncs - before.logSyncs;
    expect(after.takes - before.takes).toBe(200);
    expect(syncs).toBeGreaterThanOrEqual(1);
    expect(syncs).toBeLessThanOrEqual(5);
    expect(after.logWrites - before.logWrites).toBe(syncs);
    // Every consumption is in the log, one id per line.
    const lines = (await logText()).trim().split('\n').slice(1);
    expect(new Set(lines)).toEqual(new Set(ids));
  });

  it('also groups takes that arrive while an fsync is in flight', async () => {
    const ns = await openNonces();
    const ids = await ns.add('ed25519', secrets(300));
    const before = ns.stats().logSyncs;
    // Staggered callers: a new one every few hundred microseconds, as gRPC calls would arrive.
    const pending: Promise<unknown>[] = [];
    for (const id of ids) {
      pending.push(ns.take('ed25519', id));
      if (pending.length % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(pending);
    const syncs = ns.stats().logSyncs - before;
    expect(syncs).toBeLessThan(ids.length / 3);
  });

  it('writes adds that arrive during a write as one record, each add keeping its own ids', async () => {
    let ns = await openNonces();
    const s = secrets(20, 96);
    // The first add is written at once; the other 19 arrive while it is in flight and share one record.
    const adds = s.map((x) => ns.add('presig-k1', [x]));
    const other = ns.add('presig-k2', secrets(1));
    const ids = await Promise.all(adds);
    await other;
    expect(ids.every((x) => x.length === 1)).toBe(true);
    expect(new Set(ids.flat()).size).toBe(20);
    expect(await batchFiles('presig-k1')).toHaveLength(2);
    expect(await batchFiles('presig-k2')).toHaveLength(1);
    expect(ns.stats().batchesWritten).toBe(3);
    // Each id names its own secret, before and after a restart.
    expect(took(await ns.take('presig-k1', ids[0]![0]!), s[0])).toBe(true);
    ns = await restart(ns);
    for (let i = 1; i < 20; i++) expect(took(await ns.take('presig-k1', ids[i]![0]!), s[i])).toBe(true);
    expect(await ns.take('presig-k1', ids[0]![0]!)).toEqual({ status: 'unknown' });
  });

  it('deletes fully consumed batches on reopen, compacts the log and keeps live tombstones', async () => {
    let ns = await openNonces({ reapConsumedBatches: false });
    const doneIds = await ns.add('ed25519', secrets(3));
    const partIds = await ns.add('ed25519', secrets(3));
    expect(await batchFiles('ed25519')).toHaveLength(2);
    for (const id of doneIds) expect((await ns.take('ed25519', id)).status).toBe('ok');
    expect((await ns.take('ed25519', partIds[0]!)).status).toBe('ok');
    // Without runtime reaping the consumed batch is still there, and its ids still say 'consumed'.
    expect(await batchFiles('ed25519')).toHaveLength(2);
    expect(await ns.take('ed25519', doneIds[0]!)).toEqual({ status: 'consumed' });

    ns = await restart(ns, { reapConsumedBatches: false });
    expect(await batchFiles('ed25519')).toHaveLength(1);
    expect(ns.stats().batchesDeleted).toBe(1);
    // The secret is gone with its batch: 'unknown' is the honest answer now.
    expect(await ns.take('ed25519', doneIds[0]!)).toEqual({ status: 'unknown' });
    expect(await ns.take('ed25519', partIds[0]!)).toEqual({ status: 'consumed' });
    const log = await logText();
    for (const id of doneIds) expect(log).not.toContain(id);
    expect(log).toContain(partIds[0]!);
    expect(ns.count('ed25519')).toBe(2);
  });

  it('deletes a fully consumed batch at runtime once its takes are durable', async () => {
    let ns = await openNonces();
    const ids = await ns.add('secp256k1', secrets(4, 32));
    await Promise.all(ids.map((id) => ns.take('secp256k1', id)));
    ns = await restart(ns); // close waits for background deletions
    expect(await batchFiles('secp256k1')).toEqual([]);
    expect(ns.count('secp256k1')).toBe(0);
  });

  it('drops the oldest batches when a pool exceeds maxPerPool', async () => {
    let ns = await openNonces({ maxPerPool: 10 });
    const a = await ns.add('ed25519', secrets(4));
    const b = await ns.add('ed25519', secrets(4));
    const c = await ns.add('ed25519', secrets(4)); // 12 > 10: batch a goes
    expect(ns.count('ed25519')).toBe(8);
    expect(ns.stats().batchesDropped).toBe(1);
    expect(await ns.take('ed25519', a[0]!)).toEqual({ status: 'unknown' });
    expect((await ns.take('ed25519', b[0]!)).status).toBe('ok');
    expect(await batchFiles('ed25519')).toHaveLength(2);
    expect(ns.ids('ed25519')).toEqual([...b.slice(1), ...c]);
    await expect(ns.add('ed25519', secrets(11))).rejects.toThrow(RangeError);

    // A lower cap at the next start applies to what is on disk too.
    ns = await restart(ns, { maxPerPool: 4 });
    expect(ns.ids('ed25519')).toEqual(c);
    expect(await batchFiles('ed25519')).toHaveLength(1);
  });

  it('keeps pools apart', async () => {
    const ns = await openNonces();
    const e = await ns.add('ed25519', secrets(2));
    const s = await ns.add('secp256k1', secrets(3));
    expect(ns.count('ed25519')).toBe(2);
    expect(ns.count('secp256k1')).toBe(3);
    expect(await ns.take('secp256k1', e[0]!)).toEqual({ status: 'unknown' });
    expect((await ns.take('secp256k1', s[0]!)).status).toBe('ok');
  });

  it('survives a torn last line in the log and refuses a corrupt one', async () => {
    let ns = await openNonces();
    const ids = await ns.add('ed25519', secrets(3));
    expect((await ns.take('ed25519', ids[0]!)).status).toBe('ok');
    await ns.close();
    const logPath = path.join(tmp, 'nonces', 'tombstones.log');
    // A crash mid-append: half an id, no newline. That take never returned, so the nonce is unused.
    await fs.appendFile(logPath, ids[1]!.slice(0, 13));
    ns = await openNonces();
    expect(await logText()).toMatch(/\n$/);
    expect(await ns.take('ed25519', ids[0]!)).toEqual({ status: 'consumed' });
    expect((await ns.take('ed25519', ids[1]!)).status).toBe('ok');
    await ns.close();
    open.length = 0;

    await fs.appendFile(logPath, 'garbage\n' + ids[2]! + '\n');
    await expect(NonceStore.open(store, path.join(tmp, 'nonces'))).rejects.toThrow(/corrupt/);
  });

  it('refuses to open when the log is gone but batches remain', async () => {
    const ns = await openNonces();
    const ids = await ns.add('ed25519', secrets(2));
    expect((await ns.take('ed25519', ids[0]!)).status).toBe('ok');
    await ns.close();
    open.length = 0;
    await fs.rm(path.join(tmp, 'nonces', 'tombstones.log'));
    await expect(NonceStore.open(store, path.join(tmp, 'nonces'))).rejects.toThrow(/missing/);
    // The failed open released its lock: after the operator's fix it opens.
    await store.delete((await store.list('nonce/'))[0]!);
    const fresh = await openNonces();
    expect(fresh.count('ed25519')).toBe(0);
  });

  it('locks its folder against a second opener, and takes over a stale lock', async () => {
    const ns = await openNonces();
    await expect(NonceStore.open(store, path.join(tmp, 'nonces'))).rejects.toThrow(/already open/);
    await ns.close();
    open.length = 0;

    const lock = path.join(tmp, 'nonces', 'LOCK');
    await fs.writeFile(lock, `2147483646@${os.hostname()}\n`); // no such process
    const again = await openNonces();
    expect(await fs.readFile(lock, 'utf8')).toBe(`${process.pid}@${os.hostname()}\n`);
    await again.close();
    open.length = 0;

    await fs.writeFile(lock, `1234@some-other-host\n`);
    await expect(NonceStore.open(store, path.join(tmp, 'nonces'))).rejects.toThrow(/locked by another process/);
  });

  it('refuses work after close and wipes what it held', async () => {
    const ns = await openNonces();
    const [id] = await ns.add('ed25519', secrets(1));
    await ns.close();
    await expect(ns.take('ed25519', id!)).rejects.toThrow(/closed/);
    await expect(ns.add('ed25519', secrets(1))).rejects.toThrow(/closed/);
    expect(ns.count('ed25519')).toBe(0);
  });

  it('costs little per take under 100 concurrent callers', async () => {
    const ns = await openNonces();
    const rounds = 20;
    const ids = await ns.add('ed25519', secrets(100 * rounds));
    const syncs0 = ns.stats().logSyncs;
    const latencies: number[] = [];
    const t0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      await Promise.all(
        ids.slice(r * 100, (r + 1) * 100).map(async (id) => {
          const s = performance.now();
          const res = await ns.take('ed25519', id);
          latencies.push(performance.now() - s);
          expect(res.status).toBe('ok');
        }),
      );
    }
    const total = performance.now() - t0;
    latencies.sort((a, b) => a - b);
    const syncs = ns.stats().logSyncs - syncs0;
    // Numbers only; no secret is printed.
    console.log(
      `take() x${100 * rounds} in rounds of 100 concurrent: ${(total / (100 * rounds)).toFixed(3)} ms/take amortised, ` +
        `p50 ${latencies[latencies.length >> 1]!.toFixed(2)} ms, p99 ${latencies[Math.floor(latencies.length * 0.99)]!.toFixed(2)} ms, ` +
        `${syncs} fsyncs (${((100 * rounds) / syncs).toFixed(1)} takes/fsync)`,
    );
    expect(syncs).toBeLessThanOrEqual(rounds * 3);
  });
});
