/**
 * HD wallet rows: batches (an index range of one keyset, with the creation metadata) and wallets.
 * Inserts go through unnest() arrays so a chunk of thousands of wallets is one statement on every
 * engine (PostgreSQL, CockroachDB, PGlite).
 */
import { DuplicateKeyError, uniqueViolation, type Queryable } from './db.js';
import { isScheme, type Scheme } from './repo.js';

export interface WalletBatch {
  batchId: string;
  keysetId: string;
  firstIndex: number;
  count: number;
  /** Wallets persisted so far. */
  created: number;
  label: string;
  userId: string;
  purpose: string;
  idempotencyKey: string | null;
  requestHash: Uint8Array;
  createdBy: string;
  createdAt: Date;
  completedAt: Date | null;
}

export interface WalletAddressColumns {
  ethereum: string | null;
  bitcoinP2wpkh: string | null;
  bitcoinP2tr: string | null;
  solana: string | null;
}

export interface Wallet extends WalletAddressColumns {
  walletId: string;
  keysetId: string;
  scheme: Scheme;
  index: number;
  path: string;
  publicKey: Uint8Array;
  label: string;
  userId: string;
  purpose: string;
  batchId: string;
  createdAt: Date;
}

interface BatchDbRow {
  batch_id: string;
  keyset_id: string;
  first_index: number;
  count: number;
  created: number;
  label: string;
  user_id: string;
  purpose: string;
  idempotency_key: string | null;
  request_hash: Uint8Array;
  created_by: string;
  created_at: Date;
  completed_at: Date | null;
}

const BATCH_COLUMNS =
  'batch_id, keyset_id, first_index, count, created, label, user_id, purpose, idempotency_key, request_hash, created_by, created_at, completed_at';

const toBatch = (r: BatchDbRow): WalletBatch => ({
  batchId: r.batch_id,
  keysetId: r.keyset_id,
  firstIndex: r.first_index,
  count: r.count,
  created: r.created,
  label: r.label,
  userId: r.user_id,
  purpose: r.purpose,
  idempotencyKey: r.idempotency_key,
  requestHash: r.request_hash,
  createdBy: r.created_by,
  createdAt: r.created_at,
  completedAt: r.completed_at,
});

/** Reserves `count` consecutive wallet indexes of a keyset; returns the first, or undefined for an unknown keyset. */
export async function reserveWalletIndexes(q: Queryable, keysetId: string, count: number): Promise<number | undefined> {
  const [row] = await q.query<{ next_wallet_index: number }>(
    'UPDATE keysets SET next_wallet_index = next_wallet_index + $2 WHERE keyset_id = $1 RETURNING next_wallet_index',
    [keysetId, count],
  );
  return row ? row.next_wallet_index - count : undefined;
}

export async function insertWalletBatch(q: Queryable, b: Omit<WalletBatch, 'created' | 'completedAt'>): Promise<WalletBatch> {
  try {
    const [row] = await q.query<BatchDbRow>(
      `INSERT INTO wallet_batches (${BATCH_COLUMNS}) VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9, $10, $11, NULL) RETURNING ${BATCH_COLUMNS}`,
      [b.batchId, b.keysetId, b.firstIndex, b.count, b.label, b.userId, b.purpose, b.idempotencyKey, b.requestHash, b.createdBy, b.createdAt],
    );
    return toBatch(row!);
  } catch (err) {
    const uv = uniqueViolation(err);
    if (uv) throw new DuplicateKeyError(uv.constraint, `wallet batch: duplicate key (${uv.constraint ?? 'unknown'})`, { cause: err });
    throw err;
  }
}

export async function getWalletBatch(q: Queryable, batchId: string): Promise<WalletBatch | undefined> {
  const [row] = await q.query<BatchDbRow>(`SELECT ${BATCH_COLUMNS} FROM wallet_batches WHERE batch_id = $1`, [batchId]);
  return row ? toBatch(row) : undefined;
}

export async function findWalletBatchByIdempotencyKey(q: Queryable, key: string): Promise<WalletBatch | undefined> {
  const [row] = await q.query<BatchDbRow>(`SELECT ${BATCH_COLUMNS} FROM wallet_batches WHERE idempotency_key = $1`, [key]);
  return row ? toBatch(row) : undefined;
}

/** Records progress; never moves backwards (two coordinators may fill the same batch). */
export async function markWalletBatchProgress(q: Queryable, batchId: string, created: number): Promise<void> {
  await q.query('UPDATE wallet_batches SET created = GREATEST(created, $2) WHERE batch_id = $1', [batchId, created]);
}

/** Marks a batch complete; false when another coordinator already did (only the first records it). */
export async function completeWalletBatch(q: Queryable, batchId: string, at: Date): Promise<boolean> {
  const rows = await q.query('UPDATE wallet_batches SET completed_at = $2, created = count WHERE batch_id = $1 AND completed_at IS NULL RETURNING batch_id', [
    batchId,
    at,
  ]);
  return rows.length > 0;
}

