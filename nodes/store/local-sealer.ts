/**
 * The default Sealer: a key-encryption key (KEK) derived with Argon2id from an operator passphrase.
 *
 * `<dir>/keystore.json` (mode 0600) holds only public material: the Argon2id parameters, the salt,
 * a random key id and a key-check value (an AEAD of a constant under the KEK) that tells a wrong
 * passphrase apart from a damaged record. The KEK itself exists only in this process's memory.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import {
  DEFAULT_KDF_PARAMS,
  type KdfParams,
  SealError,
  aeadOpen,
  aeadSeal,
  deriveKek,
  validateKdfParams,
  wipe,
} from '../../crypto/seal.js';
import { concatBytes } from '@noble/hashes/utils.js';
import { createFileExclusive, ensureDir, readFileIfExists } from './durable-fs.js';
import { DATA_KEY_LENGTH, type Sealer } from './sealer.js';

export const KEYSTORE_FILE = 'keystore.json';
const KEYSTORE_FORMAT = 'custody-local-keystore';
const KEYSTORE_VERSION = 1;
const KEY_ID_LENGTH = 8;
const SALT_LENGTH = 16;
/** First byte of a locally wrapped key, so a Vault ciphertext ("vault:v1:...") is never mistaken for one. */
const WRAP_TAG = 0x4c; // 'L'
const CHECK_PLAINTEXT = 'custody local keystore key-check v1';

const utf8 = new TextEncoder();

export interface LocalSealerOptions {
  /** Argon2id cost for a NEW keystore; an existing keystore always uses the parameters it records. */
  kdf?: KdfParams;
  /** Create the keystore when missing (default true). Nodes restarting on existing data should pass false. */
  create?: boolean;
}

/** Thrown when the passphrase does not match the keystore; the message names the folder, never the passphrase. */
export class WrongPassphraseError extends Error {
  override readonly name = 'WrongPassphraseError';
}

export class KeystoreError extends Error {
  override readonly name = 'KeystoreError';
}

interface KeystoreFile {
  format: typeof KEYSTORE_FORMAT;
  version: typeof KEYSTORE_VERSION;
  keyId: string;
  kdf: { algorithm: 'argon2id'; memoryKiB: number; iterations: number; parallelism: number; salt: string };
  check: string;
  createdAt: string;
}

/** The key check binds the key id and the cost parameters, so editing either is detected. */
function checkAad(keyId: string, kdf: KdfParams): Uint8Array {
  return utf8.encode(`custody/local-sealer/check/v1\0${keyId}\0${kdf.memoryKiB}:${kdf.iterations}:${kdf.parallelism}`);
}

function wrapAad(keyId: Uint8Array, context: string): Uint8Array {
  return concatBytes(utf8.encode('custody/local-sealer/wrap/v1\0'), keyId, utf8.encode(`\0${context}`));
}

