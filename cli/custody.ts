#!/usr/bin/env node
/**
 * `custody`: the command line for operators, payment services and approvers. Every client command
 * takes --dir (default ./.custody or CUSTODY_DIR) and --json (one JSON object on stdout).
 */
import { parseArgs } from 'node:util';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { status as grpcStatus } from '@grpc/grpc-js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { isScheme } from '../crypto/schemes.js';
import { schemeFromProto, schemeToProto } from '../proto/convert.js';
import {
  AuditService,
  ClusterService,
  KeysetService,
  NodeState,
  SigningService,
  type Keyset,
} from '../proto/gen/custody/v1/api_pb.js';
import { RemoteRpcError } from '../runtime/grpc.js';
import { onStopSignal } from '../runtime/process.js';
import { CliError, connect } from './client.js';
import { clusterDir } from './layout.js';
import { LocalCluster } from './launcher.js';
import { importCeremony } from './import-ceremony.js';
import { migrateCommand } from './migrate-commands.js';
import { exportRecoveryCommand, recoveryCommand } from './recovery-commands.js';
import { approverCommand, decideCommand, policyCommand } from './policy-commands.js';
import { operationCommand } from './operation-commands.js';
import { progress } from './progress.js';
import { requestJson } from './request-json.js';
import { vaultCommand } from './vault-commands.js';
import { walletCommand } from './wallet-commands.js';

type Flags = Record<string, string | boolean | undefined>;

const USAGE = `custody: threshold-signing custody cluster

  custody up [--nodes N] [--threshold T] [--database-url URL] [--nats URL] [--trace-files]
             [--sealer local|vault --vault-addr URL --vault-credentials DIR]
                                           start a local cluster (coordinator + N nodes); on an existing
                                           folder a larger N adds nodes; --trace-files
                                           writes each process's spans to logs/<name>.spans.jsonl
  custody keyset create --scheme ed25519|secp256k1|bip340|ecdsa [--threshold T] [--nodes a,b,c] [--label L]
  custody keyset import --scheme S (--mnemonic-file F [--passphrase-file P] [--path "m/44'/60'/0'"]
                        | --private-key-file F [--chain-code HEX]) [--threshold T] [--nodes a,b,c] [--label L]
                                           split a legacy key across the nodes (admin); nothing is stored whole
  custody keyset rerun-setup ID            re-run an ecdsa keyset's pairwise OT setup and clear its bans (admin)
  custody keyset refresh ID                proactive refresh of every member's share; same public key (admin)
  custody keyset reshare ID [--threshold T] [--add-node a,b] [--remove-node c]
                                           new threshold and/or members; same public key (admin)
  custody keyset export-recovery ID --out FILE   disaster recovery: shares sealed to the roster recovery key (admin)
  custody recovery keygen --out FILE [--install] an offline X25519 recovery key (--install pins it in this cluster's roster)
  custody recovery reconstruct --bundle FILE --key FILE --out FILE   offline: rebuild and verify the key
  custody keyset show ID
  custody keyset list [--limit N] [--after ID]
  custody sign --keyset ID --digest HEX [--idempotency-key K]
  custody sign --wallet ID --digest HEX [--idempotency-key K]      sign with an HD wallet's key
  custody sign (--keyset ID | --wallet ID) --eth-tx HEX            an unsigned Ethereum transaction, judged by the policy:
                                           status signed (signature, signedTx), pending_approval (missing) or rejected (rule)
  custody policy set --file FILE [--admin-key FILE]   sign a policy with an admin key and install it (docs/policy.md)
  custody policy show
  custody approver keygen --out FILE       an approver's Ed25519 key (0600); prints {"publicKey"}
  custody approver add --name NAME --role ROLE --public-key HEX   register it (a new signed policy version)
  custody approve ID --key FILE            sign the decoded request, or the operator operation, with an approver key
  custody reject ID --key FILE --reason TEXT
  custody operation show ID                an operator operation held for approvals (docs/policy.md, operator quorum)
  custody wallet create --keyset ID --count N [--label L] [--user U] [--purpose P] [--idempotency-key K]
                                           create N wallets (m/0/i) in one batch; progress on stderr
  custody wallet list --keyset ID [--batch B] [--user U] [--limit N] [--page-token T]
  custody wallet show ID
  custody sign --batch FILE        JSON lines {"keysetId" or "walletId","digest","idempotencyKey"}; progress on stderr
  custody request show ID
  custody nodes
  custody health
  custody node repair NODE                 rebuild the shares of a node that lost its data folder (admin)
  custody vault rotate --vault-addr URL --vault-token-file FILE   rotate every node's Transit key, rewrap online,
                                           then raise min_decryption_version (admin; operator Vault token)
  custody db export --out DIR [--database-url URL]      copy the coordinator database (cluster stopped)
  custody db import --from DIR --database-url URL      into an empty database, then verify it
  custody db verify [--from DIR] [--database-url URL]  counts, audit chain, every wallet re-derived
  custody audit verify
  custody audit list [--after SEQ] [--limit N]

Every command takes --dir DIR (default ./.custody or $CUSTODY_DIR), --json, and --as ROLE to pick the
client certificate (payment, approver, operator, admin; each command has a sensible default).`;

