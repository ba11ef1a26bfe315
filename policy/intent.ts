/**
 * What a request does, derived from the bytes to be signed (never from what a client claims):
 * native transfers, the three ERC-20 calls that move or expose value, or a raw digest.
 *
 * ERC-20 calldata is decoded strictly: known selector, exact length (4 + 32 per argument),
 * address words with 12 zero bytes of padding. Any other contract call is refused (IntentError):
 * the engine cannot say what it does. A caller may then treat the payload as a raw digest, which
 * the policy's `rawDigests` setting governs (docs/policy.md).
 */
import { addressFromBytes } from './address.js';
import type { AssetSpec, IntentKind, PolicyDocument } from './document.js';
import type { EthTxDecoded } from './eth-tx.js';

export type { IntentKind } from './document.js';

export interface Intent {
  kind: IntentKind;
  chainId: bigint | null;
  /** asset symbol from the policy, or 'unknown' (also for raw digests) */
  asset: string;
  /** smallest units; 0 for raw digests */
  amount: bigint;
  /** EIP-55; '' for raw digests. For erc20-approve: the spender. */
  destination: string;
  /** transferFrom: the `from` argument (EIP-55) */
  source?: string;
  /** ERC-20 contract (EIP-55) */
  contract?: string;
}

export class IntentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntentError';
  }
}

export const ERC20_SELECTORS = {
  transfer: 'a9059cbb', // transfer(address,uint256)
  transferFrom: '23b872dd', // transferFrom(address,address,uint256)
  approve: '095ea7b3', // approve(address,uint256)
} as const;

function hex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

function word(data: Uint8Array, i: number): Uint8Array {
  return data.subarray(4 + 32 * i, 4 + 32 * (i + 1));
}

function addressWord(data: Uint8Array, i: number, name: string): string {
  const w = word(data, i);
  if (w.subarray(0, 12).some((x) => x !== 0)) throw new IntentError(`ERC-20 argument ${name} is not a valid address: its 12 padding bytes are not zero`);
  return addressFromBytes(w.subarray(12));
}

function uintWord(data: Uint8Array, i: number): bigint {
  return word(data, i).reduce((n, x) => (n << 8n) | BigInt(x), 0n);
}

function onChain(a: AssetSpec, chainId: bigint): boolean {
  return a.chainIds.length === 0 || a.chainIds.includes(chainId);
}

/** The policy's native asset for a chain, or 'unknown'. */
export function nativeAssetFor(doc: PolicyDocument, chainId: bigint): string {
  return doc.assets.find((a) => a.kind === 'native' && onChain(a, chainId))?.symbol ?? 'unknown';
}

/** The policy's ERC-20 asset for a contract on a chain, or 'unknown'. */
export function erc20AssetFor(doc: PolicyDocument, chainId: bigint, contract: string): string {
  const lower = contract.toLowerCase();
  return doc.assets.find((a) => a.kind === 'erc20' && a.contract === lower && onChain(a, chainId))?.symbol ?? 'unknown';
}

/** Decoded tx + the policy's asset table -> intent. Throws IntentError on anything it cannot describe. */
export function intentOfEthTx(tx: EthTxDecoded, doc: PolicyDocument): Intent {
  const data = tx.data;
  if (data.length === 0) {
    return { kind: 'native-transfer', chainId: tx.chainId, asset: nativeAssetFor(doc, tx.chainId), amount: tx.value, destination: tx.to };
  }
  if (data.length < 4) throw new IntentError(`calldata of ${data.length} byte(s) is not a function call (needs a 4-byte selector)`);
  const selector = hex(data.subarray(0, 4));
  const args = selector === ERC20_SELECTORS.transfer ? 2 : selector === ERC20_SELECTORS.transferFrom ? 3 : selector === ERC20_SELECTORS.approve ? 2 : -1;
  if (args < 0) {
    throw new IntentError(`contract call with selector 0x${selector} is not decodable (only native transfers and ERC-20 transfer, transferFrom, approve are); sign it as a raw digest if the policy allows`);
  }
  const name = selector === ERC20_SELECTORS.transfer ? 'transfer' : selector === ERC20_SELECTORS.transferFrom ? 'transferFrom' : 'approve';
  if (data.length !== 4 + 32 * args) {
    throw new IntentError(`ERC-20 ${name} calldata must be exactly ${4 + 32 * args} bytes, got ${data.length}`);
  }
  if (tx.value !== 0n) throw new IntentError(`ERC-20 ${name} call also sends ${tx.value} wei of native value; refusing (the intent would hide it)`);
  const contract = tx.to;
  const asset = erc20AssetFor(doc, tx.chainId, contract);
  const base = { chainId: tx.chainId, asset, contract };
  if (name === 'transfer') {
    return { kind: 'erc20-transfer', ...base, destination: addressWord(data, 0, 'to'), amount: uintWord(data, 1) };
  }
  if (name === 'transferFrom') {
    return { kind: 'erc20-transfer-from', ...base, source: addressWord(data, 0, 'from'), destination: addressWord(data, 1, 'to'), amount: uintWord(data, 2) };
  }
  return { kind: 'erc20-approve', ...base, destination: addressWord(data, 0, 'spender'), amount: uintWord(data, 1) };
}

/** The intent of signing a bare 32-byte digest: nothing is known about it. */
export function rawDigestIntent(): Intent {
  return { kind: 'raw-digest', chainId: null, asset: 'unknown', amount: 0n, destination: '' };
}

/**
 * Canonical JSON of an intent for approvals, audit and display: every value a string, amount in
 * smallest units as a decimal string, chainId as a decimal string (omitted for raw digests),
 * addresses EIP-55, absent optional fields omitted.
 */
export function intentJson(i: Intent): Record<string, string> {
  const out: Record<string, string> = { kind: i.kind, asset: i.asset, amount: i.amount.toString(), destination: i.destination };
  if (i.amount < 0n) throw new IntentError('intent amount is negative');
  if (i.chainId !== null) out.chainId = i.chainId.toString();
  if (i.source !== undefined) out.source = i.source;
  if (i.contract !== undefined) out.contract = i.contract;
  return out;
}

/** Case-insensitive: the policy's lowercase address lists against an intent's EIP-55 address. */
export function addressKey(address: string): string {
  return address.toLowerCase();
}
