import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KdfParams } from '../../crypto/seal.js';
import { LocalSealer } from '../../nodes/store/local-sealer.js';
import { NonceStore } from '../../nodes/store/nonce-store.js';
import { SealedFileStore } from '../../nodes/store/sealed-file-store.js';
import { scanForSecrets } from '../support/secret-scan.js';

const FAST: KdfParams = { memoryKiB: 8, iterations: 1, parallelism: 1 };

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'custody-scan-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

const fresh = (n: number, len = 32) => Array.from({ length: n }, () => new Uint8Array(randomBytes(len)));

describe('secret scan over a node data folder', () => {
  it('finds no share, nonce or passphrase in the store folders', async () => {
    const data = path.join(tmp, 'node-1');
    const passphrase = 'a keystore passphrase that must never hit the disk';
    const sealer = await LocalSealer.open(path.join(data, 'keystore'), passphrase, { kdf: FAST });
    const store = await SealedFileStore.open(path.join(data, 'sealed'), sealer);
    const shares = fresh(4);
    for (const [i, s] of shares.entries()) await store.put(`keysets/k${i}`, s);

    let nonces = await NonceStore.open(store, path.join(data, 'nonces'), { reapConsumedBatches: false });
    // FROST nonces: hiding || binding, 32 bytes each; scan each scalar on its own too.
    const pairs = fresh(20, 64);
    const ids = await nonces.add('ed25519', pairs);
    for (const id of ids.slice(0, 5)) expect((await nonces.take('ed25519', id)).status).toBe('ok');
    await nonces.close();
    nonces = await NonceStore.open(store, path.join(data, 'nonces'));
    await nonces.add('secp256k1', fresh(10, 64));
    await nonces.close();

    const scalars = pairs.flatMap((p) => [p.subarray(0, 32), p.subarray(32)]);
    const all = [...shares, ...pairs, ...scalars, new TextEncoder().encode(passphrase)];
    expect(await scanForSecrets([data], all)).toEqual([]);
    // The scan did look at real files.
    expect((await fs.readdir(path.join(data, 'sealed', 'nonce', 'ed25519'))).length).toBe(1);
  });

  it('does find secrets written in the clear, in every encoding', async () => {
    const dir = path.join(tmp, 'leaky');
    await fs.mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
    const s = fresh(8);
    const b = (x: Uint8Array) => Buffer.from(x);
    await fs.writeFile(path.join(dir, 'raw.bin'), Buffer.concat([randomBytes(3000), b(s[0]!), randomBytes(5)]));
    await fs.writeFile(path.join(dir, 'sub', 'share.json'), JSON.stringify({ share: b(s[1]!).toString('hex') }));
    await fs.writeFile(path.join(dir, 'sub', 'deeper', 'HEX.txt'), b(s[2]!).toString('hex').toUpperCase());
    // Inside a longer base64 blob, at an offset that is not a multiple of three.
    await fs.writeFile(path.join(dir, 'b64.txt'), Buffer.concat([randomBytes(7), b(s[3]!), randomBytes(2)]).toString('base64'));
    await fs.writeFile(path.join(dir, 'b64url.txt'), b(s[4]!).toString('base64url'));
    await fs.writeFile(path.join(dir, 'le.bin'), b(s[5]!).reverse());
    await fs.writeFile(path.join(dir, 'dec.txt'), BigInt('0x' + b(s[6]!).toString('hex')).toString());
    // Across a 1 MiB read boundary.
    const big = randomBytes(2 << 20);
    big.set(s[7]!, (1 << 20) - 10);
    await fs.writeFile(path.join(dir, 'big.bin'), big);

    const hits = await scanForSecrets([dir], s);
    const byFile = (name: string) => hits.filter((h) => h.file === path.join(dir, name)).map((h) => `${h.secretIndex}:${h.encoding}`);
    expect(byFile('raw.bin')).toEqual(['0:raw']);
    expect(byFile('sub/share.json')).toEqual(['1:hex']);
    expect(byFile('sub/deeper/HEX.txt')).toEqual(['2:HEX']);
    expect(byFile('b64.txt')).toEqual(['3:base64@1']);
    // Where no '+' or '/' occurs the two alphabets agree and the hit is reported once, as base64.
    expect(byFile('b64url.txt')).toHaveLength(1);
    expect(byFile('b64url.txt')[0]).toMatch(/^4:base64(url)?$/);
    expect(byFile('le.bin')).toEqual(['5:raw-reversed']);
    expect(byFile('dec.txt')).toEqual(['6:decimal-be']);
    expect(byFile('big.bin')).toEqual(['7:raw']);
    // Hits name the encoding, never the secret.
    expect(JSON.stringify(hits)).not.toContain(b(s[1]!).toString('hex'));

    // A single file (a database file, say) can be scanned directly.
    expect(await scanForSecrets([path.join(dir, 'raw.bin')], s)).toHaveLength(1);
  });

  it('refuses paths that do not exist and secrets too short to mean anything', async () => {
    await expect(scanForSecrets([path.join(tmp, 'missing')], fresh(1))).rejects.toThrow(/ENOENT/);
    await expect(scanForSecrets([tmp], [new Uint8Array(8)])).rejects.toThrow(/shorter/);
  });
});
