/**
 * Admin signatures over a policy document. An admin signs the canonical bytes (policy/document.ts)
 * under the domain tag `custody/policy/v1\0`, exactly as crypto/ed25519-sig.ts tags its messages,
 * so `ed25519Verify(pub, POLICY_SIGNATURE_DOMAIN, canonicalPolicyBytes(doc), sig)` agrees.
 * Nodes accept a policy only with valid signatures from a quorum of distinct known admins.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { domainTagged, toHex } from './canonical.js';
import { canonicalPolicyBytes, PolicyError, type PolicyDocument } from './document.js';

export const POLICY_SIGNATURE_DOMAIN = 'policy';

export interface AdminKey {
  name: string;
  publicKey: Uint8Array;
}

export interface PolicySignature {
  admin: string;
  signature: Uint8Array;
}

/** The exact bytes an admin's Ed25519 key signs. */
export function policySigningPayload(doc: PolicyDocument): Uint8Array {
  return domainTagged(POLICY_SIGNATURE_DOMAIN, canonicalPolicyBytes(doc));
}

/** `secretKey` is the 32-byte Ed25519 seed. */
export function signPolicy(doc: PolicyDocument, admin: string, secretKey: Uint8Array): PolicySignature {
  if (secretKey.length !== 32) throw new PolicyError(`admin secret key must be a 32-byte Ed25519 seed, got ${secretKey.length} bytes`);
  return { admin, signature: ed25519.sign(policySigningPayload(doc), secretKey) };
}

/** Strict (RFC 8032, non-ZIP-215) Ed25519 verification that never throws. */
export function verifyEd25519(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/** Valid signatures from at least `quorum` distinct known admins over the canonical bytes, else PolicyError naming what is missing. */
export function verifyPolicySignatures(doc: PolicyDocument, sigs: readonly PolicySignature[], admins: readonly AdminKey[], quorum: number): void {
  if (!Number.isInteger(quorum) || quorum < 1) throw new PolicyError(`admin quorum must be a positive integer, got ${quorum}`);
  const byName = new Map<string, AdminKey>();
  const keys = new Set<string>();
  for (const a of admins) {
    if (byName.has(a.name)) throw new PolicyError(`admin ${JSON.stringify(a.name)} is listed twice in the admin keys`);
    if (a.publicKey.length !== 32) throw new PolicyError(`admin ${JSON.stringify(a.name)}: Ed25519 public key must be 32 bytes, got ${a.publicKey.length}`);
    const k = toHex(a.publicKey);
    if (keys.has(k)) throw new PolicyError(`admin ${JSON.stringify(a.name)} shares its public key with another admin`);
    keys.add(k);
    byName.set(a.name, a);
  }
  if (quorum > byName.size) throw new PolicyError(`admin quorum ${quorum} exceeds the ${byName.size} known admin(s)`);
  const payload = policySigningPayload(doc);
  const valid = new Set<string>();
  const problems: string[] = [];
  for (const s of sigs) {
    const admin = byName.get(s.admin);
    if (!admin) {
      problems.push(`${JSON.stringify(s.admin)}: unknown admin`);
    } else if (valid.has(s.admin)) {
      problems.push(`${JSON.stringify(s.admin)}: duplicate signature (counted once)`);
    } else if (!verifyEd25519(admin.publicKey, payload, s.signature)) {
      problems.push(`${JSON.stringify(s.admin)}: invalid signature over policy v${doc.version}`);
    } else {
      valid.add(s.admin);
    }
  }
  if (valid.size < quorum) {
    const missing = [...byName.keys()].filter((n) => !valid.has(n));
    throw new PolicyError(
      `policy v${doc.version} has ${valid.size} valid admin signature(s), ${quorum} required; ` +
        `${quorum - valid.size} more needed from: ${missing.join(', ')}` +
        (problems.length ? `; rejected: ${problems.join('; ')}` : ''),
    );
  }
}
