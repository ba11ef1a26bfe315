/**
 * The node's own derivation of a signing key from the path in a request. The node never takes a
 * tweak or a derived key from the coordinator: it recomputes both from its keyset's public root
 * key and chain code, so a coordinator cannot make it sign for a key other than the path names.
 */
import { status } from '@grpc/grpc-js';
import { DerivationError, type HdScheme } from '../crypto/hd/derive.js';
import { deriveKeyset, type DerivedKeyset } from '../crypto/hd/keyset.js';
import { RpcError } from '../runtime/grpc.js';
import type { KeyShare } from './keyshares.js';

const MAX_CACHED = 10_000;
const cache = new Map<string, DerivedKeyset>();

/** The keyset seen through `path` ('' for the root); INVALID_ARGUMENT for a hardened, malformed or too deep path. */
export function derivedKey(key: KeyShare, path: string): DerivedKeyset {
  const id = `${key.keysetId}|${path}`;
  const hit = cache.get(id);
  if (hit) return hit;
  let d: DerivedKeyset;
  try {
    d = deriveKeyset(key.scheme as HdScheme, key.groupPublicKey, key.chainCode, path);
  } catch (e) {
    if (e instanceof DerivationError || e instanceof RangeError) throw new RpcError(status.INVALID_ARGUMENT, `derivation path ${JSON.stringify(path.slice(0, 100))}: ${e.message}`);
    throw e;
  }
  if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
  cache.set(id, d);
  return d;
}
