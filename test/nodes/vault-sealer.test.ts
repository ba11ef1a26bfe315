/**
 * The Vault sealer (node-vault over real HTTP) against the VaultEmulator (test/support/vault-emulator.ts),
 * provisioned with the same steps and the same policy files as deploy/vault/setup.sh.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SealError, randomKey } from '../../crypto/seal.js';
import { RecordError, SealedFileStore } from '../../nodes/store/sealed-file-store.js';
import {
  VaultCiphertextTooOldError,
  VaultSealer,
  VaultSealerError,
  VaultTransitAdmin,
  censusWrappedKeys,
  rewrapSealedStore,
  wrappedKeyVersion,
  type VaultSealerOptions,
} from '../../nodes/store/vault-sealer.js';
import { scanForSecrets } from '../support/secret-scan.js';
import { VaultEmulator, provisionLikeSetupSh, renderPolicy, vaultApi, type ProvisionedNode } from '../support/vault-emulator.js';

const te = new TextEncoder();
const td = new TextDecoder();

let tmp: string;
let emu: VaultEmulator;
let node1: ProvisionedNode;
let operatorToken: string;
const open: VaultSealer[] = [];

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'custody-vault-'));
  emu = await VaultEmulator.start();
  const p = await provisionLikeSetupSh(emu, { nodes: ['node-1', 'node-2'], tokenTtl: 60, tokenMaxTtl: 3600 });
  node1 = p.nodes['node-1']!;
  operatorToken = p.operatorToken;
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  await emu.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

function options(over: Partial<VaultSealerOptions> = {}): VaultSealerOptions {
  return { address: emu.address, roleId: node1.roleId, secretId: node1.secretId, transitKey: node1.key, clock: emu.clock, ...over };
}

async function openSealer(over: Partial<VaultSealerOptions> = {}): Promise<VaultSealer> {
  const s = await VaultSealer.open(options(over));
  open.push(s);
  return s;
}

/** The message of the error `p` rejects with (and checks it is a VaultSealerError with `code`). */
async function failure(p: Promise<unknown>, code: string): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a rejection').toBeInstanceOf(VaultSealerError);
  expect((err as VaultSealerError).code).toBe(code);
  return (err as Error).message;
}

async function createRole(name: string, policy: string, key = node1.key): Promise<{ roleId: string; secretId: string; transitKey: string }> {
  const root = emu.rootToken;
  await vaultApi(emu.address, root, 'PUT', `sys/policies/acl/${name}`, { policy });
  await vaultApi(emu.address, root, 'POST', `auth/approle/role/${name}`, { token_policies: name, token_no_default_policy: true, token_ttl: 60 });
  const roleId = (await vaultApi(emu.address, root, 'GET', `auth/approle/role/${name}/role-id`)).body.data.role_id as string;
  const secretId = (await vaultApi(emu.address, root, 'POST', `auth/approle/role/${name}/secret-id`, {})).body.data.secret_id as string;
  return { roleId, secretId, transitKey: key };
}

async function recordFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
  }
  return out.sort();
}

