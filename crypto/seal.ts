/**
 * Sealing primitives (DESIGN.md section 5): XChaCha20-Poly1305 AEAD and an Argon2id key-encryption
 * key. Pure: no file system, no logging. Storage code in nodes/store builds envelopes from these.
 *
 * Sealed layout: version (1 byte) || nonce (24 bytes) || ciphertext || tag (16 bytes).
 * The version byte is authenticated too (it is prepended to the caller's associated data), so a
 * future format cannot be confused with this one.
 */
import { randomBytes } from '@noble/ciphers/utils.js';
import { argon2id } from 'hash-wasm';
import { xchachaOpen, xchachaSeal } from './xchacha.js';

export const SEAL_VERSION = 1;
export const KEY_LENGTH = 32;
export const NONCE_LENGTH = 24;
export const TAG_LENGTH = 16;
/** Bytes a sealed message adds to its plaintext. */
export const SEAL_OVERHEAD = 1 + NONCE_LENGTH + TAG_LENGTH;

/**
 * Raised when sealed data cannot be opened. The message never carries key, plaintext or
 * ciphertext bytes, so it is safe to log.
 */
export class SealError extends Error {
  override readonly name = 'SealError';
}

/** Argon2id cost parameters. */
export interface KdfParams {
  readonly memoryKiB: number;
  readonly iterations: number;
  readonly parallelism: number;
}

/** RFC 9106's second recommended option (64 MiB, t=3, p=1); above OWASP's minimum. */
export const DEFAULT_KDF_PARAMS: KdfParams = Object.freeze({ memoryKiB: 64 * 1024, iterations: 3, parallelism: 1 });

export const MIN_SALT_LENGTH = 16;

const encoder = new TextEncoder();

function withVersion(version: number, aad: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + aad.length);
  out[0] = version;
  out.set(aad, 1);
  return out;
}

function checkKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_LENGTH) {
    throw new SealError(`sealing key must be ${KEY_LENGTH} bytes`);
  }
}

/** Encrypts and authenticates `plaintext` under `key`, binding `aad`. A fresh random nonce each call. */
export function aeadSeal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array = new Uint8Array(0)): Uint8Array {
  checkKey(key);
  const nonce = randomBytes(NONCE_LENGTH);
  const body = xchachaSeal(key, nonce, withVersion(SEAL_VERSION, aad), plaintext);
  const out = new Uint8Array(1 + NONCE_LENGTH + body.length);
  out[0] = SEAL_VERSION;
  out.set(nonce, 1);
  out.set(body, 1 + NONCE_LENGTH);
  return out;
}

/** Opens what `aeadSeal` produced. Throws `SealError` (and nothing else) on any failure. */
export function aeadOpen(key: Uint8Array, sealed: Uint8Array, aad: Uint8Array = new Uint8Array(0)): Uint8Array {
  checkKey(key);
  if (!(sealed instanceof Uint8Array) || sealed.length < SEAL_OVERHEAD) throw new SealError('sealed data is truncated');
  if (sealed[0] !== SEAL_VERSION) throw new SealError(`unsupported seal version ${sealed[0]}`);
  const nonce = sealed.subarray(1, 1 + NONCE_LENGTH);
  try {
    return xchachaOpen(key, nonce, withVersion(SEAL_VERSION, aad), sealed.subarray(1 + NONCE_LENGTH));
  } catch {
    // A fixed message keeps callers from depending on the library's.
    throw new SealError('sealed data failed authentication (wrong key, wrong context or tampered)');
  }
}

export function validateKdfParams(params: KdfParams): void {
  const { memoryKiB, iterations, parallelism } = params;
  const int = (v: number) => Number.isSafeInteger(v) && v > 0;
  if (!int(parallelism) || parallelism > 255) throw new RangeError('argon2id parallelism must be an integer in [1, 255]');
  if (!int(iterations) || iterations > 1000) throw new RangeError('argon2id iterations must be an integer in [1, 1000]');
  // Argon2 needs at least 8 KiB per lane; the upper bound keeps a corrupt keystore from exhausting memory.
  if (!int(memoryKiB) || memoryKiB < 8 * parallelism || memoryKiB > 4 * 1024 * 1024) {
    throw new RangeError('argon2id memoryKiB must be an integer in [8 * parallelism, 4 GiB]');
  }
}

/**
 * Derives a 32-byte key-encryption key with Argon2id. A string passphrase is NFC-normalised and
 * UTF-8 encoded, so the same passphrase typed on different systems gives the same key. A byte
 * passphrase is used as is and left untouched (the caller owns and wipes it).
 */
export async function deriveKek(
  passphrase: string | Uint8Array,
  salt: Uint8Array,
  params: KdfParams = DEFAULT_KDF_PARAMS,
): Promise<Uint8Array> {
  validateKdfParams(params);
  if (!(salt instanceof Uint8Array) || salt.length < MIN_SALT_LENGTH) {
    throw new RangeError(`argon2id salt must be at least ${MIN_SALT_LENGTH} bytes`);
  }
  const password = typeof passphrase === 'string' ? encoder.encode(passphrase.normalize('NFC')) : passphrase;
  if (password.length === 0) throw new RangeError('passphrase must not be empty');
  try {
    return await argon2id({
      password,
      salt,
      parallelism: params.parallelism,
      iterations: params.iterations,
      memorySize: params.memoryKiB,
      hashLength: KEY_LENGTH,
      outputType: 'binary',
    });
  } finally {
    if (password !== passphrase) wipe(password);
  }
}

/** Overwrites buffers with zeros. Best effort: JS cannot stop the engine keeping other copies. */
export function wipe(...buffers: (Uint8Array | null | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}

/** Fresh random bytes from the platform CSPRNG. */
export function randomKey(length: number = KEY_LENGTH): Uint8Array {
  return randomBytes(length);
}
