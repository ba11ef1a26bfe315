/** Operator quorum: the policy's `operations`, requirement lookup, and approvals bound to one operation. */
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { describe, expect, it, test } from 'vitest';
import { ed25519Verify } from '../../crypto/ed25519-sig.js';
import { approvalPayload, checkApprovals, signApproval, type ApprovalSubject, type SignedApproval } from '../../policy/approvals.js';
import { canonicalPolicyBytes, decodePolicyBytes, parsePolicy, PolicyError, policyHash } from '../../policy/document.js';
import { canonicalOperationParams, OPERATION_APPROVAL_DOMAIN, operationRequirements, type OperationSubject } from '../../policy/operations.js';
import { approverJson, ethIntent, ETH, seedOf, testPolicyJson } from './support.js';

// alice, bob: treasury; carol: treasury + compliance; dave: compliance; erin, frank, grace: ops
const APPROVERS = [
  approverJson('alice', ['treasury']),
  approverJson('bob', ['treasury']),
  approverJson('carol', ['treasury', 'compliance']),
  approverJson('dave', ['compliance']),
  approverJson('erin', ['ops']),
  approverJson('frank', ['ops']),
  approverJson('grace', ['ops']),
];
const OPERATIONS = [
  { kinds: ['keyset.refresh', 'keyset.reshare'], approvals: [{ count: 2, role: 'ops' }] },
  { kinds: ['keyset.export_recovery'], approvals: [{ count: 1, role: 'ops' }, { count: 1, role: 'compliance' }], description: 'key material leaves the cluster' },
];
const json = (operations: unknown = OPERATIONS) => testPolicyJson([], { approvers: APPROVERS, operations });
const doc = parsePolicy(json());

describe('parsePolicy: operations', () => {
  const mutated = (f: (ops: any[]) => unknown) => {
    const ops = structuredClone(OPERATIONS) as unknown[];
    f(ops);
    return json(ops);
  };
  const cases: [string, () => unknown, string, RegExp][] = [
    ['not an array', () => json({ kinds: ['keyset.refresh'] }), '$.operations', /must be an array, got object/],
    ['empty list (omit it instead)', () => json([]), '$.operations', /must not be empty/],
    ['unknown kind', () => mutated((o) => (o[0].kinds[1] = 'keyset.delete')), '$.operations[0].kinds[1]', /must be one of "keyset.refresh", .*"vault.rotate", got "keyset.delete"/],
    ['intent kind is not an operation', () => mutated((o) => (o[0].kinds = ['native-transfer'])), '$.operations[0].kinds[0]', /must be one of/],
    ['no kinds', () => mutated((o) => (o[0].kinds = [])), '$.operations[0].kinds', /must not be empty/],
    ['duplicate kind in an entry', () => mutated((o) => (o[0].kinds = ['keyset.refresh', 'keyset.refresh'])), '$.operations[0].kinds[1]', /duplicate of \$\.operations\[0\]\.kinds\[0\]/],
    ['kind in two entries', () => mutated((o) => o[1].kinds.push('keyset.reshare')), '$.operations[1].kinds[1]', /"keyset.reshare" is already listed in \$\.operations\[0\]\.kinds\[1\]/],
    ['no approvals', () => mutated((o) => (o[0].approvals = [])), '$.operations[0].approvals', /must not be empty/],
    ['approvals missing', () => mutated((o) => delete o[0].approvals), '$.operations[0].approvals', /is required/],
    ['unknown role', () => mutated((o) => (o[0].approvals[0].role = 'board')), '$.operations[0].approvals[0].role', /unknown role "board": no approver holds it/],
    ['unsatisfiable count', () => mutated((o) => (o[0].approvals[0].count = 4)), '$.operations[0].approvals[0].count', /only 3 approver\(s\) hold it/],
    ['count 0', () => mutated((o) => (o[0].approvals[0].count = 0)), '$.operations[0].approvals[0].count', /out of range 1\.\.1000/],
    ['duplicate role', () => mutated((o) => o[0].approvals.push({ count: 1, role: 'ops' })), '$.operations[0].approvals[1].role', /duplicate of \$\.operations\[0\]\.approvals\[0\]\.role/],
    ['unknown field', () => mutated((o) => (o[0].when = { keysets: ['k'] })), '$.operations[0].when', /unknown field \(allowed: kinds, approvals, description\)/],
    ['description too long', () => mutated((o) => (o[1].description = 'x'.repeat(501))), '$.operations[1].description', /at most 500/],
  ];

  test.each(cases)('%s', (_name, make, path, message) => {
    let err: unknown;
    try {
      parsePolicy(make());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).path).toBe(path);
    expect((err as PolicyError).message).toMatch(message);
    expect((err as PolicyError).message.startsWith(`${path}: `)).toBe(true);
  });

  it('round-trips through the canonical bytes, and is part of the hash', () => {
    expect(doc.operations).toEqual([
      { kinds: ['keyset.refresh', 'keyset.reshare'], approvals: [{ count: 2, role: 'ops' }] },
      { kinds: ['keyset.export_recovery'], approvals: [{ count: 1, role: 'ops' }, { count: 1, role: 'compliance' }], description: 'key material leaves the cluster' },
    ]);
    expect(decodePolicyBytes(canonicalPolicyBytes(doc))).toEqual(doc);
    const without = parsePolicy(testPolicyJson([], { approvers: APPROVERS }));
    expect(without.operations).toBeUndefined();
    expect(new TextDecoder().decode(canonicalPolicyBytes(without))).not.toContain('operations');
    expect(policyHash(without)).not.toEqual(policyHash(doc));
    const threeOps = parsePolicy(json([{ kinds: ['keyset.refresh'], approvals: [{ count: 3, role: 'ops' }] }]));
    expect(policyHash(threeOps)).not.toEqual(policyHash(doc));
  });
});

