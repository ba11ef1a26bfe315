/**
 * A node's key shares, sealed in its ShareStore. The decoded form (points validated once) is
 * cached in memory for the signing hot path.
 */
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { decodeEcdsaKeyShare, encodeEcdsaKeyShare, type EcdsaKeyShare } from '../crypto/ecdsa/keygen.js';
import type { Scheme } from '../crypto/schemes.js';
import type { ShareStore } from './store/share-store.js';

export interface KeyShare {
  keysetId: string;
  scheme: Scheme;
  threshold: number;
  /** This node's party index in the keyset. */
  index: number;
  participants: { index: number; nodeId: string }[];
  secretShare: bigint;
  groupPublicKey: Uint8Array;
  verifyingShares: Map<number, Uint8Array>;
  chainCode: Uint8Array;
  /** ECDSA keysets: the DKLs23 share (Shamir share plus pairwise multiplication setups and zero seeds). */
  ecdsa?: EcdsaKeyShare;
  /** Share epoch: 0 from the DKG, one more after each refresh. */
  epoch?: number;
}

/** v1: FROST only. v2 adds `ecdsa` (encodeEcdsaKeyShare, hex) for ECDSA keysets; v1 records stay readable. */
interface KeyShareRecord {
  v: 1 | 2;
  keysetId: string;
  scheme: Scheme;
  threshold: number;
  index: number;
  participants: { index: number; nodeId: string }[];
  secretShare: string;
  groupPublicKey: string;
  verifyingShares: [number, string][];
  chainCode: string;
  ecdsa?: string;
  /** Absent before the first refresh (epoch 0). */
  epoch?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encode(k: KeyShare): Uint8Array {
  const rec: KeyShareRecord = {
    v: k.ecdsa ? 2 : 1,
    keysetId: k.keysetId,
    scheme: k.scheme,
    threshold: k.threshold,
    index: k.index,
    participants: k.participants,
    secretShare: k.secretShare.toString(16),
    groupPublicKey: bytesToHex(k.groupPublicKey),
    verifyingShares: [...k.verifyingShares].map(([i, b]) => [i, bytesToHex(b)]),
    chainCode: bytesToHex(k.chainCode),
  };
  if (k.ecdsa) rec.ecdsa = bytesToHex(encodeEcdsaKeyShare(k.ecdsa));
  if (k.epoch) rec.epoch = k.epoch;
  return encoder.encode(JSON.stringify(rec));
}

/** `pending`: a repaired ecdsa share has no DKLs23 part until the setup that follows gives it one. */
function decode(bytes: Uint8Array, pending = false): KeyShare {
  const rec = JSON.parse(decoder.decode(bytes)) as KeyShareRecord;
  if (rec.v !== 1 && rec.v !== 2) throw new Error(`unsupported key share record version ${String(rec.v)}`);
  if (!pending && rec.scheme === 'ecdsa' && (rec.v !== 2 || !rec.ecdsa)) throw new Error(`ecdsa key share record for ${rec.keysetId} has no DKLs23 share`);
  const share: KeyShare = {
    keysetId: rec.keysetId,
    scheme: rec.scheme,
    threshold: rec.threshold,
    index: rec.index,
    participants: rec.participants,
    secretShare: BigInt('0x' + rec.secretShare),
    groupPublicKey: hexToBytes(rec.groupPublicKey),
    verifyingShares: new Map(rec.verifyingShares.map(([i, h]) => [i, hexToBytes(h)])),
    chainCode: hexToBytes(rec.chainCode),
  };
  if (rec.ecdsa) share.ecdsa = decodeEcdsaKeyShare(hexToBytes(rec.ecdsa));
  if (rec.epoch) share.epoch = rec.epoch;
  return share;
}

const activeName = (keysetId: string) => `keysets/${keysetId}`;
const pendingName = (sessionId: string) => `pending/${sessionId}`;
/** Marks a committed session, so a repeated commit (a coordinator retrying after a crash) succeeds. */
const committedName = (sessionId: string) => `committed/${sessionId}`;
/** A reshare's outcome for a member that leaves: the keyset whose share FinishSession deletes. */
const retiringName = (sessionId: string) => `retiring/${sessionId}`;

export class KeyShares {
  private readonly cache = new Map<string, KeyShare>();

  constructor(private readonly store: ShareStore) {}

  /** Loads every active share so a restarted node signs at once. */
  async load(): Promise<void> {
    for (const name of await this.store.list('keysets/')) {
      const bytes = await this.store.get(name);
      if (bytes) {
        const share = decode(bytes);
        this.cache.set(share.keysetId, share);
      }
    }
  }

  get(keysetId: string): KeyShare | undefined {
    return this.cache.get(keysetId);
  }

  get size(): number {
    return this.cache.size;
  }

  /** Seals a DKG output that the coordinator has not yet confirmed; it cannot sign until committed. */
  async putPending(sessionId: string, share: KeyShare): Promise<void> {
    await this.store.put(pendingName(sessionId), encode(share));
  }

  /**
   * Promotes a pending share to active (the coordinator persisted the keyset), or carries out a
   * retirement. Idempotent: a repeated commit returns the share, or true once it is gone.
   */
  async commit(sessionId: string): Promise<KeyShare | true | undefined> {
    const retiring = await this.store.get(retiringName(sessionId));
    if (retiring) return this.retire(sessionId, decoder.decode(retiring));
    const bytes = await this.store.get(pendingName(sessionId));
    if (!bytes) {
      const marker = await this.store.get(committedName(sessionId));
      if (!marker) return undefined;
      return this.cache.get(decoder.decode(marker)) ?? true;
    }
    const share = decode(bytes);
    // Overwriting the active record destroys the previous share (a refresh's old epoch).
    await this.store.put(activeName(share.keysetId), bytes);
    await this.store.put(committedName(sessionId), encoder.encode(share.keysetId));
    await this.store.delete(pendingName(sessionId));
    this.cache.set(share.keysetId, share);
    return share;
  }

  /** A pending (uncommitted) output, e.g. a refreshed share that an ecdsa setup builds on. */
  async pending(sessionId: string): Promise<KeyShare | undefined> {
    const bytes = await this.store.get(pendingName(sessionId));
    return bytes ? decode(bytes, true) : undefined;
  }

  async abort(sessionId: string): Promise<void> {
    await this.store.delete(pendingName(sessionId));
    await this.store.delete(retiringName(sessionId));
  }

  /** Seals the decision to delete a keyset's share once the coordinator confirms a reshare without this node. */
  async putRetiring(sessionId: string, keysetId: string): Promise<void> {
    await this.store.put(retiringName(sessionId), encoder.encode(keysetId));
  }

  /** Deletes the share (the node left the keyset) and remembers the session, so a repeated commit succeeds. */
  private async retire(sessionId: string, keysetId: string): Promise<true> {
    await this.store.delete(activeName(keysetId));
    this.cache.delete(keysetId);
    await this.store.put(committedName(sessionId), encoder.encode(keysetId));
    await this.store.delete(retiringName(sessionId));
    return true;
  }
}
