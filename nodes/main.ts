/**
 * Signer node process. Prints one JSON line `{"event":"ready",...}` on stdout when it serves, and
 * stops cleanly on SIGINT/SIGTERM.
 *
 *   node dist/nodes/main.js --id node-1 --data DIR --tls-dir DIR --roster FILE [--listen 127.0.0.1:0]
 *
 * The keystore passphrase comes from CUSTODY_KEYSTORE_PASSPHRASE or --passphrase-file.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { NodeService } from '../proto/gen/custody/v1/node_pb.js';
import { addService, bindServer, SERVER_OPTIONS } from '../runtime/grpc.js';
import { createLogger } from '../runtime/log.js';
import { loadPem, serverCredentials } from '../runtime/tls.js';
import { onStopSignal, runMain } from '../runtime/process.js';
import { initTracing, shutdownTracing } from '../runtime/tracing.js';
import { VERSION } from '../runtime/version.js';
import { loadOrCreateIdentity } from './identity.js';
import { KeyShares } from './keyshares.js';
import { RosterSource } from './roster.js';
import { nodeService } from './service.js';
import { PeerBans } from './peer-bans.js';
import { PolicyGuard } from './policy-guard.js';
import { Sessions } from './sessions.js';
import { FrostSigner, type Fault } from './signer.js';
import { LocalSealer } from './store/local-sealer.js';
import { NonceStore } from './store/nonce-store.js';
import { SealedFileStore } from './store/sealed-file-store.js';
import { logGroupBackend } from '../runtime/group-backend.js';
import type { Sealer } from './store/sealer.js';
import { rewrapSealedStore, VaultSealer } from './store/vault-sealer.js';
import { withVaultErrors } from './vault-errors.js';
import { PresignThread, presignNice, presignWorkerFile } from './presign-thread.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      id: { type: 'string' },
      data: { type: 'string' },
      'tls-dir': { type: 'string' },
      roster: { type: 'string' },
      listen: { type: 'string', default: '127.0.0.1:0' },
      'passphrase-file': { type: 'string' },
      sealer: { type: 'string', default: 'local' },
      'vault-addr': { type: 'string' },
      'vault-role-id-file': { type: 'string' },
      'vault-secret-id-file': { type: 'string' },
      'vault-transit-key': { type: 'string' },
      'vault-ca-file': { type: 'string' },
      'vault-rewrap': { type: 'boolean' },
    },
  });
  const nodeId = values.id;
  const dataDir = values.data;
  const tlsDir = values['tls-dir'];
  const rosterPath = values.roster;
  if (!nodeId || !dataDir || !tlsDir || !rosterPath) {
    throw new Error('usage: main.js --id NODE --data DIR --tls-dir DIR --roster FILE [--listen HOST:PORT] [--passphrase-file FILE]');
  }
  initTracing(`custody-node-${nodeId}`);
  const log = createLogger(`node`, { base: { nodeId } });
  logGroupBackend(log);
  // Read before anything opens, so a bad value stops the node with a message and nothing else.
  const nice = presignNice();

  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const sealer = await openSealer(values, nodeId, dataDir, log);
  const store = new SealedFileStore(join(dataDir, 'sealed'), sealer);
  if (values['vault-rewrap'] && sealer instanceof VaultSealer) {
    // After the operator rotated this node's Transit key: every record onto the newest version.
    log.info(await rewrapSealedStore(store, sealer), 'sealed records rewrapped to the latest key version');
  }
  const identity = await loadOrCreateIdentity(store);
  const shares = new KeyShares(store);
  await shares.load();
  const bans = new PeerBans(store);
  await bans.load();
  const nonces = await NonceStore.open(store, join(dataDir, 'nonces'));
  const roster = new RosterSource(rosterPath);
  const policy = new PolicyGuard(store, roster, log);
  await policy.load();

  const allowRecoveryExport = process.env.CUSTODY_ALLOW_RECOVERY_EXPORT === '1';
  if (allowRecoveryExport) log.warn('recovery export is ENABLED on this node: an admin can have its shares sealed to the roster recovery key');
  const fault = process.env.CUSTODY_FAULT_INJECTION as Fault;
  if (fault) log.warn({ fault }, 'FAULT INJECTION ENABLED: this node misbehaves on purpose (tests only)');
  const signer = new FrostSigner(nodeId, shares, nonces, async () => (await roster.getRecent())?.coordinatorKey, policy, fault);
  const sessions = new Sessions(identity);
  const presignFile = presignWorkerFile();
  const presign = presignFile ? new PresignThread(presignFile, { nice, ...(fault ? { fault } : {}) }, log) : undefined;

  const server = new grpc.Server(SERVER_OPTIONS);
  const checkVaultCredentials = sealer instanceof VaultSealer ? () => sealer.checkCredentials() : undefined;
  const service = nodeService({ nodeId, version: VERSION, identity, roster, sessions, shares, bans, policy, nonces, signer, shareStoreKind: sealer.kind, log, fault, ...(presign ? { presign } : {}), allowRecoveryExport, rewrap: rewrapper(store, sealer), checkVaultCredentials });
  // Vault failures reach the coordinator as what they are (UNAVAILABLE, FAILED_PRECONDITION), not as INTERNAL.
  addService(server, NodeService, withVaultErrors(nodeId, service), ['coordinator'], { logger: log });
  const creds = serverCredentials(await loadPem(tlsDir, 'ca'), await loadPem(tlsDir, nodeId));
  const port = await bindServer(server, values.listen!, creds);
  const host = values.listen!.slice(0, values.listen!.lastIndexOf(':'));
  const address = `${host}:${port}`;
  const pub = { nodeId, address, encryptionKey: bytesToHex(identity.encryptionPublic), signingKey: bytesToHex(identity.signingPublic) };
  await writeFile(join(dataDir, 'identity.json'), JSON.stringify(pub, null, 2));
  log.info({ address, keysets: shares.size }, 'node ready');
  process.stdout.write(JSON.stringify({ event: 'ready', pid: process.pid, ...pub }) + '\n');

  onStopSignal(async (signal) => {
    log.info({ signal }, 'node stopping');
    sessions.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    await presign?.close();
    await nonces.close();
    await sealer.close?.();
    await shutdownTracing();
  });
}

/** Online rewrap for the Vault sealer (custody vault rotate); absent for the local keystore. */
function rewrapper(store: SealedFileStore, sealer: Sealer) {
  if (!(sealer instanceof VaultSealer)) return undefined;
  return async () => {
    const r = await rewrapSealedStore(store, sealer);
    const versions = Object.keys(r.after.byVersion).map(Number);
    return { transitKey: sealer.transitKey, latestVersion: r.latestVersion, records: r.after.records, oldestVersion: versions.length ? Math.min(...versions) : r.latestVersion };
  };
}