describe('VaultSealer: wrapping data keys with Transit', () => {
  it('round-trips data keys as vault:v1: ciphertexts bound to their context', async () => {
    const sealer = await openSealer();
    expect(sealer.kind).toBe('vault');
    expect(sealer.roleName).toBe('custody-node-1'); // learned from the login
    expect(sealer.latestVersion).toBe(1);
    const dataKey = randomKey();
    const wrapped = await sealer.wrapKey(dataKey, 'keysets/k1');
    const text = td.decode(wrapped);
    expect(text).toMatch(/^vault:v1:[A-Za-z0-9+/]+={0,2}$/);
    expect(wrappedKeyVersion(wrapped)).toBe(1);
    expect(sealer.isCurrent(wrapped)).toBe(true);
    expect(await sealer.unwrapKey(wrapped, 'keysets/k1')).toEqual(dataKey);
    // Another record name is another derived key: it does not open.
    await expect(sealer.unwrapKey(wrapped, 'keysets/k2')).rejects.toThrow(SealError);
    await expect(sealer.unwrapKey(wrapped, 'keysets/k2')).rejects.toThrow(/could not unwrap the data key of record keysets\/k2.*cipher: message authentication failed/);
    // Something that is not a Transit ciphertext is refused before any request.
    await expect(sealer.unwrapKey(te.encode('L-not-vault'), 'keysets/k1')).rejects.toThrow(/not a Vault Transit ciphertext/);
    await expect(sealer.wrapKey(new Uint8Array(16), 'x')).rejects.toThrow(RangeError);
  });

  it('coalesces concurrent calls into batch_input requests', async () => {
    const sealer = await openSealer({ maxBatch: 40 });
    const keys = Array.from({ length: 100 }, () => randomKey());
    const before = emu.requests.length;
    const wrapped = await Promise.all(keys.map((k, i) => sealer.wrapKey(k, `r/${i}`)));
    const encrypts = emu.requests.slice(before).filter((r) => r.path === 'transit/encrypt/custody-node-1');
    expect(encrypts.map((r) => r.batchItems)).toEqual([40, 40, 20]);
    const back = await Promise.all(wrapped.map((w, i) => sealer.unwrapKey(w, `r/${i}`)));
    back.forEach((k, i) => expect(k).toEqual(keys[i]));
    // One bad item in a batch fails alone; the others succeed.
    const mixed = await Promise.allSettled([sealer.unwrapKey(wrapped[0]!, 'r/0'), sealer.unwrapKey(wrapped[1]!, 'r/999'), sealer.unwrapKey(wrapped[2]!, 'r/2')]);
    expect(mixed.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(emu.requests.at(-1)).toMatchObject({ path: 'transit/decrypt/custody-node-1', status: 400, batchItems: 3 });
    // Explicit batch API.
    const w2 = await sealer.wrapKeys(keys.slice(0, 50).map((dataKey, i) => ({ dataKey, context: `b/${i}` })));
    expect(await sealer.unwrapKeys(w2.map((wrapped, i) => ({ wrapped, context: `b/${i}` })))).toEqual(keys.slice(0, 50));
    expect(sealer.stats().batchedItems).toBeGreaterThanOrEqual(100 + 100 + 3 + 50 + 50);
  });

  it('matches the documented Transit format: AES-256-GCM under HKDF-SHA256(version key, context)', async () => {
    // Checked independently of the emulator's own decrypt, so the format is what Vault documents.
    const sealer = await openSealer();
    const dataKey = randomKey();
    const text = td.decode(await sealer.wrapKey(dataKey, 'keysets/k1'));
    const blob = Buffer.from(text.slice('vault:v1:'.length), 'base64');
    const { createDecipheriv, hkdfSync } = await import('node:crypto');
    const context = Buffer.from('custody/record/v1\0keysets/k1');
    const key = Buffer.from(hkdfSync('sha256', emu.transitKeyMaterial('custody-node-1', 1), Buffer.alloc(0), context, 32));
    const d = createDecipheriv('aes-256-gcm', key, blob.subarray(0, 12));
    d.setAuthTag(blob.subarray(blob.length - 16));
    expect(Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()])).toEqual(Buffer.from(dataKey));
  });
});

