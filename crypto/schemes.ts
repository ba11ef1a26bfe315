/** Keyset schemes and the group each one lives in. */
import type { CurveName } from './group/group.js';

export const SCHEMES = ['ed25519', 'secp256k1', 'bip340', 'ecdsa'] as const;
export type Scheme = (typeof SCHEMES)[number];

export function isScheme(s: string): s is Scheme {
  return (SCHEMES as readonly string[]).includes(s);
}

export function curveOfScheme(scheme: Scheme): CurveName {
  return scheme === 'ed25519' ? 'ed25519' : 'secp256k1';
}

/**
 * What a scheme signs. Ed25519 signs the message itself (Solana and other chains sign whole
 * transactions, up to 1232 bytes); the secp256k1 schemes sign a 32-byte digest, never a raw
 * message of another length.
 */
export function checkMessageLength(scheme: Scheme, length: number): string | undefined {
  if (scheme === 'ed25519') {
    return length >= 1 && length <= 1232 ? undefined : `ed25519 messages must be 1 to 1232 bytes, got ${length}`;
  }
  return length === 32 ? undefined : `${scheme} signs a 32-byte digest, got ${length} bytes`;
}
