import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const protoDir = fileURLToPath(new URL('../../proto/', import.meta.url));
const buf = fileURLToPath(new URL('../../node_modules/.bin/buf', import.meta.url));
const temps: string[] = [];

afterAll(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

function runBuf(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(buf, args, { cwd: protoDir, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .sort();
}

describe('proto contract', () => {
  it('passes buf lint', () => {
    const r = runBuf(['lint']);
    expect(r.output).toBe('');
    expect(r.status).toBe(0);
  });

  it('has generated code that matches the .proto files (else run `npm run gen`)', async () => {
    const out = await mkdtemp(join(tmpdir(), 'custody-buf-'));
    temps.push(out);
    // -o prefixes the template's `out: gen`, so fresh code lands in <out>/gen.
    const r = runBuf(['generate', '-o', out]);
    expect(r.status, r.output).toBe(0);
    const fresh = join(out, 'gen');
    const committed = join(protoDir, 'gen');
    const files = await listFiles(fresh);
    expect(files.length).toBeGreaterThan(0);
    expect(await listFiles(committed), 'proto/gen has extra or missing files: run `npm run gen`').toEqual(files);
    const stale: string[] = [];
    for (const f of files) {
      const [a, b] = await Promise.all([readFile(join(fresh, f), 'utf8'), readFile(join(committed, f), 'utf8')]);
      if (a !== b) stale.push(f);
    }
    expect(stale, 'proto/gen is out of date with proto/custody: run `npm run gen`').toEqual([]);
  });
});