/** The local Argon2id keystore (default) or Vault Transit (docs/vault.md); fails with what to do next. */
async function openSealer(values: Record<string, string | boolean | undefined>, nodeId: string, dataDir: string, log: ReturnType<typeof createLogger>): Promise<Sealer> {
  if (values.sealer === 'vault') {
    const address = (values['vault-addr'] as string | undefined) ?? process.env.VAULT_ADDR;
    const roleIdFile = values['vault-role-id-file'] as string | undefined;
    const secretIdFile = values['vault-secret-id-file'] as string | undefined;
    if (!address || !roleIdFile || !secretIdFile) throw new Error('--sealer vault needs --vault-addr (or VAULT_ADDR), --vault-role-id-file and --vault-secret-id-file');
    const caFile = values['vault-ca-file'] as string | undefined;
    return VaultSealer.openWithFiles({
      address,
      roleIdFile,
      secretIdFile,
      transitKey: (values['vault-transit-key'] as string | undefined) ?? `custody-${nodeId}`,
      ...(caFile ? { caCert: await readFile(caFile, 'utf8') } : {}),
      logger: log,
    });
  }
  if (values.sealer !== 'local') throw new Error(`unknown --sealer ${String(values.sealer)}: use local or vault`);
  const passphrase = values['passphrase-file'] ? (await readFile(values['passphrase-file'] as string, 'utf8')).trim() : process.env.CUSTODY_KEYSTORE_PASSPHRASE;
  if (!passphrase) throw new Error('no keystore passphrase: set CUSTODY_KEYSTORE_PASSPHRASE or pass --passphrase-file');
  return LocalSealer.open(join(dataDir, 'keystore'), passphrase);
}

runMain('custody node', main);
