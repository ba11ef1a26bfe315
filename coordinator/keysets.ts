/**
 * Keyset creation (a DKG across the chosen nodes: no dealer, the key is never assembled) and import
 * (an operator-dealt key), with a check that every node reports the same public results, a
 * two-phase commit on the nodes, and only then the keyset row and its audit record, in one
 * transaction; and the re-run of an ecdsa keyset's pairwise setup.
 */
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { ciphersuite, type FrostScheme } from '../crypto/frost/ciphersuite.js';
import { lagrangeAtZero } from '../crypto/shamir.js';
import type { Scheme } from '../crypto/schemes.js';
import { schemeToProto } from '../proto/convert.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import type { NodeRegistry } from './node-registry.js';
import { finishAll, runSession, SessionFailed } from './session-driver.js';
import { appendAudit } from './store/audit.js';
import type { Db } from './store/db.js';
import { clearKeysetBans, getKeyset, insertKeyset, listKeysetBans, type KeysetRow } from './store/repo.js';
import type { DkgResult } from '../proto/gen/custody/v1/node_pb.js';

export interface CreateKeysetInput {
  scheme: Scheme;
  threshold: number;
  nodeIds: string[];
  label: string;
  actor: string;
}

/** The key as clients use it: x-only for BIP-340, the group encoding otherwise. */
export function displayPublicKey(scheme: Scheme, groupKey: Uint8Array): Uint8Array {
  return scheme === 'bip340' ? groupKey.slice(1) : groupKey;
}

export async function createKeyset(db: Db, registry: NodeRegistry, log: Logger, input: CreateKeysetInput): Promise<KeysetRow> {
  const keysetId = randomUUID();
  const participants = input.nodeIds.map((nodeId, i) => ({ index: i + 1, nodeId }));
  return runKeysetSession(db, registry, log, input, {
    keysetId,
    what: 'key generation',
    params: { case: 'dkg', value: { keysetId, scheme: schemeToProto(input.scheme), threshold: input.threshold, participants } },
    action: 'keyset.created',
  });
}

export interface ImportKeysetInput extends CreateKeysetInput {
  keysetId: string;
  commitments: Uint8Array[];
  chainCode: Uint8Array;
  dealerKey: Uint8Array;
  sealedShares: Uint8Array[];
  source: string;
}

/**
 * Imports an operator-dealt key: the nodes open their sealed shares, check them against the
 * dealer's commitments and agree on the dealing; the public key is the first commitment.
 */
export async function importKeyset(db: Db, registry: NodeRegistry, log: Logger, input: ImportKeysetInput): Promise<KeysetRow> {
  if (input.sealedShares.length !== input.nodeIds.length) {
    throw new RpcError(status.INVALID_ARGUMENT, `${input.sealedShares.length} sealed shares for ${input.nodeIds.length} nodes`);
  }
  if (await getKeyset(db, input.keysetId)) throw new RpcError(status.ALREADY_EXISTS, `keyset ${input.keysetId} already exists`);
  const participants = input.nodeIds.map((nodeId, i) => ({ index: i + 1, nodeId }));
  return runKeysetSession(db, registry, log, input, {
    keysetId: input.keysetId,
    what: 'key import',
    params: {
      case: 'keyImport',
      value: {
        keysetId: input.keysetId,
        scheme: schemeToProto(input.scheme),
        threshold: input.threshold,
        participants,
        commitments: input.commitments,
        chainCode: input.chainCode,
        dealerKey: input.dealerKey,
        sealedShares: input.sealedShares,
      },
    },
    action: 'keyset.imported',
    expectPublicKey: input.commitments[0],
    details: { source: input.source },
  });
}

interface KeysetSession {
  keysetId: string;
  /** For messages: "key generation", "key import". */
  what: string;
  params: Parameters<typeof runSession>[2];
  action: string;
  /** The key the nodes must report (imports: the dealer's first commitment). */
  expectPublicKey?: Uint8Array;
  details?: Record<string, unknown>;
}

/**
 * Runs a session that gives every chosen node a share of a new keyset, checks that all report the
 * same public outcome, commits it on every node (two-phase), and only then stores the keyset and
 * its audit record in one transaction.
 */
