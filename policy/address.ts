/** Ethereum addresses: validation, EIP-55 checksums, case-insensitive comparison. */
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** EIP-55 mixed-case form of a 0x address (any case in). */
export function toChecksumAddress(address: string): string {
  if (!ADDRESS.test(address)) throw new TypeError(`not a 0x-prefixed 20-byte hex address: ${JSON.stringify(address)}`);
  const lower = address.slice(2).toLowerCase();
  const hash = bytesToHex(keccak_256(utf8ToBytes(lower)));
  let out = '0x';
  for (let i = 0; i < 40; i++) out += parseInt(hash[i]!, 16) >= 8 ? lower[i]!.toUpperCase() : lower[i]!;
  return out;
}

/**
 * Lowercase form of an address given in any case. All-lowercase and all-uppercase hex are accepted
 * as is; mixed case must be a correct EIP-55 checksum (a wrong one is almost always a typo).
 * Returns the reason when invalid.
 */
export function checkAddress(address: unknown): { ok: true; lower: string } | { ok: false; reason: string } {
  if (typeof address !== 'string' || !ADDRESS.test(address)) {
    return { ok: false, reason: 'must be a 0x-prefixed 20-byte hex address (40 hex digits)' };
  }
  const body = address.slice(2);
  const mixed = body !== body.toLowerCase() && body !== body.toUpperCase();
  if (mixed && toChecksumAddress(address) !== address) {
    return { ok: false, reason: `mixed-case address fails its EIP-55 checksum (expected ${toChecksumAddress(address)})` };
  }
  return { ok: true, lower: '0x' + body.toLowerCase() };
}

/** Address bytes (20) -> EIP-55 string. */
export function addressFromBytes(b: Uint8Array): string {
  if (b.length !== 20) throw new TypeError(`address must be 20 bytes, got ${b.length}`);
  return toChecksumAddress('0x' + bytesToHex(b));
}

/** Case-insensitive equality of two 0x addresses. */
export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