describe('VaultSealer under SealedFileStore', () => {
  it('puts and gets records; the data folder holds no plaintext, data key or credential', async () => {
    const sealer = await openSealer();
    const dir = path.join(tmp, 'node-1', 'sealed');
    const store = await SealedFileStore.open(dir, sealer);
    expect(store.sealer).toBe('vault');
    const shares = Array.from({ length: 12 }, () => new Uint8Array(randomBytes(32)));
    for (const [i, s] of shares.entries()) await store.put(`keysets/k${i}`, s);
    await store.put('identity', te.encode('node identity, long enough to scan for'));
    for (const [i, s] of shares.entries()) expect(await store.get(`keysets/k${i}`)).toEqual(s);
    expect(await store.list('keysets/')).toHaveLength(12);
    await store.delete('keysets/k11');
    expect(await store.get('keysets/k11')).toBeUndefined();

    // Every record file carries a vault:v1: wrapped key, and nothing in the clear.
    const files = await recordFiles(dir);
    expect(files).toHaveLength(12);
    for (const f of files) expect((await fs.readFile(f)).toString('latin1')).toContain('vault:v1:');
    const secrets = [...shares, te.encode('node identity, long enough to scan for'), te.encode(node1.secretId)];
    expect(await scanForSecrets([path.join(tmp, 'node-1')], secrets)).toEqual([]);
    expect(await censusWrappedKeys(dir)).toMatchObject({ records: 12, byVersion: { 1: 12 }, foreign: 0, unreadable: 0, oldestVersion: 1 });

  });

  it("a node cannot use another node's key (policy), and records reopen after a restart", async () => {
    const sealer = await openSealer();
    const dir = path.join(tmp, 'sealed');
    const store = await SealedFileStore.open(dir, sealer);
    await store.put('keysets/a', te.encode('share a'));
    await sealer.close();

    const again = await openSealer();
    expect(td.decode(await new SealedFileStore(dir, again).get('keysets/a'))).toBe('share a');
    // node-1's credentials with node-2's key: the policy only covers custody-node-1.
    const msg = await failure(VaultSealer.open(options({ transitKey: 'custody-node-2' })), 'permission-denied');
    expect(msg).toMatch(/^token for role custody-node-1 lacks encrypt on transit\/keys\/custody-node-2 .*read on it is denied too: is custody-node-2 this node's key \(--vault-transit-key\)\?$/);
  });
});

describe('rotation, rewrap and min_decryption_version', () => {
  it('rotates, rewraps every record, raises min_decryption_version, and refuses un-rewrapped v1', async () => {
    const sealer = await openSealer();
    const dir = path.join(tmp, 'sealed');
    const store = await SealedFileStore.open(dir, sealer);
    const shares = Array.from({ length: 20 }, () => new Uint8Array(randomBytes(32)));
    for (const [i, s] of shares.entries()) await store.put(`keysets/k${String(i).padStart(2, '0')}`, s);
    const stale = await fs.readFile(path.join(dir, 'keysets', 'k00.rec')); // a v1 record kept aside

    // Nodes cannot rotate: that is the operator's policy.
    expect(await failure(sealer.rotate(), 'permission-denied')).toMatch(/lacks update on transit\/keys\/custody-node-1\/rotate.*operator action/);
    const admin = new VaultTransitAdmin({ address: emu.address, token: operatorToken });
    expect((await admin.rotate('custody-node-1')).latestVersion).toBe(2);

    // Until it asks, the node still takes v1 as current; then new seals use v2 and v1 records still open.
    expect(sealer.isCurrent(await fs.readFile(path.join(dir, 'keysets', 'k01.rec')).then((b) => b.subarray(6, 6 + b.readUInt16BE(4))))).toBe(true);
    expect(await sealer.refreshKeyVersion()).toBe(2);
    await store.put('keysets/new', te.encode('sealed after the rotation'));
    expect((await fs.readFile(path.join(dir, 'keysets', 'new.rec'))).toString('latin1')).toContain('vault:v2:');
    for (const [i, s] of shares.entries()) expect(await store.get(`keysets/k${String(i).padStart(2, '0')}`)).toEqual(s);
    expect((await censusWrappedKeys(dir)).byVersion).toEqual({ 1: 20, 2: 1 });

    // Rewrap everything on the node (transit/rewrap; bodies untouched).
    const bodiesBefore = new Map<string, Buffer>();
    for (const f of await recordFiles(dir)) {
      const raw = await fs.readFile(f);
      bodiesBefore.set(f, raw.subarray(6 + raw.readUInt16BE(4)));
    }
    const report = await rewrapSealedStore(store, sealer);
    expect(report).toMatchObject({ records: 21, rewrapped: 20, latestVersion: 2 });
    expect(report.before.byVersion).toEqual({ 1: 20, 2: 1 });
    expect(report.after).toMatchObject({ byVersion: { 2: 21 }, oldestVersion: 2 });
    for (const f of await recordFiles(dir)) {
      const raw = await fs.readFile(f);
      expect(raw.toString('latin1')).not.toContain('vault:v1:');
      expect(raw.subarray(6 + raw.readUInt16BE(4))).toEqual(bodiesBefore.get(f));
    }
    expect(emu.count('POST', 'transit/rewrap/custody-node-1')).toBeGreaterThanOrEqual(20);

    // Vault refuses a min_decryption_version above the latest version.
    expect(await failure(admin.setMinDecryptionVersion('custody-node-1', 3), 'vault-error')).toMatch(
      /cannot set min decryption version of 3, latest key version is 2/,
    );
    const info = await admin.setMinDecryptionVersion('custody-node-1', 2);
    expect(info).toMatchObject({ latestVersion: 2, minDecryptionVersion: 2, versions: [2] });
    for (const [i, s] of shares.entries()) expect(await store.get(`keysets/k${String(i).padStart(2, '0')}`)).toEqual(s);
    expect(td.decode(await store.get('keysets/new'))).toBe('sealed after the rotation');

    // A v1 record that missed the rewrap (e.g. restored from an old backup) is refused, clearly.
    await fs.writeFile(path.join(dir, 'keysets', 'k00.rec'), stale);
    const err = await store.get('keysets/k00').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).cause).toBeInstanceOf(VaultCiphertextTooOldError);
    expect((err as Error).message).toMatch(
      /record keysets\/k00 could not be opened: data key of record keysets\/k00 is wrapped with transit\/keys\/custody-node-1 version 1, below the key's min_decryption_version: rewrap every record/,
    );
    // Rewrapping cannot rescue it either (Vault decrypts before it rewraps); lowering the floor can.
    await expect(rewrapSealedStore(store, sealer)).rejects.toThrow(/version 1, below the key's min_decryption_version/);
    await admin.setMinDecryptionVersion('custody-node-1', 1);
    expect(await store.get('keysets/k00')).toEqual(shares[0]);
  });

  it('rewraps Transit ciphertexts in batches', async () => {
    const sealer = await openSealer({ maxBatch: 250 });
    const keys = Array.from({ length: 300 }, () => randomKey());
    const wrapped = await sealer.wrapKeys(keys.map((dataKey, i) => ({ dataKey, context: `x/${i}` })));
    await new VaultTransitAdmin({ address: emu.address, token: operatorToken }).rotate('custody-node-1');
    const before = emu.count('POST', 'transit/rewrap/custody-node-1');
    const fresh = await sealer.rewrapCiphertexts(wrapped.map((w, i) => ({ ciphertext: td.decode(w), context: `x/${i}` })));
    expect(emu.count('POST', 'transit/rewrap/custody-node-1') - before).toBe(2); // 250 + 50
    expect(fresh.every((c) => c.startsWith('vault:v2:'))).toBe(true);
    expect(await sealer.unwrapKeys(fresh.map((c, i) => ({ wrapped: te.encode(c), context: `x/${i}` })))).toEqual(keys);
  });
});

