/** `custody up` itself, as `npm start` runs it: one ready line, a serving cluster, a clean stop on SIGINT. */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI, startTestVault, TEST_SEALER } from '../support/cluster.js';

const run = promisify(execFile);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('custody up', () => {
  it('prints a ready line, serves, and stops every process on SIGINT', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'custody-up-'));
    // CUSTODY_TEST_SEALER=vault: `custody up --sealer vault` against the Vault emulator.
    const vault = TEST_SEALER === 'vault' ? await startTestVault(join(dir, 'vault-credentials'), ['node-1', 'node-2', 'node-3']) : undefined;
    const sealer = vault ? ['--sealer', 'vault', '--vault-addr', vault.address, '--vault-credentials', vault.credentialsDir] : [];
    const up = spawn(process.execPath, [CLI, 'up', '--dir', dir, '--json', ...sealer], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = createInterface({ input: up.stdout });
    const events: Record<string, unknown>[] = [];
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      lines.on('line', (l) => {
        const e = JSON.parse(l) as Record<string, unknown>;
        events.push(e);
        if (e.event === 'ready') resolve(e);
      });
      up.once('exit', (code) => reject(new Error(`custody up exited with ${code}`)));
    });
    expect(ready.coordinator).toMatch(/^127\.0\.0\.1:\d+$/);
    const nodes = ready.nodes as { nodeId: string; pid: number }[];
    expect(nodes.map((n) => n.nodeId)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(ready.threshold).toBe(2);

    const { stdout } = await run(process.execPath, [CLI, 'health', '--dir', dir, '--json']);
    expect(JSON.parse(stdout)).toMatchObject({ serving: true, nodesUp: 3, nodesTotal: 3, defaultThreshold: 2 });

    const exited = new Promise<number | null>((resolve) => up.once('exit', (code) => resolve(code)));
    up.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(events.at(-1)).toEqual({ event: 'stopped' });
    for (const pid of [ready.coordinatorPid as number, ...nodes.map((n) => n.pid)]) expect(alive(pid)).toBe(false);
    if (vault) {
      // The nodes really sealed through Vault, and revoked their tokens on the clean stop.
      expect(vault.emulator.count('POST', /^transit\/encrypt\/custody-node-[123]$/)).toBeGreaterThan(0);
      expect(vault.emulator.tokens().filter((x) => x.role && !x.revoked)).toEqual([]);
      await vault.close();
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('tells the user what to do when no cluster runs in the folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'custody-none-'));
    const err = await run(process.execPath, [CLI, 'nodes', '--dir', dir, '--json']).catch((e: { stdout: string; code: number }) => e);
    expect((err as { code: number }).code).toBe(1);
    const out = JSON.parse((err as { stdout: string }).stdout) as { error: { code: string; message: string } };
    expect(out.error.message).toMatch(/custody up --dir/);
    await rm(dir, { recursive: true, force: true });
  });
});
