/**
 * The coordinator's view of the signer nodes: one mTLS client each, and liveness from a periodic
 * GetNodeInfo probe plus every failed call. A node that is down is skipped when quorums are picked.
 */
import type { ChannelCredentials } from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { NodeService } from '../proto/gen/custody/v1/node_pb.js';
import { createClient, type Client } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';

export interface NodeEntry {
  nodeId: string;
  address: string;
  client: Client<typeof NodeService>;
  up: boolean;
  pid: number;
  version: string;
  lastSeen?: Date;
  lastError?: string;
}

const PROBE_INTERVAL_MS = 2_000;
const PROBE_DEADLINE_MS = 3_000;
/** A node that answered any call this recently is up, whatever a slow probe says. */
const ALIVE_GRACE_MS = 5_000;
const REPROBE_DEADLINE_MS = 2_500;
/** Few nodes, and a node that comes back must be usable at once: reconnect often. */
const NODE_CHANNEL_OPTIONS = { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1_000 };

/** Errors that mean "the node is not there", as opposed to "the node refused". */
export function isUnreachable(code: number | undefined): boolean {
  return code === status.UNAVAILABLE || code === status.DEADLINE_EXCEEDED || code === status.CANCELLED;
}

export class NodeRegistry {
  readonly nodes = new Map<string, NodeEntry>();
  private timer?: NodeJS.Timeout;

  constructor(
    nodes: readonly { nodeId: string; address: string }[],
    credsFor: (nodeId: string) => ChannelCredentials,
    private readonly log: Logger,
  ) {
    for (const n of nodes) {
      this.nodes.set(n.nodeId, { ...n, client: createClient(NodeService, n.address, credsFor(n.nodeId), { channelOptions: NODE_CHANNEL_OPTIONS }), up: false, pid: 0, version: '' });
    }
  }

  get(nodeId: string): NodeEntry {
    const n = this.nodes.get(nodeId);
    if (!n) throw new Error(`unknown node ${nodeId}`);
    return n;
  }

  upNodes(): NodeEntry[] {
    return [...this.nodes.values()].filter((n) => n.up);
  }

  async probeAll(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => this.probe(n)));
  }

  /** Probes the given nodes now (e.g. before giving up on a quorum) and returns those that are up. */
  async reprobe(nodeIds: Iterable<string>): Promise<string[]> {
    const entries = [...nodeIds].map((id) => this.get(id));
    await Promise.all(entries.map((n) => this.probe(n, true)));
    return entries.filter((n) => n.up).map((n) => n.nodeId);
  }

  /** `waitForReady` lets a probe outlast the reconnect backoff of a channel whose node just came back. */
  private async probe(n: NodeEntry, waitForReady = false): Promise<void> {
    try {
      const info = await n.client.getNodeInfo({}, { deadlineMs: waitForReady ? REPROBE_DEADLINE_MS : PROBE_DEADLINE_MS, waitForReady });
      if (info.nodeId !== n.nodeId) throw new Error(`answered as ${info.nodeId}`);
      if (!n.up) this.log.info({ node: n.nodeId }, 'node up');
      n.up = true;
      n.pid = info.pid;
      n.version = info.version;
      n.lastSeen = new Date();
    } catch (e) {
      // A busy node can miss a probe while it serves real calls; only silence means down.
      if (!waitForReady && n.lastSeen && Date.now() - n.lastSeen.getTime() < ALIVE_GRACE_MS) return;
      this.markDown(n.nodeId, e);
    }
  }

  /** Records a successful call to the node. */
  markSeen(nodeId: string): void {
    const n = this.get(nodeId);
    if (!n.up) this.log.info({ node: nodeId }, 'node up');
    n.up = true;
    n.lastSeen = new Date();
  }

  markDown(nodeId: string, err: unknown): void {
    const n = this.get(nodeId);
    if (n.up) this.log.warn({ node: nodeId, err: errorMessage(err) }, 'node down');
    n.up = false;
    n.lastError = errorMessage(err);
  }

  start(): void {
    this.timer = setInterval(() => void this.probeAll(), PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const n of this.nodes.values()) n.client.close();
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function errorCode(e: unknown): number | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'number' ? (e as { code: number }).code : undefined;
}
