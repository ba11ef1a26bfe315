import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { aeadOpen, aeadSeal, randomKey, type KdfParams } from '../../crypto/seal.js';
import { LocalSealer } from '../../nodes/store/local-sealer.js';
import { RecordError, SealedFileStore } from '../../nodes/store/sealed-file-store.js';
import type { Sealer } from '../../nodes/store/sealer.js';
import { RecordNameError } from '../../nodes/store/share-store.js';

const FAST: KdfParams = { memoryKiB: 8, iterations: 1, parallelism: 1 };
const te = new TextEncoder();
const td = new TextDecoder();

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'custody-records-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

async function openStore(passphrase = 'pw'): Promise<{ store: SealedFileStore; sealer: LocalSealer }> {
  const sealer = await LocalSealer.open(path.join(tmp, 'keystore'), passphrase, { kdf: FAST });
  return { sealer, store: await SealedFileStore.open(path.join(tmp, 'sealed'), sealer) };
}

/** A Transit-like sealer for the rewrap path: versioned keys, rotation, server-side rewrap. */
class VersionedTestSealer implements Sealer {
  readonly kind = 'vault' as const;
  readonly keys: Uint8Array[] = [randomKey()];
  rewraps = 0;
  rotate(): void {
    this.keys.push(randomKey());
  }
  async wrapKey(dataKey: Uint8Array, context: string): Promise<Uint8Array> {
    const v = this.keys.length;
    return Uint8Array.of(v, ...aeadSeal(this.keys[v - 1]!, dataKey, te.encode(context)));
  }
  async unwrapKey(wrapped: Uint8Array, context: string): Promise<Uint8Array> {
    return aeadOpen(this.keys[wrapped[0]! - 1]!, wrapped.subarray(1), te.encode(context));
  }
  isCurrent(wrapped: Uint8Array): boolean {
    return wrapped[0] === this.keys.length;
  }
  async rewrap(wrapped: Uint8Array, context: string): Promise<Uint8Array> {
    this.rewraps++;
    return this.wrapKey(await this.unwrapKey(wrapped, context), context);
  }
}

