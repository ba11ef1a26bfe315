/** Ethereum transaction decoding and intents, checked against ethers 6. */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, concatBytes, hexToBytes } from '@noble/hashes/utils.js';
import { computeAddress, getBytes, hexlify, Interface, Transaction, Wallet, type TransactionLike } from 'ethers';
import { describe, expect, it, test } from 'vitest';
import { parsePolicy } from '../../policy/document.js';
import { decodeUnsignedEthTx, EthTxError, rlpEncode, signedEthTx, uintBytes } from '../../policy/eth-tx.js';
import { IntentError, intentJson, intentOfEthTx, rawDigestIntent } from '../../policy/intent.js';
import { ALICE_ADDR, BOB_ADDR, CAROL_ADDR, ETH, testPolicyJson, USDC_CONTRACT } from './support.js';

const erc20 = new Interface([
  'function transfer(address to, uint256 amount)',
  'function transferFrom(address from, address to, uint256 amount)',
  'function approve(address spender, uint256 amount)',
  'function mint(address to, uint256 amount)',
]);

const doc = parsePolicy(testPolicyJson([]));

const base: Record<0 | 1 | 2, TransactionLike> = {
  0: { type: 0, chainId: 1n, nonce: 7, gasPrice: 30_000_000_000n, gasLimit: 21_000n },
  1: { type: 1, chainId: 1n, nonce: 8, gasPrice: 31_000_000_000n, gasLimit: 60_000n, accessList: [{ address: CAROL_ADDR, storageKeys: ['0x' + '11'.repeat(32)] }] },
  2: { type: 2, chainId: 1n, nonce: 9, maxPriorityFeePerGas: 1_000_000_000n, maxFeePerGas: 40_000_000_000n, gasLimit: 65_000n },
};

function unsigned(type: 0 | 1 | 2, fields: TransactionLike): { bytes: Uint8Array; tx: Transaction } {
  const tx = Transaction.from({ ...base[type], ...fields });
  return { bytes: getBytes(tx.unsignedSerialized), tx };
}

describe('decodeUnsignedEthTx', () => {
  test.each([0, 1, 2] as const)('type %i native transfer: fields and signing hash match ethers', (type) => {
    const { bytes, tx } = unsigned(type, { to: ALICE_ADDR.toLowerCase(), value: 3n * ETH + 1n });
    const d = decodeUnsignedEthTx(bytes);
    expect(d.type).toBe(type);
    expect(d.chainId).toBe(1n);
    expect(d.nonce).toBe(tx.nonce);
    expect(d.to).toBe(ALICE_ADDR);
    expect(d.value).toBe(3n * ETH + 1n);
    expect(d.data).toEqual(new Uint8Array(0));
    expect(d.gasLimit).toBe(tx.gasLimit);
    expect(d.maxFeePerGas).toBe(type === 2 ? tx.maxFeePerGas : tx.gasPrice);
    expect('0x' + bytesToHex(d.signingHash)).toBe(tx.unsignedHash);
    expect(intentOfEthTx(d, doc)).toEqual({ kind: 'native-transfer', chainId: 1n, asset: 'ETH', amount: 3n * ETH + 1n, destination: ALICE_ADDR });
  });

  test.each([0, 1, 2] as const)('type %i ERC-20 transfer, transferFrom, approve', (type) => {
    const big = 2n ** 256n - 1n;
    const cases = [
      { data: erc20.encodeFunctionData('transfer', [BOB_ADDR, 1_500_000n]), want: { kind: 'erc20-transfer', destination: BOB_ADDR, amount: 1_500_000n } },
      { data: erc20.encodeFunctionData('transferFrom', [CAROL_ADDR, BOB_ADDR, 0n]), want: { kind: 'erc20-transfer-from', source: CAROL_ADDR, destination: BOB_ADDR, amount: 0n } },
      { data: erc20.encodeFunctionData('approve', [ALICE_ADDR, big]), want: { kind: 'erc20-approve', destination: ALICE_ADDR, amount: big } },
    ];
    for (const c of cases) {
      const { bytes, tx } = unsigned(type, { to: USDC_CONTRACT, value: 0n, data: c.data });
      const d = decodeUnsignedEthTx(bytes);
      expect(hexlify(d.data)).toBe(c.data);
      expect('0x' + bytesToHex(d.signingHash)).toBe(tx.unsignedHash);
      expect(intentOfEthTx(d, doc)).toEqual({ chainId: 1n, asset: 'USDC', contract: USDC_CONTRACT, ...c.want });
    }
  });

  it('an ERC-20 contract the policy does not list, or on another chain, is asset "unknown"', () => {
    const data = erc20.encodeFunctionData('transfer', [BOB_ADDR, 5n]);
    const other = decodeUnsignedEthTx(unsigned(2, { to: CAROL_ADDR, data }).bytes);
    expect(intentOfEthTx(other, doc)).toMatchObject({ asset: 'unknown', contract: CAROL_ADDR, amount: 5n });
    const wrongChain = decodeUnsignedEthTx(unsigned(2, { chainId: 5n, to: USDC_CONTRACT, data }).bytes);
    expect(intentOfEthTx(wrongChain, doc)).toMatchObject({ asset: 'unknown', chainId: 5n });
    const nativeOtherChain = decodeUnsignedEthTx(unsigned(2, { chainId: 137n, to: ALICE_ADDR, value: 1n }).bytes);
    expect(intentOfEthTx(nativeOtherChain, doc)).toMatchObject({ kind: 'native-transfer', asset: 'unknown', chainId: 137n });
  });

  it('intentJson is all strings, amounts in smallest units', () => {
    const d = decodeUnsignedEthTx(unsigned(2, { to: USDC_CONTRACT, data: erc20.encodeFunctionData('transferFrom', [CAROL_ADDR, BOB_ADDR, 10n ** 30n]) }).bytes);
    expect(intentJson(intentOfEthTx(d, doc))).toEqual({
      kind: 'erc20-transfer-from',
      chainId: '1',
      asset: 'USDC',
      amount: '1000000000000000000000000000000',
      destination: BOB_ADDR,
      source: CAROL_ADDR,
      contract: USDC_CONTRACT,
    });
    expect(intentJson(rawDigestIntent())).toEqual({ kind: 'raw-digest', asset: 'unknown', amount: '0', destination: '' });
  });
});

