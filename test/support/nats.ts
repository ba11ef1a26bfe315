/**
 * A real nats-server with JetStream for integration tests, on a free loopback port with its store
 * in a temp folder. restart() keeps the store, so streams and unacked messages survive it.
 * The binary comes from Debian's nats-server package (.ci/run installs it).
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NatsServer {
  url: string;
  port: number;
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

function findBinary(): string {
  for (const candidate of [process.env.NATS_SERVER, '/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      /* try the next */
    }
  }
  throw new Error('nats-server not found: install it (apt-get install -y nats-server) or set NATS_SERVER');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startNats(): Promise<NatsServer> {
  const bin = findBinary();
  const dir = mkdtempSync(join(tmpdir(), 'custody-nats-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn(bin, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', join(dir, 'store')], { stdio: 'ignore' });
    await waitForPort(port, 15_000);
  };
  const halt = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  };
  const onExit = () => child?.kill('SIGKILL');
  process.once('exit', onExit);
  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async restart(downMs = 0) {
      await halt();
      await new Promise((r) => setTimeout(r, downMs));
      await launch();
    },
    async stop() {
      process.removeListener('exit', onExit);
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
