/** Connects CLI commands to the coordinator of the cluster in `--dir`, with a client certificate per role. */
import { readFile } from 'node:fs/promises';
import type { DescService } from '@bufbuild/protobuf';
import { createClient, type Client } from '../runtime/grpc.js';
import { clientCredentials, loadPem } from '../runtime/tls.js';
import { layout } from './layout.js';

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly code = 'FAILED_PRECONDITION',
  ) {
    super(message);
  }
}

export async function coordinatorAddress(dir: string): Promise<string> {
  const L = layout(dir);
  try {
    const ep = JSON.parse(await readFile(L.endpoint, 'utf8')) as { coordinator: string };
    return ep.coordinator;
  } catch {
    throw new CliError(`no cluster found in ${dir}: start one with \`custody up --dir ${dir}\` (or set --dir / CUSTODY_DIR)`);
  }
}

export async function connect<S extends DescService>(service: S, dir: string, role: string): Promise<Client<S>> {
  const L = layout(dir);
  const address = await coordinatorAddress(dir);
  let creds;
  try {
    creds = clientCredentials(await loadPem(L.tls, 'ca'), await loadPem(L.tls, role), { role: 'coordinator' });
  } catch {
    throw new CliError(`no client certificate for role ${role} in ${L.tls}; it is created by \`custody up\``);
  }
  return createClient(service, address, creds);
}
