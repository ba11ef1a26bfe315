/**
 * A keyset seen through a derivation path, as the coordinator and the nodes both need it: cached
 * (a derivation costs about a millisecond and busy wallets repeat), and INVALID_ARGUMENT for a
 * path that cannot be derived (hardened, malformed, too deep).
 */
import { status } from '@grpc/grpc-js';
import { DerivationError, type HdScheme } from '../crypto/hd/derive.js';
import { deriveKeyset, type DerivedKeyset } from '../crypto/hd/keyset.js';
import { RpcError } from './grpc.js';

const MAX_CACHED = 10_000;
const cache = new Map<string, DerivedKeyset>();

export function derivedKeyset(keysetId: string, scheme: string, groupKey: Uint8Array, chainCode: Uint8Array, path: string): DerivedKeyset {
  const id = `${keysetId}|${path}`;
  const hit = cache.get(id);
  if (hit) return hit;
  let d: DerivedKeyset;
  try {
    d = deriveKeyset(scheme as HdScheme, groupKey, chainCode, path);
  } catch (e) {
    if (e instanceof DerivationError || e instanceof RangeError) throw new RpcError(status.INVALID_ARGUMENT, `derivation path ${JSON.stringify(path.slice(0, 100))}: ${e.message}`);
    throw e;
  }
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  cache.set(id, d);
  return d;
}
