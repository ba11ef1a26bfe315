/**
 * Starts a local cluster: a coordinator and N signer nodes, each its own OS process, talking gRPC
 * over mutual TLS. First start creates the dev CA, certificates, node keystores and the roster;
 * later starts of the same folder reuse them, so every key survives a restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { ed25519KeyPair } from '../crypto/ed25519-sig.js';
import type { RosterFile } from '../nodes/roster.js';
import { ensureCa, ensureCert } from '../runtime/tls.js';
import { CLIENT_ROLES, layout, type Layout } from './layout.js';

/** Persisted on first start so every restart reuses the same addresses. */
export interface ClusterConfig {
  nodes: { nodeId: string; listen: string }[];
  coordinator: { listen: string };
  threshold: number;
}

export interface LaunchOptions {
  dir: string;
  nodes?: number;
  threshold?: number;
  databaseUrl?: string;
  /** NATS server with JetStream: turns on the asynchronous intake (docs/pipeline.md). */
  natsUrl?: string;
  /** Extra environment per process name (node id or "coordinator"); tests use it for fault injection. */
  env?: Record<string, NodeJS.ProcessEnv>;
  onProgress?: (message: string) => void;
  /** Each process writes its spans to logs/<name>.spans.jsonl. */
  traceFiles?: boolean;
  /**
   * Seal node secrets with Vault Transit instead of the local keystore (docs/vault.md): the Vault
   * address and a folder holding <node>.role-id and <node>.secret-id (deploy/vault/setup.sh).
   */
  vault?: { address: string; credentialsDir: string };
}

export interface ProcessInfo {
  name: string;
  pid: number;
  address: string;
  child: ChildProcess;
}

/** dist/ holds the compiled processes; from TypeScript sources (tests) use the build next to them. */
function distRoot(): string {
  const here = fileURLToPath(import.meta.url);
  const root = dirname(dirname(here));
  return here.includes(`${join('dist', 'cli')}`) ? root : join(root, 'dist');
}

async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<Server>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve(srv));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

async function writeAtomic(path: string, content: string, mode = 0o644): Promise<void> {
  await writeFile(`${path}.tmp`, content, { mode });
  await rename(`${path}.tmp`, path);
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

async function ensureSecret(path: string, make: () => string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    const v = make();
    await writeFile(path, v + '\n', { mode: 0o600, flag: 'wx' });
    return v;
  }
}

