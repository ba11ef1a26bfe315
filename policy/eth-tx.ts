/**
 * Unsigned Ethereum transactions: a strict RLP decoder and the signed serialization.
 *
 * Accepted: legacy with an EIP-155 chain id ([nonce, gasPrice, gasLimit, to, value, data, chainId,
 * 0, 0]), EIP-2930 (0x01 || rlp([chainId, nonce, gasPrice, gasLimit, to, value, data,
 * accessList])) and EIP-1559 (0x02 || rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas,
 * gasLimit, to, value, data, accessList])). The signing hash is keccak256 of exactly those bytes.
 *
 * Strict means: canonical RLP only (minimal lengths, no leading zeros in integers, single bytes
 * below 0x80 not wrapped), no trailing bytes, exact field counts, 20-byte addresses, 32-byte
 * storage keys. Because only the canonical encoding is accepted, the bytes that were decoded are
 * the bytes whose hash is signed: the decoded fields and the signature cannot disagree.
 *
 * Written here (about 200 lines on @noble/hashes) rather than by calling ethers so that signer
 * nodes do not carry a general-purpose wallet library in their trust base; the tests check every
 * result against ethers 6.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { concatBytes } from '@noble/hashes/utils.js';
import { addressFromBytes } from './address.js';

export interface EthTxDecoded {
  type: 0 | 1 | 2;
  chainId: bigint;
  nonce: number;
  /** EIP-55 */
  to: string;
  value: bigint;
  data: Uint8Array;
  signingHash: Uint8Array;
  /** gas limit, and the fee cap per gas (gasPrice for types 0 and 1, maxFeePerGas for type 2): the most the tx can burn in fees is their product */
  gasLimit: bigint;
  maxFeePerGas: bigint;
}

export class EthTxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EthTxError';
  }
}

// ---------------------------------------------------------------------------------------------
// RLP

export type RlpItem = Uint8Array | RlpItem[];

function readLength(b: Uint8Array, off: number, n: number, at: number): number {
  if (off + n > b.length) throw new EthTxError(`RLP: length field at byte ${at} runs past the end`);
  if (b[off] === 0) throw new EthTxError(`RLP: length at byte ${at} has a leading zero (non-canonical)`);
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[off + i]!;
  if (len < 56) throw new EthTxError(`RLP: long form used for length ${len} < 56 at byte ${at} (non-canonical)`);
  if (!Number.isSafeInteger(len)) throw new EthTxError(`RLP: length at byte ${at} is absurd`);
  return len;
}

function decodeItem(b: Uint8Array, off: number, depth: number): { item: RlpItem; end: number } {
  if (depth > 16) throw new EthTxError('RLP: nested too deeply');
  if (off >= b.length) throw new EthTxError(`RLP: unexpected end of input at byte ${off}`);
  const p = b[off]!;
  if (p < 0x80) return { item: b.subarray(off, off + 1), end: off + 1 };
  let start: number;
  let len: number;
  let isList: boolean;
  if (p <= 0xb7) {
    isList = false;
    len = p - 0x80;
    start = off + 1;
    if (len === 1 && start < b.length && b[start]! < 0x80) throw new EthTxError(`RLP: single byte below 0x80 wrapped as a string at byte ${off} (non-canonical)`);
  } else if (p <= 0xbf) {
    isList = false;
    len = readLength(b, off + 1, p - 0xb7, off);
    start = off + 1 + (p - 0xb7);
  } else if (p <= 0xf7) {
    isList = true;
    len = p - 0xc0;
    start = off + 1;
  } else {
    isList = true;
    len = readLength(b, off + 1, p - 0xf7, off);
    start = off + 1 + (p - 0xf7);
  }
  const end = start + len;
  if (end > b.length) throw new EthTxError(`RLP: item at byte ${off} claims ${len} bytes but only ${b.length - start} remain (truncated)`);
  if (!isList) return { item: b.subarray(start, end), end };
  const items: RlpItem[] = [];
  let pos = start;
  while (pos < end) {
    const r = decodeItem(b.subarray(0, end), pos, depth + 1);
    items.push(r.item);
    pos = r.end;
  }
  return { item: items, end };
}

/** Decodes exactly one canonical RLP item spanning all of `b`. */
export function rlpDecode(b: Uint8Array): RlpItem {
  const { item, end } = decodeItem(b, 0, 0);
  if (end !== b.length) throw new EthTxError(`RLP: ${b.length - end} trailing byte(s) after the item`);
  return item;
}

