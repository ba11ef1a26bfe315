/**
 * Where wallets live under a keyset root, and their keys and addresses in bulk.
 *
 * The keyset root plays the role of a BIP-44 account key; wallet i is the non-hardened child
 * m/0/i (the external chain). Wallet keys are what signatures verify under: for bip340 keysets the
 * BIP-86 Taproot output key (key-path only, no script tree), for the others the derived child key.
 */
import { walletAddresses, type BitcoinNetwork, type WalletAddresses } from './addresses.js';
import { deriveWalletKeys, formatPath, type ExtendedPublicKey, type HdScheme } from './derive.js';

/** The external chain of the account: wallets are m/0/i. */
export const WALLET_CHAIN = 0;
/** Non-hardened indexes stop below 2^31. */
export const MAX_WALLET_INDEX = 0x7fffffff;

export const walletPath = (index: number): string => formatPath([WALLET_CHAIN, index]);

export interface DerivedWallets {
  /** As walletKey encodes them (x-only for bip340). */
  publicKeys: Uint8Array[];
  addresses: WalletAddresses[];
}

/** Keys and addresses of wallets from .. from+count-1 of a keyset root (public data only). */
export function deriveWalletBatch(scheme: HdScheme, root: ExtendedPublicKey, from: number, count: number, network?: BitcoinNetwork): DerivedWallets {
  if (!Number.isInteger(from) || !Number.isInteger(count) || from < 0 || count < 0 || from + count - 1 > MAX_WALLET_INDEX) {
    throw new RangeError(`wallet indexes ${from}..${from + count - 1} are outside 0..${MAX_WALLET_INDEX}`);
  }
  // Ethereum addresses hash the uncompressed key: take it from the derivation, not a square root per key.
  const keys = deriveWalletKeys(scheme, root, [WALLET_CHAIN], from, count, { uncompressed: scheme === 'ecdsa' });
  const forAddresses = keys.uncompressed ?? keys.publicKeys;
  return { publicKeys: keys.publicKeys, addresses: forAddresses.map((k) => walletAddresses(scheme, k, network)) };
}
