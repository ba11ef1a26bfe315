/** `custody wallet create|list|show`: HD wallets in batches (coordinator WalletService). */
import { randomUUID } from 'node:crypto';
import { timestampDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { bytesToHex } from '@noble/hashes/utils.js';
import { schemeFromProto } from '../proto/convert.js';
import { WalletService, type Wallet, type WalletBatch } from '../proto/gen/custody/v1/api_pb.js';
import { CliError, connect } from './client.js';
import { progress } from './progress.js';

export type Flags = Record<string, string | boolean | undefined>;
type Result = { out: unknown; text: string; exitCode?: number };

/** Wallets persisted per call: small enough to show progress, large enough to keep calls few. */
const FILL_STEP = 10_000;
/** `wallet create` lists the wallets it made up to this many; larger batches print a summary. */
const LIST_INLINE = 1_000;

const iso = (t?: Timestamp) => (t ? timestampDate(t).toISOString() : undefined);

export function walletJson(w: Wallet) {
  const a = w.addresses;
  const addresses = Object.fromEntries(
    Object.entries({ ethereum: a?.ethereum, bitcoinP2wpkh: a?.bitcoinP2wpkh, bitcoinP2tr: a?.bitcoinP2tr, solana: a?.solana }).filter(([, v]) => v),
  );
  return {
    walletId: w.walletId,
    keysetId: w.keysetId,
    scheme: schemeFromProto(w.scheme) ?? 'unspecified',
    index: w.index,
    path: w.path,
    publicKey: bytesToHex(w.publicKey),
    addresses,
    label: w.label,
    userId: w.userId,
    purpose: w.purpose,
    batchId: w.batchId,
    createdAt: iso(w.createdAt),
  };
}

function batchJson(b: WalletBatch) {
  return {
    batchId: b.batchId,
    keysetId: b.keysetId,
    count: b.count,
    created: b.created,
    complete: b.complete,
    firstIndex: b.firstIndex,
    lastIndex: b.firstIndex + b.count - 1,
    label: b.label,
    userId: b.userId,
    purpose: b.purpose,
    idempotencyKey: b.idempotencyKey,
    createdAt: iso(b.createdAt),
  };
}

const str = (v: string | boolean | undefined) => (typeof v === 'string' ? v : '');

function positiveInt(v: string, what: string): number {
  if (!/^\d+$/.test(v) || Number(v) < 1) throw new CliError(`${what} must be a positive integer, got ${v}`, 'INVALID_ARGUMENT');
  return Number(v);
}

export async function walletCommand(sub: string | undefined, arg: string | undefined, flags: Flags, dir: string, role: string, json: boolean): Promise<Result> {
  const c = await connect(WalletService, dir, role);
  if (sub === 'create') {
    const keysetId = str(flags.keyset);
    if (!keysetId) throw new CliError('--keyset is required: the keyset id from `custody keyset create`', 'INVALID_ARGUMENT');
    const count = positiveInt(str(flags.count) || '1', '--count');
    // A key of our own makes the batch resumable: each call below continues the same batch.
    const idempotencyKey = str(flags['idempotency-key']) || `cli-${randomUUID()}`;
    const req = { keysetId, count, label: str(flags.label), userId: str(flags.user), purpose: str(flags.purpose), idempotencyKey, fillLimit: FILL_STEP };
    const show = progress('creating wallets', count, json && !process.stderr.isTTY);
    let batch: WalletBatch;
    for (;;) {
      batch = (await c.createWallets(req, { deadlineMs: 300_000 })).batch!;
      show(batch.created);
      if (batch.complete) break;
    }
    const out: Record<string, unknown> = batchJson(batch);
    if (count <= LIST_INLINE) {
      const page = await c.listWallets({ keysetId, batchId: batch.batchId, limit: LIST_INLINE });
      out.wallets = page.wallets.map(walletJson);
    }
    const text = `created ${batch.count} wallets in batch ${batch.batchId} (indexes ${batch.firstIndex}..${batch.firstIndex + batch.count - 1})\n` +
      `  list them: custody wallet list --keyset ${keysetId} --batch ${batch.batchId}`;
    return { out, text };
  }
  if (sub === 'list') {
    const keysetId = str(flags.keyset);
    if (!keysetId) throw new CliError('--keyset is required', 'INVALID_ARGUMENT');
    const limit = flags.limit ? positiveInt(str(flags.limit), '--limit') : 100;
    const page = await c.listWallets({ keysetId, batchId: str(flags.batch), userId: str(flags.user), limit, pageToken: str(flags['page-token']) });
    const wallets = page.wallets.map(walletJson);
    const text =
      wallets.map((w) => `${w.walletId}  ${w.path.padEnd(12)} ${Object.values(w.addresses)[0] ?? w.publicKey}  ${w.label}`).join('\n') +
      (page.nextPageToken ? `\nmore: --page-token ${page.nextPageToken}` : '');
    return { out: { wallets, nextPageToken: page.nextPageToken }, text: text || 'no wallets' };
  }
  if (sub === 'show') {
    const walletId = arg ?? str(flags.wallet);
    if (!walletId) throw new CliError('usage: custody wallet show WALLET_ID', 'INVALID_ARGUMENT');
    const w = walletJson((await c.getWallet({ walletId })).wallet!);
    return { out: w, text: JSON.stringify(w, null, 2) };
  }
  throw new CliError('usage: custody wallet create|list|show', 'INVALID_ARGUMENT');
}
