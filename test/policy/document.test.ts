/** Policy documents: exact amounts, strict parsing with JSON paths, canonical bytes and hash. */
import { readdirSync, readFileSync } from 'node:fs';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { describe, expect, it, test } from 'vitest';
import {
  canonicalPolicyBytes,
  decodePolicyBytes,
  formatAmount,
  parseAmount,
  parsePolicy,
  PolicyError,
  policyHash,
  type PolicyDocument,
} from '../../policy/document.js';
import { ALICE_ADDR, ETH, exampleJson, testPolicyJson, USDC_CONTRACT } from './support.js';

describe('amounts', () => {
  test.each([
    ['0', 18, 0n],
    ['1', 18, ETH],
    ['1.5', 18, 1_500_000_000_000_000_000n],
    ['1.50', 18, 1_500_000_000_000_000_000n],
    ['0.000000000000000001', 18, 1n],
    ['100.000000000000000001', 18, 100n * ETH + 1n],
    ['123456789012345678901234567890', 0, 123456789012345678901234567890n],
    ['0.000001', 6, 1n],
  ])('parseAmount(%s, %i) = %s', (s, d, n) => {
    expect(parseAmount(s, d)).toBe(n);
  });

  test.each([
    ['-1', 18, /negative/],
    ['1.0000000000000000001', 18, /19 decimal places; the asset has 18/],
    ['1.0', 0, /1 decimal places; the asset has 0/],
    ['1e18', 18, /plain decimal/],
    ['.5', 18, /plain decimal/],
    ['1.', 18, /plain decimal/],
    ['01', 18, /plain decimal/],
    [' 1', 18, /plain decimal/],
    ['+1', 18, /plain decimal/],
    ['0x10', 18, /plain decimal/],
    ['', 18, /plain decimal/],
    ['1', 78, /decimals must be/],
  ])('parseAmount(%j, %i) refuses', (s, d, msg) => {
    expect(() => parseAmount(s, d)).toThrow(msg);
  });

  test.each([
    [0n, 18, '0'],
    [1n, 18, '0.000000000000000001'],
    [ETH, 18, '1'],
    [ETH + 1n, 18, '1.000000000000000001'],
    [1_500_000n, 6, '1.5'],
    [123n, 0, '123'],
    [-1_500_000n, 6, '-1.5'],
  ])('formatAmount(%s, %i) = %s', (n, d, s) => {
    expect(formatAmount(n, d)).toBe(s);
    if (n >= 0n) expect(parseAmount(s, d)).toBe(n);
  });
});

/** Mutates a copy of the example policy JSON. */
function mutated(f: (j: any) => void): unknown {
  const j = exampleJson();
  f(j);
  return j;
}

