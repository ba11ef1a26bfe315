/**
 * Coordinator process. Prints one JSON line `{"event":"ready",...}` on stdout when it serves, and
 * stops cleanly on SIGINT/SIGTERM.
 *
 *   node dist/coordinator/main.js --data DIR --tls-dir DIR --roster FILE --key-file FILE
 *        [--listen 127.0.0.1:0] [--database-url postgres://...] [--threshold 2] [--id NAME] [--nats URL]
 *
 * --id names this coordinator (default "coordinator"); several coordinators on one database need
 * distinct ids, and a restart with the same id resumes that coordinator's unfinished requests at once.
 * --nats (or CUSTODY_NATS_URL) turns on the JetStream intake (docs/pipeline.md).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { hexToBytes } from '@noble/hashes/utils.js';
import { ed25519KeyPair, ed25519Signer, SIGN_BATCH_DOMAIN, signBatchMessage } from '../crypto/ed25519-sig.js';
import { parseRoster, type RosterFile } from '../nodes/roster.js';
import { ApprovalService, AuditService, ClusterService, KeysetService, PolicyService, SigningService, WalletService } from '../proto/gen/custody/v1/api_pb.js';
import { addService, bindServer, SERVER_OPTIONS } from '../runtime/grpc.js';
import { logGroupBackend } from '../runtime/group-backend.js';
import { createLogger } from '../runtime/log.js';
import { clientCredentials, loadPem, serverCredentials } from '../runtime/tls.js';
import { onStopSignal, runMain } from '../runtime/process.js';
import { initTracing, shutdownTracing } from '../runtime/tracing.js';
import { ACCESS, auditApi, clusterApi, keysetApi, signingApi, type ApiContext } from './api.js';
import { Approvals } from './approvals.js';
import { NodeRegistry } from './node-registry.js';
import { OperationApprovals } from './operation-approvals.js';
import { Operations } from './operations.js';
import { Policies } from './policies.js';
import { Refreshes } from './refresh.js';
import { APPROVAL_ACCESS, approvalApi, POLICY_ACCESS, policyApi } from './policy-api.js';
import { NonceCache } from './nonce-cache.js';
import { NatsPipeline } from './pipeline.js';
import { RequestService } from './requests.js';
import { EcdsaSigning } from './ecdsa-signing.js';
import { Quorums } from './quorum.js';
import { ShareBatcher } from './share-batcher.js';
import { Signers } from './signers.js';
import { FrostSigning } from './signing.js';
import { openDb } from './store/db.js';
import { listKeysets } from './store/repo.js';
import { WALLET_ACCESS, walletApi } from './wallet-api.js';
import { WalletDeriver } from './wallet-deriver.js';
import { Wallets } from './wallets.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      data: { type: 'string' },
      'tls-dir': { type: 'string' },
      roster: { type: 'string' },
      'key-file': { type: 'string' },
      listen: { type: 'string', default: '127.0.0.1:0' },
      'database-url': { type: 'string' },
      threshold: { type: 'string', default: '2' },
      id: { type: 'string', default: 'coordinator' },
      nats: { type: 'string' },
    },
  });
  const { data, roster: rosterPath } = values;
  const tlsDir = values['tls-dir'];
  const keyFile = values['key-file'];
  if (!data || !tlsDir || !rosterPath || !keyFile) {
    throw new Error('usage: main.js --data DIR --tls-dir DIR --roster FILE --key-file FILE [--listen HOST:PORT] [--database-url URL] [--threshold T]');
  }
  initTracing('custody-coordinator');
  const log = createLogger('coordinator');
  logGroupBackend(log);
  const roster = parseRoster(JSON.parse(await readFile(rosterPath, 'utf8')) as RosterFile);
  const keyPair = ed25519KeyPair(hexToBytes((await readFile(keyFile, 'utf8')).trim()));
  if (Buffer.compare(Buffer.from(keyPair.publicKey), Buffer.from(roster.coordinatorKey)) !== 0) {
    throw new Error(`the key in ${keyFile} is not the coordinator key in the roster ${rosterPath}`);
  }
  const sign = ed25519Signer(keyPair);

  const db = await openDb({ url: values['database-url'] ?? process.env.CUSTODY_DATABASE_URL, dataDir: join(data, 'db') });
  const ca = await loadPem(tlsDir, 'ca');
  const own = await loadPem(tlsDir, 'coordinator');
  const registry = new NodeRegistry(
    [...roster.nodes.values()].map((n) => ({ nodeId: n.nodeId, address: n.address })),
    (nodeId) => clientCredentials(ca, own, { role: 'node', name: nodeId }),
    log,
  );
  await registry.probeAll();
  registry.start();
  const nonces = new NonceCache(registry);
  const quorums = new Quorums(db, registry, log);
  await quorums.load();
  const batcher = new ShareBatcher(registry, (authorizations) => sign(SIGN_BATCH_DOMAIN, signBatchMessage(authorizations)));
  const deriver = new WalletDeriver();
  const wallets = new Wallets(db, deriver, log);
  const ecdsa = new EcdsaSigning(registry, quorums, batcher, log);
  const signing = new Signers(db, wallets, new FrostSigning(registry, nonces, quorums, batcher), ecdsa);
  let pipeline: NatsPipeline | undefined;
  const policies = new Policies(db, registry, log, roster.admins, roster.adminQuorum);
  await policies.load();
  const requests = new RequestService(db, signing, log, { owner: values.id!, onFinished: (row) => pipeline?.onFinished(row), policies });
  const approvals = new Approvals(db, policies, requests, log, values.id!);
  const operations = new Operations(db, policies, log);
  const afterSetupRerun = (keysetId: string) => {
    quorums.clearBans(keysetId);
    ecdsa.pool.dropKeyset(keysetId);
  };
  const ctx: ApiContext = { db, registry, nonces, requests, defaultThreshold: Number(values.threshold), log, afterSetupRerun, nodeKeys: new Map([...roster.nodes].map(([id, n]) => [id, n.encryptionKey])),
    poolLevel: (keysetId) => ecdsa.pool.level(keysetId),
    operations,
    refreshes: new Refreshes(db, registry, log, (keysetId) => signing.forget(keysetId)),
  };

  const server = new grpc.Server(SERVER_OPTIONS);
  addService(server, KeysetService, keysetApi(ctx), ACCESS.keyset, { logger: log });
  addService(server, SigningService, signingApi(ctx), ACCESS.signing, { logger: log });
  addService(server, AuditService, auditApi(ctx), ACCESS.audit, { logger: log });
  addService(server, ClusterService, clusterApi(ctx), ACCESS.cluster, { logger: log });
  addService(server, WalletService, walletApi(wallets), WALLET_ACCESS, { logger: log });
  addService(server, PolicyService, policyApi(policies), POLICY_ACCESS, { logger: log });
  addService(server, ApprovalService, approvalApi(db, approvals, new OperationApprovals(db, policies, operations, log)), APPROVAL_ACCESS, { logger: log });
  const port = await bindServer(server, values.listen!, serverCredentials(ca, own));
  const address = `${values.listen!.slice(0, values.listen!.lastIndexOf(':'))}:${port}`;
  requests.startResuming();
  policies.start();
  ctx.refreshes.start();
  const expiry = setInterval(() => void Promise.all([approvals.expire(), operations.expire()]).catch((e: unknown) => log.warn({ err: e instanceof Error ? e.message : String(e) }, 'approval expiry failed')), 5_000);
  expiry.unref();
  // Pools start filling now rather than after each keyset's first signature.
  ecdsa.prefill((await listKeysets(db, { limit: 1000 })).filter((k) => k.scheme === 'ecdsa'));
  const natsUrl = values.nats ?? process.env.CUSTODY_NATS_URL;
  if (natsUrl) pipeline = await NatsPipeline.start({ url: natsUrl, name: values.id!, requests, db, log });
  log.info({ address, database: db.dialect, nodesUp: registry.upNodes().length }, 'coordinator ready');
  process.stdout.write(JSON.stringify({ event: 'ready', pid: process.pid, address, id: values.id, database: db.dialect, nats: Boolean(natsUrl) }) + '\n');

  onStopSignal(async (signal) => {
    log.info({ signal }, 'coordinator stopping');
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    clearInterval(expiry);
    policies.stop();
    ctx.refreshes.stop();
    await pipeline?.stop();
    await requests.drain();
    registry.close();
    await deriver.close();
    await db.close();
    await shutdownTracing();
  });
}

runMain('custody coordinator', main);
