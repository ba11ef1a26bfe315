/**
 * Chain addresses of wallet keys (shared/PROTOCOLS.md "HD derivation and batch wallets"):
 * Ethereum (keccak-256, EIP-55 checksum), Bitcoin P2WPKH (BIP-173 bech32, witness v0) and P2TR
 * (BIP-350 bech32m, witness v1), Solana (base58 of the Ed25519 key).
 *
 * Batch wallet creation calls these 100,000 times, so nothing decodes a point it does not have to:
 * the Bitcoin and Solana encoders check lengths and prefixes only (their keys come from
 * crypto/hd/derive.ts, which validated them), and Ethereum takes the uncompressed key when the
 * caller has it (deriveChildren / deriveWalletKeys with { uncompressed: true }) instead of paying a
 * square root to decompress.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { ripemd160 } from '@noble/hashes/legacy.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { utf8ToBytes } from '@noble/hashes/utils.js';
import { base58, bech32, bech32m, hex } from '@scure/base';
import type { HdScheme } from './derive.js';

export type BitcoinNetwork = 'mainnet' | 'testnet';

export interface WalletAddresses {
  ethereum?: string;
  bitcoinP2wpkh?: string;
  bitcoinP2tr?: string;
  solana?: string;
}

const HRP: Record<BitcoinNetwork, string> = { mainnet: 'bc', testnet: 'tb' };

function hrpOf(network: BitcoinNetwork): string {
  const h = HRP[network];
  if (h === undefined) throw new RangeError(`unknown Bitcoin network ${String(network)}`);
  return h;
}

function checkBytes(b: Uint8Array, length: number, what: string): void {
  if (!(b instanceof Uint8Array) || b.length !== length) throw new RangeError(`${what} must be ${length} bytes`);
}

const P = secp256k1.Point.Fp.ORDER;

/** EIP-55 on 40 lowercase hex digits: a letter is upper case where the keccak-256 nibble of the lowercase text is >= 8. */
function checksum(lower: string): string {
  const h = keccak_256(utf8ToBytes(lower));
  let out = '0x';
  for (let i = 0; i < 40; i++) {
    const c = lower[i]!;
    const nibble = (h[i >> 1]! >> (i & 1 ? 0 : 4)) & 0xf;
    out += nibble >= 8 && c >= 'a' ? c.toUpperCase() : c;
  }
  return out;
}

/** EIP-55 checksummed form of a 20-byte address given as 40 hex digits, with or without 0x, in any case. */
export function toChecksumAddress(hex40: string): string {
  const s = typeof hex40 === 'string' && hex40.startsWith('0x') ? hex40.slice(2) : hex40;
  if (typeof s !== 'string' || !/^[0-9a-fA-F]{40}$/.test(s)) throw new RangeError('an Ethereum address is 40 hex digits');
  return checksum(s.toLowerCase());
}

/**
 * Ethereum address of a 65-byte uncompressed SEC1 key (0x04 || X || Y): the last 20 bytes of
 * keccak-256(X || Y), EIP-55 checksummed. Checks that (X, Y) is on the curve (three field
 * multiplications): hashing garbage would give an address nobody can sign for.
 */
export function ethereumAddressFromUncompressed(pk65: Uint8Array): string {
  checkBytes(pk65, 65, 'uncompressed secp256k1 public key');
  if (pk65[0] !== 4) throw new RangeError('uncompressed secp256k1 public key must start with 0x04');
  const x = bytesToBigint(pk65.subarray(1, 33));
  const y = bytesToBigint(pk65.subarray(33));
  if (x >= P || y >= P || (y * y - x * x * x - 7n) % P !== 0n) throw new RangeError('not a point on secp256k1');
  return checksum(hex.encode(keccak_256(pk65.subarray(1)).subarray(12)));
}

function bytesToBigint(b: Uint8Array): bigint {
  return BigInt('0x' + hex.encode(b));
}