describe('parsePolicy errors name the JSON path', () => {
  const cases: [string, () => unknown, string, RegExp][] = [
    ['not an object', () => null, '$', /must be an object, got null/],
    ['unknown top-level field', () => mutated((j) => (j.comment = 'x')), '$.comment', /unknown field/],
    ['missing field', () => mutated((j) => delete j.defaultEffect), '$.defaultEffect', /is required/],
    ['version 0', () => mutated((j) => (j.version = 0)), '$.version', /out of range/],
    ['version as string', () => mutated((j) => (j.version = '1')), '$.version', /must be an integer/],
    ['bad decimals', () => mutated((j) => (j.assets[0].decimals = 'eighteen')), '$.assets[0].decimals', /must be an integer/],
    ['decimals out of range', () => mutated((j) => (j.assets[0].decimals = 78)), '$.assets[0].decimals', /out of range 0\.\.77/],
    ['too many decimal places', () => mutated((j) => (j.rules[1].when.amount.above = '100.0000000000000000001')), '$.rules[1].when.amount.above', /19 decimal places; ETH has 18/],
    ['negative amount', () => mutated((j) => (j.rules[1].when.amount.above = '-1')), '$.rules[1].when.amount.above', /negative/],
    ['amount as a JSON number', () => mutated((j) => (j.rules[1].when.amount.above = 100)), '$.rules[1].when.amount.above', /decimal string/],
    ['amount with exponent', () => mutated((j) => (j.rules[2].when.velocity.maxAmount = '1e1')), '$.rules[2].when.velocity.maxAmount', /plain decimal/],
    ['amount beyond uint256', () => mutated((j) => (j.rules[1].when.amount.above = '1' + '0'.repeat(60))), '$.rules[1].when.amount.above', /2\^256/],
    ['unknown field in a rule', () => mutated((j) => (j.rules[0].priority = 1)), '$.rules[0].priority', /unknown field/],
    ['unknown field in conditions', () => mutated((j) => (j.rules[0].when.amountAbove = '1')), '$.rules[0].when.amountAbove', /unknown field/],
    ['unknown field in amount', () => mutated((j) => (j.rules[1].when.amount.greaterThan = '1')), '$.rules[1].when.amount.greaterThan', /unknown field/],
    ['duplicate rule id', () => mutated((j) => (j.rules[3].id = 'eth-deny-above-100')), '$.rules[3].id', /duplicate of \$\.rules\[1\]\.id/],
    ['rule id starting with $', () => mutated((j) => (j.rules[0].id = '$default')), '$.rules[0].id', /not a rule id/],
    ['unknown role in requirement', () => mutated((j) => (j.rules[3].approvals[0].role = 'board')), '$.rules[3].approvals[0].role', /unknown role "board"/],
    ['unsatisfiable requirement', () => mutated((j) => (j.rules[3].approvals[0].count = 4)), '$.rules[3].approvals[0].count', /only 3 approver\(s\) hold it/],
    ['approvals on a deny rule', () => mutated((j) => (j.rules[1].approvals = [{ count: 1, role: 'treasury' }])), '$.rules[1].approvals', /only allowed when effect is "require_approvals"/],
    ['require_approvals without approvals', () => mutated((j) => delete j.rules[3].approvals), '$.rules[3].approvals', /is required/],
    ['bad effect', () => mutated((j) => (j.rules[0].effect = 'block')), '$.rules[0].effect', /must be one of/],
    ['bad key length', () => mutated((j) => (j.approvers[1].publicKey = 'ab'.repeat(31))), '$.approvers[1].publicKey', /32 bytes \(64 hex digits\), got 31 bytes/],
    ['key not hex', () => mutated((j) => (j.approvers[1].publicKey = 'zz'.repeat(32))), '$.approvers[1].publicKey', /must be hex/],
    ['key not a point', () => mutated((j) => (j.approvers[1].publicKey = '02' + '00'.repeat(30) + '80')), '$.approvers[1].publicKey', /not a valid Ed25519 point|small-order/],
    ['small-order key', () => mutated((j) => (j.approvers[1].publicKey = '01' + '00'.repeat(31))), '$.approvers[1].publicKey', /small-order/],
    ['shared key', () => mutated((j) => (j.approvers[2].publicKey = j.approvers[0].publicKey)), '$.approvers[2].publicKey', /same key as \$\.approvers\[0\]/],
    ['duplicate approver', () => mutated((j) => (j.approvers[2].name = 'alice')), '$.approvers[2].name', /duplicate of \$\.approvers\[0\]\.name/],
    ['empty roles', () => mutated((j) => (j.approvers[0].roles = [])), '$.approvers[0].roles', /must not be empty/],
    ['unknown asset in a rule', () => mutated((j) => (j.rules[1].when.asset = 'BTC')), '$.rules[1].when.asset', /unknown asset "BTC"/],
    ['amount without an asset', () => mutated((j) => delete j.rules[1].when.asset), '$.rules[1].when.amount', /name one asset/],
    ['amount on unknown asset', () => mutated((j) => (j.rules[1].when.asset = 'unknown')), '$.rules[1].when.amount', /name one asset/],
    ['empty amount', () => mutated((j) => (j.rules[1].when.amount = {})), '$.rules[1].when.amount', /at least one of/],
    ['impossible bounds', () => mutated((j) => (j.rules[1].when.amount = { above: '3', below: '2' })), '$.rules[1].when.amount', /could never match/],
    ['velocity on an allow rule', () => mutated((j) => (j.rules[4].when.velocity = { scope: 'wallet', windowSeconds: 60, maxCount: 1 })), '$.rules[4].when.velocity', /not "allow"/],
    ['velocity without limits', () => mutated((j) => delete j.rules[2].when.velocity.maxAmount), '$.rules[2].when.velocity', /maxAmount and\/or maxCount/],
    ['velocity bad scope', () => mutated((j) => (j.rules[2].when.velocity.scope = 'tenant')), '$.rules[2].when.velocity.scope', /must be one of "wallet", "keyset"/],
    ['velocity window 0', () => mutated((j) => (j.rules[2].when.velocity.windowSeconds = 0)), '$.rules[2].when.velocity.windowSeconds', /out of range/],
    ['destination with both lists', () => mutated((j) => (j.rules[0].when = { destination: { in: [ALICE_ADDR], notIn: [ALICE_ADDR] } })), '$.rules[0].when.destination', /exactly one/],
    ['destination bad checksum', () => mutated((j) => (j.rules[0].when = { destination: { in: [ALICE_ADDR.replace('a', 'A')] } })), '$.rules[0].when.destination.in[0]', /EIP-55 checksum/],
    ['destination too short', () => mutated((j) => (j.rules[0].when = { destination: { in: ['0x1234'] } })), '$.rules[0].when.destination.in[0]', /20-byte/],
    ['destination duplicate (case-insensitive)', () => mutated((j) => (j.rules[0].when = { destination: { in: [ALICE_ADDR, ALICE_ADDR.toLowerCase()] } })), '$.rules[0].when.destination.in[1]', /duplicate of/],
    ['time window ends before it starts', () => mutated((j) => (j.rules[0].when = { time: { outside: [{ days: ['mon'], from: '17:00', to: '09:00' }] } })), '$.rules[0].when.time.outside[0].to', /end after it starts/],
    ['time window bad hour', () => mutated((j) => (j.rules[0].when = { time: { outside: [{ days: ['mon'], from: '25:00', to: '26:00' }] } })), '$.rules[0].when.time.outside[0].from', /HH:MM/],
    ['time window bad day', () => mutated((j) => (j.rules[0].when = { time: { inside: [{ days: ['monday'], from: '09:00', to: '17:00' }] } })), '$.rules[0].when.time.inside[0].days[0]', /must be one of/],
    ['time window 24:00 start', () => mutated((j) => (j.rules[0].when = { time: { inside: [{ days: ['mon'], from: '24:00', to: '24:00' }] } })), '$.rules[0].when.time.inside[0].from', /only allowed as the end/],
    ['unknown intent kind', () => mutated((j) => (j.rules[0].when.kinds = ['erc721-transfer'])), '$.rules[0].when.kinds[0]', /must be one of/],
    ['contract on a native asset', () => mutated((j) => (j.assets[0].contract = USDC_CONTRACT)), '$.assets[0].contract', /only erc20/],
    ['erc20 without contract', () => mutated((j) => j.assets.push({ symbol: 'USDC', decimals: 6, kind: 'erc20' })), '$.assets[1].contract', /required for an erc20/],
    ['duplicate symbol (case-insensitive)', () => mutated((j) => j.assets.push({ symbol: 'eth', decimals: 18, kind: 'native', chainIds: [5] })), '$.assets[1].symbol', /duplicate/],
    ['overlapping native assets', () => mutated((j) => j.assets.push({ symbol: 'ETH2', decimals: 18, kind: 'native' })), '$.assets[1]', /chainIds overlap/],
    ['reserved symbol', () => mutated((j) => (j.assets[0].symbol = 'Unknown')), '$.assets[0].symbol', /reserved/],
    ['chain id 0', () => mutated((j) => (j.assets[0].chainIds = [0])), '$.assets[0].chainIds[0]', /out of range/],
    ['raw approvals missing', () => mutated((j) => (j.rawDigests = 'approve')), '$.rawDigestApprovals', /required when rawDigests is "approve"/],
    ['raw approvals unused', () => mutated((j) => (j.rawDigestApprovals = { count: 1, role: 'treasury' })), '$.rawDigestApprovals', /only allowed when rawDigests is "approve"/],
    ['approval ttl 0', () => mutated((j) => (j.approvalTtlSeconds = 0)), '$.approvalTtlSeconds', /out of range/],
    ['smallest units must be integers', () => mutated((j) => ((j.amountUnits = 'smallest'), (j.rules[1].when.amount.above = '1.5'))), '$.rules[1].when.amount.above', /smallest units/],
    ['bad amountUnits', () => mutated((j) => (j.amountUnits = 'wei')), '$.amountUnits', /must be one of/],
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

  it('accepts the example', () => {
    const doc = parsePolicy(exampleJson());
    expect(doc.version).toBe(1);
    expect(doc.rules.map((r) => r.id)).toEqual(['deny-unknown-assets', 'eth-deny-above-100', 'eth-wallet-10-per-24h', 'eth-above-1-needs-treasury', 'eth-allow']);
    expect(doc.rules[1]!.when.amount!.above).toBe(100n * ETH);
    expect(doc.rules[2]!.when.velocity).toEqual({ scope: 'wallet', windowSeconds: 86400, maxAmount: 10n * ETH });
    expect(doc.approvers[0]!.publicKey).toHaveLength(32);
    expect(doc.assets[0]!.chainIds).toEqual([1n]);
  });
});

/** Reverses key order at every depth. */
function reorder(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reorder);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reorder(x)]));
  return v;
}