/** What a chunk insert needs per wallet; the batch supplies keyset, metadata and time. */
export interface NewWallets extends Record<keyof WalletAddressColumns, (string | null)[]> {
  walletIds: string[];
  indexes: number[];
  paths: string[];
  publicKeys: Uint8Array[];
}

/** Inserts one chunk of a batch's wallets; rows already present (a resumed batch) are left as they are. */
export async function insertWallets(q: Queryable, batch: WalletBatch, w: NewWallets): Promise<void> {
  await q.query(
    `INSERT INTO wallets (wallet_id, keyset_id, wallet_index, path, public_key, eth_address, btc_p2wpkh, btc_p2tr, sol_address,
                          label, user_id, purpose, batch_id, created_at)
     SELECT u.id, $1, u.idx, u.path, u.pk, u.eth, u.p2wpkh, u.p2tr, u.sol, $2, $3, $4, $5, $6
       FROM unnest($7::uuid[], $8::int8[], $9::text[], $10::bytea[], $11::text[], $12::text[], $13::text[], $14::text[])
         AS u(id, idx, path, pk, eth, p2wpkh, p2tr, sol)
     ON CONFLICT (keyset_id, wallet_index) DO NOTHING`,
    [
      batch.keysetId,
      batch.label,
      batch.userId,
      batch.purpose,
      batch.batchId,
      batch.createdAt,
      w.walletIds,
      w.indexes,
      w.paths,
      w.publicKeys,
      w.ethereum,
      w.bitcoinP2wpkh,
      w.bitcoinP2tr,
      w.solana,
    ],
  );
}

interface WalletDbRow {
  wallet_id: string;
  keyset_id: string;
  scheme: string;
  wallet_index: number;
  path: string;
  public_key: Uint8Array;
  eth_address: string | null;
  btc_p2wpkh: string | null;
  btc_p2tr: string | null;
  sol_address: string | null;
  label: string;
  user_id: string;
  purpose: string;
  batch_id: string;
  created_at: Date;
}

const WALLET_COLUMNS =
  'w.wallet_id, w.keyset_id, k.scheme, w.wallet_index, w.path, w.public_key, w.eth_address, w.btc_p2wpkh, w.btc_p2tr, w.sol_address, w.label, w.user_id, w.purpose, w.batch_id, w.created_at';

function toWallet(r: WalletDbRow): Wallet {
  if (!isScheme(r.scheme)) throw new Error(`unknown scheme in database: ${r.scheme}`);
  return {
    walletId: r.wallet_id,
    keysetId: r.keyset_id,
    scheme: r.scheme,
    index: r.wallet_index,
    path: r.path,
    publicKey: r.public_key,
    ethereum: r.eth_address,
    bitcoinP2wpkh: r.btc_p2wpkh,
    bitcoinP2tr: r.btc_p2tr,
    solana: r.sol_address,
    label: r.label,
    userId: r.user_id,
    purpose: r.purpose,
    batchId: r.batch_id,
    createdAt: r.created_at,
  };
}

export async function getWallet(q: Queryable, walletId: string): Promise<Wallet | undefined> {
  const [row] = await q.query<WalletDbRow>(
    `SELECT ${WALLET_COLUMNS} FROM wallets w JOIN keysets k ON k.keyset_id = w.keyset_id WHERE w.wallet_id = $1`,
    [walletId],
  );
  return row ? toWallet(row) : undefined;
}

export interface WalletFilter {
  keysetId: string;
  /** Index range of a batch. */
  fromIndex?: number;
  toIndex?: number;
  userId?: string;
  /** Only indexes above this one (paging). */
  afterIndex?: number;
  limit: number;
}

/** A keyset's wallets in index order. */
export async function listWallets(q: Queryable, f: WalletFilter): Promise<Wallet[]> {
  const where = ['w.keyset_id = $1'];
  const params: unknown[] = [f.keysetId];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (f.userId !== undefined) add('w.user_id = ?', f.userId);
  if (f.fromIndex !== undefined) add('w.wallet_index >= ?', f.fromIndex);
  if (f.toIndex !== undefined) add('w.wallet_index <= ?', f.toIndex);
  if (f.afterIndex !== undefined) add('w.wallet_index > ?', f.afterIndex);
  params.push(f.limit);
  const rows = await q.query<WalletDbRow>(
    `SELECT ${WALLET_COLUMNS} FROM wallets w JOIN keysets k ON k.keyset_id = w.keyset_id
      WHERE ${where.join(' AND ')} ORDER BY w.wallet_index LIMIT $${params.length}`,
    params,
  );
  return rows.map(toWallet);
}
