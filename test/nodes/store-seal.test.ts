import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SEAL_OVERHEAD, SealError, aeadOpen, aeadSeal, deriveKek, randomKey, wipe, type KdfParams } from '../../crypto/seal.js';
import { KEYSTORE_FILE, KeystoreError, LocalSealer, WrongPassphraseError } from '../../nodes/store/local-sealer.js';
import { scanForSecrets } from '../support/secret-scan.js';

const FAST: KdfParams = { memoryKiB: 8, iterations: 1, parallelism: 1 };
const te = new TextEncoder();

let tmp: string;
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'custody-seal-'));
});
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('aeadSeal / aeadOpen', () => {
  const key = randomKey();
  const aad = te.encode('record/a');
  const msg = te.encode('a key share, say');

  it('round-trips and uses a fresh nonce each time', () => {
    const a = aeadSeal(key, msg, aad);
    const b = aeadSeal(key, msg, aad);
    expect(a.length).toBe(msg.length + SEAL_OVERHEAD);
    expect(a[0]).toBe(1);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
    expect(aeadOpen(key, a, aad)).toEqual(msg);
    expect(aeadOpen(key, b, aad)).toEqual(msg);
    expect(aeadOpen(key, aeadSeal(key, new Uint8Array(0)), undefined)).toEqual(new Uint8Array(0));
  });

  it('fails with SealError on every kind of tampering, with a message that carries no bytes', () => {
    const sealed = aeadSeal(key, msg, aad);
    const flips = [0, 1, 24, 25, sealed.length - 17, sealed.length - 1]; // version, nonce, body, tag
    for (const at of flips) {
      const t = Uint8Array.from(sealed);
      t[at]! ^= 1;
      expect(() => aeadOpen(key, t, aad)).toThrow(SealError);
    }
    expect(() => aeadOpen(key, sealed, te.encode('record/b'))).toThrow(SealError);
    expect(() => aeadOpen(randomKey(), sealed, aad)).toThrow(SealError);
    expect(() => aeadOpen(key, sealed.subarray(0, SEAL_OVERHEAD - 1), aad)).toThrow(SealError);
    expect(() => aeadOpen(key, sealed.subarray(0, sealed.length - 1), aad)).toThrow(SealError);
    expect(() => aeadOpen(key.subarray(0, 16), sealed, aad)).toThrow(SealError);
    try {
      aeadOpen(key, sealed, te.encode('other'));
    } catch (err) {
      const m = (err as Error).message;
      expect(m).not.toContain(Buffer.from(key).toString('hex').slice(0, 8));
      expect(m).not.toContain('a key share');
    }
  });
});

describe('deriveKek', () => {
  const salt = new Uint8Array(16).fill(7);

  it('is deterministic and depends on passphrase, salt and cost', async () => {
    const a = await deriveKek('correct horse', salt, FAST);
    expect(a.length).toBe(32);
    expect(await deriveKek('correct horse', salt, FAST)).toEqual(a);
    expect(await deriveKek(te.encode('correct horse'), salt, FAST)).toEqual(a);
    expect(await deriveKek('correct horsf', salt, FAST)).not.toEqual(a);
    expect(await deriveKek('correct horse', new Uint8Array(16).fill(8), FAST)).not.toEqual(a);
    expect(await deriveKek('correct horse', salt, { ...FAST, iterations: 2 })).not.toEqual(a);
  });

  it('normalises string passphrases (NFC) and rejects weak inputs', async () => {
    expect(await deriveKek('caf\u00e9', salt, FAST)).toEqual(await deriveKek('cafe\u0301', salt, FAST));
    await expect(deriveKek('', salt, FAST)).rejects.toThrow(/empty/);
    await expect(deriveKek('x', new Uint8Array(8), FAST)).rejects.toThrow(/salt/);
    await expect(deriveKek('x', salt, { memoryKiB: 4, iterations: 1, parallelism: 1 })).rejects.toThrow(/memoryKiB/);
    await expect(deriveKek('x', salt, { memoryKiB: 64, iterations: 0, parallelism: 1 })).rejects.toThrow(/iterations/);
  });

  it('does not touch a caller-owned byte passphrase', async () => {
    const pass = te.encode('bytes passphrase');
    await deriveKek(pass, salt, FAST);
    expect(Buffer.from(pass).toString()).toBe('bytes passphrase');
  });
});

