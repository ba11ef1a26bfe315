/**
 * The VaultEmulator's own behaviour, checked against what the Vault API docs say (links in the
 * emulator's header). The sealer tests rely on these semantics, so they are pinned here.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VaultEmulator, parsePolicy, provisionLikeSetupSh, renderPolicy, vaultApi } from './vault-emulator.js';

let emu: VaultEmulator;
const api = (token: string | undefined, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown) => vaultApi(emu.address, token, method, path, body);

beforeEach(async () => {
  emu = await VaultEmulator.start();
});
afterEach(async () => {
  await emu.close();
});

async function tokenWith(policy: string): Promise<string> {
  const root = emu.rootToken;
  await api(root, 'PUT', 'sys/policies/acl/p', { policy });
  return (await api(root, 'POST', 'auth/token/create', { policies: ['p'], no_default_policy: true })).body.auth.client_token as string;
}

describe('sys', () => {
  it('health, seal-status and sealing', async () => {
    expect((await api(undefined, 'GET', 'sys/health')).status).toBe(200);
    emu.seal();
    const h = await api(undefined, 'GET', 'sys/health');
    expect(h).toMatchObject({ status: 503, body: { sealed: true, initialized: true } });
    expect((await api(undefined, 'GET', 'sys/health?sealedcode=200')).status).toBe(200);
    expect((await api(undefined, 'GET', 'sys/seal-status')).body).toMatchObject({ sealed: true, type: 'shamir' });
    expect(await api(emu.rootToken, 'GET', 'sys/mounts')).toEqual({ status: 503, body: { errors: ['Vault is sealed'] } });
    emu.unseal();
    expect((await api(emu.rootToken, 'GET', 'sys/mounts')).status).toBe(200);
  });

  it('a missing, unknown or revoked token gets 403 permission denied', async () => {
    expect(await api(undefined, 'GET', 'transit/keys/x')).toEqual({ status: 403, body: { errors: ['permission denied'] } });
    expect((await api('hvs.nope', 'GET', 'auth/token/lookup-self')).status).toBe(403);
  });
});

describe('policies', () => {
  it('parses HCL with comments and the JSON form; refuses what it does not emulate', () => {
    const rules = parsePolicy(`
      # a comment
      path "transit/encrypt/k" { capabilities = ["update"] } // another
      /* block */ path "secret/data/+/x*" {
        capabilities = ["read", "list"]
      }`);
    expect(rules.map((r) => [r.pattern, [...r.capabilities]])).toEqual([
      ['transit/encrypt/k', ['update']],
      ['secret/data/+/x*', ['read', 'list']],
    ]);
    expect(parsePolicy('{"path": {"a/b": {"capabilities": ["read"]}}}')[0]!.pattern).toBe('a/b');
    expect(() => parsePolicy('path "a" { capabilities = ["fly"] }')).toThrow(/invalid capability/);
    expect(() => parsePolicy('path "a" { capabilities = ["read"] allowed_parameters = {} }')).toThrow();
    expect(() => parsePolicy('path "a/*/b" { capabilities = ["read"] }')).toThrow(/glob/);
    expect(() => parsePolicy('path "a" { capabilities = ["read"] } junk')).toThrow(/unexpected text/);
  });

  it('follows Vault priority matching: the highest-priority pattern decides, deny wins', async () => {
    await api(emu.rootToken, 'POST', 'sys/mounts/transit', { type: 'transit' });
    await api(emu.rootToken, 'POST', 'transit/keys/custody-node-1', { derived: true });
    // The glob's wildcard comes later than "+", so it outranks "+/rotate" for .../rotate: rotate is denied.
    let t = await tokenWith(`
      path "transit/keys/custody-*" { capabilities = ["read"] }
      path "transit/keys/+/rotate" { capabilities = ["update"] }`);
    expect((await api(t, 'POST', 'transit/keys/custody-node-1/rotate', {})).status).toBe(403);
    expect((await api(t, 'GET', 'transit/keys/custody-node-1')).status).toBe(200);
    // The shipped operator policy avoids that trap.
    t = await tokenWith(renderPolicy('custody-operator', ''));
    expect((await api(t, 'POST', 'transit/keys/custody-node-1/rotate', {})).status).toBe(200);
    expect((await api(t, 'GET', 'transit/keys/custody-node-1')).status).toBe(200);
    expect((await api(t, 'GET', 'transit/keys?list=true')).body.data.keys).toEqual(['custody-node-1']);
    expect((await api(t, 'POST', 'transit/encrypt/custody-node-1', { plaintext: 'AA==', context: 'AA==' })).status).toBe(403);
    // Exact beats glob; deny on the winning pattern wins.
    t = await tokenWith(`
      path "transit/*" { capabilities = ["update"] }
      path "transit/decrypt/custody-node-1" { capabilities = ["deny"] }`);
    expect((await api(t, 'POST', 'transit/decrypt/custody-node-1', { ciphertext: 'vault:v1:AAAA', context: 'AA==' })).status).toBe(403);
    expect((await api(t, 'POST', 'transit/rewrap/custody-node-1', { ciphertext: 'vault:v1:AAAA', context: 'AA==' })).status).toBe(400);
  });

  it('encrypt to a missing key needs "create" (Vault existence check), and with it upserts a key', async () => {
    await api(emu.rootToken, 'POST', 'sys/mounts/transit', { type: 'transit' });
    let t = await tokenWith('path "transit/encrypt/new" { capabilities = ["update"] }');
    expect((await api(t, 'POST', 'transit/encrypt/new', { plaintext: 'AA==' })).status).toBe(403);
    t = await tokenWith('path "transit/encrypt/new" { capabilities = ["create", "update"] }');
    const r = await api(t, 'POST', 'transit/encrypt/new', { plaintext: 'AA==', context: 'Yw==' });
    expect(r.status).toBe(200);
    expect((await api(emu.rootToken, 'GET', 'transit/keys/new')).body.data).toMatchObject({ derived: true, type: 'aes256-gcm96', latest_version: 1 });
  });
});

describe('AppRole and tokens', () => {
  it('logs in, renews within the max TTL with Vault\'s warning, expires, and refuses bad credentials', async () => {
    const { nodes } = await provisionLikeSetupSh(emu, { nodes: ['n1'], tokenTtl: '1m', tokenMaxTtl: '90s' });
    const n = nodes['n1']!;
    expect(await api(undefined, 'POST', 'auth/approle/login', { role_id: n.roleId, secret_id: 'wrong' })).toMatchObject({
      status: 400,
      body: { errors: ['invalid role or secret ID'] },
    });
    expect((await api(undefined, 'POST', 'auth/approle/login', { role_id: 'wrong', secret_id: n.secretId })).status).toBe(400);
    const login = (await api(undefined, 'POST', 'auth/approle/login', { role_id: n.roleId, secret_id: n.secretId })).body.auth;
    expect(login).toMatchObject({ lease_duration: 60, renewable: true, policies: ['custody-n1'], metadata: { role_name: 'custody-n1' } });
    const tok = login.client_token as string;
    expect(tok).toMatch(/^hvs\./);
    expect((await api(tok, 'GET', 'auth/token/lookup-self')).body.data).toMatchObject({ ttl: 60, policies: ['custody-n1'] });
    await emu.advance(50);
    let r = await api(tok, 'POST', 'auth/token/renew-self', {});
    expect(r.body.auth.lease_duration).toBe(40); // 90 s max TTL - 50 s
    expect(r.body.warnings[0]).toMatch(/exceeded the effective max_ttl of "40s"; TTL value is capped accordingly/);
    await emu.advance(41);
    expect(await api(tok, 'GET', 'auth/token/lookup-self')).toEqual({ status: 403, body: { errors: ['permission denied'] } });
    r = await api(tok, 'POST', 'auth/token/renew-self', {});
    expect(r.status).toBe(403);
    // Secret ids with limited uses and TTL.
    const limited = (await api(emu.rootToken, 'POST', 'auth/approle/role/custody-n1/secret-id', { num_uses: 1, ttl: 30 })).body.data.secret_id;
    expect((await api(undefined, 'POST', 'auth/approle/login', { role_id: n.roleId, secret_id: limited })).status).toBe(200);
    expect((await api(undefined, 'POST', 'auth/approle/login', { role_id: n.roleId, secret_id: limited })).status).toBe(400);
    const shortLived = (await api(emu.rootToken, 'POST', 'auth/approle/role/custody-n1/secret-id', { ttl: 30 })).body.data.secret_id;
    await emu.advance(31);
    expect((await api(undefined, 'POST', 'auth/approle/login', { role_id: n.roleId, secret_id: shortLived })).status).toBe(400);
  });

  it('revocation: revoke-self and the accessor knob', async () => {
    const t = (await api(emu.rootToken, 'POST', 'auth/token/create', { policies: ['default'], ttl: '1h' })).body.auth;
    expect((await api(t.client_token, 'GET', 'auth/token/lookup-self')).status).toBe(200);
    expect(emu.revokeAccessor(t.accessor)).toBe(true);
    expect((await api(t.client_token, 'GET', 'auth/token/lookup-self')).status).toBe(403);
    const u = (await api(emu.rootToken, 'POST', 'auth/token/create', { ttl: '1h' })).body.auth.client_token;
    expect((await api(u, 'POST', 'auth/token/revoke-self', {})).status).toBe(204);
    expect((await api(u, 'GET', 'auth/token/lookup-self')).status).toBe(403);
  });

  it('auth/token/revoke by token and secret-id/destroy: every later call is refused, tokens outlive their secret id', async () => {
    const { nodes } = await provisionLikeSetupSh(emu, { nodes: ['n1'] });
    const n = nodes['n1']!;
    const login = async (secretId: string) => api(undefined, 'POST', 'auth/approle/login', { role_id: n.roleId, secret_id: secretId });
    const a = (await login(n.secretId)).body.auth.client_token as string;
    const b = (await login(n.secretId)).body.auth.client_token as string;
    // A node token may not revoke another token; root may. Unknown tokens revoke "if they existed".
    expect((await api(b, 'POST', 'auth/token/revoke', { token: a })).status).toBe(403);
    expect(await api(emu.rootToken, 'POST', 'auth/token/revoke', {})).toEqual({ status: 400, body: { errors: ['missing token ID'] } });
    expect((await api(emu.rootToken, 'POST', 'auth/token/revoke', { token: 'hvs.unknown' })).status).toBe(204);
    expect((await api(emu.rootToken, 'POST', 'auth/token/revoke', { token: a })).status).toBe(204);
    for (const [method, path] of [['GET', 'auth/token/lookup-self'], ['POST', 'auth/token/renew-self'], ['POST', 'transit/encrypt/custody-n1']] as const) {
      expect(await api(a, method, path, method === 'POST' ? {} : undefined)).toEqual({ status: 403, body: { errors: ['permission denied'] } });
    }
    expect((await api(emu.rootToken, 'POST', 'auth/approle/role/custody-n1/secret-id/destroy', {})).status).toBe(400);
    expect((await api(emu.rootToken, 'POST', 'auth/approle/role/custody-n1/secret-id/destroy', { secret_id: n.secretId })).status).toBe(204);
    expect(await login(n.secretId)).toMatchObject({ status: 400, body: { errors: ['invalid role or secret ID'] } });
    expect((await api(b, 'GET', 'auth/token/lookup-self')).status).toBe(200);
  });
});

describe('Transit', () => {
  beforeEach(async () => {
    await api(emu.rootToken, 'POST', 'sys/mounts/transit', { type: 'transit' });
    await api(emu.rootToken, 'POST', 'transit/keys/k', { type: 'aes256-gcm96' });
  });
  const root = () => emu.rootToken;

  it('encrypts, decrypts, rotates, rewraps; config refuses versions above latest', async () => {
    const c1 = (await api(root(), 'POST', 'transit/encrypt/k', { plaintext: Buffer.from('hello').toString('base64') })).body.data;
    expect(c1).toMatchObject({ key_version: 1 });
    expect(c1.ciphertext).toMatch(/^vault:v1:/);
    expect((await api(root(), 'POST', 'keys/k/rotate', {})).status).toBe(404); // not a mount
    expect((await api(root(), 'POST', 'transit/keys/k/rotate', {})).body.data.latest_version).toBe(2);
    const c2 = (await api(root(), 'POST', 'transit/rewrap/k', { ciphertext: c1.ciphertext })).body.data.ciphertext;
    expect(c2).toMatch(/^vault:v2:/);
    expect(Buffer.from((await api(root(), 'POST', 'transit/decrypt/k', { ciphertext: c2 })).body.data.plaintext, 'base64').toString()).toBe('hello');
    expect(await api(root(), 'POST', 'transit/keys/k/config', { min_decryption_version: 3 })).toMatchObject({
      status: 400,
      body: { errors: ['cannot set min decryption version of 3, latest key version is 2'] },
    });
    expect((await api(root(), 'POST', 'transit/keys/k/config', { min_decryption_version: 2 })).body.data).toMatchObject({ min_decryption_version: 2, keys: { 2: expect.any(Number) } });
    expect(await api(root(), 'POST', 'transit/decrypt/k', { ciphertext: c1.ciphertext })).toEqual({
      status: 400,
      body: { errors: ['ciphertext or signature version is disallowed by policy (too old)'] },
    });
    expect((await api(root(), 'POST', 'transit/rewrap/k', { ciphertext: c1.ciphertext })).status).toBe(400);
    expect((await api(root(), 'POST', 'transit/decrypt/k', { ciphertext: 'vault:v9:AAAA' })).body.errors).toEqual(['invalid ciphertext: version is too new']);
    expect((await api(root(), 'POST', 'transit/decrypt/k', { ciphertext: 'nope' })).body.errors).toEqual(['invalid ciphertext: no prefix']);
    expect((await api(root(), 'POST', 'transit/decrypt/missing', { ciphertext: c2 })).body.errors).toEqual(['encryption key not found']);
    expect((await api(root(), 'GET', 'transit/keys/missing')).status).toBe(404);
    expect((await api(root(), 'DELETE', 'transit/keys/k')).body.errors[0]).toMatch(/deletion is not allowed for this key/);
  });

  it('derived keys need a context; batches report per item and answer 400 when any item failed', async () => {
    await api(root(), 'POST', 'transit/keys/d', { derived: true });
    expect((await api(root(), 'POST', 'transit/encrypt/d', { plaintext: 'AA==' })).body.errors[0]).toMatch(/^missing 'context' for key derivation/);
    const ctx = (s: string) => Buffer.from(s).toString('base64');
    const enc = await api(root(), 'POST', 'transit/encrypt/d', {
      batch_input: [
        { plaintext: 'AAE=', context: ctx('a'), reference: 'r1' },
        { plaintext: 'AAI=', context: ctx('b') },
      ],
    });
    expect(enc.status).toBe(200);
    const [a, b] = enc.body.data.batch_results;
    expect(a.reference).toBe('r1');
    const dec = await api(root(), 'POST', 'transit/decrypt/d', {
      batch_input: [
        { ciphertext: a.ciphertext, context: ctx('a') },
        { ciphertext: b.ciphertext, context: ctx('a') }, // wrong context
      ],
    });
    expect(dec.status).toBe(400);
    expect(dec.body.data.batch_results).toEqual([{ plaintext: 'AAE=' }, { error: 'cipher: message authentication failed' }]);
    expect(
      (await api(root(), 'POST', 'transit/decrypt/d', { batch_input: [{ ciphertext: a.ciphertext, context: ctx('a') }, { ciphertext: b.ciphertext }] })).body.errors,
    ).toEqual(['context should be set either in all the request blocks or in none']);
    const dk = (await api(root(), 'POST', 'transit/datakey/plaintext/d', { context: ctx('z') })).body.data;
    expect(Buffer.from(dk.plaintext, 'base64')).toHaveLength(32);
    expect((await api(root(), 'POST', 'transit/decrypt/d', { ciphertext: dk.ciphertext, context: ctx('z') })).body.data.plaintext).toBe(dk.plaintext);
  });
});

describe('KV v2', () => {
  const root = () => emu.rootToken;

  it('versions, check-and-set, metadata, soft delete and destroy', async () => {
    const w1 = await api(root(), 'POST', 'secret/data/app/cfg', { data: { a: 1 }, options: { cas: 0 } });
    expect(w1.body.data).toMatchObject({ version: 1, destroyed: false, deletion_time: '' });
    expect(await api(root(), 'POST', 'secret/data/app/cfg', { data: { a: 2 }, options: { cas: 0 } })).toEqual({
      status: 400,
      body: { errors: ['check-and-set parameter did not match the current version'] },
    });
    expect((await api(root(), 'POST', 'secret/data/app/cfg', { data: { a: 2 }, options: { cas: 1 } })).body.data.version).toBe(2);
    expect((await api(root(), 'GET', 'secret/data/app/cfg')).body.data).toMatchObject({ data: { a: 2 }, metadata: { version: 2 } });
    expect((await api(root(), 'GET', 'secret/data/app/cfg?version=1')).body.data.data).toEqual({ a: 1 });
    const meta = (await api(root(), 'GET', 'secret/metadata/app/cfg')).body.data;
    expect(meta).toMatchObject({ current_version: 2, oldest_version: 1, versions: { 1: { destroyed: false }, 2: { destroyed: false } } });
    expect((await api(root(), 'GET', 'secret/metadata/app?list=true')).body.data.keys).toEqual(['cfg']);

    await api(root(), 'POST', 'secret/metadata/app/cfg', { cas_required: true, max_versions: 2 });
    expect((await api(root(), 'POST', 'secret/data/app/cfg', { data: { a: 3 } })).body.errors).toEqual(['check-and-set parameter required for this call']);
    await api(root(), 'POST', 'secret/data/app/cfg', { data: { a: 3 }, options: { cas: 2 } });
    expect((await api(root(), 'GET', 'secret/metadata/app/cfg')).body.data).toMatchObject({ current_version: 3, oldest_version: 2 });
    expect((await api(root(), 'GET', 'secret/data/app/cfg?version=1')).status).toBe(404);

    expect((await api(root(), 'DELETE', 'secret/data/app/cfg')).status).toBe(204);
    const gone = await api(root(), 'GET', 'secret/data/app/cfg');
    expect(gone.status).toBe(404);
    expect(gone.body.data).toMatchObject({ data: null, metadata: { version: 3 } });
    await api(root(), 'POST', 'secret/undelete/app/cfg', { versions: [3] });
    expect((await api(root(), 'GET', 'secret/data/app/cfg')).body.data.data).toEqual({ a: 3 });
    await api(root(), 'POST', 'secret/destroy/app/cfg', { versions: [3] });
    expect((await api(root(), 'GET', 'secret/data/app/cfg')).body.data.metadata.destroyed).toBe(true);
    await api(root(), 'DELETE', 'secret/metadata/app/cfg');
    expect((await api(root(), 'GET', 'secret/metadata/app/cfg')).status).toBe(404);
  });

  it('data writes need "create" for a new key and "update" for an existing one', async () => {
    const t = await tokenWith('path "secret/data/x" { capabilities = ["update", "read"] }');
    expect((await api(t, 'POST', 'secret/data/x', { data: { v: 1 } })).status).toBe(403);
    await api(root(), 'POST', 'secret/data/x', { data: { v: 1 } });
    expect((await api(t, 'POST', 'secret/data/x', { data: { v: 2 } })).status).toBe(200);
  });
});
