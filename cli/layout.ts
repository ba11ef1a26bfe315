/**
 * Where a local cluster keeps its files under `--dir` (default ./.custody or CUSTODY_DIR).
 * The dev CA key and keystore passphrases live here too: fine for a laptop, not for production,
 * where nodes run on their own machines with Vault (docs/operations.md).
 */
import { join, resolve } from 'node:path';

export function clusterDir(flag?: string): string {
  return resolve(flag ?? process.env.CUSTODY_DIR ?? '.custody');
}

export const layout = (dir: string) => ({
  dir,
  config: join(dir, 'cluster.json'),
  endpoint: join(dir, 'endpoint.json'),
  roster: join(dir, 'roster.json'),
  tls: join(dir, 'tls'),
  secrets: join(dir, 'secrets'),
  coordinatorKey: join(dir, 'secrets', 'coordinator.key'),
  adminKey: join(dir, 'secrets', 'admin.key'),
  passphrase: (nodeId: string) => join(dir, 'secrets', `${nodeId}.passphrase`),
  nodeData: (nodeId: string) => join(dir, 'nodes', nodeId),
  coordinatorData: join(dir, 'coordinator'),
  logs: join(dir, 'logs'),
  log: (name: string) => join(dir, 'logs', `${name}.log`),
});

export type Layout = ReturnType<typeof layout>;

export const CLIENT_ROLES = ['payment', 'approver', 'operator', 'admin'] as const;
