/**
 * The cluster with every node sealing through Vault Transit (`--sealer vault`), against the Vault-API
 * EMULATOR (test/support/vault-emulator.ts; no Vault server can be installed here), provisioned the
 * way deploy/vault/setup.sh provisions a real one. Real node processes log in with their own
 * AppRoles, create keysets and sign, keep everything across a restart, and a node whose Vault is
 * sealed or whose AppRole secret is wrong refuses to start with a clear error while the others sign
 * on; a running node whose token is revoked and secret id destroyed refuses to sign, saying what to
 * do; nothing is lost once it is fixed.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { status } from '@grpc/grpc-js';
import { Curve } from '../../proto/gen/custody/v1/common_pb.js';
import { NodeService } from '../../proto/gen/custody/v1/node_pb.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';
import { provisionLikeSetupSh, vaultApi, VaultEmulator } from '../support/vault-emulator.js';

const NODES = ['node-1', 'node-2', 'node-3'];

describe('cluster sealed by Vault Transit (emulator)', () => {
  let emu: VaultEmulator;
  let t: TestCluster;
  let credentials: string;
  let operatorToken: string;
  const keysets: Record<string, string> = {};

  beforeAll(async () => {
    emu = await VaultEmulator.start();
    const provisioned = await provisionLikeSetupSh(emu, { nodes: NODES });
    const nodes = provisioned.nodes;
    operatorToken = provisioned.operatorToken;
    credentials = await mkdtemp(join(tmpdir(), 'custody-vault-creds-'));
    for (const n of NODES) {
      await writeFile(join(credentials, `${n}.role-id`), nodes[n]!.roleId + '\n', { mode: 0o600 });
      await writeFile(join(credentials, `${n}.secret-id`), nodes[n]!.secretId + '\n', { mode: 0o600 });
    }
    t = await startTestCluster({ nodes: 3, threshold: 2, vault: { address: emu.address, credentialsDir: credentials } });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    await emu?.close();
    if (credentials) await rm(credentials, { recursive: true, force: true });
  });

  const signWith = async (scheme: string) => {
    const digest = randomBytes(32);
    const r = await t.cli('sign', '--keyset', keysets[scheme]!, '--digest', bytesToHex(digest));
    expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
    return { digest, sig: hexToBytes(r.json.signature as string), pub: hexToBytes(r.json.publicKey as string), signers: r.json.signers as string[] };
  };

  it('every node seals through its own Transit key; keysets are created and sign', async () => {
    for (const n of NODES) {
      const info = await (await t.nodeClient(NodeService, n, 'coordinator')).getNodeInfo({});
      expect(info.shareStore).toBe('vault');
    }
    for (const scheme of ['ed25519', 'ecdsa']) {
      const r = await t.cli('keyset', 'create', '--scheme', scheme);
      expect(r.code, r.stderr).toBe(0);
      keysets[scheme] = r.json.keysetId as string;
    }
    const e = await signWith('ed25519');
    expect(ed25519.verify(e.sig, e.digest, e.pub)).toBe(true);
    const s = await signWith('ecdsa');
    expect(secp256k1.verify(s.sig.subarray(0, 64), s.digest, s.pub, { prehash: false })).toBe(true);
    // Every node wrapped its data keys with its own key, and nothing else.
    for (const n of NODES) expect(emu.count('POST', new RegExp(`transit/encrypt/custody-${n}$`))).toBeGreaterThan(0);
    // The sealed records carry Vault-wrapped data keys (vault:v1:...), not the local keystore's.
    const sealed = join(t.dir, 'nodes', 'node-1', 'sealed');
    const files = (await readdir(sealed, { recursive: true })).map(String).filter((f) => f.endsWith('.rec'));
    expect(files.length).toBeGreaterThan(0);
    const text = (await readFile(join(sealed, files[0]!))).toString('latin1');
    expect(text).toContain('vault:v1:');
  }, 180_000);

  it('keeps every key across a restart of the whole cluster', async () => {
    await t.restart();
    const e = await signWith('ed25519');
    expect(ed25519.verify(e.sig, e.digest, e.pub)).toBe(true);
    const s = await signWith('ecdsa');
    expect(secp256k1.verify(s.sig.subarray(0, 64), s.digest, s.pub, { prehash: false })).toBe(true);
  }, 180_000);

  it('a node whose AppRole secret is wrong, or whose Vault is sealed, refuses to start; the others sign; nothing is lost', async () => {
    const node3 = t.cluster.nodes.get('node-3')!;
    await t.cluster.stopProcess(node3, 'SIGTERM');
    const secretFile = join(credentials, 'node-3.secret-id');
    const good = await readFile(secretFile, 'utf8');
    await writeFile(secretFile, '00000000-0000-0000-0000-000000000000\n');
    await expect(t.cluster.startNode('node-3')).rejects.toThrow(/AppRole|login|secret/i);
    expect((await signWith('ed25519')).signers).not.toContain('node-3');

    await writeFile(secretFile, good);
    emu.seal();
    await expect(t.cluster.startNode('node-3')).rejects.toThrow(/sealed/i);
    emu.unseal();
    await t.cluster.startNode('node-3');
    // node-3 unseals its shares again and takes part.
    const seen = new Set<string>();
    for (let i = 0; i < 6 && !seen.has('node-3'); i++) for (const s of (await signWith('ed25519')).signers) seen.add(s);
    expect(seen.has('node-3')).toBe(true);
  }, 180_000);

  it('a revoked token: the node logs in again; token revoked and secret id destroyed: it refuses to sign, saying what to do; new secret id, restart, same keys', async () => {
    const root = emu.rootToken;
    const liveTokens = () => emu.tokens().filter((x) => x.role === 'custody-node-2' && !x.revoked && !x.expired);
    // The node proves its Vault access before signing at most every 5 s: wait that out after each change.
    const pastCheckInterval = () => new Promise((r) => setTimeout(r, 5_500));
    const signUntil = async (node: string) => {
      const seen = new Set<string>();
      for (let i = 0; i < 8 && !seen.has(node); i++) for (const s of (await signWith('ed25519')).signers) seen.add(s);
      return seen;
    };
    const node2 = await t.nodeClient(NodeService, 'node-2', 'coordinator');
    const keysetsBefore = (await node2.getNodeInfo({})).keysets;
    const publicKey = bytesToHex((await signWith('ed25519')).pub);

    // 1. Token revoked (vault token revoke -accessor), secret id intact: node-2 logs in again and signs on.
    const [first] = liveTokens();
    expect(liveTokens()).toHaveLength(1);
    expect((await vaultApi(emu.address, root, 'POST', 'auth/token/revoke-accessor', { accessor: first!.accessor })).status).toBe(204);
    await pastCheckInterval();
    expect((await signUntil('node-2')).has('node-2')).toBe(true);
    expect(liveTokens()).toHaveLength(1);
    const [second] = liveTokens();
    expect(second!.accessor).not.toBe(first!.accessor);

    // 2. Token revoked and secret id destroyed: node-2 refuses to sign and to seal, with what to do.
    const secretFile = join(credentials, 'node-2.secret-id');
    await vaultApi(emu.address, root, 'POST', 'auth/token/revoke-accessor', { accessor: second!.accessor });
    expect((await vaultApi(emu.address, root, 'POST', 'auth/approle/role/custody-node-2/secret-id/destroy', { secret_id: (await readFile(secretFile, 'utf8')).trim() })).status).toBe(204);
    await pastCheckInterval();
    const refusal = /^node-2 refuses to sign: Vault refused the token of role custody-node-2 \(revoked or expired\) and the AppRole login with this node's secret id failed \(invalid role or secret ID\): issue a new secret id .*restart the node/;
    // Straight to the node: the refusal comes before the item is even looked at.
    const direct = await node2.signShares({ items: [{ authorization: new Uint8Array(1), coordinatorSignature: new Uint8Array(64) }] });
    expect(direct.results[0]!.result).toMatchObject({ case: 'error', value: { code: status.FAILED_PRECONDITION, message: expect.stringMatching(refusal) } });
    await expect(node2.reserveNonces({ curve: Curve.ED25519, count: 1 })).rejects.toMatchObject({ code: status.FAILED_PRECONDITION, details: expect.stringMatching(/^node-2: Vault refused the token of role custody-node-2/) });
    // It has not crashed, and the cluster signs with node-1 and node-3.
    expect((await node2.getNodeInfo({})).keysets).toBe(keysetsBefore);
    for (let i = 0; i < 4; i++) expect((await signWith('ed25519')).signers).not.toContain('node-2');
    expect((await signWith('ecdsa')).signers).not.toContain('node-2');
    // With node-1 down the coordinator has to ask node-2, and passes on its reason; nobody is blamed.
    await t.cluster.stopProcess(t.cluster.nodes.get('node-1')!);
    const failed = await t.cli('sign', '--keyset', keysets['ed25519']!, '--digest', bytesToHex(randomBytes(32)));
    expect(failed.code).toBe(1);
    expect(failed.json.error).toMatch(/node-2.*Vault refused the token of role custody-node-2.*restart the node/);
    await t.cluster.startNode('node-1');
    const audit = (await t.cli('audit', 'list', '--limit', '5000')).json.records as { action: string }[];
    expect(audit.filter((x) => x.action === 'node.blamed')).toEqual([]);
    expect(t.cluster.nodes.get('node-2')!.child.exitCode).toBeNull();

    // 3. A new secret id in the credentials folder and a restart: node-2 signs again with the same keys.
    const fresh = (await vaultApi(emu.address, root, 'POST', 'auth/approle/role/custody-node-2/secret-id', {})).body.data.secret_id as string;
    await writeFile(secretFile, fresh + '\n', { mode: 0o600 });
    await t.cluster.stopProcess(t.cluster.nodes.get('node-2')!);
    await t.cluster.startNode('node-2');
    expect((await (await t.nodeClient(NodeService, 'node-2', 'coordinator')).getNodeInfo({})).keysets).toBe(keysetsBefore);
    const seen = new Set<string>();
    for (let i = 0; i < 8 && !seen.has('node-2'); i++) {
      const e = await signWith('ed25519');
      expect(bytesToHex(e.pub)).toBe(publicKey);
      expect(ed25519.verify(e.sig, e.digest, e.pub)).toBe(true);
      for (const n of e.signers) seen.add(n);
    }
    expect(seen.has('node-2')).toBe(true);
  }, 240_000);

  it('custody vault rotate: every Transit key rotated, every record rewrapped online, old versions disabled', async () => {
    const tokenFile = join(credentials, 'operator.token');
    await writeFile(tokenFile, operatorToken + '\n', { mode: 0o600 });
    const r = await t.cli('vault', 'rotate', '--vault-addr', emu.address, '--vault-token-file', tokenFile);
    expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
    const nodes = r.json.nodes as { nodeId: string; version: number; records: number; minDecryptionVersionRaised: boolean }[];
    expect(nodes.map((n) => [n.nodeId, n.version, n.minDecryptionVersionRaised])).toEqual(NODES.map((n) => [n, 2, true]));
    // No record on any node is wrapped with version 1 any more, and signing never stopped.
    for (const n of NODES) {
      const sealed = join(t.dir, 'nodes', n, 'sealed');
      for (const f of (await readdir(sealed, { recursive: true })).map(String).filter((x) => x.endsWith('.rec'))) {
        expect((await readFile(join(sealed, f))).toString('latin1'), `${n}/${f}`).not.toContain('vault:v1:');
      }
    }
    const e = await signWith('ed25519');
    expect(ed25519.verify(e.sig, e.digest, e.pub)).toBe(true);
    // After a restart the nodes open everything with version 2 alone (version 1 is refused now).
    await t.restart();
    const s = await signWith('ecdsa');
    expect(secp256k1.verify(s.sig.subarray(0, 64), s.digest, s.pub, { prehash: false })).toBe(true);
    const audit = (await t.cli('audit', 'list', '--limit', '1000')).json.records as { action: string }[];
    expect(audit.some((x) => x.action === 'vault.rewrapped')).toBe(true);
  }, 180_000);
});