/** EIP-55 address of a secp256k1 key, 33-byte compressed (decompressed here: a square root) or 65-byte uncompressed. */
export function ethereumAddress(compressedOrUncompressedSecp256k1: Uint8Array): string {
  const pk = compressedOrUncompressedSecp256k1;
  if (pk instanceof Uint8Array && pk.length === 65) return ethereumAddressFromUncompressed(pk);
  checkBytes(pk, 33, 'secp256k1 public key (33 or 65 bytes)');
  let full: Uint8Array;
  try {
    full = secp256k1.Point.fromBytes(pk).toBytes(false);
  } catch {
    throw new RangeError('not a valid compressed secp256k1 point');
  }
  return checksum(hex.encode(keccak_256(full.subarray(1)).subarray(12)));
}

/**
 * BIP-173 P2WPKH: bech32(hrp, witness v0, HASH160(pk)) with HASH160 = RIPEMD-160(SHA-256(pk)).
 * BIP-143 allows compressed keys only. The point itself is not decoded (see the module comment).
 */
export function p2wpkhAddress(compressed33: Uint8Array, network: BitcoinNetwork = 'mainnet'): string {
  checkBytes(compressed33, 33, 'P2WPKH public key (compressed)');
  if (compressed33[0] !== 2 && compressed33[0] !== 3) throw new RangeError('P2WPKH needs a compressed key (0x02 or 0x03 prefix)');
  const program = ripemd160(sha256(compressed33));
  return bech32.encode(hrpOf(network), [0, ...bech32.toWords(program)]);
}

/** BIP-341 / BIP-350 P2TR: bech32m(hrp, witness v1, x-only OUTPUT key). The key must already carry the TapTweak (taprootOutput / walletKey). */
export function p2trAddress(outputKeyXOnly32: Uint8Array, network: BitcoinNetwork = 'mainnet'): string {
  checkBytes(outputKeyXOnly32, 32, 'P2TR output key (x-only)');
  return bech32m.encode(hrpOf(network), [1, ...bech32m.toWords(outputKeyXOnly32)]);
}

/** Solana: the base58 text of the 32-byte Ed25519 public key. */
export function solanaAddress(ed25519Pk32: Uint8Array): string {
  checkBytes(ed25519Pk32, 32, 'Ed25519 public key');
  return base58.encode(ed25519Pk32);
}

/** 65-byte uncompressed -> 33-byte compressed: no arithmetic, the parity of Y is its last bit. */
function compress(pk65: Uint8Array): Uint8Array {
  const out = new Uint8Array(33);
  out[0] = 2 | (pk65[64]! & 1);
  out.set(pk65.subarray(1, 33), 1);
  return out;
}

/**
 * Addresses per scheme for a wallet public key as returned by walletKey: ecdsa -> ethereum +
 * bitcoinP2wpkh; bip340 -> bitcoinP2tr (input is already the x-only output key); ed25519 ->
 * solana; secp256k1 (RFC 9591 FROST, not a chain format) -> {}. Addition to the brief: for ecdsa
 * the 65-byte uncompressed key is accepted too, and is the cheap input (no square root).
 */
export function walletAddresses(scheme: HdScheme, walletPublicKey: Uint8Array, network: BitcoinNetwork = 'mainnet'): WalletAddresses {
  switch (scheme) {
    case 'ecdsa': {
      if (walletPublicKey instanceof Uint8Array && walletPublicKey.length === 65) {
        const ethereum = ethereumAddressFromUncompressed(walletPublicKey);
        return { ethereum, bitcoinP2wpkh: p2wpkhAddress(compress(walletPublicKey), network) };
      }
      const bitcoinP2wpkh = p2wpkhAddress(walletPublicKey, network);
      return { ethereum: ethereumAddress(walletPublicKey), bitcoinP2wpkh };
    }
    case 'bip340':
      return { bitcoinP2tr: p2trAddress(walletPublicKey, network) };
    case 'ed25519':
      return { solana: solanaAddress(walletPublicKey) };
    case 'secp256k1':
      checkBytes(walletPublicKey, 33, 'secp256k1 wallet public key');
      return {};
    default:
      throw new RangeError(`unknown HD scheme ${String(scheme)}`);
  }
}
