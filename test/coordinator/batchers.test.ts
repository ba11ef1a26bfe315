/** Per-node batching (NodeBatcher) and the RunRounds batcher's mapping of item errors and its fallback. */
import { describe, expect, it } from 'vitest';
import { create } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { NodeBatcher } from '../../coordinator/node-batcher.js';
import type { NodeRegistry } from '../../coordinator/node-registry.js';
import { RoundBatcher, type RoundRequest } from '../../coordinator/round-batcher.js';
import { RunRoundResponseSchema, type RunRoundResponse } from '../../proto/gen/custody/v1/node_pb.js';
import { RemoteRpcError } from '../../runtime/grpc.js';
import { Metadata } from '@grpc/grpc-js';

describe('NodeBatcher', () => {
  it('sends what one event-loop turn queued for a node as one call, split at maxBatch, results in order', async () => {
    const calls: { nodeId: string; items: number[] }[] = [];
    const b = new NodeBatcher<number, number>(async (nodeId, items) => {
      calls.push({ nodeId, items });
      return items.map((i) => (i === 4 ? { status: 'rejected', reason: new Error(`no ${i}`) } : { status: 'fulfilled', value: i * 10 }));
    }, 3);
    const a = [1, 2, 3, 4, 5].map((i) => b.request('node-a', i).catch((e: Error) => e.message));
    const c = b.request('node-c', 9);
    expect(await Promise.all(a)).toEqual([10, 20, 30, 'no 4', 50]);
    expect(await c).toBe(90);
    expect(calls).toEqual([
      { nodeId: 'node-a', items: [1, 2, 3] },
      { nodeId: 'node-a', items: [4, 5] },
      { nodeId: 'node-c', items: [9] },
    ]);
    // A later turn makes a new call.
    expect(await b.request('node-a', 6)).toBe(60);
    expect(calls).toHaveLength(4);
  });

  it('with maxInFlight, what arrives while the calls are out waits and leaves as one call when one returns', async () => {
    const calls: number[][] = [];
    const gates: (() => void)[] = [];
    const b = new NodeBatcher<number, number>(
      async (_nodeId, items) => {
        calls.push(items);
        await new Promise<void>((open) => gates.push(open));
        return items.map((i) => ({ status: 'fulfilled', value: i }));
      },
      2,
      1,
    );
    const first = b.request('n', 1);
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([[1]]);
    // Three more, over two turns, while the first call is out: nothing leaves yet.
    const later = [b.request('n', 2), b.request('n', 3)];
    await new Promise((r) => setImmediate(r));
    later.push(b.request('n', 4));
    await new Promise((r) => setImmediate(r));
    expect(calls).toHaveLength(1);
    // Another key is not held back by this one.
    const other = b.request('m', 9);
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([[1], [9]]);
    gates.shift()!();
    gates.shift()!();
    expect(await first).toBe(1);
    expect(await other).toBe(9);
    // The three waiting items leave at once, split at maxBatch, one call in flight at a time.
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([[1], [9], [2, 3]]);
    gates.shift()!();
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([[1], [9], [2, 3], [4]]);
    gates.shift()!();
    expect(await Promise.all(later)).toEqual([2, 3, 4]);
  });

  it('an item waits at most maxWaitMs behind calls that do not return', async () => {
    const calls: number[][] = [];
    const b = new NodeBatcher<number, number>(
      async (_nodeId, items) => {
        calls.push(items);
        if (items.includes(1)) await new Promise(() => undefined); // hangs, like a call waiting for its deadline
        return items.map((i) => ({ status: 'fulfilled', value: i }));
      },
      16,
      1,
      40,
    );
    void b.request('n', 1);
    await new Promise((r) => setImmediate(r));
    const t = performance.now();
    expect(await Promise.all([b.request('n', 2), b.request('n', 3)])).toEqual([2, 3]);
    const waited = performance.now() - t;
    expect(waited).toBeGreaterThanOrEqual(35);
    expect(waited).toBeLessThan(1_000);
    expect(calls).toEqual([[1], [2, 3]]);
  });

  it('a failed call fails every item in it, and a missing result fails its item', async () => {
    const down = new NodeBatcher<number, number>(async () => {
      throw new Error('unavailable');
    });
    await expect(Promise.all([down.request('n', 1), down.request('n', 2)])).rejects.toThrow('unavailable');
    const short = new NodeBatcher<number, number>(async () => [{ status: 'fulfilled', value: 1 }]);
    const [first, second] = await Promise.allSettled([short.request('n', 1), short.request('n', 2)]);
    expect(first).toEqual({ status: 'fulfilled', value: 1 });
    expect(second.status === 'rejected' && String(second.reason)).toMatch(/no result for item 1/);
  });
});

describe('RoundBatcher', () => {
  const response = (n: number) => create(RunRoundResponseSchema, { outgoing: [{ sessionId: `s${n}`, round: n }] });
  function registry(client: Record<string, unknown>): NodeRegistry {
    return { get: () => ({ client }) } as unknown as NodeRegistry;
  }

  it('maps a failed item to the error its own RunRound would have raised: code, message, blame and reason trailers', async () => {
    const runRounds = async (req: { items: RoundRequest[] }) => ({
      results: req.items.map((it, i) =>
        i === 1
          ? { result: { case: 'error', value: { code: status.INVALID_ARGUMENT, message: 'protocol aborted', blame: '2,3', abortReason: 'mul-check-failed' } } }
          : { result: { case: 'response', value: response(it.round ?? 0) } },
      ),
    });
    const rb = new RoundBatcher(registry({ runRounds }), 1_000);
    const [ok, bad] = await Promise.allSettled([rb.run('node-1', { sessionId: 'a', round: 1 }), rb.run('node-1', { sessionId: 'b', round: 2 })]);
    expect(ok.status === 'fulfilled' && (ok.value as RunRoundResponse).outgoing[0]!.round).toBe(1);
    expect(bad.status).toBe('rejected');
    const e = (bad as PromiseRejectedResult).reason as RemoteRpcError;
    expect(e).toBeInstanceOf(RemoteRpcError);
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.message).toBe('protocol aborted');
    expect(e.metadata.get('custody-blame')).toEqual(['2,3']);
    expect(e.metadata.get('custody-abort-reason')).toEqual(['mul-check-failed']);
  });

  it('falls back to one RunRound per item for a node without RunRounds, and remembers it', async () => {
    let batched = 0;
    const single: number[] = [];
    const client = {
      runRounds: async () => {
        batched++;
        throw new RemoteRpcError(status.UNIMPLEMENTED, 'unknown method', new Metadata(), 'custody.v1.NodeService/RunRounds');
      },
      runRound: async (req: RoundRequest) => {
        single.push(req.round ?? 0);
        return response(req.round ?? 0);
      },
    };
    const rb = new RoundBatcher(registry(client), 1_000);
    const out = await Promise.all([rb.run('old', { sessionId: 'a', round: 1 }), rb.run('old', { sessionId: 'b', round: 2 })]);
    expect(out.map((r) => r.outgoing[0]!.round)).toEqual([1, 2]);
    await rb.run('old', { sessionId: 'c', round: 3 });
    expect(batched).toBe(1);
    expect(single).toEqual([1, 2, 3]);
  });
});
