/** Approvals: every bypass attempt fails with a precise reason. */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { describe, expect, it } from 'vitest';
import { ed25519Verify } from '../../crypto/ed25519-sig.js';
import { APPROVAL_DOMAIN, approvalPayload, checkApprovals, signApproval, type ApprovalSubject, type SignedApproval } from '../../policy/approvals.js';
import { parsePolicy, policyHash, type ApprovalRequirement } from '../../policy/document.js';
import { evaluate } from '../../policy/evaluate.js';
import { ETH, ethIntent, exampleJson, exampleSeed, seedOf, testPolicy } from './support.js';

const doc = testPolicy([]); // alice, bob: treasury; carol: treasury + compliance; dave: compliance; erin: ops
const NOW = new Date('2025-01-06T12:00:00.000Z');
const subject: ApprovalSubject = {
  requestId: 'req-1',
  keysetId: 'ks-1',
  walletId: 'w-1',
  intent: ethIntent(2n * ETH),
  digest: sha256(utf8ToBytes('the signing hash')),
  policyVersion: doc.version,
  policyHash: policyHash(doc),
  expiresAt: new Date(NOW.getTime() + 3600_000),
};
const TWO_TREASURY: ApprovalRequirement[] = [{ count: 2, role: 'treasury' }];

const approve = (name: string, s: ApprovalSubject = subject) => signApproval(s, name, 'approve', seedOf(name));
const reject = (name: string, s: ApprovalSubject = subject) => signApproval(s, name, 'reject', seedOf(name));
const check = (approvals: SignedApproval[], opts: { initiator?: string; reqs?: ApprovalRequirement[]; now?: Date; s?: ApprovalSubject } = {}) =>
  checkApprovals(doc, opts.s ?? subject, approvals, opts.initiator ?? 'payments-svc', opts.reqs ?? TWO_TREASURY, opts.now ?? NOW);

