/** Worker thread for WalletDeriver: derives one range of wallet keys and addresses. */
import { parentPort } from 'node:worker_threads';
import { deriveWalletBatch } from '../crypto/hd/wallets.js';
import type { DeriveJob, DeriveReply } from './wallet-deriver.js';

parentPort?.on('message', (job: DeriveJob) => {
  let reply: DeriveReply;
  try {
    reply = { id: job.id, batch: deriveWalletBatch(job.scheme, job.root, job.from, job.count) };
  } catch (e) {
    reply = { id: job.id, error: e instanceof Error ? e.message : String(e) };
  }
  parentPort!.postMessage(reply);
});