describe('wipe', () => {
  it('zero-fills every buffer and ignores missing ones', () => {
    const a = Uint8Array.of(1, 2, 3);
    const b = Uint8Array.of(4);
    wipe(a, undefined, null, b);
    expect([...a, ...b]).toEqual([0, 0, 0, 0]);
  });
});

describe('LocalSealer', () => {
  it('creates a 0600 keystore in a 0700 folder that holds no key', async () => {
    const dir = path.join(tmp, 'node', 'keystore');
    const sealer = await LocalSealer.open(dir, 'pass phrase', { kdf: FAST });
    expect(sealer.kind).toBe('local');
    const file = path.join(dir, KEYSTORE_FILE);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(dir)).mode & 0o777).toBe(0o700);
    const ks = JSON.parse(await fs.readFile(file, 'utf8')) as { kdf: { salt: string; memoryKiB: number }; check: string };
    expect(ks.kdf.memoryKiB).toBe(8);
    // Re-derive the KEK independently and make sure it is nowhere on disk.
    const kek = await deriveKek('pass phrase', Buffer.from(ks.kdf.salt, 'base64'), FAST);
    expect(await scanForSecrets([dir], [kek])).toEqual([]);
    expect((await fs.readdir(dir)).sort()).toEqual([KEYSTORE_FILE]);
    await sealer.close();
  });

  it('reopens with the right passphrase and refuses a wrong one clearly', async () => {
    const first = await LocalSealer.open(tmp, 'right one', { kdf: FAST });
    const wrapped = await first.wrapKey(randomKey(), 'ctx');
    await first.close();

    const again = await LocalSealer.open(tmp, 'right one');
    expect(again.keyId).toBe(first.keyId);
    expect((await again.unwrapKey(wrapped, 'ctx')).length).toBe(32);

    const err = await LocalSealer.open(tmp, 'wrong one').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WrongPassphraseError);
    expect((err as Error).message).toMatch(new RegExp(`^wrong keystore passphrase for ${tmp}: `));
    expect((err as Error).message).not.toContain('wrong one');
    expect((err as Error).message).not.toContain('right one');
  });

  it('detects edited cost parameters as a failed key check, and malformed files as such', async () => {
    await (await LocalSealer.open(tmp, 'pw', { kdf: FAST })).close();
    const file = path.join(tmp, KEYSTORE_FILE);
    const ks = JSON.parse(await fs.readFile(file, 'utf8')) as { kdf: { iterations: number } };
    ks.kdf.iterations = 2;
    await fs.writeFile(file, JSON.stringify(ks));
    await expect(LocalSealer.open(tmp, 'pw')).rejects.toThrow(WrongPassphraseError);
    await fs.writeFile(file, '{"format":"something else"}');
    await expect(LocalSealer.open(tmp, 'pw')).rejects.toThrow(KeystoreError);
  });

  it('with create: false refuses to make a new keystore', async () => {
    await expect(LocalSealer.open(path.join(tmp, 'none'), 'pw', { create: false })).rejects.toThrow(/no keystore/);
  });

  it('concurrent first opens agree on one keystore', async () => {
    const [a, b] = await Promise.all([LocalSealer.open(tmp, 'pw', { kdf: FAST }), LocalSealer.open(tmp, 'pw', { kdf: FAST })]);
    expect(a.keyId).toBe(b.keyId);
    const wrapped = await a.wrapKey(randomKey(), 'x');
    expect((await b.unwrapKey(wrapped, 'x')).length).toBe(32);
  });

  it('binds the context, rejects foreign wrapped keys and stops after close', async () => {
    const a = await LocalSealer.open(path.join(tmp, 'a'), 'pw', { kdf: FAST });
    const b = await LocalSealer.open(path.join(tmp, 'b'), 'pw', { kdf: FAST });
    const dk = randomKey();
    const wrapped = await a.wrapKey(dk, 'keysets/k1');
    expect(await a.unwrapKey(wrapped, 'keysets/k1')).toEqual(dk);
    expect(a.isCurrent(wrapped)).toBe(true);
    expect(b.isCurrent(wrapped)).toBe(false);
    await expect(a.unwrapKey(wrapped, 'keysets/k2')).rejects.toThrow(SealError);
    await expect(b.unwrapKey(wrapped, 'keysets/k1')).rejects.toThrow(SealError);
    await expect(a.wrapKey(new Uint8Array(16), 'x')).rejects.toThrow(RangeError);
    await a.close();
    await expect(a.unwrapKey(wrapped, 'keysets/k1')).rejects.toThrow(/closed/);
  });
});
