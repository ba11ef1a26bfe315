/** Shared fixtures for the policy tests. */
import { readFileSync } from 'node:fs';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { parsePolicy, type PolicyDocument } from '../../policy/document.js';
import type { Intent } from '../../policy/intent.js';

export const ETH = 10n ** 18n;
export const USDC_CONTRACT = '0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48';

export function exampleJson(): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL('../../docs/examples/policy.json', import.meta.url), 'utf8')) as Record<string, unknown>;
}

/** The seeds behind the example policy's approver keys (test keys: never use them for anything real). */
export function exampleSeed(name: string): Uint8Array {
  return sha256(utf8ToBytes(`custody example approver ${name}`));
}

export function seedOf(name: string): Uint8Array {
  return sha256(utf8ToBytes(`policy test key ${name}`));
}

export function approverJson(name: string, roles: string[]): { name: string; publicKey: string; roles: string[] } {
  return { name, publicKey: bytesToHex(ed25519.getPublicKey(seedOf(name))), roles };
}

/** A small policy around the given rules: ETH (18) and USDC (6) on chain 1; five approvers. */
export function testPolicyJson(rules: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 7,
    assets: [
      { symbol: 'ETH', decimals: 18, kind: 'native', chainIds: [1] },
      { symbol: 'USDC', decimals: 6, kind: 'erc20', chainIds: [1], contract: USDC_CONTRACT },
    ],
    approvers: [
      approverJson('alice', ['treasury']),
      approverJson('bob', ['treasury']),
      approverJson('carol', ['treasury', 'compliance']),
      approverJson('dave', ['compliance']),
      approverJson('erin', ['ops']),
    ],
    rules,
    rawDigests: 'deny',
    defaultEffect: 'allow',
    approvalTtlSeconds: 3600,
    ...extra,
  };
}

export function testPolicy(rules: unknown[], extra: Record<string, unknown> = {}): PolicyDocument {
  return parsePolicy(testPolicyJson(rules, extra));
}

export const ALICE_ADDR = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';
export const BOB_ADDR = '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359';
export const CAROL_ADDR = '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB';

export function ethIntent(amount: bigint, destination = ALICE_ADDR): Intent {
  return { kind: 'native-transfer', chainId: 1n, asset: 'ETH', amount, destination };
}

export function usdcIntent(amount: bigint, kind: Intent['kind'] = 'erc20-transfer', destination = BOB_ADDR): Intent {
  return { kind, chainId: 1n, asset: 'USDC', amount, destination, contract: USDC_CONTRACT };
}

export function unknownTokenIntent(amount: bigint): Intent {
  return { kind: 'erc20-transfer', chainId: 1n, asset: 'unknown', amount, destination: BOB_ADDR, contract: CAROL_ADDR };
}
