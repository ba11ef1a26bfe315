/**
 * Keyset creation: a DKG across the chosen nodes (no dealer; the key is never assembled), a check
 * that every node reports the same public results, a two-phase commit on the nodes, and only then
 * the keyset row and its audit record, in one transaction.
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
import { insertKeyset, type KeysetRow } from './store/repo.js';

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
  const n = input.nodeIds.length;
  if (input.threshold < 2 || input.threshold > n) {
    throw new RpcError(status.INVALID_ARGUMENT, `threshold must be between 2 and the number of nodes (${n}), got ${input.threshold}`);
  }
  // Ask the nodes marked down again: one that just (re)started should not wait for the next probe.
  const marked = input.nodeIds.filter((id) => !registry.nodes.get(id)?.up);
  const back = await registry.reprobe(marked);
  const down = marked.filter((id) => !back.includes(id));
  if (down.length) {
    throw new RpcError(status.UNAVAILABLE, `key generation needs every chosen node; down: ${down.join(', ')}. Start them or choose other nodes with --nodes`);
  }
  const keysetId = randomUUID();
  const participants = input.nodeIds.map((nodeId, i) => ({ index: i + 1, nodeId }));
  const started = Date.now();
  let result;
  try {
    result = await runSession(registry, participants, {
      case: 'dkg',
      value: { keysetId, scheme: schemeToProto(input.scheme), threshold: input.threshold, participants },
    });
  } catch (e) {
    if (e instanceof SessionFailed) {
      for (const id of e.unreachable) registry.markDown(id, e);
      throw new RpcError(e.unreachable.length ? status.UNAVAILABLE : status.ABORTED, `key generation failed: ${e.message}`);
    }
    throw e;
  }
  const outputs = participants.map((p) => {
    const o = result.outputs.get(p.nodeId);
    if (o?.case !== 'dkg') throw new RpcError(status.INTERNAL, `node ${p.nodeId} returned no DKG result`);
    return o.value;
  });
  const first = outputs[0]!;
  const fingerprint = (o: typeof first) =>
    [o.publicKey, o.chainCode, o.transcriptHash, ...o.verifyingShares].map((b) => bytesToHex(b)).join('|');
  if (outputs.some((o) => fingerprint(o) !== fingerprint(first)) || first.verifyingShares.length !== n) {
    await finishAll(registry, participants, result.sessionId, false);
    throw new RpcError(status.ABORTED, 'key generation aborted: nodes disagree on the public outcome');
  }
  checkVerifyingShares(input.scheme, first.publicKey, first.verifyingShares, input.threshold);

  const failed = await finishAll(registry, participants, result.sessionId, true);
  if (failed.length) {
    await finishAll(registry, participants, result.sessionId, false);
    throw new RpcError(status.UNAVAILABLE, `key generation could not be committed on ${failed.join(', ')}; nothing was stored, retry`);
  }
  const row: KeysetRow = {
    keysetId,
    scheme: input.scheme,
    publicKey: first.publicKey,
    threshold: input.threshold,
    chainCode: first.chainCode,
    label: input.label,
    createdAt: new Date(),
    members: participants.map((p, i) => ({ index: p.index, nodeId: p.nodeId, verifyingShare: first.verifyingShares[i]! })),
  };
  await db.tx(async (q) => {
    await insertKeyset(q, row);
    await appendAudit(q, {
      actor: input.actor,
      action: 'keyset.created',
      subject: keysetId,
      details: {
        scheme: input.scheme,
        threshold: input.threshold,
        nodes: input.nodeIds,
        publicKey: bytesToHex(displayPublicKey(input.scheme, first.publicKey)),
        transcriptHash: bytesToHex(first.transcriptHash),
      },
    });
  });
  log.info({ keysetId, scheme: input.scheme, ms: Date.now() - started }, 'keyset created');
  return row;
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
