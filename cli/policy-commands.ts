/**
 * `custody policy set|show`, `custody approver keygen|add`, `custody approve|reject`.
 *
 * Policies are signed here, with the admin's key (default: the local cluster's secrets/admin.key),
 * and the nodes check that signature against their roster. Approvers sign on their own machines:
 * `approve` fetches the request and the policy, decodes the transaction itself, shows what it is
 * approving and signs exactly that (policy/approvals.ts); nothing the coordinator says about the
 * request is taken on trust.
 */
import { readFile } from 'node:fs/promises';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import {
  canonicalPolicyBytes,
  decodePolicyBytes,
  intentJson,
  intentOfPayload,
  parsePolicy,
  PolicyError,
  policyHash,
  policyJson,
  signApproval,
  signPolicy,
  type PolicyDocument,
} from '../policy/index.js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { ApprovalService, PolicyService, SigningService } from '../proto/gen/custody/v1/api_pb.js';
import { loadApprover } from './approver-key.js';
import { CliError, connect } from './client.js';
import { decideOperation } from './operation-commands.js';
import { readJsonFile, writeNewFile } from './files.js';
import { layout } from './layout.js';
import { requestJson } from './request-json.js';

type Flags = Record<string, string | boolean | undefined>;
type Result = { out: unknown; text: string; exitCode?: number };

const str = (v: string | boolean | undefined) => (typeof v === 'string' ? v : '');

async function adminKey(flags: Flags, dir: string): Promise<Uint8Array> {
  const file = str(flags['admin-key']) || layout(dir).adminKey;
  try {
    return hexToBytes((await readFile(file, 'utf8')).trim());
  } catch {
    throw new CliError(`cannot read the admin key ${file} (pass --admin-key FILE)`, 'INVALID_ARGUMENT');
  }
}

async function currentPolicy(dir: string): Promise<PolicyDocument | undefined> {
  const c = await connect(PolicyService, dir, 'admin');
  const r = await c.getPolicy({});
  return r.policy ? decodePolicyBytes(r.policy.document) : undefined;
}

/** Signs a document with the admin key and installs it. */
async function install(doc: PolicyDocument, flags: Flags, dir: string, role: string) {
  const key = await adminKey(flags, dir);
  const signature = signPolicy(doc, str(flags['admin-name']) || 'admin', key);
  key.fill(0);
  const c = await connect(PolicyService, dir, role);
  const r = await c.setPolicy({ policy: { document: canonicalPolicyBytes(doc), signatures: [signature] } });
  return { version: r.version, hash: bytesToHex(r.hash), pendingNodes: r.pendingNodes };
}

function parseOrExplain(json: unknown, what: string): PolicyDocument {
  try {
    return parsePolicy(json);
  } catch (e) {
    if (e instanceof PolicyError) throw new CliError(`${what}: ${e.message}`, 'INVALID_ARGUMENT');
    throw e;
  }
}

export async function policyCommand(sub: string | undefined, flags: Flags, dir: string, role: string): Promise<Result> {
  if (sub === 'set') {
    const file = str(flags.file);
    if (!file) throw new CliError('--file FILE is required (see docs/examples/policy.json)', 'INVALID_ARGUMENT');
    const json = await readJsonFile<Record<string, unknown>>(file, 'policy');
    const current = await currentPolicy(dir);
    // Each set is a new version; one the file names must be newer than the current one.
    if (current && (typeof json.version !== 'number' || json.version <= current.version)) json.version = current.version + 1;
    const doc = parseOrExplain(json, file);
    const r = await install(doc, flags, dir, role);
    return { out: r, text: `policy version ${r.version} installed (hash ${r.hash})${r.pendingNodes.length ? `; not yet on ${r.pendingNodes.join(', ')} (retried)` : ''}` };
  }
  if (sub === 'show') {
    const c = await connect(PolicyService, dir, role);
    const r = await c.getPolicy({});
    if (!r.policy) return { out: { version: 0, policy: null }, text: 'no policy set: every authenticated request is signed (custody policy set --file FILE)' };
    const doc = decodePolicyBytes(r.policy.document);
    const out = { version: r.version, hash: bytesToHex(r.hash), signedBy: r.policy.signatures.map((s) => s.admin), policy: policyJson(doc) };
    return { out, text: JSON.stringify(out, null, 2) };
  }
  throw new CliError('usage: custody policy set --file FILE | show', 'INVALID_ARGUMENT');
}

