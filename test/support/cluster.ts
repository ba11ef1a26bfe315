/** End-to-end harness: a real local cluster (separate OS processes, mTLS on loopback) in a temp folder. */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DescService } from '@bufbuild/protobuf';
import { LocalCluster, type LaunchOptions } from '../../cli/launcher.js';
import { layout } from '../../cli/layout.js';
import { createClient, type Client } from '../../runtime/grpc.js';
import { clientCredentials, loadPem, type ExpectedServer } from '../../runtime/tls.js';

const run = promisify(execFile);
export const CLI = join(process.cwd(), 'dist', 'cli', 'custody.js');

export interface TestCluster {
  dir: string;
  cluster: LocalCluster;
  /** A gRPC client to the coordinator with the given role's certificate. */
  client<S extends DescService>(service: S, role: string): Promise<Client<S>>;
  /** A gRPC client straight to a node, e.g. with the coordinator's certificate. */
  nodeClient<S extends DescService>(service: S, nodeId: string, role: string): Promise<Client<S>>;
  /** Runs the real `custody` CLI with --dir and --json; resolves with its parsed stdout and exit code. */
  cli(...args: string[]): Promise<{ json: Record<string, unknown>; code: number; stderr: string }>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestCluster(opts: Omit<LaunchOptions, 'dir'> = {}): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'custody-e2e-'));
  const L = layout(dir);
  let cluster = await LocalCluster.start({ dir, ...opts });
  const clients: { close(): void }[] = [];
  const credsFor = async (role: string, server: ExpectedServer) => clientCredentials(await loadPem(L.tls, 'ca'), await loadPem(L.tls, role), server);
  const t: TestCluster = {
    dir,
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
    async restart() {
      await cluster.stop();
      cluster = await LocalCluster.start({ dir, ...opts });
    },
    async stop() {
      for (const c of clients) c.close();
      await cluster.stop();
      if (!process.env.CUSTODY_KEEP_TEST_DIRS) await rm(dir, { recursive: true, force: true });
    },
  };
  return t;
}
