/**
 * The node's own derivation of a signing key from the path in a request. The node never takes a
 * tweak or a derived key from the coordinator: it recomputes both from its keyset's public root
 * key and chain code, so a coordinator cannot make it sign for a key other than the path names.
 */
import type { DerivedKeyset } from '../crypto/hd/keyset.js';
import { derivedKeyset } from '../runtime/derived-keys.js';
import type { KeyShare } from './keyshares.js';

/** The keyset seen through `path` ('' for the root); INVALID_ARGUMENT for a hardened, malformed or too deep path. */
export function derivedKey(key: KeyShare, path: string): DerivedKeyset {
  return derivedKeyset(key.keysetId, key.scheme, key.groupPublicKey, key.chainCode, path);
}