const hex = (b: Uint8Array) => bytesToHex(b);

function keysetJson(k: Keyset) {
  return {
    keysetId: k.keysetId,
    scheme: schemeFromProto(k.scheme) ?? 'unspecified',
    publicKey: hex(k.publicKey),
    threshold: k.threshold,
    nodes: k.members.map((m) => m.nodeId),
    chainCode: hex(k.chainCode),
    ...(k.extendedPublicKey ? { xpub: k.extendedPublicKey } : {}),
    ...(schemeFromProto(k.scheme) === 'ecdsa' ? { presignaturesReady: k.presignaturesReady } : {}),
    epoch: k.epoch,
    label: k.label,
    createdAt: k.createdAt ? timestampDate(k.createdAt).toISOString() : undefined,
    members: k.members.map((m) => ({ index: m.index, nodeId: m.nodeId, verifyingShare: hex(m.verifyingShare) })),
  };
}

function need(flags: Flags, name: string, hint: string): string {
  const v = flags[name];
  if (typeof v !== 'string' || v === '') throw new CliError(`--${name} is required: ${hint}`, 'INVALID_ARGUMENT');
  return v;
}

function parseHex(v: string, what: string): Uint8Array {
  const clean = v.startsWith('0x') ? v.slice(2) : v;
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new CliError(`${what} must be hex`, 'INVALID_ARGUMENT');
  return hexToBytes(clean);
}

/** `--sealer vault --vault-addr URL --vault-credentials DIR` (DIR: <node>.role-id and <node>.secret-id files). */
function vaultOptions(flags: Flags): { address: string; credentialsDir: string } | undefined {
  const sealer = (flags.sealer as string | undefined) ?? 'local';
  if (sealer === 'local') return undefined;
  if (sealer !== 'vault') throw new CliError(`unknown --sealer ${sealer}: use local or vault`, 'INVALID_ARGUMENT');
  const address = (flags['vault-addr'] as string | undefined) ?? process.env.VAULT_ADDR;
  const credentialsDir = flags['vault-credentials'] as string | undefined;
  if (!address || !credentialsDir) {
    throw new CliError('--sealer vault needs --vault-addr URL and --vault-credentials DIR (the <node>.role-id and <node>.secret-id files from deploy/vault/setup.sh)', 'INVALID_ARGUMENT');
  }
  return { address, credentialsDir };
}

