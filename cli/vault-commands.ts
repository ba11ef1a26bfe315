/**
 * `custody vault rotate`: rotate every node's Transit key with no downtime (docs/vault.md).
 *
 *   1. rotate each node's key (operator token): new seals use the new version, old ones still open;
 *   2. every node rewraps its sealed records to the new version, online (ClusterService.RewrapNodes);
 *   3. only for nodes whose records are all on the new version: raise min_decryption_version, so
 *      the old key version can no longer decrypt anything.
 * A node that fails step 2 keeps its old minimum (nothing becomes unreadable) and is reported.
 */
import { readFile } from 'node:fs/promises';
import { status as grpcStatus } from '@grpc/grpc-js';
import { VaultTransitAdmin } from '../nodes/store/vault-sealer.js';
import { ClusterService } from '../proto/gen/custody/v1/api_pb.js';
import { CliError, connect } from './client.js';

type Flags = Record<string, string | boolean | undefined>;
const str = (v: string | boolean | undefined) => (typeof v === 'string' ? v : '');

export async function vaultCommand(sub: string | undefined, flags: Flags, dir: string, role: string, json: boolean) {
  if (sub !== 'rotate') throw new CliError('usage: custody vault rotate --vault-addr URL --vault-token-file FILE', 'INVALID_ARGUMENT');
  const address = str(flags['vault-addr']) || process.env.VAULT_ADDR || '';
  const tokenFile = str(flags['vault-token-file']);
  if (!address || !tokenFile) throw new CliError('--vault-addr URL (or VAULT_ADDR) and --vault-token-file FILE (an operator token, deploy/vault/) are required', 'INVALID_ARGUMENT');
  let token: string;
  try {
    token = (await readFile(tokenFile, 'utf8')).trim();
  } catch {
    throw new CliError(`cannot read the Vault token file ${tokenFile}`, 'INVALID_ARGUMENT');
  }
  const say = (m: string) => {
    if (!json) process.stderr.write(`custody vault rotate: ${m}\n`);
  };
  const admin = new VaultTransitAdmin({ address, token });
  const cluster = await connect(ClusterService, dir, role);
  const nodes = (await cluster.listNodes({})).nodes.map((n) => n.nodeId);
  const keyOf = (nodeId: string) => `custody-${nodeId}`;
  const rotated: Record<string, number> = {};
  for (const nodeId of nodes) {
    rotated[nodeId] = (await admin.rotate(keyOf(nodeId))).latestVersion;
    say(`${keyOf(nodeId)} rotated to version ${rotated[nodeId]}`);
  }
  say('nodes rewrap their sealed records (online)...');
  const rewrap = (
    await cluster.rewrapNodes({}, { deadlineMs: 600_000 }).catch((e: unknown) => {
      // Held for an operator quorum (vault.rotate in the policy): the rotation above is harmless on its own.
      if ((e as { code?: unknown }).code === grpcStatus.FAILED_PRECONDITION) say('the keys are rotated, but the cluster holds the rewrap for approvals; old versions stay readable. Run this command again once approved.');
      throw e;
    })
  ).nodes;
  const out = [];
  for (const r of rewrap) {
    const done = !r.error && r.oldestVersion === rotated[r.nodeId];
    if (done) {
      await admin.setMinDecryptionVersion(keyOf(r.nodeId), rotated[r.nodeId]!);
      say(`${r.nodeId}: ${r.records} records on version ${r.latestVersion}; min_decryption_version raised`);
    } else {
      say(`${r.nodeId}: NOT done (${r.error || `oldest record on version ${r.oldestVersion}`}); its old version stays readable: fix and run again`);
    }
    out.push({ nodeId: r.nodeId, transitKey: keyOf(r.nodeId), version: rotated[r.nodeId], records: r.records, minDecryptionVersionRaised: done, ...(r.error ? { error: r.error } : {}) });
  }
  const ok = out.every((n) => n.minDecryptionVersionRaised);
  return { out: { ok, nodes: out }, text: ok ? `rotated and rewrapped ${out.length} nodes` : 'rotation incomplete (see above)', exitCode: ok ? 0 : 1 };
}
