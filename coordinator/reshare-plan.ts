/**
 * What a reshare changes: the new threshold and members from the operator's request, checked
 * against the keyset and the cluster before any node is asked. Members that stay keep their party
 * index; joining nodes take indices above every index the keyset has used, so an index never
 * names two nodes across epochs.
 */
import { status } from '@grpc/grpc-js';
import { RpcError } from '../runtime/grpc.js';
import type { KeysetRow } from './store/repo.js';

export interface ReshareRequest {
  /** 0 or undefined keeps the current threshold. */
  threshold?: number;
  add: readonly string[];
  remove: readonly string[];
}

export interface Member {
  index: number;
  nodeId: string;
}

export interface ReshareTarget {
  threshold: number;
  members: Member[];
  removed: Member[];
  added: Member[];
}

export function planReshare(row: KeysetRow, clusterNodes: ReadonlySet<string>, req: ReshareRequest, highestIndex = 0): ReshareTarget {
  const current = new Map(row.members.map((m) => [m.nodeId, m.index]));
  const bad = (msg: string) => new RpcError(status.INVALID_ARGUMENT, msg);
  if (new Set(req.add).size !== req.add.length || new Set(req.remove).size !== req.remove.length) throw bad('a node is named twice');
  for (const id of req.add) {
    if (!clusterNodes.has(id)) throw bad(`node ${id} is not in the cluster; add it to the coordinator's configuration and every node's roster first (custody up --nodes N does both for a local cluster)`);
    if (current.has(id)) throw bad(`node ${id} is already a member of keyset ${row.keysetId}`);
  }
  for (const id of req.remove) {
    if (!current.has(id)) throw bad(`node ${id} is not a member of keyset ${row.keysetId}`);
  }
  const removed = row.members.filter((m) => req.remove.includes(m.nodeId)).map((m) => ({ index: m.index, nodeId: m.nodeId }));
  let next = Math.max(highestIndex, ...row.members.map((m) => m.index));
  const added = req.add.map((nodeId) => ({ index: ++next, nodeId }));
  const members = [...row.members.filter((m) => !req.remove.includes(m.nodeId)).map((m) => ({ index: m.index, nodeId: m.nodeId })), ...added];
  const threshold = req.threshold || row.threshold;
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > members.length) {
    throw bad(`the new threshold must be between 2 and the number of new members (${members.length}), got ${threshold}`);
  }
  if (!added.length && !removed.length && threshold === row.threshold) throw bad('the reshare changes nothing: give --threshold, --add-node or --remove-node (to re-randomize the shares, use keyset refresh)');
  return { threshold, members, removed, added };
}
