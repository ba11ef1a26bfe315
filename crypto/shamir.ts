/** Polynomial arithmetic over a group's scalar field: shared by DKG, signing, refresh and repair. */
import type { IField } from '@noble/curves/abstract/modular.js';

/** f(x) = coefficients[0] + coefficients[1] x + ... (Horner). */
export function evalPolynomial(Fn: IField<bigint>, coefficients: readonly bigint[], x: bigint): bigint {
  let acc = 0n;
  for (let i = coefficients.length - 1; i >= 0; i--) acc = Fn.add(Fn.mul(acc, x), coefficients[i]!);
  return acc;
}

/** Lagrange coefficient at 0 for `index` within the signing set `indices` (RFC 9591 section 4.2). */
export function lagrangeAtZero(Fn: IField<bigint>, index: number, indices: readonly number[]): bigint {
  if (!indices.includes(index)) throw new Error(`index ${index} is not in the participant set`);
  if (new Set(indices).size !== indices.length) throw new Error('participant indices must be distinct');
  let num = 1n;
  let den = 1n;
  const xi = BigInt(index);
  for (const j of indices) {
    if (j === index) continue;
    const xj = BigInt(j);
    num = Fn.mul(num, xj);
    den = Fn.mul(den, Fn.sub(xj, xi));
  }
  return Fn.div(num, den);
}

/** Random polynomial of degree t-1 with the given constant term. */
export function randomPolynomial(constant: bigint, threshold: number, random: () => bigint): bigint[] {
  const coefficients = [constant];
  for (let i = 1; i < threshold; i++) coefficients.push(random());
  return coefficients;
}

/** f(0) from t points (index -> f(index)): the whole secret. Only the offline recovery ceremony calls this. */
export function interpolateAtZero(Fn: IField<bigint>, shares: ReadonlyMap<number, bigint>): bigint {
  const indices = [...shares.keys()];
  let acc = 0n;
  for (const i of indices) acc = Fn.add(acc, Fn.mul(shares.get(i)!, lagrangeAtZero(Fn, i, indices)));
  return acc;
}

/** A party's share of a threshold key and the public data every party agrees on (a DKG, import, setup or repair outcome). */
export interface ThresholdShare {
  readonly index: number;
  /** Sorted ascending. */
  readonly participants: readonly number[];
  readonly threshold: number;
  readonly secretShare: bigint;
  /** Group encoding of the key. */
  readonly publicKey: Uint8Array;
  /** Every participant's share times the generator. */
  readonly verifyingShares: ReadonlyMap<number, Uint8Array>;
  readonly chainCode: Uint8Array;
  /** Equal on every honest party. */
  readonly transcriptHash: Uint8Array;
}