export async function approverCommand(sub: string | undefined, flags: Flags, dir: string, role: string): Promise<Result> {
  if (sub === 'keygen') {
    const out = str(flags.out);
    if (!out) throw new CliError('--out FILE is required: where to keep the approver key', 'INVALID_ARGUMENT');
    const secretKey = ed25519.utils.randomSecretKey();
    const publicKey = bytesToHex(ed25519.getPublicKey(secretKey));
    try {
      await writeNewFile(out, JSON.stringify({ format: 'custody-approver-key/v1', secretKey: bytesToHex(secretKey), publicKey }) + '\n');
    } finally {
      secretKey.fill(0);
    }
    return { out: { publicKey }, text: `approver key written to ${out}\n  public key ${publicKey}\n  register it: custody approver add --name NAME --role ROLE --public-key ${publicKey}` };
  }
  if (sub === 'add') {
    const name = str(flags.name);
    const roleName = str(flags.role);
    const publicKey = str(flags['public-key']);
    if (!name || !roleName || !publicKey) throw new CliError('usage: custody approver add --name NAME --role ROLE --public-key HEX', 'INVALID_ARGUMENT');
    const current = await currentPolicy(dir);
    if (!current) throw new CliError('no policy yet: approvers live in the signed policy; set one first (custody policy set --file FILE)');
    const json = policyJson(current) as { version: number; approvers: { name: string; publicKey: string; roles: string[] }[] };
    const existing = json.approvers.find((a) => a.name === name);
    if (existing && existing.publicKey !== publicKey.toLowerCase()) throw new CliError(`approver ${name} exists with another key; choose another name`, 'ALREADY_EXISTS');
    if (existing) existing.roles = [...new Set([...existing.roles, roleName])];
    else json.approvers.push({ name, publicKey: publicKey.toLowerCase(), roles: [roleName] });
    json.version = current.version + 1;
    const r = await install(parseOrExplain(json, 'approver'), flags, dir, role);
    return { out: { name, role: roleName, publicKey: publicKey.toLowerCase(), policyVersion: r.version }, text: `approver ${name} (${roleName}) registered in policy version ${r.version}` };
  }
  throw new CliError('usage: custody approver keygen --out FILE | add --name NAME --role ROLE --public-key HEX', 'INVALID_ARGUMENT');
}

/**
 * `custody approve ID --key FILE` / `custody reject ID --key FILE --reason TEXT`. ID is a sign
 * request's or an operator operation's (cli/operation-commands.ts).
 */
export async function decideCommand(decision: 'approve' | 'reject', requestId: string | undefined, flags: Flags, dir: string, role: string): Promise<Result> {
  const keyFile = str(flags.key);
  if (!requestId || !keyFile) throw new CliError(`usage: custody ${decision} ID --key FILE${decision === 'reject' ? ' --reason TEXT' : ''}`, 'INVALID_ARGUMENT');
  const signing = await connect(SigningService, dir, role);
  let request;
  try {
    request = (await signing.getSignRequest({ requestId })).request!;
  } catch (e) {
    if ((e as { code?: unknown }).code === grpcStatus.NOT_FOUND) return decideOperation(decision, requestId, keyFile, str(flags.reason), dir, role);
    throw e;
  }
  const { doc, name, secretKey: secret } = await loadApprover(keyFile, dir, role);
  if (doc.version !== request.policyVersion) throw new CliError(`request ${requestId} was judged under policy ${request.policyVersion}, the current one is ${doc.version}; it must be submitted again`);
  // Decode what is being approved from the bytes, not from the coordinator's description.
  const intent = intentOfPayload(doc, request.ethTx.length ? request.ethTx : null, request.digest);
  const expiresAt = request.approvalExpiresAt ? timestampDate(request.approvalExpiresAt) : undefined;
  if (!expiresAt) throw new CliError(`request ${requestId} is not waiting for approvals`, 'FAILED_PRECONDITION');
  const subject = {
    requestId,
    keysetId: request.keysetId,
    walletId: request.walletId || null,
    intent,
    digest: request.digest,
    policyVersion: doc.version,
    policyHash: policyHash(doc),
    expiresAt,
  };
  const signed = signApproval(subject, name, decision, secret);
  secret.fill(0);
  const approvals = await connect(ApprovalService, dir, role);
  const res = await approvals.decide({
    requestId,
    approval: { approver: name, decision, expiresAtMs: BigInt(signed.expiresAt.getTime()), signature: signed.signature },
    reason: str(flags.reason),
  });
  const r = res.request!;
  const out = { approver: name, decision, ...requestJson(r) };
  return { out, text: `${name} ${decision === 'approve' ? 'approved' : 'rejected'} request ${requestId} (${intentJson(intent).amount} ${intent.asset} to ${intent.destination || 'a raw digest'})` };
}
