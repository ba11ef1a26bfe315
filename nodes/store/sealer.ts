/**
 * Key wrapping behind every sealed record (DESIGN.md sections 2 and 7). Records are
 * envelope-encrypted: each gets a fresh data key, and only the Sealer's wrapped form of that key is
 * stored next to the ciphertext. Callers (stores) never see which backend they run on, so the
 * Vault Transit sealer drops in without changing them.
 */

export type SealerKind = 'local' | 'vault';

/** Wraps and unwraps data-encryption keys. Local: an Argon2id-derived KEK. Vault (later): Transit encrypt/decrypt/rewrap. */
export interface Sealer {
  readonly kind: SealerKind;
  /** Wraps a 32-byte data key; `context` is bound as associated data. */
  wrapKey(dataKey: Uint8Array, context: string): Promise<Uint8Array>;
  /** Inverse of wrapKey; throws if `wrapped` was not made for this `context` or was tampered with. */
  unwrapKey(wrapped: Uint8Array, context: string): Promise<Uint8Array>;
  /** Whether `wrapped` was made with the current key version (rotation/rewrap later). */
  isCurrent(wrapped: Uint8Array): boolean;
  /** Re-wraps under the current key version without exposing the data key to the caller (Transit rewrap). */
  rewrap?(wrapped: Uint8Array, context: string): Promise<Uint8Array>;
  /** Drops cached key material (local KEK) or credentials (Vault token). */
  close?(): Promise<void>;
}

/** Data keys are always 32 bytes (XChaCha20-Poly1305). */
export const DATA_KEY_LENGTH = 32;