async function up(flags: Flags, json: boolean): Promise<void> {
  const dir = clusterDir(flags.dir as string | undefined);
  const progress = (m: string) => {
    if (!json) process.stderr.write(`custody up: ${m}\n`);
  };
  const cluster = await LocalCluster.start({
    dir,
    nodes: flags.nodes ? Number(flags.nodes) : undefined,
    threshold: flags.threshold ? Number(flags.threshold) : undefined,
    databaseUrl: flags['database-url'] as string | undefined,
    natsUrl: flags.nats as string | undefined,
    traceFiles: flags['trace-files'] === true,
    vault: vaultOptions(flags),
    onProgress: progress,
  });
  process.stdout.write(JSON.stringify({ event: 'ready', ...cluster.describe() }) + '\n');
  if (!json) process.stderr.write(`custody up: ready; coordinator at ${cluster.coordinator!.address}. Try: custody keyset create --scheme ed25519 --dir ${dir}\n`);
  for (const p of [cluster.coordinator!, ...cluster.nodes.values()]) {
    p.child.once('exit', (code, signal) => {
      if (!stopping) process.stdout.write(JSON.stringify({ event: 'exited', process: p.name, pid: p.pid, code, signal }) + '\n');
    });
  }
  let stopping = false;
  onStopSignal(async () => {
    stopping = true;
    await cluster.stop();
    process.stdout.write(JSON.stringify({ event: 'stopped' }) + '\n');
  });
  await new Promise(() => undefined);
}

