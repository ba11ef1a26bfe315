/**
 * One signing interface for the request lifecycle (requests.ts), whatever the keyset's scheme:
 * FROST (signing.ts) or threshold ECDSA (ecdsa-signing.ts). Both share quorum choice, retries,
 * blame and bans (quorum.ts). HD wallets sign through the same path with their derivation path
 * (runtime/derived-keys.ts derives and caches the key, as the nodes do).
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import type { DerivedKeyset } from '../crypto/hd/keyset.js';
import type { SignAuthorizationSchema } from '../proto/gen/custody/v1/node_pb.js';
import { derivedKeyset } from '../runtime/derived-keys.js';
import { RpcError } from '../runtime/grpc.js';
import type { EcdsaKeyset, EcdsaSigning } from './ecdsa-signing.js';
import type { SignOutcome } from './quorum.js';
import type { FrostKeyset, FrostSigning } from './signing.js';
import type { Db } from './store/db.js';
import { getKeyset, type KeysetRow } from './store/repo.js';
import type { Wallet } from './store/wallets.js';
import type { Wallets } from './wallets.js';

/** How stale a cached keyset may get: a refresh or reshare by another coordinator is seen within this. */
const RECHECK_MS = 5_000;

export type LoadedKeyset = ({ kind: 'frost' } & FrostKeyset) | ({ kind: 'ecdsa' } & EcdsaKeyset);

/** The SignAuthorization fields that let each node check the policy itself (node.proto). */
export type PolicyContext = Pick<MessageInitShape<typeof SignAuthorizationSchema>, 'payload' | 'policyVersion' | 'initiator' | 'walletId' | 'approvals' | 'approvalExpiresAtMs' | 'requiredApprovals'>;

export const NO_POLICY: PolicyContext = {};

/** Bounded caches: busy wallets stay, the rest are recomputed (a derivation costs about a millisecond). */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): V {
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    this.map.set(key, v);
    return v;
  }
}

export class Signers {
  private readonly loaded = new Map<string, LoadedKeyset>();
  /** When each cached keyset's epoch was last compared with the database. */
  private readonly checkedAt = new Map<string, number>();
  private readonly wallets = new Lru<Wallet>(10_000);

  constructor(
    private readonly db: Db,
    private readonly walletStore: Wallets,
    private readonly frost: FrostSigning,
    private readonly ecdsa: EcdsaSigning,
  ) {}

  async loadKeyset(keysetId: string): Promise<LoadedKeyset> {
    const cached = this.loaded.get(keysetId);
    if (cached && Date.now() - (this.checkedAt.get(keysetId) ?? 0) < RECHECK_MS) return cached;
    if (!/^[0-9a-f-]{36}$/i.test(keysetId)) throw new RpcError(status.INVALID_ARGUMENT, `keyset id ${JSON.stringify(keysetId.slice(0, 64))} is not a UUID`);
    const row = await getKeyset(this.db, keysetId);
    if (!row) throw new RpcError(status.NOT_FOUND, `keyset ${keysetId} not found`);
    this.checkedAt.set(keysetId, Date.now());
    if (cached && cached.row.epoch === row.epoch) return cached;
    // Another coordinator refreshed or reshared it (this one's own refreshes call forget at once).
    if (cached) this.forget(keysetId);
    // The scheme-specific object is kept as is (it carries the quorum rotation), tagged by kind.
    const ks: LoadedKeyset =
      row.scheme === 'ecdsa' ? Object.assign(this.ecdsa.load(row), { kind: 'ecdsa' as const }) : Object.assign(this.frost.load(row), { kind: 'frost' as const });
    this.loaded.set(keysetId, ks);
    return ks;
  }

  /** Drops a keyset's cached state after a refresh: new verifying shares and epoch from the database. */
  forget(keysetId: string): void {
    this.loaded.delete(keysetId);
    this.frost.forget(keysetId);
    this.ecdsa.forget(keysetId);
  }

  /** A wallet (immutable once created, so cached); NOT_FOUND for an unknown id. */
  async loadWallet(walletId: string): Promise<Wallet> {
    return this.wallets.get(walletId) ?? this.wallets.set(walletId, await this.walletStore.get(walletId));
  }

  /** The keyset seen through a derivation path ('' for the root key). */
  derive(row: KeysetRow, path: string): DerivedKeyset {
    return derivedKeyset(row.keysetId, row.scheme, row.publicKey, row.chainCode, path);
  }

  sign(ks: LoadedKeyset, requestId: string, digest: Uint8Array, path = '', policy: PolicyContext = NO_POLICY): Promise<SignOutcome> {
    const key = this.derive(ks.row, path);
    return ks.kind === 'ecdsa' ? this.ecdsa.sign(ks, requestId, digest, key, policy) : this.frost.sign(ks, requestId, digest, key, policy);
  }

  /** The key a signature verifies under, as clients use it. */
  publicKeyOf(ks: LoadedKeyset, path = ''): Uint8Array {
    return this.derive(ks.row, path).publicKey;
  }
}
