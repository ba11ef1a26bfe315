/**
 * RFC 9591 Appendix E (Ed25519, secp256k1) and ZF frost-secp256k1-tr vectors, step by step:
 * key, shares, nonces (section 4.1), commitments, binding factor inputs, binding factors,
 * signature shares and the aggregated signature.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { ciphersuite, type FrostScheme } from '../../crypto/frost/ciphersuite.js';
import {
  aggregate,
  bindingFactorInputs,
  bindingFactors,
  generateNonces,
  nonceCommitments,
  prepareSession,
  signShare,
  verifyShare,
  verifySignature,
  type SignerCommitment,
} from '../../crypto/frost/sign.js';
import { evalPolynomial } from '../../crypto/shamir.js';

interface VectorFile {
  config: { name: string; group: string; hash: string; MIN_PARTICIPANTS: string; MAX_PARTICIPANTS: string };
  inputs: {
    participant_list: number[];
    group_secret_key: string;
    group_public_key?: string;
    verifying_key_key?: string;
    message: string;
    share_polynomial_coefficients: string[];
    participant_shares: { identifier: number; participant_share: string }[];
  };
  round_one_outputs: {
    outputs: {
      identifier: number;
      hiding_nonce_randomness: string;
      binding_nonce_randomness: string;
      hiding_nonce: string;
      binding_nonce: string;
      hiding_nonce_commitment: string;
      binding_nonce_commitment: string;
      binding_factor_input: string;
      binding_factor: string;
    }[];
  };
  round_two_outputs: { outputs: { identifier: number; sig_share: string }[] };
  final_output: { sig: string };
}

const files: { file: string; scheme: FrostScheme; context: string }[] = [
  { file: 'ed25519-sha512.json', scheme: 'ed25519', context: 'FROST-ED25519-SHA512-v1' },
  { file: 'secp256k1-sha256.json', scheme: 'secp256k1', context: 'FROST-secp256k1-SHA256-v1' },
  { file: 'secp256k1-tr-bip340.json', scheme: 'bip340', context: 'FROST-secp256k1-SHA256-TR-v1' },
];

const load = (name: string): VectorFile =>
  JSON.parse(readFileSync(new URL(`../vectors/frost/${name}`, import.meta.url), 'utf8')) as VectorFile;

describe.each(files)('FROST vectors: $file', ({ file, scheme, context }) => {
  const v = load(file);
  const cs = ciphersuite(scheme);
  const g = cs.group;
  const hex = (s: bigint) => bytesToHex(g.scalarToBytes(s));
  const scalar = (h: string) => g.scalarFromBytes(hexToBytes(h));
  const message = hexToBytes(v.inputs.message);
  const sk = scalar(v.inputs.group_secret_key);
  const PK = g.baseMul(sk);
  const shareOf = new Map(v.inputs.participant_shares.map((p) => [p.identifier, scalar(p.participant_share)]));
  const commitments: SignerCommitment<unknown>[] = v.round_one_outputs.outputs.map((o) => ({
    index: o.identifier,
    hiding: g.decode(hexToBytes(o.hiding_nonce_commitment)),
    binding: g.decode(hexToBytes(o.binding_nonce_commitment)),
  }));

  it('uses the suite the file describes', () => {
    expect(cs.contextString).toBe(context);
    expect(v.config.group).toBe(g.curve);
    expect(v.inputs.participant_list).toEqual(commitments.map((c) => c.index));
  });

  it('group public key and participant shares follow from the dealer polynomial', () => {
    expect(bytesToHex(g.encode(PK))).toBe(v.inputs.group_public_key ?? v.inputs.verifying_key_key);
    const coefficients = [sk, ...v.inputs.share_polynomial_coefficients.map(scalar)];
    for (const [i, s] of shareOf) expect(hex(evalPolynomial(g.Fn, coefficients, BigInt(i)))).toBe(hex(s));
  });

  it('round one: nonces from the published randomness and the share, and their commitments', () => {
    for (const o of v.round_one_outputs.outputs) {
      const nonces = generateNonces(cs, shareOf.get(o.identifier), {
        hiding: hexToBytes(o.hiding_nonce_randomness),
        binding: hexToBytes(o.binding_nonce_randomness),
      });
      expect(hex(nonces.hiding)).toBe(o.hiding_nonce);
      expect(hex(nonces.binding)).toBe(o.binding_nonce);
      const c = nonceCommitments(cs, nonces);
      expect(bytesToHex(g.encode(c.hiding))).toBe(o.hiding_nonce_commitment);
      expect(bytesToHex(g.encode(c.binding))).toBe(o.binding_nonce_commitment);
    }
  });

  it('binding factor inputs and binding factors', () => {
    const inputs = bindingFactorInputs(cs, PK, commitments, message);
    const rho = bindingFactors(cs, PK, commitments, message);
    const session = prepareSession(cs, PK, commitments, message);
    for (const o of v.round_one_outputs.outputs) {
      expect(bytesToHex(inputs.get(o.identifier)!)).toBe(o.binding_factor_input);
      expect(hex(rho.get(o.identifier)!)).toBe(o.binding_factor);
      expect(hex(session.rho.get(o.identifier)!)).toBe(o.binding_factor);
    }
  });

  it('round two: signature shares, share verification and the aggregate signature', () => {
    const session = prepareSession(cs, PK, commitments, message);
    const shares = new Map<number, bigint>();
    for (const o of v.round_one_outputs.outputs) {
      const secretShare = shareOf.get(o.identifier)!;
      const nonces = generateNonces(cs, secretShare, {
        hiding: hexToBytes(o.hiding_nonce_randomness),
        binding: hexToBytes(o.binding_nonce_randomness),
      });
      // Both entry points: raw inputs and a prepared session.
      const z = signShare(cs, { index: o.identifier, secretShare, nonces, groupPublicKey: PK, commitments, message });
      expect(signShare(cs, { index: o.identifier, secretShare, nonces, session })).toBe(z);
      shares.set(o.identifier, z);
    }
    for (const o of v.round_two_outputs.outputs) {
      expect(hex(shares.get(o.identifier)!)).toBe(o.sig_share);
      const verifyingShare = g.baseMul(shareOf.get(o.identifier)!);
      expect(verifyShare(cs, { index: o.identifier, verifyingShare, share: shares.get(o.identifier)!, session })).toBe(true);
    }
    const sig = aggregate(cs, { session, shares });
    expect(sig.length).toBe(cs.signatureLength);
    if (scheme === 'bip340') {
      // The ZF vector serialises R compressed (always even after normalisation); BIP-340 keeps x only.
      expect(v.final_output.sig.slice(0, 2)).toBe('02');
      expect(bytesToHex(sig)).toBe(v.final_output.sig.slice(2));
    } else {
      expect(bytesToHex(sig)).toBe(v.final_output.sig);
    }
    expect(verifySignature(cs, sig, message, PK)).toBe(true);
    expect(cs.verify(sig, message, cs.encodePublicKey(PK))).toBe(true);
  });
});
