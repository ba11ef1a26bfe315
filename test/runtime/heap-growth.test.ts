import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_HEAP_GROWING_PERCENT, heapGrowingPercent } from '../../runtime/heap-growth.js';

describe('heap growth', () => {
  it('defaults to 200 % and takes CUSTODY_HEAP_GROWING_PERCENT from 0 to 1000', () => {
    expect(DEFAULT_HEAP_GROWING_PERCENT).toBe(200);
    expect(heapGrowingPercent({})).toBe(200);
    expect(heapGrowingPercent({ CUSTODY_HEAP_GROWING_PERCENT: '' })).toBe(200);
    expect(heapGrowingPercent({ CUSTODY_HEAP_GROWING_PERCENT: '0' })).toBe(0);
    expect(heapGrowingPercent({ CUSTODY_HEAP_GROWING_PERCENT: '350' })).toBe(350);
    expect(heapGrowingPercent({ CUSTODY_HEAP_GROWING_PERCENT: '1000' })).toBe(1000);
  });

  it('refuses anything else with a message that names the variable and the range', () => {
    for (const bad of ['-5', '1001', '2.5', 'lots', '1e3', '0x10']) {
      expect(() => heapGrowingPercent({ CUSTODY_HEAP_GROWING_PERCENT: bad })).toThrow(/CUSTODY_HEAP_GROWING_PERCENT must be a whole number from 0 to 1000/);
    }
  });

  it('a node started with a bad value stops at once with that message, before it touches its data', () => {
    // The built node (npm test builds first): runMain applies the setting before main() reads any argument.
    const r = spawnSync(process.execPath, [join(process.cwd(), 'dist/nodes/main.js')], {
      env: { ...process.env, CUSTODY_HEAP_GROWING_PERCENT: 'lots' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('custody node failed to start: CUSTODY_HEAP_GROWING_PERCENT must be a whole number from 0 to 1000 (0 keeps V8\'s own heuristic), got "lots"');
  });
});
