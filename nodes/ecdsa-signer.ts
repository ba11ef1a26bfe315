/**
 * The node's half of DKLs23 online signing. The caller (FrostSigner.signItem) has already checked
 * the coordinator's signature over the authorization, its expiry, the keyset and the digest length.
 * Here: the signing set must be members of the keyset and include this node, the presignature is
 * taken from the single-use pool durably BEFORE anything is computed (two shares from one
 * presignature reveal the key), and it must belong to exactly this keyset, signer set and session.
 */
import { status } from '@grpc/grpc-js';
import { decodePresignature, type Presignature } from '../crypto/ecdsa/presign.js';
import { signRound } from '../crypto/ecdsa/sign.js';
import { bytesEqual } from '../crypto/transcript.js';
import type { SignAuthorization } from '../proto/gen/custody/v1/node_pb.js';
import { RpcError } from '../runtime/grpc.js';
import { derivedKey } from './derivation.js';
import type { KeyShare } from './keyshares.js';
import type { NonceStore } from './store/nonce-store.js';

export const presigPool = (keysetId: string) => `presig-${keysetId}`;

export async function ecdsaSignItem(nodeId: string, nonces: NonceStore, key: KeyShare, auth: SignAuthorization): Promise<Uint8Array> {
  if (!key.ecdsa) throw new RpcError(status.FAILED_PRECONDITION, `keyset ${auth.keysetId} has no ECDSA share on this node`);
  // Checked before the presignature is consumed: a bad path must not burn it.
  derivedKey(key, auth.derivationPath);
  if (auth.commitments.length) throw new RpcError(status.INVALID_ARGUMENT, 'ECDSA authorizations carry presignatures, not nonce commitments');
  const members = new Map(key.participants.map((p) => [p.index, p.nodeId]));
  let prev = 0;
  let mine: SignAuthorization['ecdsaSigners'][number] | undefined;
  for (const s of auth.ecdsaSigners) {
    if (s.index <= prev) throw new RpcError(status.INVALID_ARGUMENT, 'signers must be sorted by party index without duplicates');
    prev = s.index;
    if (members.get(s.index) !== s.nodeId) throw new RpcError(status.INVALID_ARGUMENT, `party ${s.index} (${s.nodeId}) is not a member of keyset ${auth.keysetId}`);
    if (s.index === key.index) mine = s;
  }
  if (auth.ecdsaSigners.length < key.threshold) throw new RpcError(status.INVALID_ARGUMENT, `${auth.ecdsaSigners.length} signers is below the threshold ${key.threshold}`);
  if (!mine || mine.nodeId !== nodeId) throw new RpcError(status.INVALID_ARGUMENT, `node ${nodeId} is not in the signing set`);

  // Consume first: whatever happens next, this presignature is never used again, across restarts too.
  const taken = await nonces.take(presigPool(auth.keysetId), mine.presignatureId);
  if (taken.status === 'consumed') throw new RpcError(status.FAILED_PRECONDITION, `presignature ${mine.presignatureId} was already used`);
  if (taken.status === 'unknown') {
    throw new RpcError(status.FAILED_PRECONDITION, `presignature ${mine.presignatureId} was not issued by node ${nodeId} for keyset ${auth.keysetId} or was already used`);
  }
  let presig: Presignature;
  try {
    presig = decodePresignature(taken.secret);
  } finally {
    taken.secret.fill(0);
  }
  const signers = auth.ecdsaSigners.map((s) => s.index);
  if (
    !bytesEqual(presig.sid, auth.presignSid) ||
    presig.index !== key.index ||
    presig.signers.length !== signers.length ||
    presig.signers.some((i, k) => i !== signers[k]) ||
    !bytesEqual(presig.publicKey, derivedKey(key, auth.derivationPath).groupPublicKey)
  ) {
    // It is burnt anyway: a mismatch means a confused or malicious coordinator, never a retry.
    throw new RpcError(status.FAILED_PRECONDITION, `presignature ${mine.presignatureId} does not belong to this session, signer set or key`);
  }
  return signRound(presig, auth.digest).payload;
}