async function run(argv: string[], json: boolean): Promise<{ out: unknown; text: string; exitCode?: number }> {
  const { values: flags, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      dir: { type: 'string' },
      json: { type: 'boolean' },
      as: { type: 'string' },
      nodes: { type: 'string' },
      threshold: { type: 'string' },
      'database-url': { type: 'string' },
      scheme: { type: 'string' },
      label: { type: 'string' },
      keyset: { type: 'string' },
      digest: { type: 'string' },
      'idempotency-key': { type: 'string' },
      batch: { type: 'string' },
      limit: { type: 'string' },
      after: { type: 'string' },
      count: { type: 'string' },
      user: { type: 'string' },
      purpose: { type: 'string' },
      wallet: { type: 'string' },
      'page-token': { type: 'string' },
      'mnemonic-file': { type: 'string' },
      'passphrase-file': { type: 'string' },
      path: { type: 'string' },
      'private-key-file': { type: 'string' },
      'chain-code': { type: 'string' },
      out: { type: 'string' },
      from: { type: 'string' },
      force: { type: 'boolean' },
      bundle: { type: 'string' },
      key: { type: 'string' },
      install: { type: 'boolean' },
      'eth-tx': { type: 'string' },
      file: { type: 'string' },
      'admin-key': { type: 'string' },
      'admin-name': { type: 'string' },
      name: { type: 'string' },
      role: { type: 'string' },
      'public-key': { type: 'string' },
      'add-node': { type: 'string' },
      'remove-node': { type: 'string' },
      reason: { type: 'string' },
      'vault-addr': { type: 'string' },
      'vault-token-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const dir = clusterDir(flags.dir);
  const [cmd, sub, arg] = positionals;
  const role = (fallback: string) => flags.as ?? fallback;

  switch (cmd) {
    case 'keyset': {
      if (sub === 'create') {
        const scheme = need(flags, 'scheme', 'ed25519, secp256k1, bip340 or ecdsa');
        if (!isScheme(scheme)) throw new CliError(`unknown scheme ${scheme}: use ed25519, secp256k1, bip340 or ecdsa`, 'INVALID_ARGUMENT');
        const c = await connect(KeysetService, dir, role('operator'));
        const res = await c.createKeyset(
          { scheme: schemeToProto(scheme), threshold: flags.threshold ? Number(flags.threshold) : 0, nodeIds: flags.nodes ? flags.nodes.split(',') : [], label: flags.label ?? '' },
          { deadlineMs: 120_000 },
        );
        const k = keysetJson(res.keyset!);
        return { out: k, text: `keyset ${k.keysetId}\n  scheme     ${k.scheme}\n  public key ${k.publicKey}\n  threshold  ${k.threshold} of ${k.nodes.join(', ')}` };
      }
      if (sub === 'import') {
        const scheme = need(flags, 'scheme', 'ed25519, secp256k1, bip340 or ecdsa');
        if (!isScheme(scheme)) throw new CliError(`unknown scheme ${scheme}: use ed25519, secp256k1, bip340 or ecdsa`, 'INVALID_ARGUMENT');
        const { keyset, source } = await importCeremony({
          dir,
          role: role('admin'),
          scheme,
          mnemonicFile: flags['mnemonic-file'],
          passphraseFile: flags['passphrase-file'],
          path: flags.path ?? "m/44'/60'/0'",
          privateKeyFile: flags['private-key-file'],
          chainCode: flags['chain-code'],
          threshold: flags.threshold ? Number(flags.threshold) : 2,
          nodeIds: flags.nodes ? flags.nodes.split(',') : undefined,
          label: flags.label ?? '',
        });
        const k = { ...keysetJson(keyset), source };
        return { out: k, text: `imported keyset ${k.keysetId} (${source})\n  scheme     ${k.scheme}\n  public key ${k.publicKey}\n  threshold  ${k.threshold} of ${k.nodes.join(', ')}` };
      }
      if (sub === 'refresh') {
        const id = arg ?? need(flags, 'keyset', 'the keyset id');
        const c = await connect(KeysetService, dir, role('admin'));
        if (!json) process.stderr.write(`custody: refreshing the shares of ${id} on every member (two phases: prepare, then commit)...\n`);
        const res = await c.refreshKeyset({ keysetId: id }, { deadlineMs: 300_000 });
        const k = keysetJson(res.keyset!);
        const pending = res.pendingNodes.length ? `; ${res.pendingNodes.join(', ')} take the new share when they are back` : '';
        return { out: { ...k, epoch: res.epoch, pendingNodes: res.pendingNodes }, text: `keyset ${id} refreshed: share epoch ${res.epoch}, public key unchanged (${k.publicKey})${pending}` };
      }
      if (sub === 'reshare') {
        const id = arg ?? need(flags, 'keyset', 'the keyset id');
        const list = (v: string | undefined) => (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
        const add = list(flags['add-node']);
        const remove = list(flags['remove-node']);
        const c = await connect(KeysetService, dir, role('admin'));
        if (!json) process.stderr.write(`custody: resharing ${id} (two phases: deal to the new members, then commit)...\n`);
        const res = await c.reshareKeyset({ keysetId: id, threshold: flags.threshold ? Number(flags.threshold) : 0, addNodes: add, removeNodes: remove }, { deadlineMs: 300_000 });
        const k = keysetJson(res.keyset!);
        const notes = [
          res.pendingNodes.length ? `${res.pendingNodes.join(', ')} take their new share when they are back` : '',
          res.unretiredNodes.length ? `${res.unretiredNodes.join(', ')} left the keyset but still hold an old share: wipe their data folders if they never come back` : '',
        ].filter(Boolean);
        return {
          out: { ...k, epoch: res.epoch, pendingNodes: res.pendingNodes, unretiredNodes: res.unretiredNodes },
          text: `keyset ${id} reshared: ${k.threshold} of ${k.nodes.join(', ')}, share epoch ${res.epoch}, public key unchanged (${k.publicKey})${notes.length ? '\n  ' + notes.join('\n  ') : ''}`,
        };
      }
      if (sub === 'rerun-setup') {
        const id = arg ?? need(flags, 'keyset', 'the keyset id');
        const c = await connect(KeysetService, dir, role('admin'));
        const res = await c.rerunSetup({ keysetId: id }, { deadlineMs: 180_000 });
        const out = { keysetId: id, clearedBans: res.clearedBans };
        return { out, text: `pairwise setup of ${id} re-run on every member; bans cleared: ${res.clearedBans.join(', ') || 'none'}` };
      }
      if (sub === 'export-recovery') return exportRecoveryCommand(arg ?? need(flags, 'keyset', 'the keyset id'), flags, dir, role('admin'));
      if (sub === 'show') {
        const id = arg ?? need(flags, 'keyset', 'the keyset id');
        const c = await connect(KeysetService, dir, role('operator'));
        const k = keysetJson((await c.getKeyset({ keysetId: id })).keyset!);
        return { out: k, text: JSON.stringify(k, null, 2) };
      }
      if (sub === 'list') {
        const c = await connect(KeysetService, dir, role('operator'));
        const res = await c.listKeysets({ limit: flags.limit ? Number(flags.limit) : 100, afterKeysetId: flags.after ?? '' });
        const keysets = res.keysets.map(keysetJson);
        return { out: { keysets }, text: keysets.map((k) => `${k.keysetId}  ${k.scheme.padEnd(9)}  ${k.threshold}-of-${k.nodes.length}  ${k.publicKey}`).join('\n') || 'no keysets' };
      }
      throw new CliError('usage: custody keyset create|import|refresh|reshare|rerun-setup|export-recovery|show|list', 'INVALID_ARGUMENT');
    }
    case 'policy':
      return policyCommand(sub, flags, dir, role('admin'));
    case 'approver':
      return approverCommand(sub, flags, dir, role('admin'));
    case 'approve':
    case 'reject':
      return decideCommand(cmd, sub, flags, dir, role('approver'));
    case 'operation':
      return operationCommand(sub, arg, dir, role('operator'));
    case 'recovery':
      return recoveryCommand(sub, flags, dir);
    case 'node': {
      if (sub !== 'repair' || !arg) throw new CliError('usage: custody node repair NODE_ID', 'INVALID_ARGUMENT');
      const c = await connect(ClusterService, dir, role('admin'));
      if (!json) process.stderr.write(`custody: rebuilding every share of ${arg} from the other members...\n`);
      const res = await c.repairNode({ nodeId: arg }, { deadlineMs: 600_000 });
      return { out: { nodeId: arg, keysetIds: res.keysetIds }, text: `${arg} holds its shares again: ${res.keysetIds.length} keysets repaired` };
    }
    case 'vault':
      return vaultCommand(sub, flags, dir, role('admin'), json);
    case 'db':
      return migrateCommand(sub, flags, json);
    case 'wallet':
      return walletCommand(sub, arg, flags, dir, role('operator'), json);
    case 'sign': {
      if (flags.batch) return signBatchFile(dir, flags.batch, role('payment'));
      const walletId = flags.wallet ?? '';
      const keysetId = walletId ? (flags.keyset ?? '') : need(flags, 'keyset', 'the keyset id from `custody keyset create` (or --wallet ID)');
      const ethTx = flags['eth-tx'] ? parseHex(flags['eth-tx'], '--eth-tx') : new Uint8Array();
      // With --eth-tx a digest is optional; given, the coordinator checks it is the transaction's signing hash.
      const digest = ethTx.length && !flags.digest ? new Uint8Array() : parseHex(need(flags, 'digest', 'the hex digest to sign (or --eth-tx HEX)'), '--digest');
      const c = await connect(SigningService, dir, role('payment'));
      const res = await c.sign({ keysetId, walletId, digest, ethTx, idempotencyKey: flags['idempotency-key'] ?? '' }, { deadlineMs: 60_000 });
      const r = requestJson(res.request!);
      // Waiting for approvals is not a failure; a rejection or a failed signature is.
      const exitCode = r.status === 'signed' || r.status === 'pending_approval' ? 0 : 1;
      if (r.status === 'pending_approval') {
        return { out: r, text: `request ${r.requestId} waits for approvals: ${(r.missing ?? []).map((m) => `${m.count} from ${m.role}`).join(', ')}\n  approvers: custody approve ${r.requestId} --key FILE`, exitCode };
      }
      return { out: r, text: r.status === 'signed' ? `signed by ${r.signers.join(', ')}\n  signature  ${r.signature}\n  public key ${r.publicKey}\n  request    ${r.requestId}` : `request ${r.requestId} ${r.status}: ${r.error ?? ''}`, exitCode };
    }
    case 'request': {
      if (sub !== 'show') throw new CliError('usage: custody request show ID', 'INVALID_ARGUMENT');
      if (!arg) throw new CliError('usage: custody request show ID', 'INVALID_ARGUMENT');
      const c = await connect(SigningService, dir, role('operator'));
      const r = requestJson((await c.getSignRequest({ requestId: arg })).request!);
      return { out: r, text: JSON.stringify(r, null, 2) };
    }
    case 'nodes': {
      const c = await connect(ClusterService, dir, role('operator'));
      const res = await c.listNodes({});
      const nodes = res.nodes.map((n) => ({
        nodeId: n.nodeId,
        pid: n.pid,
        address: n.address,
        status: n.state === NodeState.UP ? 'up' : 'down',
        version: n.version,
        faults: n.faults,
        bans: n.bannedKeysets,
        nonces: { ed25519: n.ed25519Nonces, secp256k1: n.secp256k1Nonces },
        ...(n.lastError ? { lastError: n.lastError } : {}),
      }));
      return { out: { nodes }, text: nodes.map((n) => `${n.nodeId.padEnd(8)} ${n.status.padEnd(5)} pid ${String(n.pid).padEnd(7)} ${n.address}  faults ${n.faults}`).join('\n') };
    }
    case 'health': {
      const c = await connect(ClusterService, dir, role('operator'));
      const h = await c.health({});
      const out = { serving: h.serving, version: h.version, nodesUp: h.nodesUp, nodesTotal: h.nodesTotal, defaultThreshold: h.defaultThreshold };
      return { out, text: `serving, ${h.nodesUp}/${h.nodesTotal} nodes up, version ${h.version}` };
    }
    case 'audit': {
      const c = await connect(AuditService, dir, role('operator'));
      if (sub === 'verify') {
        const r = await c.verifyAudit({}, { deadlineMs: 300_000 });
        const out = r.ok ? { ok: true, records: Number(r.records) } : { ok: false, records: Number(r.records), firstBadSeq: Number(r.firstBadSeq), reason: r.reason };
        return { out, text: r.ok ? `audit log verified: ${r.records} records` : `audit log BROKEN at record ${r.firstBadSeq}: ${r.reason}`, exitCode: r.ok ? 0 : 1 };
      }
      if (sub === 'list') {
        const r = await c.listAudit({ afterSeq: BigInt(flags.after ?? 0), limit: flags.limit ? Number(flags.limit) : 100 });
        const records = r.records.map((x) => ({ seq: Number(x.seq), actor: x.actor, action: x.action, subject: x.subject, details: JSON.parse(x.detailsJson) as unknown, hash: hex(x.hash) }));
        return { out: { records }, text: records.map((x) => `${x.seq}  ${x.action.padEnd(16)} ${x.subject}  by ${x.actor}`).join('\n') || 'no records' };
      }
      throw new CliError('usage: custody audit verify|list', 'INVALID_ARGUMENT');
    }
    default:
      throw new CliError(cmd ? `unknown command ${cmd}\n\n${USAGE}` : USAGE, 'INVALID_ARGUMENT');
  }
}

const BATCH_CHUNK = 200;

/** Signs every line of a JSON-lines file through SignBatch, in chunks, with a progress bar on stderr. */
async function signBatchFile(dir: string, file: string, role: string) {
  const { readFile } = await import('node:fs/promises');
  const lines = (await readFile(file, 'utf8')).split('\n').map((l) => l.trim()).filter(Boolean);
  const items = lines.map((line, i) => {
    let v: { keysetId?: unknown; walletId?: unknown; digest?: unknown; idempotencyKey?: unknown };
    try {
      v = JSON.parse(line) as typeof v;
    } catch {
      throw new CliError(`${file}:${i + 1}: not JSON`, 'INVALID_ARGUMENT');
    }
    const walletId = typeof v.walletId === 'string' ? v.walletId : '';
    if ((typeof v.keysetId !== 'string' && !walletId) || typeof v.digest !== 'string') throw new CliError(`${file}:${i + 1}: needs "keysetId" (or "walletId") and "digest"`, 'INVALID_ARGUMENT');
    return { keysetId: typeof v.keysetId === 'string' ? v.keysetId : '', walletId, digest: parseHex(v.digest, `${file}:${i + 1} digest`), idempotencyKey: typeof v.idempotencyKey === 'string' ? v.idempotencyKey : '' };
  });
  const c = await connect(SigningService, dir, role);
  const results: Record<string, unknown>[] = [];
  const show = progress('signing', items.length);
  for (let i = 0; i < items.length; i += BATCH_CHUNK) {
    const res = await c.signBatch({ requests: items.slice(i, i + BATCH_CHUNK) }, { deadlineMs: 300_000 });
    for (const r of res.results) {
      results.push(r.request ? requestJson(r.request) : { status: 'refused', error: { code: grpcStatus[r.errorCode] ?? String(r.errorCode), message: r.errorMessage }, idempotencyKey: r.idempotencyKey });
    }
    show(results.length);
  }
  const signed = results.filter((r) => r.status === 'signed').length;
  const out = { total: results.length, signed, failed: results.length - signed, results };
  return { out, text: `${signed} of ${results.length} signed${signed < results.length ? `; ${results.length - signed} not (see --json)` : ''}`, exitCode: signed === results.length ? 0 : 1 };
}

function describeError(e: unknown): { code: string; message: string; operationId?: string } {
  if (e instanceof CliError) return { code: e.code, message: e.message };
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'number') {
    const name = grpcStatus[code] ?? String(code);
    const message = e instanceof Error ? (e as { details?: string }).details || e.message : String(e);
    const hint = code === grpcStatus.UNAVAILABLE ? ' (is the cluster running? start it with `custody up`)' : '';
    // A lifecycle command held for approvals names its operation (coordinator/operations.ts OPERATION_ID_TRAILER).
    const operationId = e instanceof RemoteRpcError ? e.metadata.get('custody-operation-id')[0] : undefined;
    return { code: name, message: message + hint, ...(typeof operationId === 'string' ? { operationId } : {}) };
  }
  return { code: 'ERROR', message: e instanceof Error ? e.message : String(e) };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const json = argv.includes('--json');
  try {
    if (argv[0] === 'up') {
      const { values } = parseArgs({
        args: argv.slice(1),
        options: {
          dir: { type: 'string' },
          json: { type: 'boolean' },
          nodes: { type: 'string' },
          threshold: { type: 'string' },
          'database-url': { type: 'string' },
          nats: { type: 'string' },
          'trace-files': { type: 'boolean' },
          sealer: { type: 'string' },
          'vault-addr': { type: 'string' },
          'vault-credentials': { type: 'string' },
        },
      });
      await up(values, json);
      return;
    }
    if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(USAGE + '\n');
      return;
    }
    const { out, text, exitCode } = await run(argv, json);
    process.stdout.write((json ? JSON.stringify(out) : text) + '\n');
    process.exitCode = exitCode ?? 0;
  } catch (e) {
    const err = describeError(e);
    if (json) process.stdout.write(JSON.stringify({ error: err }) + '\n');
    process.stderr.write(`custody: ${err.code}: ${err.message}\n`);
    process.exitCode = 1;
  }
}

void main();
