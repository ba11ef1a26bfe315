/** Encoding helpers of the policy engine: canonical JSON (shared with the audit log) and domain tags. */
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';

export { canonicalJson } from '../crypto/canonical-json.js';

export const utf8 = utf8ToBytes;
export const toHex = bytesToHex;
export { hexToBytes };

/** `custody/<domain>/v1\0` || message: the tagging of crypto/ed25519-sig.ts, so both verifiers agree. */
export function domainTagged(domain: string, message: Uint8Array): Uint8Array {
  const tag = utf8ToBytes(`custody/${domain}/v1\0`);
  const out = new Uint8Array(tag.length + message.length);
  out.set(tag);
  out.set(message, tag.length);
  return out;
}
