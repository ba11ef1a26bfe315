/** An approver's key file and their entry in the policy in force: what `custody approve|reject` signs with. */
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { decodePolicyBytes, type PolicyDocument } from '../policy/index.js';
import { PolicyService } from '../proto/gen/custody/v1/api_pb.js';
import { CliError, connect } from './client.js';
import { readJsonFile } from './files.js';

export interface Approver {
  /** the policy in force, as the admins signed it */
  doc: PolicyDocument;
  /** the approver's name in it */
  name: string;
  /** 32-byte Ed25519 seed: zero it after signing */
  secretKey: Uint8Array;
}

export async function loadApprover(keyFile: string, dir: string, role: string): Promise<Approver> {
  const key = await readJsonFile<{ secretKey?: string; publicKey?: string }>(keyFile, 'approver key');
  if (!key.secretKey || !key.publicKey) throw new CliError(`${keyFile} is not an approver key (custody approver keygen)`, 'INVALID_ARGUMENT');
  const policies = await connect(PolicyService, dir, role);
  const p = await policies.getPolicy({});
  if (!p.policy) throw new CliError('the cluster has no policy; nothing needs approval');
  const doc = decodePolicyBytes(p.policy.document);
  const me = doc.approvers.find((a) => bytesToHex(a.publicKey) === key.publicKey!.toLowerCase());
  if (!me) throw new CliError(`the key in ${keyFile} is not a registered approver in policy ${doc.version}`, 'PERMISSION_DENIED');
  return { doc, name: me.name, secretKey: hexToBytes(key.secretKey) };
}
