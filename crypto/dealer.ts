/**
 * Trusted-dealer sharing for key import (PROTOCOLS.md, share lifecycle): the operator's import
 * ceremony holds a legacy key once, splits it into Shamir shares with Feldman commitments, seals
 * each share to its node and forgets the key. Each node checks its share against the commitments
 * before it accepts it, so a dealer (or a relay) that hands out inconsistent shares is caught
 * before any share is stored.
 */
import type { Group } from './group/index.js';
import { evalPolynomial, randomPolynomial } from './shamir.js';

export interface Dealing {
  readonly threshold: number;
  /** Sorted ascending. */
  readonly participants: readonly number[];
  /** Encoded a_k*G for k = 0..t-1; commitments[0] is the public key. */
  readonly commitments: Uint8Array[];
  /** Secret: index -> f(index). Seal each to its node and drop the rest. */
  readonly shares: Map<number, bigint>;
}

export function deal<P>(g: Group<P>, secret: bigint, threshold: number, participants: readonly number[]): Dealing {
  const sorted = [...participants].sort((a, b) => a - b);
  if (sorted.some((i, k) => !Number.isInteger(i) || i < 1 || (k > 0 && i === sorted[k - 1]))) throw new RangeError('participant indexes must be distinct positive integers');
  if (threshold < 1 || threshold > sorted.length) throw new RangeError(`threshold ${threshold} is not between 1 and ${sorted.length}`);
  if (secret <= 0n || secret >= g.order) throw new RangeError('the secret is not a valid non-zero scalar');
  const f = randomPolynomial(secret, threshold, () => g.randomScalar());
  const shares = new Map(sorted.map((i) => [i, evalPolynomial(g.Fn, f, BigInt(i))]));
  const commitments = f.map((a) => g.encode(g.baseMul(a)));
  f.fill(0n);
  return { threshold, participants: sorted, commitments, shares };
}

/** F(x) = sum C_k x^k: the public image of the dealer polynomial at x (the verifying share of party x). */
export function commitmentAt<P>(g: Group<P>, commitments: readonly P[], index: number): P {
  const x = BigInt(index);
  const powers: bigint[] = [];
  let p = 1n;
  for (let k = 0; k < commitments.length; k++) {
    powers.push(p);
    p = g.Fn.mul(p, x);
  }
  return g.msm(commitments, powers);
}

/** Decodes and validates the commitments (on the curve, not the identity). Throws InvalidEncoding. */
export function decodeCommitments<P>(g: Group<P>, encoded: readonly Uint8Array[]): P[] {
  return encoded.map((c) => g.decode(c));
}

/** Feldman check: share*G equals the commitment polynomial at the party's index. */
export function checkDealtShare<P>(g: Group<P>, commitments: readonly P[], index: number, share: bigint): boolean {
  return g.eq(g.baseMul(share), commitmentAt(g, commitments, index));
}

/** Every participant's verifying share, encoded, in participant order. */
export function dealtVerifyingShares<P>(g: Group<P>, commitments: readonly P[], participants: readonly number[]): Map<number, Uint8Array> {
  return new Map(participants.map((i) => [i, g.encode(commitmentAt(g, commitments, i))]));
}