async function runKeysetSession(db: Db, registry: NodeRegistry, log: Logger, input: CreateKeysetInput, s: KeysetSession): Promise<KeysetRow> {
  const n = input.nodeIds.length;
  if (input.threshold < 2 || input.threshold > n) {
    throw new RpcError(status.INVALID_ARGUMENT, `threshold must be between 2 and the number of nodes (${n}), got ${input.threshold}`);
  }
  await requireUp(registry, input.nodeIds, s.what);
  const participants = input.nodeIds.map((nodeId, i) => ({ index: i + 1, nodeId }));
  const started = Date.now();
  const first = await agreedResult(registry, participants, s.params, s.what);
  if (s.expectPublicKey && bytesToHex(first.result.publicKey) !== bytesToHex(s.expectPublicKey)) {
    await finishAll(registry, participants, first.sessionId, false);
    throw new RpcError(status.ABORTED, `${s.what} aborted: the nodes hold a different key than the dealing committed to`);
  }
  checkVerifyingShares(input.scheme, first.result.publicKey, first.result.verifyingShares, input.threshold);
  await commitEverywhere(registry, participants, first.sessionId, s.what);
  const row: KeysetRow = {
    keysetId: s.keysetId,
    scheme: input.scheme,
    publicKey: first.result.publicKey,
    threshold: input.threshold,
    chainCode: first.result.chainCode,
    label: input.label,
    createdAt: new Date(),
    members: participants.map((p, i) => ({ index: p.index, nodeId: p.nodeId, verifyingShare: first.result.verifyingShares[i]! })),
    epoch: 0,
  };
  await db.tx(async (q) => {
    await insertKeyset(q, row);
    await appendAudit(q, {
      actor: input.actor,
      action: s.action,
      subject: s.keysetId,
      details: {
        scheme: input.scheme,
        threshold: input.threshold,
        nodes: input.nodeIds,
        publicKey: bytesToHex(displayPublicKey(input.scheme, first.result.publicKey)),
        transcriptHash: bytesToHex(first.result.transcriptHash),
        ...s.details,
      },
    });
  });
  log.info({ keysetId: s.keysetId, scheme: input.scheme, ms: Date.now() - started }, s.action.replace('.', ' '));
  return row;
}

/** Every chosen node must take part; ones marked down are asked again first (they may have just restarted). */
export async function requireUp(registry: NodeRegistry, nodeIds: readonly string[], what: string): Promise<void> {
  const marked = nodeIds.filter((id) => !registry.nodes.get(id)?.up);
  const back = await registry.reprobe(marked);
  const down = marked.filter((id) => !back.includes(id));
  if (down.length) {
    throw new RpcError(status.UNAVAILABLE, `${what} needs every chosen node; down: ${down.join(', ')}. Start them or choose other nodes with --nodes`);
  }
}

/** Runs the session and checks that every node reports the same public outcome. */
export async function agreedResult(
  registry: NodeRegistry,
  participants: { index: number; nodeId: string }[],
  params: Parameters<typeof runSession>[2],
  what: string,
  /** How many verifying shares every node must report (all members; a repair runs on fewer). */
  members = participants.length,
): Promise<{ sessionId: string; result: DkgResult }> {
  let result;
  try {
    result = await runSession(registry, participants, params);
  } catch (e) {
    if (e instanceof SessionFailed) {
      for (const id of e.unreachable) registry.markDown(id, e);
      // A node refusing to start for a reason of its own (it still holds the keyset, another epoch)
      // keeps that status; a protocol that ran and failed is ABORTED.
      const kept = e.code === status.ALREADY_EXISTS || e.code === status.FAILED_PRECONDITION ? e.code : status.ABORTED;
      throw new RpcError(e.unreachable.length ? status.UNAVAILABLE : kept, `${what} failed: ${e.message}`);
    }
    throw e;
  }
  const outputs = participants.map((p) => {
    const o = result.outputs.get(p.nodeId);
    if (o?.case !== 'dkg') throw new RpcError(status.INTERNAL, `node ${p.nodeId} returned no result`);
    return o.value;
  });
  const first = outputs[0]!;
  const fingerprint = (o: DkgResult) => [o.publicKey, o.chainCode, o.transcriptHash, ...o.verifyingShares].map((b) => bytesToHex(b)).join('|');
  if (outputs.some((o) => fingerprint(o) !== fingerprint(first)) || first.verifyingShares.length !== members) {
    await finishAll(registry, participants, result.sessionId, false);
    throw new RpcError(status.ABORTED, `${what} aborted: nodes disagree on the public outcome`);
  }
  return { sessionId: result.sessionId, result: first };
}

