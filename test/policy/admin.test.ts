/** Admin signatures over policy documents: quorum of distinct known admins over the canonical bytes. */
import { ed25519 } from '@noble/curves/ed25519.js';
import { describe, expect, it } from 'vitest';
import { ed25519Verify } from '../../crypto/ed25519-sig.js';
import { POLICY_SIGNATURE_DOMAIN, signPolicy, verifyPolicySignatures, type AdminKey } from '../../policy/admin.js';
import { canonicalPolicyBytes, parsePolicy, PolicyError } from '../../policy/document.js';
import { exampleJson, seedOf } from './support.js';

const names = ['admin-1', 'admin-2', 'admin-3'];
const admins: AdminKey[] = names.map((name) => ({ name, publicKey: ed25519.getPublicKey(seedOf(name)) }));
const doc = parsePolicy(exampleJson());
const sign = (name: string, d = doc) => signPolicy(d, name, seedOf(name));

describe('admin signatures', () => {
  it('quorum met: 2 of 3, in any order, extra signatures fine', () => {
    expect(() => verifyPolicySignatures(doc, [sign('admin-1'), sign('admin-3')], admins, 2)).not.toThrow();
    expect(() => verifyPolicySignatures(doc, [sign('admin-3'), sign('admin-2'), sign('admin-1')], admins, 2)).not.toThrow();
  });

  it('quorum not met names what is missing', () => {
    expect(() => verifyPolicySignatures(doc, [sign('admin-2')], admins, 2)).toThrow(/1 valid admin signature\(s\), 2 required; 1 more needed from: admin-1, admin-3/);
    expect(() => verifyPolicySignatures(doc, [], admins, 1)).toThrow(PolicyError);
  });

  it('an unknown admin does not count', () => {
    const mallory = signPolicy(doc, 'mallory', seedOf('mallory'));
    expect(() => verifyPolicySignatures(doc, [sign('admin-1'), mallory], admins, 2)).toThrow(/"mallory": unknown admin/);
  });

  it('the same admin twice counts once', () => {
    expect(() => verifyPolicySignatures(doc, [sign('admin-1'), sign('admin-1')], admins, 2)).toThrow(/"admin-1": duplicate signature \(counted once\)/);
  });

  it('a signature relabelled with another admin name fails', () => {
    const relabelled = { ...sign('admin-1'), admin: 'admin-2' };
    expect(() => verifyPolicySignatures(doc, [sign('admin-1'), relabelled], admins, 2)).toThrow(/"admin-2": invalid signature/);
  });

  it('a tampered document fails (one wei changed after signing)', () => {
    const sigs = [sign('admin-1'), sign('admin-2')];
    const j = exampleJson() as any;
    j.rules[1].when.amount.above = '100.000000000000000001';
    const tampered = parsePolicy(j);
    expect(() => verifyPolicySignatures(tampered, sigs, admins, 2)).toThrow(/invalid signature over policy v1/);
    const bumped = parsePolicy({ ...exampleJson(), version: 2 });
    expect(() => verifyPolicySignatures(bumped, sigs, admins, 2)).toThrow(/0 valid admin signature/);
  });

  it('signatures survive JSON key reordering (they cover canonical bytes)', () => {
    const reordered = parsePolicy(Object.fromEntries(Object.entries(exampleJson()).reverse()));
    expect(() => verifyPolicySignatures(reordered, [sign('admin-1'), sign('admin-2')], admins, 2)).not.toThrow();
  });

  it('is compatible with crypto/ed25519-sig (same domain tagging)', () => {
    const s = sign('admin-1');
    expect(ed25519Verify(admins[0]!.publicKey, POLICY_SIGNATURE_DOMAIN, canonicalPolicyBytes(doc), s.signature)).toBe(true);
    expect(ed25519Verify(admins[0]!.publicKey, 'approval', canonicalPolicyBytes(doc), s.signature)).toBe(false);
  });

  it('refuses a bad admin configuration', () => {
    expect(() => verifyPolicySignatures(doc, [], admins, 0)).toThrow(/positive integer/);
    expect(() => verifyPolicySignatures(doc, [], admins, 4)).toThrow(/exceeds the 3 known/);
    expect(() => verifyPolicySignatures(doc, [], [...admins, admins[0]!], 1)).toThrow(/listed twice/);
    expect(() => verifyPolicySignatures(doc, [], [admins[0]!, { name: 'x', publicKey: admins[0]!.publicKey }], 1)).toThrow(/shares its public key/);
    expect(() => verifyPolicySignatures(doc, [], [{ name: 'x', publicKey: new Uint8Array(31) }], 1)).toThrow(/32 bytes/);
  });
});
