/**
 * The cluster with every node sealing through Vault Transit (`--sealer vault`), against the Vault-API
 * EMULATOR (test/support/vault-emulator.ts; no Vault server can be installed here), provisioned the
 * way deploy/vault/setup.sh provisions a real one. Real node processes log in with their own
 * AppRoles, create keysets and sign, keep everything across a restart, and a node whose Vault is
 * sealed or whose AppRole secret is wrong refuses to start with a clear error while the others sign
 * on; nothing is lost once it is fixed.
 */
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { NodeService } from '../../proto/gen/custody/v1/node_pb.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';
import { provisionLikeSetupSh, VaultEmulator } from '../support/vault-emulator.js';

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
