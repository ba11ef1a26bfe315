/** Secret storage of a signer node: sealers, the sealed record store and the one-time secret pool. */
export type { Sealer, SealerKind } from './sealer.js';
export { DATA_KEY_LENGTH } from './sealer.js';
export { LocalSealer, KeystoreError, WrongPassphraseError, KEYSTORE_FILE, type LocalSealerOptions } from './local-sealer.js';
export { type ShareStore, RecordNameError, validateRecordName, validateRecordPrefix } from './share-store.js';
export { SealedFileStore, RecordError, type RewrapResult } from './sealed-file-store.js';
export {
  NonceStore,
  NonceStoreError,
  DEFAULT_MAX_PER_POOL,
  type NonceStoreOptions,
  type NonceStoreStats,
  type TakeResult,
} from './nonce-store.js';
