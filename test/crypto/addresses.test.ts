/**
 * Chain addresses (crypto/hd/addresses.ts) against published vectors: EIP-55, BIP-173 (P2WPKH),
 * BIP-350 and BIP-86 (P2TR), Solana program ids; ethers as a second Ethereum implementation.
 */
import { describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { base58, bech32, bech32m } from '@scure/base';
import { HDKey } from '@scure/bip32';
import { computeAddress, getAddress } from 'ethers';
import {
  ethereumAddress,
  ethereumAddressFromUncompressed,
  p2trAddress,
  p2wpkhAddress,
  solanaAddress,
  toChecksumAddress,
  walletAddresses,
} from '../../crypto/hd/addresses.js';
import { deriveChildren, deriveWalletKeys, walletKey } from '../../crypto/hd/derive.js';

const Secp = secp256k1.Point;
const randomSecp = () => Secp.BASE.multiply((bytesToNumberBE(randomBytes(48)) % (Secp.Fn.ORDER - 1n)) + 1n);

describe('Ethereum', () => {
  // EIP-55 "Test Cases": all caps, all lower, normal.
  const EIP55 = [
    '0x52908400098527886E0F7030069857D2E4169EE7',
    '0x8617E340B3D01FA5F11F306F4090FD50E238070D',
    '0xde709f2102306220921060314715629080e2fb77',
    '0x27b1fdb04752bbc536007a920d24acb045561c26',
    '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
    '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359',
    '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB',
    '0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb',
  ];

  it.each(EIP55)('EIP-55 checksum %s', (address) => {
    expect(toChecksumAddress(address.toLowerCase())).toBe(address);
    expect(toChecksumAddress(address.slice(2).toUpperCase())).toBe(address);
  });

  it('rejects what is not 40 hex digits', () => {
    for (const bad of ['', '0x', '0x' + '0'.repeat(39), '0x' + '0'.repeat(41), '0x' + 'g'.repeat(40), '0X' + '0'.repeat(40)]) {
      expect(() => toChecksumAddress(bad)).toThrow(RangeError);
    }
  });

  it('private key 1 is 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf', () => {
    const G = Secp.BASE;
    expect(ethereumAddress(G.toBytes(true))).toBe('0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf');
    expect(ethereumAddress(G.toBytes(false))).toBe('0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf');
    expect(ethereumAddressFromUncompressed(G.toBytes(false))).toBe('0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf');
  });

  it('agrees with ethers on random keys, compressed and uncompressed', () => {
    for (let i = 0; i < 20; i++) {
      const P = randomSecp();
      const expected = computeAddress('0x' + P.toHex(true));
      expect(ethereumAddress(P.toBytes(true))).toBe(expected);
      expect(ethereumAddressFromUncompressed(P.toBytes(false))).toBe(expected);
      expect(getAddress(expected.toLowerCase())).toBe(expected);
    }
  });

  it('rejects keys that are not on the curve or not SEC1', () => {
    const u = randomSecp().toBytes(false);
    const offCurve = u.slice();
    offCurve[64] ^= 1; // y+1 or y-1 and the same x: not on the curve
    expect(() => ethereumAddressFromUncompressed(offCurve)).toThrow(/not a point on secp256k1/);
    const badPrefix = u.slice();
    badPrefix[0] = 6;
    expect(() => ethereumAddressFromUncompressed(badPrefix)).toThrow(/0x04/);
    expect(() => ethereumAddress(u.subarray(1))).toThrow(RangeError);
    const badCompressed = new Uint8Array(33).fill(0xff);
    badCompressed[0] = 2;
    expect(() => ethereumAddress(badCompressed)).toThrow(/not a valid compressed/);
  });
});

describe('Bitcoin', () => {
  const G_COMPRESSED = hexToBytes('0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798');

  it('BIP-173 P2WPKH of the generator, mainnet and testnet', () => {
    expect(p2wpkhAddress(G_COMPRESSED)).toBe('bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4');
    expect(p2wpkhAddress(G_COMPRESSED, 'mainnet')).toBe('bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4');
    expect(p2wpkhAddress(G_COMPRESSED, 'testnet')).toBe('tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx');
    // BIP-173: this address is the witness program 751e76e8199196d454941c45d1b3a323f1433bd6.
    const { prefix, words } = bech32.decode('bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4');
    expect(prefix).toBe('bc');
    expect(words[0]).toBe(0);
    expect(bytesToHex(bech32.fromWords(words.slice(1)))).toBe('751e76e8199196d454941c45d1b3a323f1433bd6');
  });

  it('P2WPKH refuses uncompressed and malformed keys', () => {
    expect(() => p2wpkhAddress(Secp.BASE.toBytes(false))).toThrow(/33 bytes/);
    const k = G_COMPRESSED.slice();
    k[0] = 4;
    expect(() => p2wpkhAddress(k)).toThrow(/compressed key/);
    expect(() => p2wpkhAddress(G_COMPRESSED, 'regtest' as 'mainnet')).toThrow(/unknown Bitcoin network/);
  });

  it('BIP-350 P2TR vector and bech32m round trip', () => {
    const x = hexToBytes('79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798');
    expect(p2trAddress(x)).toBe('bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0');
    for (const network of ['mainnet', 'testnet'] as const) {
      const key = randomSecp().toBytes(true).subarray(1);
      const address = p2trAddress(key, network);
      const { prefix, words } = bech32m.decode(address as `${string}1${string}`);
      expect(prefix).toBe(network === 'mainnet' ? 'bc' : 'tb');
      expect(words[0]).toBe(1);
      expect(bech32m.fromWords(words.slice(1))).toEqual(key);
      // bech32 (BIP-173) must not accept it: v1 uses the bech32m constant.
      expect(() => bech32.decode(address as `${string}1${string}`)).toThrow();
    }
    expect(() => p2trAddress(new Uint8Array(33))).toThrow(/32 bytes/);
  });

  it('BIP-86 addresses from the published account xpub (walletKey + walletAddresses)', () => {
    const account = HDKey.fromExtendedKey(
      'xpub6BgBgsespWvERF3LHQu6CnqdvfEvtMcQjYrcRzx53QJjSxarj2afYWcLteoGVky7D3UKDP9QyrLprQ3VCECoY49yfdDEHGCtMMj92pReUsQ',
    );
    const root = { publicKey: account.publicKey!, chainCode: account.chainCode! };
    const vectors: [number[], string][] = [
      [[0, 0], 'bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr'],
      [[0, 1], 'bc1p4qhjn9zdvkux4e44uhx8tc55attvtyu358kutcqkudyccelu0was9fqzwh'],
      [[1, 0], 'bc1p3qkhfews2uk44qtvauqyr2ttdsw7svhkl9nkm9s9c3x4ax5h60wqwruhk7'],
    ];
    for (const [path, address] of vectors) {
      const w = walletKey('bip340', root, path);
      expect(walletAddresses('bip340', w.publicKey)).toEqual({ bitcoinP2tr: address });
      expect(p2trAddress(w.publicKey)).toBe(address);
    }
    // The batch path gives the same first receiving address.
    expect(p2trAddress(deriveWalletKeys('bip340', root, [0], 0, 1).publicKeys[0]!)).toBe(vectors[0]![1]);
  });
});

describe('Solana', () => {
  it('base58 of published program ids', () => {
    expect(solanaAddress(new Uint8Array(32))).toBe('11111111111111111111111111111111'); // system program
    expect(solanaAddress(hexToBytes('06ddf6e1d765a193d9cbe146ceeb79ac1cb485ed5f5b37913a8cf5857eff00a9'))).toBe(
      'TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA', // SPL token program
    );
  });

  it('round-trips Ed25519 keys', () => {
    for (let i = 0; i < 10; i++) {
      const pk = ed25519.getPublicKey(randomBytes(32));
      expect(base58.decode(solanaAddress(pk))).toEqual(pk);
    }
    expect(() => solanaAddress(new Uint8Array(31))).toThrow(/32 bytes/);
  });
});

describe('walletAddresses', () => {
  it('per scheme', () => {
    const P = randomSecp();
    const c = P.toBytes(true);
    const eth = computeAddress('0x' + P.toHex(true));
    expect(walletAddresses('ecdsa', c)).toEqual({ ethereum: eth, bitcoinP2wpkh: p2wpkhAddress(c) });
    // The uncompressed key is the cheap input and gives the same addresses, for both parities of y.
    const parities = new Set<number>();
    for (let i = 0; i < 64 && parities.size < 2; i++) {
      const Q = randomSecp();
      parities.add(Q.toBytes(true)[0]!);
      expect(walletAddresses('ecdsa', Q.toBytes(false))).toEqual(walletAddresses('ecdsa', Q.toBytes(true)));
    }
    expect(parities.size).toBe(2);
    expect(walletAddresses('ecdsa', P.toBytes(false), 'testnet').bitcoinP2wpkh).toBe(p2wpkhAddress(c, 'testnet'));
    expect(walletAddresses('bip340', c.subarray(1), 'testnet')).toEqual({ bitcoinP2tr: p2trAddress(c.subarray(1), 'testnet') });
    const e = ed25519.getPublicKey(randomBytes(32));
    expect(walletAddresses('ed25519', e)).toEqual({ solana: base58.encode(e) });
    expect(walletAddresses('secp256k1', c)).toEqual({});
    expect(() => walletAddresses('bip340', c)).toThrow(/32 bytes/);
    expect(() => walletAddresses('x' as 'ecdsa', c)).toThrow(/unknown HD scheme/);
  });

  it('speed (printed, not asserted): 10,000 wallets', () => {
    const root = { publicKey: randomSecp().toBytes(true), chainCode: randomBytes(32) };
    const n = 10_000;
    const ecdsa = deriveChildren('ecdsa', root, 0, n, { uncompressed: true });
    const taproot = deriveWalletKeys('bip340', root, [0], 0, n);
    const solana = Array.from({ length: n }, () => randomBytes(32));
    const rate = (name: string, keys: Uint8Array[], scheme: 'ecdsa' | 'bip340' | 'ed25519') => {
      const start = performance.now();
      for (const k of keys) walletAddresses(scheme, k);
      const ms = performance.now() - start;
      console.log(`walletAddresses ${name}: ${Math.round(n / (ms / 1000))} wallets/s (${ms.toFixed(0)} ms for 10,000)`);
    };
    rate('ecdsa from 65-byte keys (ethereum + p2wpkh)', ecdsa.uncompressed!, 'ecdsa');
    rate('ecdsa from 33-byte keys (decompresses)', ecdsa.publicKeys, 'ecdsa');
    rate('bip340 (p2tr)', taproot.publicKeys, 'bip340');
    rate('ed25519 (solana)', solana, 'ed25519');
  });
});