describe('refusals', () => {
  const wallet = new Wallet('0x' + '42'.repeat(32));

  test.each([0, 1, 2] as const)('type %i: an already signed transaction', async (type) => {
    const signed = await wallet.signTransaction({ ...base[type], to: ALICE_ADDR, value: 1n });
    expect(() => decodeUnsignedEthTx(getBytes(signed))).toThrow(/already signed/);
  });

  it('legacy without an EIP-155 chain id', () => {
    const tx = Transaction.from({ type: 0, nonce: 1, gasPrice: 1n, gasLimit: 21000n, to: ALICE_ADDR, value: 1n });
    expect(tx.chainId).toBe(0n);
    expect(() => decodeUnsignedEthTx(getBytes(tx.unsignedSerialized))).toThrow(/without an EIP-155 chain id/);
  });

  test.each([0, 1, 2] as const)('type %i: contract creation', (type) => {
    const { bytes } = unsigned(type, { to: null, data: '0x6000' });
    expect(() => decodeUnsignedEthTx(bytes)).toThrow(/contract creation/);
  });

  it('unknown selector, truncated or padded ABI data, dirty address padding, value on a token call, data on a transfer', () => {
    const intent = (data: string, value = 0n) => intentOfEthTx(decodeUnsignedEthTx(unsigned(2, { to: USDC_CONTRACT, data, value }).bytes), doc);
    const transfer = erc20.encodeFunctionData('transfer', [BOB_ADDR, 1n]);
    expect(() => intent(erc20.encodeFunctionData('mint', [BOB_ADDR, 1n]))).toThrow(/selector 0x40c10f19 is not decodable/);
    expect(() => intent(transfer.slice(0, -2))).toThrow(/exactly 68 bytes, got 67/);
    expect(() => intent(transfer + '00')).toThrow(/exactly 68 bytes, got 69/);
    expect(() => intent('0xa9059c')).toThrow(/needs a 4-byte selector/);
    const dirty = transfer.slice(0, 10) + '01' + transfer.slice(12);
    expect(() => intent(dirty)).toThrow(/padding bytes are not zero/);
    const dirtyFrom = erc20.encodeFunctionData('transferFrom', [CAROL_ADDR, BOB_ADDR, 1n]);
    expect(() => intent(dirtyFrom.slice(0, 74) + 'ff' + dirtyFrom.slice(76))).toThrow(/argument to is not a valid address/);
    expect(() => intent(transfer, 1n)).toThrow(/also sends 1 wei/);
    for (const f of [() => intent('0xdeadbeef'), () => intent(transfer.slice(0, -2))]) expect(f).toThrow(IntentError);
  });

  test.each([
    ['empty', new Uint8Array(0), /empty transaction/],
    ['garbage', hexToBytes('deadbeef'), /claims 30 bytes but only 3 remain \(truncated\)/],
    ['text', new TextEncoder().encode('hello'), /unsupported transaction type 0x68/],
    ['type 3 (blob)', Uint8Array.of(3, 0xc0), /unsupported transaction type 0x03/],
    ['type 4 (set code)', Uint8Array.of(4, 0xc0), /unsupported transaction type 0x04/],
    ['a byte string, not a list', Uint8Array.of(2, 0x83, 1, 2, 3), /must be an RLP list/],
    ['truncated list', Uint8Array.of(2, 0xc5, 1, 2), /truncated/],
    ['list too short', Uint8Array.of(2, 0xc3, 1, 2, 3), /must have 9 fields when unsigned, got 3/],
    ['first byte not RLP', Uint8Array.of(0x90, 1), /not a transaction/],
  ])('malformed: %s', (_n, bytes, msg) => {
    expect(() => decodeUnsignedEthTx(bytes)).toThrow(msg);
    expect(() => decodeUnsignedEthTx(bytes)).toThrow(EthTxError);
  });

  it('non-canonical RLP and trailing bytes', () => {
    const { bytes } = unsigned(2, { to: ALICE_ADDR, value: 1n });
    expect(() => decodeUnsignedEthTx(concatBytes(bytes, Uint8Array.of(0)))).toThrow(/1 trailing byte/);
    // nonce written with a leading zero byte
    const fields = (nonce: Uint8Array) => [uintBytes(1n), nonce, uintBytes(1n), uintBytes(2n), uintBytes(21000n), hexToBytes(ALICE_ADDR.slice(2)), uintBytes(1n), new Uint8Array(0), []];
    expect(() => decodeUnsignedEthTx(concatBytes(Uint8Array.of(2), rlpEncode(fields(Uint8Array.of(0, 5)))))).toThrow(/nonce has a leading zero/);
    expect(() => decodeUnsignedEthTx(concatBytes(Uint8Array.of(2), rlpEncode(fields(Uint8Array.of(5)))))).not.toThrow();
    // single byte 0x05 wrapped as a one-byte string
    const good = concatBytes(Uint8Array.of(2), rlpEncode(fields(Uint8Array.of(5))));
    const i = good.indexOf(0x05, 3);
    const wrapped = concatBytes(good.subarray(0, i), Uint8Array.of(0x81), good.subarray(i));
    wrapped[1]! += 1; // list length grows by one (short list)
    expect(() => decodeUnsignedEthTx(wrapped)).toThrow(/single byte below 0x80 wrapped/);
    // long form for a short length
    const longForm = concatBytes(Uint8Array.of(2, 0xf8, good[1]! - 0xc0), good.subarray(2));
    expect(() => decodeUnsignedEthTx(longForm)).toThrow(/long form used for length/);
    // address of the wrong length
    const shortTo = [uintBytes(1n), uintBytes(1n), uintBytes(1n), uintBytes(2n), uintBytes(21000n), new Uint8Array(19), uintBytes(1n), new Uint8Array(0), []];
    expect(() => decodeUnsignedEthTx(concatBytes(Uint8Array.of(2), rlpEncode(shortTo)))).toThrow(/20-byte address, got 19/);
  });
});