function encodeLength(len: number, base: number): Uint8Array {
  if (len < 56) return Uint8Array.of(base + len);
  const bytes: number[] = [];
  for (let n = len; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Uint8Array.of(base + 55 + bytes.length, ...bytes);
}

export function rlpEncode(item: RlpItem): Uint8Array {
  if (item instanceof Uint8Array) {
    if (item.length === 1 && item[0]! < 0x80) return item.slice();
    return concatBytes(encodeLength(item.length, 0x80), item);
  }
  const body = concatBytes(...item.map(rlpEncode));
  return concatBytes(encodeLength(body.length, 0xc0), body);
}

/** Minimal big-endian bytes of a non-negative integer (0 -> empty). */
export function uintBytes(n: bigint): Uint8Array {
  if (n < 0n) throw new EthTxError('negative integer');
  if (n === 0n) return new Uint8Array(0);
  let hex = n.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Fields

function bytesField(item: RlpItem | undefined, name: string): Uint8Array {
  if (!(item instanceof Uint8Array)) throw new EthTxError(`${name} must be a byte string, got a list`);
  return item;
}

function uintField(item: RlpItem | undefined, name: string, maxBytes = 32): bigint {
  const b = bytesField(item, name);
  if (b.length > maxBytes) throw new EthTxError(`${name} is ${b.length} bytes, at most ${maxBytes} allowed`);
  if (b.length > 0 && b[0] === 0) throw new EthTxError(`${name} has a leading zero byte (non-canonical integer)`);
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

function toField(item: RlpItem | undefined): string {
  const b = bytesField(item, 'to');
  if (b.length === 0) throw new EthTxError('contract creation (no "to" address) is not supported');
  if (b.length !== 20) throw new EthTxError(`"to" must be a 20-byte address, got ${b.length} bytes`);
  return addressFromBytes(b);
}

function checkAccessList(item: RlpItem | undefined): void {
  if (!Array.isArray(item)) throw new EthTxError('accessList must be a list');
  item.forEach((entry, i) => {
    if (!Array.isArray(entry) || entry.length !== 2) throw new EthTxError(`accessList[${i}] must be [address, storageKeys]`);
    const addr = entry[0];
    if (!(addr instanceof Uint8Array) || addr.length !== 20) throw new EthTxError(`accessList[${i}] address must be 20 bytes`);
    const keys = entry[1];
    if (!Array.isArray(keys)) throw new EthTxError(`accessList[${i}] storage keys must be a list`);
    keys.forEach((k, j) => {
      if (!(k instanceof Uint8Array) || k.length !== 32) throw new EthTxError(`accessList[${i}] storage key ${j} must be 32 bytes`);
    });
  });
}

function nonceField(item: RlpItem | undefined): number {
  const n = uintField(item, 'nonce', 8);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new EthTxError(`nonce ${n} is beyond 2^53 - 1`);
  return Number(n);
}

function chainIdField(item: RlpItem | undefined): bigint {
  const c = uintField(item, 'chainId');
  if (c === 0n) throw new EthTxError('chainId 0 is not a chain');
  return c;
}

interface Parsed {
  tx: EthTxDecoded;
  fields: RlpItem[];
}

const UNSIGNED_FIELDS = { 0: 9, 1: 8, 2: 9 } as const;

function parse(bytes: Uint8Array): Parsed {
  if (!(bytes instanceof Uint8Array)) throw new EthTxError('transaction must be bytes');
  if (bytes.length === 0) throw new EthTxError('empty transaction');
  const first = bytes[0]!;
  let type: 0 | 1 | 2;
  let body: Uint8Array;
  if (first >= 0xc0) {
    type = 0;
    body = bytes;
  } else if (first === 1 || first === 2) {
    type = first;
    body = bytes.subarray(1);
  } else if (first <= 0x7f) {
    throw new EthTxError(`unsupported transaction type 0x${first.toString(16).padStart(2, '0')} (supported: legacy EIP-155, 0x01 EIP-2930, 0x02 EIP-1559)`);
  } else {
    throw new EthTxError(`not a transaction: first byte 0x${first.toString(16)} is neither a type byte nor an RLP list`);
  }
  const item = rlpDecode(body);
  if (!Array.isArray(item)) throw new EthTxError('transaction payload must be an RLP list');
  const fields = item;
  const n = fields.length;
  const want = UNSIGNED_FIELDS[type];
  if (type === 0) {
    if (n === 6) throw new EthTxError('legacy transaction without an EIP-155 chain id (replayable on every chain); refusing');
    if (n !== 9) throw new EthTxError(`legacy transaction must have 9 fields (EIP-155 unsigned), got ${n}`);
    const r = bytesField(fields[7], 'r');
    const s = bytesField(fields[8], 's');
    if (r.length !== 0 || s.length !== 0) throw new EthTxError('transaction is already signed (r, s present); submit the unsigned serialization');
  } else {
    if (n === want + 3) throw new EthTxError('transaction is already signed (yParity, r, s present); submit the unsigned serialization');
    if (n !== want) throw new EthTxError(`type ${type} transaction must have ${want} fields when unsigned, got ${n}`);
  }
  let tx: Omit<EthTxDecoded, 'signingHash'>;
  if (type === 0) {
    tx = {
      type,
      nonce: nonceField(fields[0]),
      maxFeePerGas: uintField(fields[1], 'gasPrice'),
      gasLimit: uintField(fields[2], 'gasLimit'),
      to: toField(fields[3]),
      value: uintField(fields[4], 'value'),
      data: bytesField(fields[5], 'data').slice(),
      chainId: chainIdField(fields[6]),
    };
  } else {
    // EIP-2930 and EIP-1559 share one layout; EIP-1559 inserts maxPriorityFeePerGas at index 2.
    const o = type === 2 ? 1 : 0;
    const tip = type === 2 ? uintField(fields[2], 'maxPriorityFeePerGas') : undefined;
    tx = {
      type,
      chainId: chainIdField(fields[0]),
      nonce: nonceField(fields[1]),
      maxFeePerGas: uintField(fields[2 + o], type === 2 ? 'maxFeePerGas' : 'gasPrice'),
      gasLimit: uintField(fields[3 + o], 'gasLimit'),
      to: toField(fields[4 + o]),
      value: uintField(fields[5 + o], 'value'),
      data: bytesField(fields[6 + o], 'data').slice(),
    };
    if (tip !== undefined && tip > tx.maxFeePerGas) throw new EthTxError(`maxPriorityFeePerGas ${tip} exceeds maxFeePerGas ${tx.maxFeePerGas}`);
    checkAccessList(fields[7 + o]);
  }
  return { tx: { ...tx, signingHash: keccak_256(bytes) }, fields };
}

/** Unsigned serialized tx -> decoded; refuses signed txs, legacy txs without EIP-155 chain id, contract creation (no `to`), malformed RLP, with precise messages. */
export function decodeUnsignedEthTx(bytes: Uint8Array): EthTxDecoded {
  return parse(bytes).tx;
}

const N = secp256k1.Point.CURVE().n;

/**
 * The signed serialization given a 65-byte r||s||v (v in {0,1}) signature over signingHash.
 * A high-s signature is normalized to low s (s -> n - s, v flipped), as Ethereum requires (EIP-2).
 * It does not check who signed: recover the sender and compare it when that matters.
 */
export function signedEthTx(unsigned: Uint8Array, signature: Uint8Array): Uint8Array {
  const { tx, fields } = parse(unsigned);
  if (!(signature instanceof Uint8Array) || signature.length !== 65) throw new EthTxError(`signature must be 65 bytes r||s||v, got ${signature?.length}`);
  const num = (b: Uint8Array) => b.reduce((n, x) => (n << 8n) | BigInt(x), 0n);
  const r = num(signature.subarray(0, 32));
  let s = num(signature.subarray(32, 64));
  let v = signature[64]!;
  if (v !== 0 && v !== 1) throw new EthTxError(`signature recovery id v must be 0 or 1, got ${v}`);
  if (r < 1n || r >= N) throw new EthTxError('signature r is out of range');
  if (s < 1n || s >= N) throw new EthTxError('signature s is out of range');
  if (s > N >> 1n) {
    s = N - s;
    v ^= 1;
  }
  if (tx.type === 0) {
    const vv = tx.chainId * 2n + 35n + BigInt(v);
    return rlpEncode([...fields.slice(0, 6), uintBytes(vv), uintBytes(r), uintBytes(s)]);
  }
  const body = rlpEncode([...fields, uintBytes(BigInt(v)), uintBytes(r), uintBytes(s)]);
  return concatBytes(Uint8Array.of(tx.type), body);
}