describe('operationRequirements', () => {
  it('returns the entry listing the kind, and nothing for kinds no entry lists', () => {
    expect(operationRequirements(doc, 'keyset.refresh')).toEqual([{ count: 2, role: 'ops' }]);
    expect(operationRequirements(doc, 'keyset.reshare')).toEqual([{ count: 2, role: 'ops' }]);
    expect(operationRequirements(doc, 'keyset.export_recovery')).toEqual([{ count: 1, role: 'ops' }, { count: 1, role: 'compliance' }]);
    for (const k of ['keyset.rerun_setup', 'node.repair', 'vault.rotate'] as const) expect(operationRequirements(doc, k)).toEqual([]);
    expect(operationRequirements(parsePolicy(testPolicyJson([])), 'keyset.refresh')).toEqual([]);
  });

  it('refuses a kind outside the closed list, and hands out copies', () => {
    expect(() => operationRequirements(doc, 'keyset.delete' as never)).toThrow(/unknown operation kind "keyset.delete"/);
    operationRequirements(doc, 'keyset.refresh')[0]!.count = 0;
    expect(operationRequirements(doc, 'keyset.refresh')).toEqual([{ count: 2, role: 'ops' }]);
  });
});

describe('operation approvals', () => {
  const NOW = new Date('2025-01-06T12:00:00.000Z');
  const op: OperationSubject = {
    operationId: '6f1c1f7e-8a43-4d8e-9b59-0d2a4e1e9c11',
    kind: 'keyset.reshare',
    subject: 'ks-1',
    params: { threshold: 3, addNodes: ['node-4'], removeNodes: [] },
    policyVersion: doc.version,
    policyHash: policyHash(doc),
    expiresAt: new Date(NOW.getTime() + 3600_000),
  };
  const TWO_OPS = operationRequirements(doc, 'keyset.reshare');
  const approve = (name: string, s: OperationSubject = op) => signApproval(s, name, 'approve', seedOf(name));
  const check = (approvals: SignedApproval[], initiator = 'admin', s: OperationSubject = op) => checkApprovals(doc, s, approvals, initiator, TWO_OPS, NOW);

  it('two ops approvers satisfy 2 of role ops; one does not', () => {
    expect(check([approve('erin'), approve('frank')])).toEqual({ satisfied: true, counted: ['erin', 'frank'], missing: [], rejectedBy: [], invalid: [] });
    expect(check([approve('erin')])).toMatchObject({ satisfied: false, missing: [{ count: 1, role: 'ops' }] });
  });

  it('binds the operation id, kind, subject, every parameter, the policy and the deadline', () => {
    for (const other of [
      { ...op, operationId: '00000000-0000-4000-8000-000000000000' },
      { ...op, kind: 'keyset.refresh' as const },
      { ...op, subject: 'ks-2' },
      { ...op, params: { ...op.params, threshold: 2 } },
      { ...op, params: { ...op.params, addNodes: ['node-5'] } },
      { ...op, params: { ...op.params, force: true } },
      { ...op, params: {} },
      { ...op, expiresAt: new Date(op.expiresAt.getTime() + 1000) },
    ]) {
      const r = check([approve('erin'), approve('frank', other)]);
      expect(r.satisfied).toBe(false);
      expect(r.invalid).toEqual([{ approver: 'frank', reason: expect.stringMatching(/does not verify|differs from the operation's/) }]);
    }
    const v8 = { ...op, policyVersion: 8 };
    expect(check([approve('erin', v8), approve('frank', v8)], 'admin', v8).invalid[0]).toEqual({ approver: '*', reason: expect.stringMatching(/operation was requested under policy v8/) });
  });

  it('parameter key order does not matter (canonical JSON)', () => {
    const reordered = { ...op, params: { removeNodes: [], addNodes: ['node-4'], threshold: 3 } };
    expect(canonicalOperationParams(reordered.params)).toBe(canonicalOperationParams(op.params));
    expect(check([approve('erin', reordered), approve('frank')]).satisfied).toBe(true);
  });

  it('the initiator never counts, each approver counts once, roles matter', () => {
    const self = check([approve('erin'), approve('frank')], 'erin');
    expect(self).toMatchObject({ satisfied: false, counted: ['frank'] });
    expect(self.invalid).toEqual([{ approver: 'erin', reason: 'the initiator of an operation never counts as its approver' }]);
    expect(check([approve('erin'), approve('erin')]).invalid).toEqual([{ approver: 'erin', reason: 'duplicate approve from erin (each approver counts once)' }]);
    expect(check([approve('erin'), approve('alice')]).invalid[0]!.reason).toMatch(/alice holds none of the required roles \(ops\)/);
    expect(check([approve('erin'), approve('grace')]).satisfied).toBe(true);
  });

  it('a valid reject from an ops approver rejects it', () => {
    expect(check([approve('erin'), signApproval(op, 'frank', 'reject', seedOf('frank'))])).toMatchObject({ satisfied: false, rejectedBy: ['frank'] });
  });

  it('is domain-separated from sign-request approvals and documented byte for byte', () => {
    const text = new TextDecoder().decode(approvalPayload(op));
    expect(text).toBe(
      'custody/operation-approval/v1\0' +
        JSON.stringify({
          decision: 'approve',
          expiresAt: '2025-01-06T13:00:00.000Z',
          kind: 'keyset.reshare',
          operationId: op.operationId,
          params: { addNodes: ['node-4'], removeNodes: [], threshold: 3 },
          policyHash: bytesToHex(op.policyHash),
          policyVersion: doc.version,
          subject: 'ks-1',
        }),
    );
    const json = approvalPayload(op).subarray(`custody/${OPERATION_APPROVAL_DOMAIN}/v1\0`.length);
    expect(ed25519Verify(ed25519.getPublicKey(seedOf('erin')), OPERATION_APPROVAL_DOMAIN, json, approve('erin').signature)).toBe(true);
    // A sign-request approval by the same approver never passes as an operation approval.
    const request: ApprovalSubject = { requestId: op.operationId, keysetId: 'ks-1', walletId: null, intent: ethIntent(ETH), digest: new Uint8Array(32), policyVersion: doc.version, policyHash: op.policyHash, expiresAt: op.expiresAt };
    const crossed = { ...signApproval(request, 'frank', 'approve', seedOf('frank')) };
    expect(check([approve('erin'), crossed]).invalid).toEqual([{ approver: 'frank', reason: expect.stringMatching(/over this operation's approve payload/) }]);
  });

  it('refuses subjects that are not well formed', () => {
    expect(() => approvalPayload({ ...op, kind: 'keyset.delete' as never })).toThrow(/unknown kind "keyset.delete"/);
    expect(() => approvalPayload({ ...op, subject: '' })).toThrow(/subject must be a non-empty string/);
    expect(() => approvalPayload({ ...op, params: { n: 10n } as never })).toThrow(/operation params: .*bigint/);
    expect(() => approvalPayload({ ...op, params: [] as never })).toThrow(/must be a JSON object/);
  });
});
