/**
 * Protocol rounds of concurrent sessions (presignatures above all) that go to the same node in one
 * event-loop turn travel as one RunRounds call (node-batcher.ts). A failed item rejects exactly as
 * its own RunRound call would have: same status, message and blame trailers, so the session
 * driver cannot tell the difference. A node that predates RunRounds gets one RunRound per item.
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Metadata, status } from '@grpc/grpc-js';
import type { RunRoundRequestSchema, RunRoundResponse } from '../proto/gen/custody/v1/node_pb.js';
import { RemoteRpcError } from '../runtime/grpc.js';
import { NodeBatcher } from './node-batcher.js';
import { errorCode, type NodeRegistry } from './node-registry.js';

export type RoundRequest = MessageInitShape<typeof RunRoundRequestSchema>;

const MAX_BATCH = 256;
const RUN_ROUND = 'custody.v1.NodeService/RunRound';

export class RoundBatcher {
  private readonly batcher: NodeBatcher<RoundRequest, RunRoundResponse>;
  /** Nodes that answered RunRounds with UNIMPLEMENTED (an older version during an upgrade). */
  private readonly legacy = new Set<string>();

  constructor(
    private readonly registry: NodeRegistry,
    private readonly deadlineMs: number,
  ) {
    this.batcher = new NodeBatcher((nodeId, items) => this.send(nodeId, items), MAX_BATCH);
  }

  run(nodeId: string, req: RoundRequest): Promise<RunRoundResponse> {
    return this.batcher.request(nodeId, req);
  }

  private async send(nodeId: string, items: RoundRequest[]): Promise<PromiseSettledResult<RunRoundResponse>[]> {
    const client = this.registry.get(nodeId).client;
    if (!this.legacy.has(nodeId)) {
      try {
        const res = await client.runRounds({ items }, { deadlineMs: this.deadlineMs });
        return items.map((_, i): PromiseSettledResult<RunRoundResponse> => {
          const r = res.results[i]?.result;
          if (r?.case === 'response') return { status: 'fulfilled', value: r.value };
          if (r?.case === 'error') {
            const trailers = new Metadata();
            if (r.value.blame) trailers.set('custody-blame', r.value.blame);
            if (r.value.abortReason) trailers.set('custody-abort-reason', r.value.abortReason);
            return { status: 'rejected', reason: new RemoteRpcError(r.value.code, r.value.message, trailers, RUN_ROUND) };
          }
          return { status: 'rejected', reason: new RemoteRpcError(status.INTERNAL, `node ${nodeId} returned no result for round item ${i}`, new Metadata(), RUN_ROUND) };
        });
      } catch (e) {
        if (errorCode(e) !== status.UNIMPLEMENTED) throw e;
        this.legacy.add(nodeId);
      }
    }
    return Promise.allSettled(items.map((req) => client.runRound(req, { deadlineMs: this.deadlineMs })));
  }
}