/** Second phase: every node makes its pending share active; if any cannot, every node drops it. */
export async function commitEverywhere(registry: NodeRegistry, participants: { index: number; nodeId: string }[], sessionId: string, what: string): Promise<void> {
  const failed = await finishAll(registry, participants, sessionId, true);
  if (failed.length) {
    await finishAll(registry, participants, sessionId, false);
    throw new RpcError(status.UNAVAILABLE, `${what} could not be committed on ${failed.join(', ')}; nothing was stored, retry`);
  }
}

/**
 * Re-runs the DKLs23 pairwise setup of an ecdsa keyset on every member (fresh base OTs, OT
 * extension and zero-sharing seeds on the same shares) and clears its bans: the old correlations,
 * which a banned node may have probed, are never used again. The key and shares do not change.
 */
export async function rerunSetup(db: Db, registry: NodeRegistry, log: Logger, keysetId: string, actor: string): Promise<{ row: KeysetRow; cleared: string[] }> {
  const row = await getKeyset(db, keysetId);
  if (!row) throw new RpcError(status.NOT_FOUND, `keyset ${keysetId} not found`);
  if (row.scheme !== 'ecdsa') throw new RpcError(status.FAILED_PRECONDITION, `keyset ${keysetId} is ${row.scheme}; only ecdsa keysets have a pairwise setup to re-run`);
  const participants = row.members.map((m) => ({ index: m.index, nodeId: m.nodeId }));
  const what = 'setup re-run';
  await requireUp(registry, participants.map((p) => p.nodeId), what);
  const started = Date.now();
  const { sessionId, result } = await agreedResult(registry, participants, { case: 'setup', value: { keysetId } }, what);
  const same =
    bytesToHex(result.publicKey) === bytesToHex(row.publicKey) &&
    bytesToHex(result.chainCode) === bytesToHex(row.chainCode) &&
    result.verifyingShares.every((v, i) => bytesToHex(v) === bytesToHex(row.members[i]!.verifyingShare));
  if (!same) {
    await finishAll(registry, participants, sessionId, false);
    throw new RpcError(status.ABORTED, `${what} aborted: the nodes report a different key than keyset ${keysetId}`);
  }
  await commitEverywhere(registry, participants, sessionId, what);
  const cleared = await db.tx(async (q) => {
    const bans = (await listKeysetBans(q)).filter((b) => b.keysetId === keysetId).map((b) => b.nodeId);
    await clearKeysetBans(q, keysetId);
    await appendAudit(q, { actor, action: 'keyset.setup_rerun', subject: keysetId, details: { clearedBans: bans, transcriptHash: bytesToHex(result.transcriptHash) } });
    return bans;
  });
  log.info({ keysetId, cleared, ms: Date.now() - started }, 'ecdsa pairwise setup re-run');
  return { row, cleared };
}

/** Any t verifying shares must interpolate to the group key; a cheap end-to-end sanity check. */
function checkVerifyingShares(scheme: Scheme, publicKey: Uint8Array, shares: Uint8Array[], t: number): void {
  // ECDSA keysets live on secp256k1 like the FROST secp256k1 scheme.
  const g = ciphersuite(scheme === 'ecdsa' ? 'secp256k1' : (scheme as FrostScheme)).group;
  const indices = Array.from({ length: t }, (_, i) => i + 1);
  const sum = g.msm(
    indices.map((i) => g.decode(shares[i - 1]!)),
    indices.map((i) => lagrangeAtZero(g.Fn, i, indices)),
  );
  if (!g.eq(sum, g.decode(publicKey))) throw new RpcError(status.ABORTED, 'key generation aborted: verifying shares do not match the group key');
}