describe('canonical bytes and hash', () => {
  const doc = parsePolicy(exampleJson());

  it('are independent of JSON key order, amount spelling, address case and chain id spelling', () => {
    const a = testPolicyJson([{ id: 'r', effect: 'deny', when: { asset: 'ETH', chainIds: [1], amount: { above: '1.5' }, destination: { in: [ALICE_ADDR] } } }]);
    const b = reorder(testPolicyJson([{ id: 'r', effect: 'deny', when: { asset: 'ETH', chainIds: ['1'], amount: { above: '1.500' }, destination: { in: [ALICE_ADDR.toLowerCase()] } } }]));
    expect(JSON.stringify(a)).not.toBe(JSON.stringify(b));
    expect(canonicalPolicyBytes(parsePolicy(b))).toEqual(canonicalPolicyBytes(parsePolicy(a)));
    expect(policyHash(parsePolicy(b))).toEqual(policyHash(parsePolicy(a)));
    expect(policyHash(parsePolicy(reorder(exampleJson())))).toEqual(policyHash(doc));
  });

  it('are sorted-key JSON with amounts in smallest units and hex keys; the hash is their SHA-256', () => {
    const bytes = canonicalPolicyBytes(doc);
    const text = new TextDecoder().decode(bytes);
    expect(text.startsWith('{"amountUnits":"smallest","approvalTtlSeconds":86400,"approvers":[{"name":"alice","publicKey":"e2bc3500')).toBe(true);
    expect(text).toContain('"amount":{"above":"100000000000000000000"}');
    expect(text).toContain('"velocity":{"maxAmount":"10000000000000000000","scope":"wallet","windowSeconds":86400}');
    const sortKeys = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(sortKeys) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as any)[k])])) : v;
    expect(text).toBe(JSON.stringify(sortKeys(JSON.parse(text))));
    expect(policyHash(doc)).toEqual(sha256(bytes));
  });

  it('are stable (pinned: a change here changes every signed policy)', () => {
    expect(bytesToHex(policyHash(doc))).toBe(PINNED_EXAMPLE_HASH);
  });

  it('change with any rule change, down to one wei', () => {
    const j = exampleJson() as any;
    j.rules[1].when.amount.above = '100.000000000000000001';
    expect(policyHash(parsePolicy(j))).not.toEqual(policyHash(doc));
  });

  it('decodePolicyBytes round-trips', () => {
    const bytes = canonicalPolicyBytes(doc);
    const back = decodePolicyBytes(bytes);
    expect(back).toEqual(doc);
    expect(canonicalPolicyBytes(back)).toEqual(bytes);
    const withApprovals = parsePolicy(testPolicyJson([], { rawDigests: 'approve', rawDigestApprovals: { count: 1, role: 'ops' } }));
    expect(decodePolicyBytes(canonicalPolicyBytes(withApprovals))).toEqual(withApprovals);
  });

  it('decodePolicyBytes refuses non-canonical, non-JSON and non-UTF-8 bytes', () => {
    const pretty = utf8ToBytes(JSON.stringify(JSON.parse(new TextDecoder().decode(canonicalPolicyBytes(doc))), null, 2));
    expect(() => decodePolicyBytes(pretty)).toThrow(/not in canonical form/);
    expect(() => decodePolicyBytes(utf8ToBytes(JSON.stringify(exampleJson())))).toThrow(/not in canonical form/);
    expect(() => decodePolicyBytes(utf8ToBytes('{'))).toThrow(/not JSON/);
    expect(() => decodePolicyBytes(Uint8Array.of(0x7b, 0xff, 0x7d))).toThrow(/UTF-8/);
  });

  it('refuses to encode an invalid document', () => {
    const bad: PolicyDocument = { ...doc, approvalTtlSeconds: -1 };
    expect(() => canonicalPolicyBytes(bad)).toThrow(PolicyError);
    const badKey: PolicyDocument = { ...doc, approvers: [{ ...doc.approvers[0]!, publicKey: new Uint8Array(31) }] };
    expect(() => canonicalPolicyBytes(badKey)).toThrow(/\$\.approvers\[0\]\.publicKey/);
  });
});

describe('policy/ stays pure', () => {
  it('imports only @noble/*, its own modules and the pure canonical JSON of crypto/, and never reads the clock', () => {
    const dir = new URL('../../policy/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const src = readFileSync(new URL(f, dir), 'utf8');
      for (const m of src.matchAll(/^(?:import|export)[^;]*?from\s+'([^']+)'/gms)) {
        expect(m[1], `${f} imports ${m[1]}`).toMatch(/^(\.\/[a-z0-9-]+\.js|\.\.\/crypto\/canonical-json\.js|@noble\/(curves|hashes)\/[a-z0-9-]+\.js)$/);
      }
      expect(src, f).not.toMatch(/Date\.now|new Date\(\)|performance\.now|process\.|require\(|import\(/);
    }
  });
});

const PINNED_EXAMPLE_HASH = '4196f98faeae7f1128707e60976ca2861833b2a80d89c61dcf72243430b5f653';
