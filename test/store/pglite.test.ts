import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openDb } from '../../coordinator/store/db.js';
import { appliedMigrations } from '../../coordinator/store/schema.js';
import { defineStoreSuite } from './suite.js';

// initdb in WASM takes seconds, so most tests start from a copy of one migrated data folder.
let root = '';
let template = '';
let n = 0;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'custody-pglite-'));
  // Nested and missing: openDb creates the folder.
  template = join(root, 'nested', 'template');
  const db = await openDb({ dataDir: template });
  expect(db.dialect).toBe('pglite');
  expect((await appliedMigrations(db)).length).toBeGreaterThan(0);
  await db.close();
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

test('openDb without url or dataDir refuses to guess', async () => {
  await expect(openDb({})).rejects.toThrow(/url or a dataDir/);
});

defineStoreSuite({
  name: 'PGlite',
  async fresh() {
    const dataDir = join(root, `db${++n}`);
    cpSync(template, dataDir, { recursive: true });
    const db = await openDb({ dataDir });
    return { db, reopen: () => openDb({ dataDir }) };
  },
});
