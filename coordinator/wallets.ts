/**
 * Batch wallet creation from a keyset's HD root, and wallet lookup.
 *
 * A batch first reserves its index range and is stored with its metadata (one transaction, one
 * audit record), then is filled chunk by chunk, each chunk one transaction that also records the
 * progress. A crash, a timeout or a `fill_limit` leaves a batch that the same call (same idempotency
 * key) resumes where it stopped; rows already written are kept (ON CONFLICT DO NOTHING), so two
 * coordinators filling one batch cannot duplicate a wallet. Keys are public derivations, so the
 * coordinator needs no node to create wallets.
 */
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import type { HdScheme } from '../crypto/hd/derive.js';
import { MAX_WALLET_INDEX, walletPath, type DerivedWallets } from '../crypto/hd/wallets.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { appendAudit } from './store/audit.js';
import type { Db } from './store/db.js';
import { durably } from './store/durably.js';
import { DuplicateKeyError, getKeyset, type KeysetRow } from './store/repo.js';
import {
  findWalletBatchByIdempotencyKey,
  getWallet,
  getWalletBatch,
  insertWalletBatch,
  insertWallets,
  listWallets,
  markWalletBatchProgress,
  completeWalletBatch,
  reserveWalletIndexes,
  type Wallet,
  type WalletBatch,
} from './store/wallets.js';
import { checkUuid } from './ids.js';
import type { WalletDeriver } from './wallet-deriver.js';

export const MAX_BATCH_WALLETS = 1_000_000;
const MAX_TEXT = 200;
/** Wallets per insert transaction. */
const CHUNK = 5_000;

export interface CreateWalletsInput {
  keysetId: string;
  count: number;
  label: string;
  userId: string;
  purpose: string;
  idempotencyKey: string;
  /** Persist at most this many more wallets now (0: all). */
  fillLimit: number;
  actor: string;
}

export class Wallets {
  constructor(
    private readonly db: Db,
    private readonly deriver: WalletDeriver,
    private readonly log: Logger,
  ) {}

  /** Creates a batch, or returns (and resumes) the batch an earlier call with the same key made. */
  async create(input: CreateWalletsInput): Promise<WalletBatch> {
    checkUuid('keyset_id', input.keysetId);
    if (!Number.isInteger(input.count) || input.count < 1 || input.count > MAX_BATCH_WALLETS) {
      throw new RpcError(status.INVALID_ARGUMENT, `count must be between 1 and ${MAX_BATCH_WALLETS}, got ${input.count}`);
    }
    for (const [name, v] of [['label', input.label], ['user_id', input.userId], ['purpose', input.purpose], ['idempotency_key', input.idempotencyKey]] as const) {
      if (v.length > MAX_TEXT) throw new RpcError(status.INVALID_ARGUMENT, `${name} is longer than ${MAX_TEXT} characters`);
    }
    const requestHash = sha256(utf8ToBytes(JSON.stringify(['wallets/v1', input.keysetId, input.count, input.label, input.userId, input.purpose])));
    const keyset = await durably(this.log, 'read keyset', () => getKeyset(this.db, input.keysetId));
    if (!keyset) throw new RpcError(status.NOT_FOUND, `keyset ${input.keysetId} not found`);

    let batch = input.idempotencyKey ? await this.earlier(input, requestHash) : undefined;
    if (!batch) {
      try {
        batch = await this.open(input, requestHash);
      } catch (e) {
        // Another call with the same key won the race: its batch is ours.
        if (!(e instanceof DuplicateKeyError) || !input.idempotencyKey) throw e;
        batch = await this.earlier(input, requestHash);
        if (!batch) throw e;
      }
    }
    return this.fill(keyset, batch, input.fillLimit || batch.count);
  }

  private async earlier(input: CreateWalletsInput, requestHash: Uint8Array): Promise<WalletBatch | undefined> {
    const b = await durably(this.log, 'read wallet batch', () => findWalletBatchByIdempotencyKey(this.db, input.idempotencyKey));
    if (b && (bytesToHex(b.requestHash) !== bytesToHex(requestHash) || b.createdBy !== input.actor)) {
      throw new RpcError(status.ALREADY_EXISTS, `idempotency key ${input.idempotencyKey} was already used for a different wallet batch`);
    }
    return b;
  }

  private open(input: CreateWalletsInput, requestHash: Uint8Array): Promise<WalletBatch> {
    return durably(this.log, 'create wallet batch', () =>
      this.db.tx(async (q) => {
        const first = await reserveWalletIndexes(q, input.keysetId, input.count);
        if (first === undefined) throw new RpcError(status.NOT_FOUND, `keyset ${input.keysetId} not found`);
        if (first + input.count - 1 > MAX_WALLET_INDEX) {
          throw new RpcError(status.RESOURCE_EXHAUSTED, `keyset ${input.keysetId} has ${MAX_WALLET_INDEX + 1 - first} non-hardened wallet indexes left, asked for ${input.count}`);
        }
        const batch = await insertWalletBatch(q, {
          batchId: randomUUID(),
          keysetId: input.keysetId,
          firstIndex: first,
          count: input.count,
          label: input.label,
          userId: input.userId,
          purpose: input.purpose,
          idempotencyKey: input.idempotencyKey || null,
          requestHash,
          createdBy: input.actor,
          createdAt: new Date(),
        });
        await appendAudit(q, {
          actor: input.actor,
          action: 'wallet.batch_created',
          subject: batch.batchId,
          details: {
            keysetId: input.keysetId,
            count: input.count,
            firstIndex: first,
            firstPath: walletPath(first),
            label: input.label,
            userId: input.userId,
            purpose: input.purpose,
            idempotencyKey: input.idempotencyKey || null,
          },
        });
        return batch;
      }),
    );
  }