/** Spawns a process and resolves with its ready line; its stderr goes to the log folder. */
function spawnReady(
  L: Layout,
  name: string,
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv | undefined,
  traceFiles: boolean,
): Promise<{ child: ChildProcess; ready: Record<string, unknown> }> {
  const child = spawn(process.execPath, [join(distRoot(), script), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(traceFiles ? { CUSTODY_OTEL_FILE: join(L.logs, `${name}.spans.jsonl`) } : {}), ...env },
  });
  child.stderr!.pipe(createWriteStream(L.log(name), { flags: 'a' }));
  // The process's own last words ("... failed to start: <why>") make the error say what to fix.
  let lastError = '';
  createInterface({ input: child.stderr! }).on('line', (line) => {
    if (line.includes('failed to start')) lastError = line.trim();
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} did not become ready within 60 s; see ${L.log(name)}`));
    }, 60_000);
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line) as Record<string, unknown>;
        if (msg.event === 'ready') {
          clearTimeout(timer);
          resolve({ child, ready: msg });
        }
      } catch {
        /* not a JSON line */
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      // Let the stderr reader catch up with the last line before reporting.
      setImmediate(() => reject(new Error(`${name} exited with code ${code} before it was ready${lastError ? `: ${lastError}` : ''}; see ${L.log(name)}`)));
    });
  });
}

export class LocalCluster {
  readonly nodes = new Map<string, ProcessInfo>();
  coordinator?: ProcessInfo;
  /** More coordinators on the same database (and stream), started by startExtraCoordinator. */
  readonly extraCoordinators: ProcessInfo[] = [];

  private constructor(
    readonly L: Layout,
    readonly config: ClusterConfig,
    private readonly opts: LaunchOptions,
  ) {}

  static async start(opts: LaunchOptions): Promise<LocalCluster> {
    const L = layout(opts.dir);
    const progress = opts.onProgress ?? (() => undefined);
    for (const d of [L.dir, L.tls, L.secrets, L.logs, L.coordinatorData]) await mkdir(d, { recursive: true, mode: 0o700 });
    let config = await readJson<ClusterConfig>(L.config);
    if (!config) {
      const n = opts.nodes ?? 3;
      const t = opts.threshold ?? 2;
      if (n < 3) throw new Error(`a cluster needs at least 3 nodes, got ${n}`);
      if (t < 2 || t > n) throw new Error(`threshold must be between 2 and ${n}, got ${t}`);
      const ports = await freePorts(n + 1);
      config = {
        nodes: Array.from({ length: n }, (_, i) => ({ nodeId: `node-${i + 1}`, listen: `127.0.0.1:${ports[i]}` })),
        coordinator: { listen: `127.0.0.1:${ports[n]}` },
        threshold: t,
      };
      await writeAtomic(L.config, JSON.stringify(config, null, 2) + '\n');
      progress(`new cluster in ${L.dir}: ${n} nodes, threshold ${t}`);
    } else if (opts.nodes && opts.nodes > config.nodes.length) {
      // Growing a cluster: the new nodes join the roster and the coordinator's configuration;
      // keysets take them as members only through `custody keyset reshare --add-node`.
      const have = config.nodes.length;
      const ports = await freePorts(opts.nodes - have);
      const added = ports.map((port, i) => ({ nodeId: `node-${have + i + 1}`, listen: `127.0.0.1:${port}` }));
      config = { ...config, nodes: [...config.nodes, ...added] };
      await writeAtomic(L.config, JSON.stringify(config, null, 2) + '\n');
      progress(`adding ${added.map((a) => a.nodeId).join(', ')} to the cluster in ${L.dir}`);
    }
    const cluster = new LocalCluster(L, config, opts);

    progress('certificates');
    const ca = await ensureCa(L.tls);
    await ensureCert(L.tls, ca, 'coordinator', 'coordinator');
    for (const { nodeId } of config.nodes) await ensureCert(L.tls, ca, nodeId, 'node');
    for (const role of CLIENT_ROLES) await ensureCert(L.tls, ca, role, role);
    const coordinatorSeed = await ensureSecret(L.coordinatorKey, () => bytesToHex(randomBytes(32)));
    // The local cluster's one policy admin (production: each admin keeps a key on their own machine).
    const adminSeed = await ensureSecret(L.adminKey, () => bytesToHex(randomBytes(32)));
    for (const { nodeId } of config.nodes) await ensureSecret(L.passphrase(nodeId), () => randomBytes(32).toString('base64url'));

    await Promise.all(config.nodes.map((n) => cluster.startNode(n.nodeId)));
    await cluster.writeRoster(bytesToHex(ed25519KeyPair(hexToBytes(coordinatorSeed)).publicKey), bytesToHex(ed25519KeyPair(hexToBytes(adminSeed)).publicKey));
    await cluster.startCoordinator();
    return cluster;
  }

  private sealerArgs(nodeId: string): string[] {
    const v = this.opts.vault;
    if (!v) return ['--passphrase-file', this.L.passphrase(nodeId)];
    return [
      '--sealer', 'vault',
      '--vault-addr', v.address,
      '--vault-role-id-file', join(v.credentialsDir, `${nodeId}.role-id`),
      '--vault-secret-id-file', join(v.credentialsDir, `${nodeId}.secret-id`),
    ];
  }

  async startNode(nodeId: string): Promise<ProcessInfo> {
    this.opts.onProgress?.(`starting ${nodeId}`);
    const L = this.L;
    const listen = this.config.nodes.find((n) => n.nodeId === nodeId)?.listen;
    if (!listen) throw new Error(`unknown node ${nodeId}`);
    const { child, ready } = await spawnReady(
      L,
      nodeId,
      'nodes/main.js',
      ['--id', nodeId, '--data', L.nodeData(nodeId), '--tls-dir', L.tls, '--roster', L.roster, '--listen', listen, ...this.sealerArgs(nodeId)],
      this.opts.env?.[nodeId],
      this.opts.traceFiles ?? false,
    );
    const info: ProcessInfo & { encryptionKey: string; signingKey: string } = {
      name: nodeId,
      pid: child.pid!,
      address: String(ready.address),
      child,
      encryptionKey: String(ready.encryptionKey),
      signingKey: String(ready.signingKey),
    };
    this.nodes.set(nodeId, info);
    return info;
  }

  private async writeRoster(coordinatorKey: string, adminKey: string): Promise<void> {
    const roster: RosterFile = {
      coordinator: { signingKey: coordinatorKey },
      admins: [{ name: 'admin', signingKey: adminKey }],
      adminQuorum: 1,
      nodes: [...this.nodes.values()].map((n) => {
        const x = n as ProcessInfo & { encryptionKey: string; signingKey: string };
        return { nodeId: n.name, address: n.address, encryptionKey: x.encryptionKey, signingKey: x.signingKey };
      }),
    };
    roster.nodes.sort((a, b) => a.nodeId.localeCompare(b.nodeId, 'en', { numeric: true }));
    // The recovery key is the operators' own addition: a restart must not drop it.
    const previous = await readFile(this.L.roster, 'utf8').then((s) => JSON.parse(s) as RosterFile, () => undefined);
    if (previous?.recovery) roster.recovery = previous.recovery;
    await writeAtomic(this.L.roster, JSON.stringify(roster, null, 2) + '\n');
  }

  async startCoordinator(): Promise<ProcessInfo> {
    this.opts.onProgress?.('starting coordinator');
    const L = this.L;
    const args = ['--listen', this.config.coordinator.listen, '--data', L.coordinatorData, '--tls-dir', L.tls, '--roster', L.roster, '--key-file', L.coordinatorKey, '--threshold', String(this.config.threshold)];
    if (this.opts.databaseUrl) args.push('--database-url', this.opts.databaseUrl);
    if (this.opts.natsUrl) args.push('--nats', this.opts.natsUrl);
    const { child, ready } = await spawnReady(L, 'coordinator', 'coordinator/main.js', args, this.opts.env?.coordinator, this.opts.traceFiles ?? false);
    this.coordinator = { name: 'coordinator', pid: child.pid!, address: String(ready.address), child };
    await writeAtomic(L.endpoint, JSON.stringify(this.describe(), null, 2) + '\n');
    return this.coordinator;
  }

  /**
   * Starts another coordinator with its own id and port on the same database and NATS server
   * (needs --database-url: PGlite is one process's file).
   */
  async startExtraCoordinator(id: string): Promise<ProcessInfo> {
    if (!this.opts.databaseUrl) throw new Error('several coordinators need a database server (--database-url)');
    const L = this.L;
    const args = ['--id', id, '--listen', '127.0.0.1:0', '--data', join(L.dir, id), '--tls-dir', L.tls, '--roster', L.roster, '--key-file', L.coordinatorKey, '--threshold', String(this.config.threshold), '--database-url', this.opts.databaseUrl];
    if (this.opts.natsUrl) args.push('--nats', this.opts.natsUrl);
    const { child, ready } = await spawnReady(L, id, 'coordinator/main.js', args, this.opts.env?.[id], this.opts.traceFiles ?? false);
    const p = { name: id, pid: child.pid!, address: String(ready.address), child };
    this.extraCoordinators.push(p);
    return p;
  }

  describe() {
    return {
      coordinator: this.coordinator?.address ?? '',
      coordinatorPid: this.coordinator?.pid ?? 0,
      dir: this.L.dir,
      threshold: this.config.threshold,
      nodes: [...this.nodes.values()]
        .map((n) => ({ nodeId: n.name, address: n.address, pid: n.pid }))
        .sort((a, b) => a.nodeId.localeCompare(b.nodeId, 'en', { numeric: true })),
    };
  }

  /** Stops one process (SIGTERM, then SIGKILL after a grace period) or kills it outright. */
  async stopProcess(p: ProcessInfo, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.child.once('exit', () => resolve()));
    p.child.kill(signal);
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await Promise.all(this.extraCoordinators.map((c) => this.stopProcess(c)));
    if (this.coordinator) await this.stopProcess(this.coordinator);
    await Promise.all([...this.nodes.values()].map((n) => this.stopProcess(n)));
  }
}
