/** The public WalletService: batch creation, lookup and paging of HD wallets. */
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { schemeToProto } from '../proto/convert.js';
import { WalletBatchSchema, WalletSchema, type WalletService } from '../proto/gen/custody/v1/api_pb.js';
import type { CallContext, Role, ServiceImpl } from '../runtime/grpc.js';
import type { Wallet, WalletBatch } from './store/wallets.js';
import type { Wallets } from './wallets.js';

const READERS: readonly Role[] = ['payment', 'approver', 'operator', 'admin'];

/** Payment services create deposit wallets for their users; operators and admins may too. */
export const WALLET_ACCESS = {
  createWallets: ['payment', 'operator', 'admin'] as readonly Role[],
  getWallet: READERS,
  listWallets: READERS,
};

export function walletToProto(w: Wallet): MessageInitShape<typeof WalletSchema> {
  return {
    walletId: w.walletId,
    keysetId: w.keysetId,
    scheme: schemeToProto(w.scheme),
    index: w.index,
    path: w.path,
    publicKey: w.publicKey,
    addresses: { ethereum: w.ethereum ?? '', bitcoinP2wpkh: w.bitcoinP2wpkh ?? '', bitcoinP2tr: w.bitcoinP2tr ?? '', solana: w.solana ?? '' },
    label: w.label,
    userId: w.userId,
    purpose: w.purpose,
    batchId: w.batchId,
    createdAt: timestampFromDate(w.createdAt),
  };
}

export function batchToProto(b: WalletBatch): MessageInitShape<typeof WalletBatchSchema> {
  return {
    batchId: b.batchId,
    keysetId: b.keysetId,
    firstIndex: b.firstIndex,
    count: b.count,
    created: b.created,
    complete: b.completedAt !== null,
    label: b.label,
    userId: b.userId,
    purpose: b.purpose,
    idempotencyKey: b.idempotencyKey ?? '',
    createdAt: timestampFromDate(b.createdAt),
  };
}

export function walletApi(wallets: Wallets): ServiceImpl<typeof WalletService> {
  return {
    async createWallets(req, ctx: CallContext) {
      const batch = await wallets.create({
        keysetId: req.keysetId,
        count: req.count,
        label: req.label,
        userId: req.userId,
        purpose: req.purpose,
        idempotencyKey: req.idempotencyKey,
        fillLimit: req.fillLimit,
        actor: `${ctx.role}:${ctx.subject}`,
      });
      return { batch: batchToProto(batch) };
    },
    async getWallet(req) {
      return { wallet: walletToProto(await wallets.get(req.walletId)) };
    },
    async listWallets(req) {
      const page = await wallets.list({ keysetId: req.keysetId, batchId: req.batchId, userId: req.userId, limit: req.limit, pageToken: req.pageToken });
      return { wallets: page.wallets.map(walletToProto), nextPageToken: page.nextPageToken };
    },
  };
}