function parseKeystore(file: string, raw: Buffer): { ks: KeystoreFile; kdf: KdfParams; salt: Uint8Array; check: Uint8Array } {
  let ks: KeystoreFile;
  try {
    ks = JSON.parse(raw.toString('utf8')) as KeystoreFile;
  } catch {
    throw new KeystoreError(`keystore ${file} is not valid JSON`);
  }
  const bad = (what: string) => new KeystoreError(`keystore ${file} is malformed: ${what}`);
  if (typeof ks !== 'object' || ks === null) throw bad('not an object');
  if (ks.format !== KEYSTORE_FORMAT) throw bad('unknown format');
  if (ks.version !== KEYSTORE_VERSION) throw bad(`unsupported version ${String(ks.version)}`);
  if (typeof ks.keyId !== 'string' || !/^[0-9a-f]{16}$/.test(ks.keyId)) throw bad('keyId');
  if (typeof ks.kdf !== 'object' || ks.kdf === null || ks.kdf.algorithm !== 'argon2id') throw bad('kdf.algorithm');
  const kdf: KdfParams = { memoryKiB: ks.kdf.memoryKiB, iterations: ks.kdf.iterations, parallelism: ks.kdf.parallelism };
  try {
    validateKdfParams(kdf);
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (typeof ks.kdf.salt !== 'string' || typeof ks.check !== 'string') throw bad('salt or check');
  const salt = Buffer.from(ks.kdf.salt, 'base64');
  const check = Buffer.from(ks.check, 'base64');
  if (salt.length < SALT_LENGTH) throw bad('salt too short');
  return { ks, kdf, salt, check };
}

export class LocalSealer implements Sealer {
  readonly kind = 'local' as const;
  readonly keystorePath: string;
  readonly keyId: string;
  #kek: Uint8Array | null;
  readonly #keyIdBytes: Uint8Array;

  private constructor(keystorePath: string, keyId: string, kek: Uint8Array) {
    this.keystorePath = keystorePath;
    this.keyId = keyId;
    this.#keyIdBytes = Buffer.from(keyId, 'hex');
    this.#kek = kek;
  }

  /**
   * Opens (or on first use creates) the keystore in `dir` and derives the KEK. A string passphrase
   * is not retained; a byte passphrase is not wiped (the caller owns it).
   */
  static async open(dir: string, passphrase: string | Uint8Array, opts: LocalSealerOptions = {}): Promise<LocalSealer> {
    const file = path.join(dir, KEYSTORE_FILE);
    let raw = await readFileIfExists(file);
    if (raw === undefined) {
      if (opts.create === false) throw new KeystoreError(`no keystore at ${file} (create disabled)`);
      const created = await LocalSealer.#create(dir, file, passphrase, opts.kdf ?? DEFAULT_KDF_PARAMS);
      if (created) return created;
      // Another process created it first: fall through and open theirs.
      raw = await readFileIfExists(file);
      if (raw === undefined) throw new KeystoreError(`keystore ${file} vanished while opening`);
    }
    const { ks, kdf, salt, check } = parseKeystore(file, raw);
    const kek = await deriveKek(passphrase, salt, kdf);
    try {
      aeadOpen(kek, check, checkAad(ks.keyId, kdf));
    } catch (err) {
      wipe(kek);
      if (err instanceof SealError) {
        throw new WrongPassphraseError(
          `wrong keystore passphrase for ${dir}: the key-check value did not authenticate (or ${KEYSTORE_FILE} was modified)`,
        );
      }
      throw err;
    }
    return new LocalSealer(file, ks.keyId, kek);
  }

  static async #create(dir: string, file: string, passphrase: string | Uint8Array, kdf: KdfParams): Promise<LocalSealer | undefined> {
    validateKdfParams(kdf);
    await ensureDir(dir);
    const salt = randomBytes(SALT_LENGTH);
    const keyId = randomBytes(KEY_ID_LENGTH).toString('hex');
    const kek = await deriveKek(passphrase, salt, kdf);
    const ks: KeystoreFile = {
      format: KEYSTORE_FORMAT,
      version: KEYSTORE_VERSION,
      keyId,
      kdf: { algorithm: 'argon2id', ...kdf, salt: salt.toString('base64') },
      check: Buffer.from(aeadSeal(kek, utf8.encode(CHECK_PLAINTEXT), checkAad(keyId, kdf))).toString('base64'),
      createdAt: new Date().toISOString(),
    };
    const created = await createFileExclusive(file, utf8.encode(JSON.stringify(ks, null, 2) + '\n'));
    if (!created) {
      wipe(kek);
      return undefined;
    }
    return new LocalSealer(file, keyId, kek);
  }

  #key(): Uint8Array {
    if (this.#kek === null) throw new KeystoreError(`local sealer for ${this.keystorePath} is closed`);
    return this.#kek;
  }

  async wrapKey(dataKey: Uint8Array, context: string): Promise<Uint8Array> {
    if (!(dataKey instanceof Uint8Array) || dataKey.length !== DATA_KEY_LENGTH) {
      throw new RangeError(`data key must be ${DATA_KEY_LENGTH} bytes`);
    }
    const sealed = aeadSeal(this.#key(), dataKey, wrapAad(this.#keyIdBytes, context));
    return concatBytes(Uint8Array.of(WRAP_TAG), this.#keyIdBytes, sealed);
  }

  async unwrapKey(wrapped: Uint8Array, context: string): Promise<Uint8Array> {
    const kek = this.#key();
    if (!this.isCurrent(wrapped)) {
      throw new SealError('wrapped key was not made by this local keystore');
    }
    const dataKey = aeadOpen(kek, wrapped.subarray(1 + KEY_ID_LENGTH), wrapAad(this.#keyIdBytes, context));
    if (dataKey.length !== DATA_KEY_LENGTH) {
      wipe(dataKey);
      throw new SealError('unwrapped data key has the wrong length');
    }
    return dataKey;
  }

  /** A local keystore has one key version; "current" means wrapped by this keystore's KEK. */
  isCurrent(wrapped: Uint8Array): boolean {
    if (wrapped.length <= 1 + KEY_ID_LENGTH || wrapped[0] !== WRAP_TAG) return false;
    const id = wrapped.subarray(1, 1 + KEY_ID_LENGTH);
    return id.every((b, i) => b === this.#keyIdBytes[i]);
  }

  async close(): Promise<void> {
    wipe(this.#kek);
    this.#kek = null;
  }
}
