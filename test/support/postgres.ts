/**
 * Starts a throwaway PostgreSQL server for integration tests: initdb + pg_ctl on a fresh temporary
 * folder, listening only on 127.0.0.1 at a free port, trust authentication, durability switched off
 * for speed. `stop()` shuts it down (`pg_ctl stop -m fast`) and deletes the folder.
 *
 * PostgreSQL refuses to run as root; when we are root, the folder is handed to the `postgres` user
 * and the binaries run under its uid/gid (spawn's uid/gid options also drop root's supplementary
 * groups).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import pg from 'pg';

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url: string;
  port: number;
  database: string;
  /** Server start time in ms (initdb + start + create database), for reports. */
  startMs: number;
  /** URL of another, freshly created database on the same server. */
  createDatabase(name: string): Promise<string>;
  /** Restarts the server on the same data and port (createDatabase is unavailable afterwards). */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** The folder holding initdb, pg_ctl and postgres: $PG_BIN, then PATH, then the newest /usr/lib/postgresql/<v>/bin. */
export function findPgBin(): string {
  const complete = (dir: string): boolean => ['initdb', 'pg_ctl', 'postgres'].every((b) => existsSync(join(dir, b)));
  const candidates: string[] = [];
  if (process.env.PG_BIN) candidates.push(process.env.PG_BIN);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const initdb = join(dir, 'initdb');
    // Follow symlinks (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb) to the real folder.
    if (dir && existsSync(initdb)) candidates.push(dirname(realpathSync(initdb)));
  }
  try {
    const versions = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {
    // not a Debian-style install
  }
  const found = candidates.find(complete);
  if (!found) throw new Error(`PostgreSQL binaries not found (looked in: ${candidates.join(', ') || 'nothing'}); set PG_BIN`);
  return found;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

interface RunAs {
  uid?: number;
  gid?: number;
}

function postgresUser(): RunAs {
  if (process.getuid?.() !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function run(bin: string, args: string[], as: RunAs, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // LC_ALL=C keeps initdb from depending on the machine's locales; HOME would be root's otherwise.
    const child = spawn(bin, args, {
      ...as,
      cwd: '/',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', HOME: '/tmp', TZ: 'UTC' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${bin} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${output}`));
    });
  });
}

function chownTree(path: string, as: RunAs): void {
  if (as.uid === undefined || as.gid === undefined) return;
  chownSync(path, as.uid, as.gid);
}

export async function startPostgres(opts: { database?: string } = {}): Promise<PostgresServer> {
  const started = Date.now();
  const bin = findPgBin();
  const as = postgresUser();
  const root = mkdtempSync(join(tmpdir(), 'custody-pg-'));
  const data = join(root, 'data');
  const sock = join(root, 'sock');
  const log = join(root, 'server.log');
  mkdirSync(sock);
  writeFileSync(log, '');
  for (const p of [root, sock, log]) chownTree(p, as);
  const database = opts.database ?? 'custody_test';

  let running = false;
  const stopSync = (): void => {
    // Last resort when the test process exits without calling stop(): never leave a server behind.
    if (running) spawnSync(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], { ...as, stdio: 'ignore', timeout: 10_000 });
    running = false;
    rmSync(root, { recursive: true, force: true });
  };
  process.once('exit', stopSync);

  try {
    await run(
      join(bin, 'initdb'),
      ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
      as,
      60_000,
    );
    let port = 0;
    // The port can be taken between probing and binding; try a few.
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      appendFileSync(
        join(data, 'postgresql.conf'),
        [
          '',
          '# test server (appended by test/support/postgres.ts; later lines win)',
          "listen_addresses = '127.0.0.1'",
          `port = ${port}`,
          `unix_socket_directories = '${sock.replace(/'/g, "''")}'`,
          'fsync = off',
          'synchronous_commit = off',
          'full_page_writes = off',
          "timezone = 'UTC'",
          'max_connections = 200',
          '',
        ].join('\n'),
      );
      try {
        await run(join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '30', 'start'], as, 40_000);
        running = true;
        break;
      } catch (err) {
        if (attempt >= 3) {
          const tail = existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : '';
          throw new Error(`${(err as Error).message}\nserver log:\n${tail}`);
        }
      }
    }

    const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    admin.on('error', () => undefined);
    await admin.connect();
    const createDatabase = async (name: string): Promise<string> => {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      await admin.query(`CREATE DATABASE ${name}`);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    };
    const url = await createDatabase(database);

    let stopped = false;
    return {
      url,
      port,
      database,
      startMs: Date.now() - started,
      createDatabase,
      /** Stops the server (fast shutdown: open connections are cut), waits downMs, starts it again. */
      async restart(downMs = 0) {
        await admin.end().catch(() => undefined);
        await run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop'], as, 40_000);
        running = false;
        await new Promise((r) => setTimeout(r, downMs));
        await run(join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '30', 'start'], as, 40_000);
        running = true;
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        process.removeListener('exit', stopSync);
        await admin.end().catch(() => undefined);
        try {
          await run(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', '-t', '30', 'stop'], as, 40_000);
        } finally {
          running = false;
          rmSync(root, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    process.removeListener('exit', stopSync);
    stopSync();
    throw err;
  }
}
