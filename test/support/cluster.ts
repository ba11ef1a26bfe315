/** End-to-end harness: a real local cluster (separate OS processes, mTLS on loopback) in a temp folder. */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DescService } from '@bufbuild/protobuf';
import { LocalCluster, type ClusterConfig, type LaunchOptions } from '../../cli/launcher.js';
import { layout } from '../../cli/layout.js';
import { createClient, type Client } from '../../runtime/grpc.js';
import { clientCredentials, loadPem, type ExpectedServer } from '../../runtime/tls.js';
import { provisionLikeSetupSh, VaultEmulator, type ProvisionedNode } from './vault-emulator.js';

const run = promisify(execFile);
export const CLI = join(process.cwd(), 'dist', 'cli', 'custody.js');

/**
 * `CUSTODY_TEST_SEALER=vault` (npm run test:e2e:vault): every cluster the harness starts seals with
 * Vault Transit against a Vault-API EMULATOR (no Vault server is installable here; DESIGN.md section 7).
 */
export const TEST_SEALER: 'local' | 'vault' = process.env.CUSTODY_TEST_SEALER === 'vault' ? 'vault' : 'local';
if (process.env.CUSTODY_TEST_SEALER && process.env.CUSTODY_TEST_SEALER !== 'local' && TEST_SEALER !== 'vault') {
  throw new Error(`CUSTODY_TEST_SEALER must be local or vault, got ${process.env.CUSTODY_TEST_SEALER}`);
}

/** A Vault-API emulator provisioned like deploy/vault/setup.sh, with each node's AppRole credentials in files. */
export interface TestVault {
  emulator: VaultEmulator;
  address: string;
  /** <node>.role-id and <node>.secret-id, as LaunchOptions.vault and `custody up --vault-credentials` expect. */
  credentialsDir: string;
  operatorToken: string;
  nodes: Map<string, ProvisionedNode>;
  /** Provisions a node's key, policy and role and writes its credentials, unless already done. */
  ensureNodes(nodeIds: string[]): Promise<void>;
  close(): Promise<void>;
}

export async function startTestVault(credentialsDir: string, nodeIds: string[]): Promise<TestVault> {
  const emulator = await VaultEmulator.start();
  await mkdir(credentialsDir, { recursive: true, mode: 0o700 });
  const v: TestVault = {
    emulator,
    address: emulator.address,
    credentialsDir,
    operatorToken: '',
    nodes: new Map(),
    async ensureNodes(ids) {
      const missing = ids.filter((id) => !v.nodes.has(id));
      if (missing.length === 0) return;
      const p = await provisionLikeSetupSh(emulator, { nodes: missing });
      v.operatorToken ||= p.operatorToken;
      for (const [id, n] of Object.entries(p.nodes)) {
        await writeFile(join(credentialsDir, `${id}.role-id`), n.roleId + '\n', { mode: 0o600 });
        await writeFile(join(credentialsDir, `${id}.secret-id`), n.secretId + '\n', { mode: 0o600 });
        v.nodes.set(id, n);
      }
    },
    close: () => emulator.close(),
  };
  await v.ensureNodes(nodeIds);
  return v;
}

export interface TestCluster {
  dir: string;
  cluster: LocalCluster;
  /** Set when the harness runs the cluster against its own Vault emulator (CUSTODY_TEST_SEALER=vault). */
  vault?: TestVault;
  /** A gRPC client to the coordinator with the given role's certificate. */
  client<S extends DescService>(service: S, role: string): Promise<Client<S>>;
  /** A gRPC client straight to a node, e.g. with the coordinator's certificate. */
  nodeClient<S extends DescService>(service: S, nodeId: string, role: string): Promise<Client<S>>;
  /** Runs the real `custody` CLI with --dir and --json; resolves with its parsed stdout and exit code. */
  cli(...args: string[]): Promise<{ json: Record<string, unknown>; code: number; stderr: string }>;
  /** `more` changes the launch options from now on, e.g. `{ nodes: 4 }` grows the cluster. */
  restart(more?: Omit<LaunchOptions, 'dir'>): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestCluster(opts: Omit<LaunchOptions, 'dir'> = {}): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'custody-e2e-'));
  const L = layout(dir);
  // A caller that brings its own Vault (vault-cluster.test.ts) keeps it.
  const vault = TEST_SEALER === 'vault' && !opts.vault ? await startTestVault(join(dir, 'vault-credentials'), nodeIds(opts.nodes ?? 3)) : undefined;
  if (vault) opts = { ...opts, vault: { address: vault.address, credentialsDir: vault.credentialsDir } };
  const launch = async () => {
    if (vault) await vault.ensureNodes(await configuredNodes(L.config, opts.nodes ?? 3));
    const c = await LocalCluster.start({ dir, ...opts });
    if (vault) {
      // Nodes started later (by id) need their AppRole too.
      const startNode = c.startNode.bind(c);
      c.startNode = async (nodeId) => {
        await vault.ensureNodes([nodeId]);
        return startNode(nodeId);
      };
    }
    return c;
  };
  let cluster: LocalCluster;
  try {
    cluster = await launch();
  } catch (e) {
    await vault?.close();
    throw e;
  }
  const clients: { close(): void }[] = [];
  const credsFor = async (role: string, server: ExpectedServer) => clientCredentials(await loadPem(L.tls, 'ca'), await loadPem(L.tls, role), server);
  const t: TestCluster = {
    dir,
    ...(vault ? { vault } : {}),
    get cluster() {
      return cluster;
    },
    async client(service, role) {
      const c = createClient(service, cluster.coordinator!.address, await credsFor(role, { role: 'coordinator' }));
      clients.push(c);
      return c;
    },
    async nodeClient(service, nodeId, role) {
      const c = createClient(service, cluster.nodes.get(nodeId)!.address, await credsFor(role, { role: 'node', name: nodeId }));
      clients.push(c);
      return c;
    },
    async cli(...args) {
      try {
        const { stdout, stderr } = await run(process.execPath, [CLI, ...args, '--dir', dir, '--json'], { timeout: 120_000 });
        return { json: JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>, code: 0, stderr };
      } catch (e) {
        const err = e as { stdout?: string; stderr?: string; code?: number };
        const last = (err.stdout ?? '').trim().split('\n').pop() || '{}';
        return { json: JSON.parse(last) as Record<string, unknown>, code: err.code ?? 1, stderr: err.stderr ?? '' };
      }
    },
    async restart(more) {
      await cluster.stop();
      if (more) opts = { ...opts, ...more };
      cluster = await launch();
    },
    async stop() {
      for (const c of clients) c.close();
      await cluster.stop();
      await vault?.close();
      if (!process.env.CUSTODY_KEEP_TEST_DIRS) await rm(dir, { recursive: true, force: true });
    },
  };
  return t;
}

const nodeIds = (n: number) => Array.from({ length: n }, (_, i) => `node-${i + 1}`);

/** The node ids of an existing cluster folder (its config, grown to `n` nodes if asked), or of a new one with `n` nodes. */
async function configuredNodes(configPath: string, n: number): Promise<string[]> {
  try {
    const have = (JSON.parse(await readFile(configPath, 'utf8')) as ClusterConfig).nodes.map((x) => x.nodeId);
    return [...new Set([...have, ...nodeIds(n)])];
  } catch {
    return nodeIds(n);
  }
}