  /** Persists up to `limit` more wallets of the batch: derivation of the next chunk overlaps the insert of this one. */
  private async fill(keyset: KeysetRow, batch: WalletBatch, limit: number): Promise<WalletBatch> {
    const end = Math.min(batch.count, batch.created + limit);
    const root = { publicKey: keyset.publicKey, chainCode: keyset.chainCode };
    const scheme = keyset.scheme as HdScheme;
    const derive = (offset: number) => this.deriver.derive(scheme, root, batch.firstIndex + offset, Math.min(CHUNK, end - offset));
    const started = Date.now();
    let created = batch.created;
    let next: Promise<DerivedWallets> | undefined = created < end ? derive(created) : undefined;
    while (next) {
      const keys = await next;
      const offset = created;
      created = offset + keys.publicKeys.length;
      next = created < end ? derive(created) : undefined;
      // An abandoned derivation must not surface as an unhandled rejection if the insert fails.
      next?.catch(() => undefined);
      await this.insertChunk(batch, offset, keys);
    }
    const done = created === batch.count && !batch.completedAt;
    if (done) await this.complete(batch);
    if (created > batch.created) this.log.info({ batchId: batch.batchId, created: created - batch.created, ms: Date.now() - started }, 'wallets created');
    return (await durably(this.log, 'read wallet batch', () => getWalletBatch(this.db, batch.batchId)))!;
  }

  private insertChunk(batch: WalletBatch, offset: number, keys: DerivedWallets): Promise<void> {
    const n = keys.publicKeys.length;
    const indexes = Array.from({ length: n }, (_, i) => batch.firstIndex + offset + i);
    const pick = (f: 'ethereum' | 'bitcoinP2wpkh' | 'bitcoinP2tr' | 'solana') => keys.addresses.map((a) => a[f] ?? null);
    const rows = {
      walletIds: indexes.map(() => randomUUID()),
      indexes,
      paths: indexes.map(walletPath),
      publicKeys: keys.publicKeys,
      ethereum: pick('ethereum'),
      bitcoinP2wpkh: pick('bitcoinP2wpkh'),
      bitcoinP2tr: pick('bitcoinP2tr'),
      solana: pick('solana'),
    };
    return durably(this.log, 'insert wallets', () =>
      this.db.tx(async (q) => {
        await insertWallets(q, batch, rows);
        await markWalletBatchProgress(q, batch.batchId, offset + n);
      }),
    );
  }

  private complete(batch: WalletBatch): Promise<void> {
    return durably(this.log, 'complete wallet batch', () =>
      this.db.tx(async (q) => {
        if (!(await completeWalletBatch(q, batch.batchId, new Date()))) return;
        await appendAudit(q, {
          actor: 'coordinator',
          action: 'wallet.batch_completed',
          subject: batch.batchId,
          details: { keysetId: batch.keysetId, count: batch.count, firstIndex: batch.firstIndex, lastIndex: batch.firstIndex + batch.count - 1 },
        });
      }),
    );
  }

  async get(walletId: string): Promise<Wallet> {
    checkUuid('wallet_id', walletId);
    const w = await durably(this.log, 'read wallet', () => getWallet(this.db, walletId));
    if (!w) throw new RpcError(status.NOT_FOUND, `wallet ${walletId} not found`);
    return w;
  }

  async batch(batchId: string): Promise<WalletBatch> {
    checkUuid('batch_id', batchId);
    const b = await durably(this.log, 'read wallet batch', () => getWalletBatch(this.db, batchId));
    if (!b) throw new RpcError(status.NOT_FOUND, `wallet batch ${batchId} not found`);
    return b;
  }

  /** One page of a keyset's wallets (optionally a batch's or a user's) and the token of the next. */
  async list(f: { keysetId: string; batchId: string; userId: string; limit: number; pageToken: string }): Promise<{ wallets: Wallet[]; nextPageToken: string }> {
    checkUuid('keyset_id', f.keysetId);
    const limit = f.limit === 0 ? 100 : f.limit;
    if (limit > 10_000) throw new RpcError(status.INVALID_ARGUMENT, 'limit is at most 10000');
    let afterIndex: number | undefined;
    if (f.pageToken) {
      if (!/^\d{1,10}$/.test(f.pageToken)) throw new RpcError(status.INVALID_ARGUMENT, 'page_token is not one this API returned');
      afterIndex = Number(f.pageToken);
    }
    let range: { fromIndex?: number; toIndex?: number } = {};
    if (f.batchId) {
      const b = await this.batch(f.batchId);
      if (b.keysetId !== f.keysetId) throw new RpcError(status.INVALID_ARGUMENT, `batch ${f.batchId} belongs to keyset ${b.keysetId}, not ${f.keysetId}`);
      range = { fromIndex: b.firstIndex, toIndex: b.firstIndex + b.count - 1 };
    }
    const wallets = await durably(this.log, 'list wallets', () =>
      listWallets(this.db, { keysetId: f.keysetId, ...range, userId: f.userId || undefined, afterIndex, limit: limit + 1 }),
    );
    const more = wallets.length > limit;
    if (more) wallets.length = limit;
    return { wallets, nextPageToken: more ? String(wallets[wallets.length - 1]!.index) : '' };
  }
}
