/** Helpers for tests of share-changing protocols (refresh, reshare): subsets, and FROST signing checked by noble. */
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { expect } from 'vitest';
import { ciphersuite, type FrostScheme } from '../../crypto/frost/ciphersuite.js';
import { aggregate, generateNonces, nonceCommitments, prepareSession, signShare, verifySignature, type Nonces, type SignerCommitment } from '../../crypto/frost/sign.js';

export function subsets<T>(xs: readonly T[], size: number): T[][] {
  if (size === 0) return [[]];
  if (xs.length < size) return [];
  const [head, ...rest] = xs;
  return [...subsets(rest, size - 1).map((s) => [head!, ...s]), ...subsets(rest, size)];
}

export const pick = (shares: ReadonlyMap<number, bigint>, set: readonly number[]) => new Map(set.map((i) => [i, shares.get(i)!]));

/** Signs with our FROST implementation under the given shares, checks with noble. */
export function signAndVerify(scheme: FrostScheme, publicKey: Uint8Array, shares: ReadonlyMap<number, bigint>, verifyingShares: ReadonlyMap<number, Uint8Array>, signers: number[]) {
  const cs = ciphersuite(scheme);
  const g = cs.group;
  const message = new TextEncoder().encode(`shares ${scheme} ${signers.join(',')}`);
  const nonces = new Map<number, Nonces>();
  const commitments: SignerCommitment<unknown>[] = [];
  for (const i of signers) {
    const n = generateNonces(cs, shares.get(i)!);
    nonces.set(i, n);
    commitments.push({ index: i, ...nonceCommitments(cs, n) });
  }
  const PK = g.decode(publicKey);
  const session = prepareSession(cs, PK, commitments, message);
  const sigShares = new Map(signers.map((i) => [i, signShare(cs, { index: i, secretShare: shares.get(i)!, nonces: nonces.get(i)!, session })]));
  const vs = new Map([...verifyingShares].map(([i, v]) => [i, g.decode(v)]));
  const sig = aggregate(cs, { session, shares: sigShares, verifyingShares: vs });
  expect(verifySignature(cs, sig, message, PK)).toBe(true);
  if (scheme === 'ed25519') expect(ed25519.verify(sig, message, publicKey)).toBe(true);
  else if (scheme === 'bip340') expect(schnorr.verify(sig, message, publicKey.subarray(1))).toBe(true);
  else expect(secp256k1_FROST.verify(sig, message, publicKey)).toBe(true);
}