describe('checkApprovals', () => {
  it('two treasury approvals satisfy the requirement', () => {
    expect(check([approve('alice'), approve('bob')])).toEqual({ satisfied: true, counted: ['alice', 'bob'], missing: [], rejectedBy: [], invalid: [] });
  });

  it('one approval is not enough, and says what is missing', () => {
    expect(check([approve('alice')])).toMatchObject({ satisfied: false, counted: ['alice'], missing: [{ count: 1, role: 'treasury' }] });
  });

  it('forged signature', () => {
    const forged = { ...approve('bob'), signature: ed25519.sign(approvalPayload(subject), seedOf('mallory')) };
    const r = check([approve('alice'), forged]);
    expect(r.satisfied).toBe(false);
    expect(r.invalid).toEqual([{ approver: 'bob', reason: expect.stringMatching(/signature does not verify under bob's key/) }]);
    const garbage = { ...approve('bob'), signature: new Uint8Array(64) };
    expect(check([approve('alice'), garbage]).invalid[0]!.reason).toMatch(/does not verify/);
    const short = { ...approve('bob'), signature: new Uint8Array(10) };
    expect(check([approve('alice'), short]).invalid[0]!.reason).toMatch(/64 bytes, got 10/);
  });

  it('replay: an approval for another request id', () => {
    const r = check([approve('alice'), approve('bob', { ...subject, requestId: 'req-2' })]);
    expect(r).toMatchObject({ satisfied: false, counted: ['alice'], missing: [{ count: 1, role: 'treasury' }] });
    expect(r.invalid).toEqual([{ approver: 'bob', reason: expect.stringMatching(/made for another request/) }]);
  });

  it('intent mismatch: a signature over a different amount (or digest, keyset, wallet, policy)', () => {
    for (const other of [
      { ...subject, intent: ethIntent(1n * ETH) },
      { ...subject, digest: sha256(utf8ToBytes('another hash')) },
      { ...subject, keysetId: 'ks-2' },
      { ...subject, walletId: null },
      { ...subject, intent: { ...subject.intent, destination: '0x' + '11'.repeat(20) } },
    ]) {
      const r = check([approve('alice'), approve('bob', other)]);
      expect(r.satisfied).toBe(false);
      expect(r.invalid).toEqual([{ approver: 'bob', reason: expect.stringMatching(/does not verify/) }]);
    }
  });

  it('expired approval', () => {
    const r = check([approve('alice'), approve('bob')], { now: subject.expiresAt });
    expect(r.satisfied).toBe(false);
    expect(r.counted).toEqual([]);
    expect(r.invalid).toContainEqual({ approver: 'alice', reason: `approval expired at ${subject.expiresAt.toISOString()}` });
    expect(r.invalid).toContainEqual({ approver: '*', reason: expect.stringMatching(/approval window closed/) });
    // one millisecond earlier it still counts
    expect(check([approve('alice'), approve('bob')], { now: new Date(subject.expiresAt.getTime() - 1) }).satisfied).toBe(true);
  });

  it('an extended expiry on the record does not help (the signature covers the real one)', () => {
    const extended = { ...approve('bob'), expiresAt: new Date(subject.expiresAt.getTime() + 86400_000) };
    expect(check([approve('alice'), extended]).invalid).toEqual([{ approver: 'bob', reason: expect.stringMatching(/differs from the request's/) }]);
    // and re-signing a subject with a later expiry is a different subject
    const later = approve('bob', { ...subject, expiresAt: new Date(subject.expiresAt.getTime() + 86400_000) });
    expect(check([approve('alice'), later], { now: NOW }).satisfied).toBe(false);
  });

  it('self-approval: the initiator never counts', () => {
    const r = check([approve('alice'), approve('bob')], { initiator: 'alice' });
    expect(r).toMatchObject({ satisfied: false, counted: ['bob'], missing: [{ count: 1, role: 'treasury' }] });
    expect(r.invalid).toEqual([{ approver: 'alice', reason: 'the initiator of a request never counts as its approver' }]);
    expect(check([approve('alice'), approve('bob'), approve('carol')], { initiator: 'alice' }).satisfied).toBe(true);
  });

  it('the same approver is counted once', () => {
    const r = check([approve('alice'), approve('alice')]);
    expect(r).toMatchObject({ satisfied: false, counted: ['alice'], missing: [{ count: 1, role: 'treasury' }] });
    expect(r.invalid).toEqual([{ approver: 'alice', reason: 'duplicate approve from alice (each approver counts once)' }]);
  });

  it('an approver outside the required role does not count', () => {
    const r = check([approve('alice'), approve('dave')]);
    expect(r.satisfied).toBe(false);
    expect(r.invalid).toEqual([{ approver: 'dave', reason: expect.stringMatching(/dave holds none of the required roles \(treasury\); their roles: compliance/) }]);
  });

  it('an approver unknown to the policy does not count, even with a valid key pair', () => {
    const r = check([approve('alice'), approve('mallory')]);
    expect(r.satisfied).toBe(false);
    expect(r.invalid).toEqual([{ approver: 'mallory', reason: 'approver "mallory" is not an approver in policy v7' }]);
  });

  it('a reject from an eligible approver rejects the request', () => {
    const r = check([approve('alice'), approve('bob'), reject('carol')]);
    expect(r).toMatchObject({ satisfied: false, counted: ['alice', 'bob'], missing: [], rejectedBy: ['carol'], invalid: [] });
    // an ineligible reject (wrong role, forged) does not
    const forgedReject = { ...reject('carol'), signature: ed25519.sign(approvalPayload(subject, 'reject'), seedOf('mallory')) };
    const r2 = check([approve('alice'), approve('bob'), reject('dave'), forgedReject]);
    expect(r2).toMatchObject({ satisfied: true, rejectedBy: [] });
    expect(r2.invalid.map((i) => i.approver)).toEqual(['dave', 'carol']);
    // the initiator may always stop its own request
    expect(check([approve('bob'), approve('carol'), reject('alice')], { initiator: 'alice' })).toMatchObject({ satisfied: false, rejectedBy: ['alice'] });
  });

  it('a decision cannot be relabelled', () => {
    const flipped = { ...reject('bob'), decision: 'approve' as const };
    expect(check([approve('alice'), flipped]).invalid).toEqual([{ approver: 'bob', reason: expect.stringMatching(/approve payload/) }]);
  });

  it('approvals made under another policy are void', () => {
    const v8 = { ...subject, policyVersion: 8 };
    const r = check([approve('alice', v8), approve('bob', v8)], { s: v8 });
    expect(r.satisfied).toBe(false);
    expect(r.invalid[0]).toEqual({ approver: '*', reason: expect.stringMatching(/evaluated under policy v8.*in force is v7/) });
    const otherHash = { ...subject, policyHash: new Uint8Array(32) };
    expect(check([approve('alice', otherHash), approve('bob', otherHash)], { s: otherHash }).satisfied).toBe(false);
  });

  it('different roles need different people; the assignment finds one when it exists', () => {
    const reqs = [
      { count: 2, role: 'treasury' },
      { count: 1, role: 'compliance' },
    ];
    // carol holds both roles but counts once
    const partial = check([approve('alice'), approve('carol')], { reqs });
    expect(partial).toMatchObject({ satisfied: false, counted: ['alice', 'carol'] });
    expect(partial.missing.reduce((n, r) => n + r.count, 0)).toBe(1);
    expect(check([approve('alice'), approve('bob'), approve('carol')], { reqs })).toMatchObject({ satisfied: true, counted: ['alice', 'bob', 'carol'] });
    expect(check([approve('carol'), approve('dave'), approve('alice')], { reqs })).toMatchObject({ satisfied: true, missing: [] });
    // an order that defeats a greedy assignment: carol would take the treasury seat and leave alice none
    const oneEach = [
      { count: 1, role: 'treasury' },
      { count: 1, role: 'compliance' },
    ];
    expect(check([approve('carol'), approve('alice')], { reqs: oneEach })).toMatchObject({ satisfied: true, counted: ['carol', 'alice'], missing: [] });
    // requirements on the same role merge to the largest count
    expect(check([approve('alice'), approve('bob')], { reqs: [{ count: 2, role: 'treasury' }, { count: 3, role: 'treasury' }] })).toMatchObject({
      satisfied: false,
      missing: [{ count: 1, role: 'treasury' }],
    });
  });

  it('no requirements: satisfied unless rejected', () => {
    expect(check([], { reqs: [] })).toMatchObject({ satisfied: true });
    expect(check([reject('erin')], { reqs: [] })).toMatchObject({ satisfied: false, rejectedBy: ['erin'] });
  });
});

describe('approvalPayload', () => {
  it('is the documented domain-tagged canonical JSON', () => {
    const text = new TextDecoder().decode(approvalPayload(subject));
    const expected =
      'custody/approval/v1\0' +
      JSON.stringify({
        decision: 'approve',
        digest: bytesToHex(subject.digest),
        expiresAt: '2025-01-06T13:00:00.000Z',
        intent: { amount: '2000000000000000000', asset: 'ETH', chainId: '1', destination: subject.intent.destination, kind: 'native-transfer' },
        keysetId: 'ks-1',
        policyHash: bytesToHex(subject.policyHash),
        policyVersion: 7,
        requestId: 'req-1',
        walletId: 'w-1',
      });
    expect(text).toBe(expected);
    expect(new TextDecoder().decode(approvalPayload(subject, 'reject'))).toBe(expected.replace('"decision":"approve"', '"decision":"reject"'));
  });

  it('verifies with crypto/ed25519-sig under APPROVAL_DOMAIN', () => {
    const a = approve('alice');
    const json = approvalPayload(subject).subarray('custody/approval/v1\0'.length);
    expect(ed25519Verify(ed25519.getPublicKey(seedOf('alice')), APPROVAL_DOMAIN, json, a.signature)).toBe(true);
  });
});

describe('the example policy end to end', () => {
  it('1 ETH + 1 wei: two treasury approvals from the example keys, not the initiator', () => {
    const ex = parsePolicy(exampleJson());
    const intent = ethIntent(ETH + 1n);
    const d = evaluate(ex, { intent, keysetId: 'ks-1', walletId: 'w-1', now: NOW });
    if (d.effect !== 'require_approvals') throw new Error(`expected approvals, got ${d.effect}`);
    const s: ApprovalSubject = { ...subject, intent, policyVersion: ex.version, policyHash: policyHash(ex), expiresAt: new Date(NOW.getTime() + ex.approvalTtlSeconds * 1000) };
    const sig = (n: string) => signApproval(s, n, 'approve', exampleSeed(n));
    expect(checkApprovals(ex, s, [sig('alice'), sig('bob')], 'alice', d.requirements, NOW)).toMatchObject({ satisfied: false, counted: ['bob'] });
    expect(checkApprovals(ex, s, [sig('alice'), sig('bob'), sig('carol')], 'alice', d.requirements, NOW)).toMatchObject({ satisfied: true, counted: ['bob', 'carol'] });
  });
});
