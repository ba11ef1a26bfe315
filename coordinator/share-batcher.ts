/**
 * Many signing sessions per node RPC (node-batcher.ts): items queued for the same node in one
 * event-loop turn go out as one SignShares call under one coordinator signature.
 */
import type { SignShareItem } from '../proto/gen/custody/v1/node_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { SignShareItemSchema } from '../proto/gen/custody/v1/node_pb.js';
import { NodeBatcher } from './node-batcher.js';
import { errorCode, errorMessage, isUnreachable, type NodeRegistry } from './node-registry.js';

/** One authorization; the batch signature sent with it covers it. */
type Item = MessageInitShape<typeof SignShareItemSchema> & { authorization: Uint8Array };

/** A node refused one item (the RPC itself worked). */
export class ShareRefused extends Error {
  override readonly name = 'ShareRefused';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** A node's answer to one item: its share and, for FROST, the group commitment it computed. */
export interface SignedShare {
  share: Uint8Array;
  groupCommitment: Uint8Array;
}

const MAX_BATCH = 256;
const DEADLINE_MS = 15_000;

export class ShareBatcher {
  private readonly batcher: NodeBatcher<Item, SignedShare>;

  constructor(
    private readonly registry: NodeRegistry,
    /** The coordinator's signature over a batch's authorizations (signBatchMessage). */
    private readonly signBatch: (authorizations: Uint8Array[]) => Uint8Array,
  ) {
    this.batcher = new NodeBatcher((nodeId, items) => this.send(nodeId, items), MAX_BATCH);
  }

  request(nodeId: string, item: Item): Promise<SignedShare> {
    return this.batcher.request(nodeId, item);
  }

  /**
   * Sends one authorization to every signer and gathers the shares in order. On any failure, says
   * which nodes refused and which could not be reached (those are marked down).
   */
  async collect(nodeIds: readonly string[], item: Item): Promise<{ shares: SignedShare[] } | { problem: string; refused: string[]; unreachable: string[] }> {
    const results = await Promise.allSettled(nodeIds.map((id) => this.request(id, item)));
    const refused: string[] = [];
    const unreachable: string[] = [];
    const reasons: string[] = [];
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      const nodeId = nodeIds[i]!;
      reasons.push(`${nodeId}: ${errorMessage(r.reason)}`);
      if (!(r.reason instanceof ShareRefused) && isUnreachable(errorCode(r.reason))) {
        unreachable.push(nodeId);
        this.registry.markDown(nodeId, r.reason);
      } else {
        refused.push(nodeId);
      }
    });
    if (reasons.length) return { problem: reasons.join('; '), refused, unreachable };
    return { shares: results.map((r) => (r as PromiseFulfilledResult<SignedShare>).value) };
  }

  private async send(nodeId: string, items: Item[]): Promise<PromiseSettledResult<SignedShare>[]> {
    const batchSignature = this.signBatch(items.map((i) => i.authorization));
    const res = await this.registry.get(nodeId).client.signShares({ items, batchSignature }, { deadlineMs: DEADLINE_MS });
    this.registry.markSeen(nodeId);
    return items.map((_, i): PromiseSettledResult<SignedShare> => {
      const r = res.results[i];
      if (r?.result.case === 'share') return { status: 'fulfilled', value: { share: r.result.value, groupCommitment: r.groupCommitment } };
      if (r?.result.case === 'error') return { status: 'rejected', reason: new ShareRefused(r.result.value.code, r.result.value.message) };
      return { status: 'rejected', reason: new ShareRefused(13, `node ${nodeId} returned no result for item ${i}`) };
    });
  }
}

export type { SignShareItem };
