/** Mapping between protobuf enums and the domain's string unions, in one place. */
import type { Scheme } from '../crypto/schemes.js';
import type { CurveName } from '../crypto/group/group.js';
import { Curve, Scheme as PbScheme } from './gen/custody/v1/common_pb.js';

const toProto: Record<Scheme, PbScheme> = {
  ed25519: PbScheme.ED25519,
  secp256k1: PbScheme.SECP256K1,
  bip340: PbScheme.BIP340,
  ecdsa: PbScheme.ECDSA,
};

export function schemeToProto(s: Scheme): PbScheme {
  return toProto[s];
}

export function schemeFromProto(s: PbScheme): Scheme | undefined {
  for (const [k, v] of Object.entries(toProto)) if (v === s) return k as Scheme;
  return undefined;
}

export function curveFromProto(c: Curve): CurveName | undefined {
  return c === Curve.ED25519 ? 'ed25519' : c === Curve.SECP256K1 ? 'secp256k1' : undefined;
}
