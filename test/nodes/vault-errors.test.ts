/** How Vault sealer failures reach a caller of the node (nodes/vault-errors.ts). */
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { RpcError } from '../../runtime/grpc.js';
import type { Logger } from '../../runtime/log.js';
import { VaultSealerError } from '../../nodes/store/vault-sealer.js';
import { vaultRpcError, vaultSigningRefusal, withVaultErrors } from '../../nodes/vault-errors.js';

const warnings: string[] = [];
const log = { warn: (_: unknown, msg: string) => warnings.push(msg) } as unknown as Logger;
const refused = new VaultSealerError('login-failed', 'Vault refused the token of role custody-node-2 (revoked or expired) ...: restart the node');

describe('Vault errors at the node API', () => {
  it('maps sealer failures to FAILED_PRECONDITION or UNAVAILABLE with the node id, and leaves other errors alone', async () => {
    expect(vaultRpcError('node-2', refused)).toMatchObject({ code: status.FAILED_PRECONDITION, message: `node-2: ${refused.message}` });
    expect(vaultRpcError('node-2', new VaultSealerError('sealed', 'Vault at x is sealed'))?.code).toBe(status.UNAVAILABLE);
    expect(vaultRpcError('node-2', new VaultSealerError('unreachable', 'Vault at x is unreachable'))?.code).toBe(status.UNAVAILABLE);
    expect(vaultRpcError('node-2', new Error('other'))).toBeUndefined();

    const impl = withVaultErrors('node-2', {
      a: async () => {
        throw refused;
      },
      b: async () => {
        throw new RangeError('not mine');
      },
      c: async (req: unknown) => ({ echo: req }),
    } as never) as unknown as Record<string, (req: unknown, ctx: unknown) => Promise<unknown>>;
    await expect(impl.a!(1, {})).rejects.toBeInstanceOf(RpcError);
    await expect(impl.b!(1, {})).rejects.toBeInstanceOf(RangeError);
    expect(await impl.c!(7, {})).toEqual({ echo: 7 });
  });

  it('refuses every sign item once Vault refused the credentials; an unreachable Vault does not stop signing', async () => {
    expect(await vaultSigningRefusal('node-2', undefined, 2, log)).toBeUndefined();
    expect(await vaultSigningRefusal('node-2', async () => undefined, 2, log)).toBeUndefined();
    const r = await vaultSigningRefusal('node-2', () => Promise.reject(refused), 2, log);
    expect(r!.results.map((x) => x.result)).toEqual([0, 1].map(() => expect.objectContaining({ case: 'error', value: expect.objectContaining({ code: status.FAILED_PRECONDITION, message: `node-2 refuses to sign: ${refused.message}` }) })));
    const down = () => Promise.reject(new VaultSealerError('unreachable', 'Vault at x is unreachable'));
    expect(await vaultSigningRefusal('node-2', down, 1, log)).toBeUndefined();
    expect(warnings).toContain('could not check the Vault credentials; signing from the unsealed shares');
  });
});