describe('start-up failures are precise and carry no secret', () => {
  const noSecrets = (msg: string) => {
    expect(msg).not.toContain(node1.secretId);
    expect(msg).not.toContain(emu.rootToken);
  };

  it('Vault unreachable', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const msg = await failure(VaultSealer.open(options({ address: `http://127.0.0.1:${port}` })), 'unreachable');
    expect(msg).toBe(`Vault at http://127.0.0.1:${port} is unreachable: connect ECONNREFUSED 127.0.0.1:${port}`);
  });

  it('Vault sealed', async () => {
    emu.seal();
    const msg = await failure(VaultSealer.open(options()), 'sealed');
    expect(msg).toBe(`Vault at ${emu.address} is sealed; unseal it (vault operator unseal) before starting the node`);
    expect((await vaultApi(emu.address, undefined, 'GET', 'sys/seal-status')).body.sealed).toBe(true);
  });

  it('bad AppRole secret id, and a bad role id', async () => {
    let msg = await failure(VaultSealer.open(options({ secretId: 'not-the-secret-id' })), 'login-failed');
    expect(msg).toMatch(/^AppRole login to Vault at http:\/\/127\.0\.0\.1:\d+ failed for role the configured AppRole: invalid role or secret ID\. Check the role id and secret id files/);
    expect(msg).not.toContain('not-the-secret-id');
    msg = await failure(VaultSealer.open(options({ roleId: 'nope', roleName: 'custody-node-1' })), 'login-failed');
    expect(msg).toMatch(/failed for role custody-node-1: invalid role or secret ID/);
    noSecrets(msg);
  });

  it('a policy without decrypt (or without encrypt, or without rewrap)', async () => {
    const full = renderPolicy('custody-node', node1.key);
    const without = (what: string) => full.replace(new RegExp(`path "transit/${what}/custody-node-1" \\{[^}]*\\}`), '');
    for (const [what, role] of [
      ['decrypt', 'no-decrypt'],
      ['encrypt', 'no-encrypt'],
      ['rewrap', 'no-rewrap'],
    ] as const) {
      const creds = await createRole(role, without(what));
      const msg = await failure(VaultSealer.open(options(creds)), 'permission-denied');
      expect(msg).toBe(
        `token for role ${role} lacks ${what} on transit/keys/custody-node-1 (Vault denied update on transit/${what}/custody-node-1): check the policy in deploy/vault/ (policies/custody-node.hcl.tmpl)`,
      );
      noSecrets(msg);
    }
  });

  it('a missing Transit key, with and without read on it', async () => {
    const expected = `Transit key transit/keys/custody-node-9 does not exist at Vault ${emu.address}: create it with deploy/vault/setup.sh (aes256-gcm96, derived=true)`;
    const withRead = await createRole('node-9', renderPolicy('custody-node', 'custody-node-9'), 'custody-node-9');
    expect(await failure(VaultSealer.open(options(withRead)), 'key-missing')).toBe(expected);
    // Without read, encrypt to a missing key is a "create" (403); the sealer asks decrypt, which names it.
    const noRead = await createRole('node-9b', renderPolicy('custody-node', 'custody-node-9').replace(/path "transit\/keys\/custody-node-9" \{[^}]*\}/, ''), 'custody-node-9');
    expect(await failure(VaultSealer.open(options(noRead)), 'key-missing')).toBe(expected);
    expect(emu.requests.some((r) => r.path === 'transit/encrypt/custody-node-9' && r.status === 403)).toBe(true);
  });

  it('a Transit key that is not derived (context would be ignored)', async () => {
    await vaultApi(emu.address, emu.rootToken, 'POST', 'transit/keys/custody-node-7', { type: 'aes256-gcm96', derived: false });
    const creds = await createRole('node-7', renderPolicy('custody-node', 'custody-node-7'), 'custody-node-7');
    expect(await failure(VaultSealer.open(options(creds)), 'key-unsuitable')).toMatch(/transit\/keys\/custody-node-7 is not derived/);
    // Also found by probing when the policy grants no read.
    const noRead = await createRole('node-7b', renderPolicy('custody-node', 'custody-node-7').replace(/path "transit\/keys\/custody-node-7" \{[^}]*\}/, ''), 'custody-node-7');
    expect(await failure(VaultSealer.open(options(noRead)), 'key-unsuitable')).toMatch(/is not derived/);
  });

  it('reads credentials from files', async () => {
    const roleIdFile = path.join(tmp, 'role-id');
    const secretIdFile = path.join(tmp, 'secret-id');
    await fs.writeFile(roleIdFile, `${node1.roleId}\n`, { mode: 0o600 });
    await fs.writeFile(secretIdFile, `${node1.secretId}\n`, { mode: 0o600 });
    const { roleId: _r, secretId: _s, ...rest } = options();
    const s = await VaultSealer.openWithFiles({ ...rest, roleIdFile, secretIdFile });
    open.push(s);
    expect(await s.unwrapKey(await s.wrapKey(randomKey().fill(1), 'a'), 'a')).toEqual(new Uint8Array(32).fill(1));
    expect(await failure(VaultSealer.openWithFiles({ ...rest, roleIdFile, secretIdFile: path.join(tmp, 'missing') }), 'config')).toMatch(
      /cannot read the Vault AppRole secret id file .*missing: ENOENT/,
    );
  });
});

