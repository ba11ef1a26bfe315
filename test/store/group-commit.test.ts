/** Group commit (coordinator/store/group-commit.ts): groups grow while a write runs; results and failures stay per item. */
import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../coordinator/store/group-commit.js';

describe('GroupCommit', () => {
  it('writes items submitted together as one group, and items arriving during a write as the next one', async () => {
    const groups: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const g = new GroupCommit<number, number>(async (items) => {
      groups.push(items);
      if (groups.length === 1) await gate;
      return items.map((x) => ({ status: 'fulfilled', value: x * 10 }));
    });
    const first = [1, 2, 3].map((x) => g.submit(x));
    await new Promise((r) => setImmediate(r));
    // The first group is being written: these wait for it and then go together.
    const second = [4, 5, 6, 7].map((x) => g.submit(x));
    await new Promise((r) => setTimeout(r, 10));
    expect(groups).toEqual([[1, 2, 3]]);
    release();
    expect(await Promise.all([...first, ...second])).toEqual([10, 20, 30, 40, 50, 60, 70]);
    expect(groups).toEqual([[1, 2, 3], [4, 5, 6, 7]]);
  });

  it('keeps groups within the maximum size', async () => {
    const sizes: number[] = [];
    const g = new GroupCommit<number, number>(async (items) => {
      sizes.push(items.length);
      return items.map((x) => ({ status: 'fulfilled', value: x }));
    }, 4);
    await Promise.all(Array.from({ length: 10 }, (_, i) => g.submit(i)));
    expect(sizes).toEqual([4, 4, 2]);
  });

  it('a failed item fails alone; a failed write fails its whole group, and later groups still run', async () => {
    let calls = 0;
    const g = new GroupCommit<number, number>(async (items) => {
      calls++;
      if (items.includes(99)) throw new Error('write failed');
      return items.map((x) => (x < 0 ? { status: 'rejected', reason: new Error(`bad ${x}`) } : { status: 'fulfilled', value: x }));
    });
    const results = await Promise.allSettled([g.submit(1), g.submit(-2), g.submit(3)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason.message).toBe('bad -2');
    const failed = await Promise.allSettled([g.submit(99), g.submit(5)]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await g.submit(6)).toBe(6);
    expect(calls).toBe(3);
  });
});
