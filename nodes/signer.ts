/**
 * The node's half of FROST signing. Before it releases a share a node checks, itself, that the
 * coordinator it trusts authorized this exact session (digest, keyset, signer set, commitments),
 * that it issued the nonce named and never used it, and that every peer point is valid. The nonce
 * is consumed durably before the share is computed, so no crash or replay can reuse it.
 */
import { fromBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { ed25519Verify, SIGN_AUTHORIZATION_DOMAIN, SIGN_BATCH_DOMAIN, signBatchMessage } from '../crypto/ed25519-sig.js';
import { ciphersuite, type FrostScheme } from '../crypto/frost/ciphersuite.js';
import { FrostInputError, signOwnShare, type SignerCommitment } from '../crypto/frost/sign.js';
import { InvalidEncoding, type CurveName, type Group } from '../crypto/group/index.js';
import { applyTweakToScalar } from '../crypto/hd/derive.js';
import type { DerivedKeyset } from '../crypto/hd/keyset.js';
import { checkMessageLength, curveOfScheme } from '../crypto/schemes.js';
import { schemeFromProto } from '../proto/convert.js';
import { SignAuthorizationSchema, type SignAuthorization, type SignShareItem } from '../proto/gen/custody/v1/node_pb.js';
import { RpcError } from '../runtime/grpc.js';
import { derivedKey } from './derivation.js';
import type { PolicyGuard } from './policy-guard.js';
import { ecdsaSignItem } from './ecdsa-signer.js';
import type { KeyShare, KeyShares } from './keyshares.js';
import type { NonceStore } from './store/nonce-store.js';


export interface Commitment {
  id: string;
  hiding: Uint8Array;
  binding: Uint8Array;
}

/**
 * Test-only fault injection: a node that returns wrong shares ('bad-share', to exercise blame and
 * retry), a wrong FROST group commitment with a right share ('bad-r', to exercise the coordinator's
 * fallback), nonce commitments that are not valid points ('bad-commitment', to exercise blame when
 * its peers refuse), or that corrupts its DKLs23 multiplication messages ('bad-mul', to exercise bans).
 */
export type Fault = 'bad-share' | 'bad-r' | 'bad-commitment' | 'bad-mul' | undefined;

export interface SignedItem {
  share: Uint8Array;
  /** FROST: the encoded group commitment R this node computed. */
  groupCommitment?: Uint8Array;
}

export class FrostSigner {
  /** Decoded (validated) group keys, per cached derived key object (runtime/derived-keys.ts). */
  private readonly decodedKeys = new WeakMap<DerivedKeyset, unknown>();

  constructor(
    private readonly nodeId: string,
    private readonly shares: KeyShares,
    private readonly nonces: NonceStore,
    private readonly coordinatorKey: () => Promise<Uint8Array | undefined>,
    private readonly policy: PolicyGuard,
    private readonly fault: Fault = undefined,
  ) {}

  /** Generates fresh nonce pairs, seals them, and returns only the public commitments. */
  async reserve(curve: CurveName, count: number): Promise<Commitment[]> {
    const group = groupOfCurve(curve);
    const secrets: Uint8Array[] = [];
    const publics: { hiding: Uint8Array; binding: Uint8Array }[] = [];
    for (let i = 0; i < count; i++) {
      // Yield now and then: a big batch must not stall the node's other RPCs (health probes, shares).
      if (i % 32 === 31) await new Promise((r) => setImmediate(r));
      // Pool nonces are fixed before any key or message is known, so they are uniform CSPRNG
      // scalars; RFC 9591 mixes the share into nonce_generate only as a hedge against a bad RNG.
      const d = group.randomScalar();
      const e = group.randomScalar();
      const secret = new Uint8Array(64);
      secret.set(group.scalarToBytes(d), 0);
      secret.set(group.scalarToBytes(e), 32);
      secrets.push(secret);
      publics.push({ hiding: group.encode(group.baseMul(d)), binding: group.encode(group.baseMul(e)) });
    }
    const ids = await this.nonces.add(curve, secrets);
    for (const s of secrets) s.fill(0);
    // 'bad-commitment': publish a hiding point that is not on the curve (y = 2^255 - 1 is not canonical).
    if (this.fault === 'bad-commitment') for (const p of publics) p.hiding = new Uint8Array(p.hiding.length).fill(0xff);
    return ids.map((id, i) => ({ id, ...publics[i]! }));
  }

  /**
   * Whether the coordinator this node trusts signed this batch of authorizations as a whole
   * (SignSharesRequest.batch_signature): then no item needs its own signature.
   */
  async batchSigned(authorizations: readonly Uint8Array[], signature: Uint8Array): Promise<boolean> {
    const coordinatorKey = await this.coordinatorKey();
    return !!coordinatorKey && signature.length > 0 && ed25519Verify(coordinatorKey, SIGN_BATCH_DOMAIN, signBatchMessage(authorizations), signature);
  }

  /** Returns one signature share per item (FROST: with the group commitment), or a per-item error. */
  async signItem(item: SignShareItem, batchSigned = false): Promise<SignedItem> {
    const coordinatorKey = await this.coordinatorKey();
    if (!coordinatorKey) throw new RpcError(status.FAILED_PRECONDITION, 'cluster roster not configured on this node');
    if (!batchSigned && !ed25519Verify(coordinatorKey, SIGN_AUTHORIZATION_DOMAIN, item.authorization, item.coordinatorSignature)) {
      throw new RpcError(status.PERMISSION_DENIED, 'authorization is not signed by the trusted coordinator key');
    }
    let auth: SignAuthorization;
    try {
      auth = fromBinary(SignAuthorizationSchema, item.authorization);
    } catch {
      throw new RpcError(status.INVALID_ARGUMENT, 'malformed sign authorization');
    }
    if (Number(auth.expiresAtMs) < Date.now()) throw new RpcError(status.FAILED_PRECONDITION, `authorization for request ${auth.requestId} has expired`);
    const key = this.shares.get(auth.keysetId);
    if (!key) throw new RpcError(status.NOT_FOUND, `unknown keyset ${auth.keysetId}`);
    checkEpoch(this.nodeId, key, auth.keysetEpoch);
    const scheme = schemeFromProto(auth.scheme);
    // The policy, checked by this node, before any nonce or presignature is touched.
    this.policy.check(auth, new Date());
    if (scheme === 'ecdsa' && key.scheme === 'ecdsa') {
      if (auth.digest.length !== 32) throw new RpcError(status.INVALID_ARGUMENT, `ecdsa signs a 32-byte digest, got ${auth.digest.length} bytes`);
      return { share: await ecdsaSignItem(this.nodeId, this.nonces, key, auth) };
    }
    if (scheme !== key.scheme || scheme === 'ecdsa') {
      throw new RpcError(status.INVALID_ARGUMENT, `keyset ${auth.keysetId} is ${key.scheme}, authorization says ${scheme ?? 'unspecified'}`);
    }
    const lengthError = checkMessageLength(scheme, auth.digest.length);
    if (lengthError) throw new RpcError(status.INVALID_ARGUMENT, lengthError);
    // The node derives the key itself from the path; the binding factors then commit to it.
    const derived = derivedKey(key, auth.derivationPath);

    const cs = ciphersuite(scheme as FrostScheme);
    const group = cs.group;
    const members = new Map(key.participants.map((p) => [p.index, p.nodeId]));
    // Peers' points are decoded (validated) here; this node's own commitment stays bytes and is
    // compared with what its nonces make (signOwnShare), so it is never decoded.
    const peers: SignerCommitment<unknown>[] = [];
    let mine: (typeof auth.commitments)[number] | undefined;
    let prev = 0;
    for (const c of auth.commitments) {
      if (c.index <= prev) throw new RpcError(status.INVALID_ARGUMENT, 'commitments must be sorted by party index without duplicates');
      prev = c.index;
      if (members.get(c.index) !== c.nodeId) throw new RpcError(status.INVALID_ARGUMENT, `party ${c.index} (${c.nodeId}) is not a member of keyset ${auth.keysetId}`);
      if (c.index === key.index) {
        mine = c;
        continue;
      }
      try {
        peers.push({ index: c.index, hiding: group.decode(c.hiding), binding: group.decode(c.binding) });
      } catch (e) {
        if (e instanceof InvalidEncoding) throw new RpcError(status.INVALID_ARGUMENT, `invalid point in the commitment of party ${c.index}: ${e.message}`);
        throw e;
      }
    }
    if (auth.commitments.length < key.threshold) {
      throw new RpcError(status.INVALID_ARGUMENT, `${auth.commitments.length} signers is below the threshold ${key.threshold}`);
    }
    if (!mine || mine.nodeId !== this.nodeId) throw new RpcError(status.INVALID_ARGUMENT, `node ${this.nodeId} is not in the signing set`);

    // Consume first: whatever happens next, this nonce is never used again.
    const taken = await this.nonces.take(curveOfScheme(scheme), mine.commitmentId);
    if (taken.status === 'consumed') throw new RpcError(status.FAILED_PRECONDITION, `nonce commitment ${mine.commitmentId} was already used`);
    if (taken.status === 'unknown') {
      // Once a whole batch is used its record is gone, so "unknown" covers both never-issued and long-used ids.
      throw new RpcError(status.FAILED_PRECONDITION, `nonce commitment ${mine.commitmentId} was not issued by node ${this.nodeId} or was already used`);
    }
    const secret = taken.secret;
    try {
      const hiding = group.scalarFromBytes(secret.subarray(0, 32));
      const binding = group.scalarFromBytes(secret.subarray(32, 64));
      // signOwnShare refuses if the listed commitment is not the one these nonces make.
      const out = signOwnShare(cs, {
        index: key.index,
        secretShare: applyTweakToScalar(scheme, derived.tweak, key.secretShare),
        groupPublicKey: this.decodedKey(group, derived),
        nonces: { hiding, binding },
        peers,
        listed: { hiding: mine.hiding, binding: mine.binding },
        message: auth.digest,
      });
      const z = this.fault === 'bad-share' ? group.Fn.add(out.share, 1n) : out.share;
      return { share: group.scalarToBytes(z), groupCommitment: group.encode(this.fault === 'bad-r' ? group.generator : out.R) };
    } catch (e) {
      if (e instanceof FrostInputError) throw new RpcError(status.FAILED_PRECONDITION, `commitment ${mine.commitmentId}: ${e.message}`);
      throw e;
    } finally {
      secret.fill(0);
    }
  }

  private decodedKey(group: Group<unknown>, derived: DerivedKeyset): unknown {
    let p = this.decodedKeys.get(derived);
    if (p === undefined) {
      p = group.decode(derived.groupPublicKey);
      this.decodedKeys.set(derived, p);
    }
    return p;
  }
}

/** Shares of different refresh epochs do not combine: refuse plainly rather than return a share that fails. */
export function checkEpoch(nodeId: string, key: KeyShare, epoch: number): void {
  if ((key.epoch ?? 0) !== epoch) {
    throw new RpcError(status.FAILED_PRECONDITION, `keyset ${key.keysetId} is at share epoch ${key.epoch ?? 0} on ${nodeId}; the request is for epoch ${epoch} (a refresh is being committed)`);
  }
}

function groupOfCurve(curve: CurveName): Group<unknown> {
  return ciphersuite(curve === 'ed25519' ? 'ed25519' : 'secp256k1').group;
}