describe('tokens at run time', () => {
  it('renews at 2/3 of the TTL and keeps working', async () => {
    const logs: string[] = [];
    const logger = { info: (o: object, m: string) => logs.push(JSON.stringify({ ...o, m })), warn: (o: object, m: string) => logs.push(JSON.stringify({ ...o, m })) };
    const sealer = await openSealer({ logger });
    const store = await SealedFileStore.open(path.join(tmp, 'sealed'), sealer);
    await store.put('a', te.encode('before'));
    expect(emu.count('POST', 'auth/token/renew-self')).toBe(0);
    await emu.advance(39);
    expect(emu.count('POST', 'auth/token/renew-self')).toBe(0);
    await emu.advance(2); // t = 41 s > 40 s
    expect(emu.count('POST', 'auth/token/renew-self')).toBe(1);
    await emu.advance(41); // t = 82 s: second renewal at 80 s
    expect(emu.count('POST', 'auth/token/renew-self')).toBe(2);
    await emu.advance(41);
    expect(sealer.stats()).toMatchObject({ logins: 1, renewals: 3, renewalFailures: 0 });
    // 123 s after login with a 60 s TTL: only renewals keep this token alive.
    expect(td.decode(await store.get('a'))).toBe('before');
    await store.put('b', te.encode('after'));
    const live = emu.tokens().filter((t) => t.role === 'custody-node-1' && !t.revoked && !t.expired);
    expect(live).toHaveLength(1);
    // Logs name accessors and TTLs, never the token or the secret id.
    const all = logs.join('\n');
    expect(all).toContain(sealer.tokenAccessor);
    expect(all).not.toContain(node1.secretId);
    expect(all).not.toMatch(/hvs\./);
  });

  it('a renewal that fails (Vault sealed) is retried while the token lives', async () => {
    const sealer = await openSealer();
    emu.seal();
    await emu.advance(41); // renewal due at 40 s: 503
    expect(sealer.stats()).toMatchObject({ renewals: 0, renewalFailures: 1 });
    emu.unseal();
    await emu.advance(7); // retried a third of the remaining 20 s later
    expect(sealer.stats()).toMatchObject({ renewals: 1, renewalFailures: 1, logins: 1 });
    expect(await sealer.unwrapKey(await sealer.wrapKey(new Uint8Array(32).fill(7), 'a'), 'a')).toEqual(new Uint8Array(32).fill(7));
    // Down until the token expired: the next call logs in again.
    emu.seal();
    await emu.advance(200);
    emu.unseal();
    expect(await sealer.unwrapKey(await sealer.wrapKey(new Uint8Array(32).fill(8), 'b'), 'b')).toEqual(new Uint8Array(32).fill(8));
    expect(sealer.stats().logins).toBeGreaterThanOrEqual(2);
  });

  it('logs in again once renewals are capped by the max TTL', async () => {
    await vaultApi(emu.address, emu.rootToken, 'POST', 'auth/approle/role/custody-node-1', { token_ttl: 60, token_max_ttl: 100 });
    const sealer = await openSealer();
    const store = await SealedFileStore.open(path.join(tmp, 'sealed'), sealer);
    await store.put('a', te.encode('x'));
    await emu.advance(41); // renew at 40 s: 60 s granted (max TTL leaves 60)
    await emu.advance(41); // renew at 80 s: capped at 20 s -> re-login planned at ~93 s
    expect(sealer.stats()).toMatchObject({ logins: 1, renewals: 2 });
    const first = emu.tokens().find((t) => t.role === 'custody-node-1')!;
    await emu.advance(15); // t = 97 s
    expect(sealer.stats().logins).toBe(2);
    await emu.advance(30); // t = 127 s: the first token hit its max TTL at 100 s
    expect(emu.tokens().find((t) => t.accessor === first.accessor)!.expired).toBe(true);
    expect(td.decode(await store.get('a'))).toBe('x');
    await store.put('b', te.encode('y'));
  });

  it('a revoked token fails the call clearly, loses nothing, and the next call logs in again', async () => {
    const sealer = await openSealer();
    const dir = path.join(tmp, 'sealed');
    const store = await SealedFileStore.open(dir, sealer);
    await store.put('keysets/a', te.encode('share a, version 1'));
    const file = path.join(dir, 'keysets', 'a.rec');
    const before = await fs.readFile(file);

    expect(emu.revokeAccessor(sealer.tokenAccessor)).toBe(true);
    const msg = await failure(store.put('keysets/a', te.encode('share a, version 2')), 'token-rejected');
    expect(msg).toBe(
      'Vault rejected the token of role custody-node-1 (revoked or expired) on transit/encrypt/custody-node-1; the operation did not run and nothing was written. ' +
        'The node logs in again with its AppRole on its next Vault call',
    );
    expect(await fs.readFile(file)).toEqual(before);
    expect(await fs.readdir(path.join(dir, 'keysets'))).toEqual(['a.rec']);
    await expect(store.put('keysets/b', te.encode('new'))).resolves.toBeUndefined(); // re-login
    expect(sealer.stats().logins).toBe(2);
    expect(td.decode(await store.get('keysets/a'))).toBe('share a, version 1');

    // Revoked again, and the secret id destroyed too: reads fail with the login error, nothing is lost.
    emu.revokeAccessor(sealer.tokenAccessor);
    await vaultApi(emu.address, emu.rootToken, 'POST', 'auth/approle/role/custody-node-1/secret-id/destroy', { secret_id: node1.secretId });
    await failure(store.get('keysets/a'), 'token-rejected');
    expect(await failure(store.get('keysets/a'), 'login-failed')).toMatch(/invalid role or secret ID/);
    expect(await fs.readFile(file)).toEqual(before);
  });

  it('checkCredentials: a revoked token is replaced by a login; token and secret id gone is final, with what to do', async () => {
    const sealer = await openSealer();
    const lookups = () => emu.count('GET', 'auth/token/lookup-self');
    const logins = () => emu.count('POST', 'auth/approle/login');
    // Just logged in: nothing to ask Vault.
    await sealer.checkCredentials();
    expect(lookups()).toBe(0);
    await emu.advance(6);
    await sealer.checkCredentials();
    expect(lookups()).toBe(1);

    // Revoked token, working secret id: the check logs in again and passes.
    emu.revokeAccessor(sealer.tokenAccessor);
    await emu.advance(6);
    const before = logins();
    await sealer.checkCredentials();
    expect(logins()).toBe(before + 1);
    await sealer.wrapKey(randomKey(), 'a');

    // Token revoked and secret id destroyed: refused, and every later call gets the same error without
    // another login attempt (repeated failures would trip Vault's AppRole lockout).
    emu.revokeAccessor(sealer.tokenAccessor);
    await vaultApi(emu.address, emu.rootToken, 'POST', 'auth/approle/role/custody-node-1/secret-id/destroy', { secret_id: node1.secretId });
    await emu.advance(6);
    const msg = await failure(sealer.checkCredentials(), 'login-failed');
    expect(msg).toBe(
      'Vault refused the token of role custody-node-1 (revoked or expired) and the AppRole login with this node\'s secret id failed (invalid role or secret ID): ' +
        'issue a new secret id (deploy/vault/README.md, "Secret IDs"), write it to the node\'s secret id file and restart the node. Nothing was written; the sealed records are intact',
    );
    const attempts = logins();
    expect(await failure(sealer.wrapKey(randomKey(), 'b'), 'login-failed')).toBe(msg);
    expect(await failure(sealer.checkCredentials(), 'login-failed')).toBe(msg);
    await emu.advance(3600);
    expect(logins()).toBe(attempts);
    expect(emu.clock.pending).toBe(0);
  });

  it('Vault sealed mid-run: calls fail with the sealed message, nothing is written, they resume after unseal', async () => {
    const sealer = await openSealer();
    const dir = path.join(tmp, 'sealed');
    const store = await SealedFileStore.open(dir, sealer);
    await store.put('a', te.encode('one'));
    emu.seal();
    expect(await failure(store.put('b', te.encode('two')), 'sealed')).toMatch(/^Vault at .* is sealed; unseal it \(vault operator unseal\): encrypt with transit\/keys\/custody-node-1 did not run/);
    expect(await failure(store.get('a'), 'sealed')).toMatch(/is sealed/);
    expect(await store.list('')).toEqual(['a']);
    emu.unseal();
    expect(td.decode(await store.get('a'))).toBe('one');
  });

  it('close stops the renewal timer and revokes the token', async () => {
    const sealer = await VaultSealer.open(options());
    expect(emu.clock.pending).toBe(1);
    const accessor = sealer.tokenAccessor;
    await sealer.close();
    expect(emu.clock.pending).toBe(0);
    expect(emu.tokens().find((t) => t.accessor === accessor)!.revoked).toBe(true);
    expect(await failure(sealer.wrapKey(randomKey(), 'a'), 'closed')).toMatch(/is closed/);
  });
});