describe('signedEthTx', () => {
  const sk = secp256k1.utils.randomSecretKey();
  const address = computeAddress(hexlify(secp256k1.getPublicKey(sk, false)));
  const N = secp256k1.Point.CURVE().n;

  function rsv(hash: Uint8Array): Uint8Array {
    const rec = secp256k1.sign(hash, sk, { prehash: false, format: 'recovered' }); // v || r || s
    return concatBytes(rec.subarray(1), rec.subarray(0, 1));
  }

  test.each([0, 1, 2] as const)('type %i: ethers parses the signed tx and recovers our address', (type) => {
    const data = erc20.encodeFunctionData('transfer', [BOB_ADDR, 123n]);
    const { bytes, tx } = unsigned(type, { to: USDC_CONTRACT, data });
    const d = decodeUnsignedEthTx(bytes);
    const signed = signedEthTx(bytes, rsv(d.signingHash));
    const parsed = Transaction.from(hexlify(signed));
    expect(parsed.from).toBe(address);
    expect(parsed.type).toBe(type);
    expect(parsed.chainId).toBe(1n);
    expect(parsed.unsignedHash).toBe(tx.unsignedHash);
    expect(parsed.data).toBe(data);
    expect(() => decodeUnsignedEthTx(signed)).toThrow(/already signed/);
  });

  it('normalizes a high-s signature (flips v) to the same transaction', () => {
    const { bytes } = unsigned(0, { to: ALICE_ADDR, value: 5n });
    const sig = rsv(decodeUnsignedEthTx(bytes).signingHash);
    const s = BigInt('0x' + bytesToHex(sig.subarray(32, 64)));
    const high = concatBytes(sig.subarray(0, 32), hexToBytes((N - s).toString(16).padStart(64, '0')), Uint8Array.of(sig[64]! ^ 1));
    expect(signedEthTx(bytes, high)).toEqual(signedEthTx(bytes, sig));
    expect(Transaction.from(hexlify(signedEthTx(bytes, high))).from).toBe(address);
  });

  it('refuses bad signatures', () => {
    const { bytes } = unsigned(2, { to: ALICE_ADDR, value: 5n });
    const sig = rsv(decodeUnsignedEthTx(bytes).signingHash);
    expect(() => signedEthTx(bytes, sig.subarray(0, 64))).toThrow(/65 bytes/);
    expect(() => signedEthTx(bytes, concatBytes(sig.subarray(0, 64), Uint8Array.of(27)))).toThrow(/v must be 0 or 1/);
    expect(() => signedEthTx(bytes, concatBytes(new Uint8Array(32), sig.subarray(32)))).toThrow(/r is out of range/);
    expect(() => signedEthTx(bytes, concatBytes(sig.subarray(0, 32), hexToBytes(N.toString(16)), sig.subarray(64)))).toThrow(/s is out of range/);
  });
});