describe('SealedFileStore', () => {
  it('puts, gets, lists and deletes; records survive a reopen', async () => {
    const { store, sealer } = await openStore();
    expect(store.sealer).toBe('local');
    await store.put('identity', te.encode('node identity key'));
    await store.put('keysets/k1', te.encode('share one'));
    await store.put('keysets/k2', te.encode('share two'));
    await store.put('pending/s1', te.encode('pending'));
    await store.put('keysets/k2', te.encode('share two, replaced'));
    expect(await store.list('keysets/')).toEqual(['keysets/k1', 'keysets/k2']);
    expect(await store.list('')).toEqual(['identity', 'keysets/k1', 'keysets/k2', 'pending/s1']);
    expect(await store.list('keysets/k1')).toEqual(['keysets/k1']);
    expect(await store.list('nothing/')).toEqual([]);
    await store.delete('pending/s1');
    await store.delete('pending/never-existed');
    expect(await store.get('pending/s1')).toBeUndefined();
    await sealer.close();

    const reopened = await openStore();
    expect(td.decode(await reopened.store.get('keysets/k1'))).toBe('share one');
    expect(td.decode(await reopened.store.get('keysets/k2'))).toBe('share two, replaced');
    expect(td.decode(await reopened.store.get('identity'))).toBe('node identity key');
    expect(await reopened.store.list('')).toEqual(['identity', 'keysets/k1', 'keysets/k2']);
  });

  it('works when constructed synchronously (folder made on first use)', async () => {
    const sealer = await LocalSealer.open(path.join(tmp, 'ks'), 'pw', { kdf: FAST });
    const store = new SealedFileStore(path.join(tmp, 'lazy', 'sealed'), sealer);
    expect(await store.list('')).toEqual([]);
    expect(await store.get('x')).toBeUndefined();
    await store.put('x', te.encode('y'));
    expect(td.decode(await store.get('x'))).toBe('y');
  });

  it('writes files 0600 and folders 0700, and leaves no temporary files', async () => {
    const { store } = await openStore();
    await store.put('a/b/c/deep', te.encode('x'));
    const root = path.join(tmp, 'sealed');
    expect((await fs.stat(path.join(root, 'a/b/c/deep.rec'))).mode & 0o777).toBe(0o600);
    for (const d of ['', 'a', 'a/b', 'a/b/c']) expect((await fs.stat(path.join(root, d))).mode & 0o777).toBe(0o700);
    expect(await fs.readdir(path.join(root, 'a/b/c'))).toEqual(['deep.rec']);
  });

  it('fails to open records whose files were swapped or altered', async () => {
    const { store } = await openStore();
    await store.put('keysets/a', te.encode('share A'));
    await store.put('keysets/b', te.encode('share B'));
    const dir = path.join(tmp, 'sealed', 'keysets');
    await fs.rename(path.join(dir, 'a.rec'), path.join(dir, 'tmp.rec'));
    await fs.rename(path.join(dir, 'b.rec'), path.join(dir, 'a.rec'));
    await fs.rename(path.join(dir, 'tmp.rec'), path.join(dir, 'b.rec'));
    await expect(store.get('keysets/a')).rejects.toThrow(RecordError);
    await expect(store.get('keysets/b')).rejects.toThrow(RecordError);

    await store.put('keysets/c', te.encode('share C'));
    const file = path.join(dir, 'c.rec');
    const raw = await fs.readFile(file);
    raw[raw.length - 1]! ^= 1;
    await fs.writeFile(file, raw);
    const err = await store.get('keysets/c').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RecordError);
    expect((err as Error).message).toContain('keysets/c');
    await fs.writeFile(file, 'not a record');
    await expect(store.get('keysets/c')).rejects.toThrow(/unknown format/);
  });

  it('cannot be read with another keystore', async () => {
    const { store } = await openStore();
    await store.put('identity', te.encode('x'));
    const other = await LocalSealer.open(path.join(tmp, 'other-ks'), 'pw', { kdf: FAST });
    await expect(new SealedFileStore(path.join(tmp, 'sealed'), other).get('identity')).rejects.toThrow(RecordError);
  });

  it('rejects unsafe names and prefixes', async () => {
    const { store } = await openStore();
    const bad = ['../x', 'a/../b', 'a/..', '..', '/abs', 'a//b', 'a/', 'A', '.hidden', 'a/.hidden', 'a/-x', '', 'a b', 'a\\b', 'é', 'x'.repeat(202)];
    for (const name of bad) {
      await expect(store.put(name, te.encode('x')), name).rejects.toThrow(RecordNameError);
      await expect(store.get(name), name).rejects.toThrow(RecordNameError);
      await expect(store.delete(name), name).rejects.toThrow(RecordNameError);
    }
    for (const prefix of ['../', 'a/../', '/', 'A']) await expect(store.list(prefix), prefix).rejects.toThrow(RecordNameError);
    await store.put('ok-name_1.2/x', te.encode('fine'));
    expect(await store.list('ok')).toEqual(['ok-name_1.2/x']);
    // Nothing escaped the store folder.
    expect((await fs.readdir(tmp)).sort()).toEqual(['keystore', 'sealed']);
  });

  it('removes temporary files a crash left behind and never lists them', async () => {
    const { store } = await openStore();
    await store.put('keysets/a', te.encode('x'));
    const stale = path.join(tmp, 'sealed', 'keysets', '.a.rec.0123456789ab.tmp');
    await fs.writeFile(stale, 'half written');
    expect(await store.list('')).toEqual(['keysets/a']);
    const sealer = await LocalSealer.open(path.join(tmp, 'keystore'), 'pw');
    await SealedFileStore.open(path.join(tmp, 'sealed'), sealer);
    await expect(fs.stat(stale)).rejects.toThrow(/ENOENT/);
  });

  it('serialises concurrent writers of one name (last put wins, file intact)', async () => {
    const { store } = await openStore();
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.put('same', te.encode(`v${i}`))));
    expect(td.decode(await store.get('same'))).toMatch(/^v\d+$/);
  });

  it('rewrapAll re-wraps only stale data keys and keeps records readable', async () => {
    const sealer = new VersionedTestSealer();
    const store = await SealedFileStore.open(path.join(tmp, 'vault-sealed'), sealer);
    expect(store.sealer).toBe('vault');
    await store.put('keysets/a', te.encode('A'));
    await store.put('keysets/b', te.encode('B'));
    expect(await store.rewrapAll()).toEqual({ records: 2, rewrapped: 0 });
    sealer.rotate();
    await store.put('keysets/c', te.encode('C'));
    expect(await store.rewrapAll()).toEqual({ records: 3, rewrapped: 2 });
    expect(sealer.rewraps).toBe(2);
    expect(await store.rewrapAll()).toEqual({ records: 3, rewrapped: 0 });
    for (const [n, v] of [['keysets/a', 'A'], ['keysets/b', 'B'], ['keysets/c', 'C']] as const) {
      expect(td.decode(await store.get(n))).toBe(v);
    }

    const { store: local } = await openStore();
    await local.put('x', te.encode('y'));
    expect(await local.rewrapAll()).toEqual({ records: 1, rewrapped: 0 });
  });
});
