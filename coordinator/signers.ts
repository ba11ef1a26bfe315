/**
 * One signing interface for the request lifecycle (requests.ts), whatever the keyset's scheme:
 * FROST (signing.ts) or threshold ECDSA (ecdsa-signing.ts). Both share quorum choice, retries,
 * blame and bans (quorum.ts).
 */
import { status } from '@grpc/grpc-js';
import { RpcError } from '../runtime/grpc.js';
import type { EcdsaKeyset, EcdsaSigning } from './ecdsa-signing.js';
import type { SignOutcome } from './quorum.js';
import type { FrostKeyset, FrostSigning } from './signing.js';
import type { Db } from './store/db.js';
import { getKeyset } from './store/repo.js';

export type LoadedKeyset = ({ kind: 'frost' } & FrostKeyset) | ({ kind: 'ecdsa' } & EcdsaKeyset);

export class Signers {
  private readonly loaded = new Map<string, LoadedKeyset>();

  constructor(
    private readonly db: Db,
    private readonly frost: FrostSigning,
    private readonly ecdsa: EcdsaSigning,
  ) {}

  async loadKeyset(keysetId: string): Promise<LoadedKeyset> {
    const cached = this.loaded.get(keysetId);
    if (cached) return cached;
    if (!/^[0-9a-f-]{36}$/i.test(keysetId)) throw new RpcError(status.INVALID_ARGUMENT, `keyset id ${JSON.stringify(keysetId.slice(0, 64))} is not a UUID`);
    const row = await getKeyset(this.db, keysetId);
    if (!row) throw new RpcError(status.NOT_FOUND, `keyset ${keysetId} not found`);
    // The scheme-specific object is kept as is (it carries the quorum rotation), tagged by kind.
    const ks: LoadedKeyset =
      row.scheme === 'ecdsa' ? Object.assign(this.ecdsa.load(row), { kind: 'ecdsa' as const }) : Object.assign(this.frost.load(row), { kind: 'frost' as const });
    this.loaded.set(keysetId, ks);
    return ks;
  }

  sign(ks: LoadedKeyset, requestId: string, digest: Uint8Array): Promise<SignOutcome> {
    return ks.kind === 'ecdsa' ? this.ecdsa.sign(ks, requestId, digest) : this.frost.sign(ks, requestId, digest);
  }

  publicKeyOf(ks: LoadedKeyset): Uint8Array {
    return ks.kind === 'ecdsa' ? this.ecdsa.publicKeyOf(ks) : this.frost.publicKeyOf(ks);
  }
}
