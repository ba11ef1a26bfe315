/**
 * Vault sealer failures as the gRPC status a caller of the node sees (docs/vault.md, "Failure
 * messages"). Without this they would reach the client as INTERNAL "internal error", hiding that
 * Vault refused this node and what its operator has to do. The messages never hold a secret.
 */
import { create, type DescService } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { SignShareResultSchema, type SignShareResult } from '../proto/gen/custody/v1/node_pb.js';
import { RpcError, type ServiceImpl } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { VaultSealerError } from './store/vault-sealer.js';

/** UNAVAILABLE when Vault cannot answer (retry later), FAILED_PRECONDITION when an operator must act. */
export function vaultRpcError(nodeId: string, e: unknown): RpcError | undefined {
  if (!(e instanceof VaultSealerError)) return undefined;
  const transient = e.code === 'unreachable' || e.code === 'sealed' || e.code === 'closed';
  return new RpcError(transient ? status.UNAVAILABLE : status.FAILED_PRECONDITION, `${nodeId}: ${e.message}`);
}

/** Every handler of `impl` with Vault sealer failures mapped by vaultRpcError. */
export function withVaultErrors<S extends DescService>(nodeId: string, impl: ServiceImpl<S>): ServiceImpl<S> {
  const out: Record<string, unknown> = {};
  for (const [name, handler] of Object.entries(impl as Record<string, (req: unknown, ctx: unknown) => Promise<unknown>>)) {
    out[name] = async (req: unknown, ctx: unknown) => {
      try {
        return await handler.call(impl, req, ctx);
      } catch (e) {
        throw vaultRpcError(nodeId, e) ?? e;
      }
    };
  }
  return out as ServiceImpl<S>;
}

/**
 * Before signing from shares held in memory (no Vault call needed): has Vault refused this node's
 * credentials? Then every item is refused, so revoking a node's Vault access stops its signing and
 * the coordinator signs with other nodes without blaming anyone. Vault being unreachable or sealed
 * says nothing about this node's rights and does not stop signing (the shares are unsealed already).
 */
export async function vaultSigningRefusal(
  nodeId: string,
  checkCredentials: (() => Promise<void>) | undefined,
  items: number,
  log: Logger,
): Promise<{ results: SignShareResult[] } | undefined> {
  if (!checkCredentials) return undefined;
  try {
    await checkCredentials();
    return undefined;
  } catch (e) {
    const err = vaultRpcError(nodeId, e);
    if (!err || err.code !== status.FAILED_PRECONDITION) {
      log.warn({ err: e }, 'could not check the Vault credentials; signing from the unsealed shares');
      return undefined;
    }
    log.warn({ code: (e as VaultSealerError).code }, 'Vault refused this node: refusing to sign');
    const message = `${nodeId} refuses to sign: ${(e as VaultSealerError).message}`;
    const refusal = create(SignShareResultSchema, { result: { case: 'error', value: { code: err.code, message } } });
    return { results: Array.from({ length: items }, () => refusal) };
  }
}
