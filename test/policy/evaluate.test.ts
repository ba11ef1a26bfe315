/** Policy evaluation: a table of cases at the boundaries, and the example policy of docs/examples/policy.json. */
import { describe, expect, it, test } from 'vitest';
import { parsePolicy } from '../../policy/document.js';
import { evaluate, velocityKeys, type Decision, type Usage, type VelocityKey } from '../../policy/evaluate.js';
import { rawDigestIntent, type Intent } from '../../policy/intent.js';
import { ALICE_ADDR, BOB_ADDR, CAROL_ADDR, ETH, ethIntent, exampleJson, testPolicy, unknownTokenIntent, usdcIntent } from './support.js';

const MON_NOON = new Date('2025-01-06T12:00:00.000Z'); // a Monday
const WEI = 1n;

type Expect =
  | { effect: 'allow'; ruleId?: string | null }
  | { effect: 'deny'; ruleId: string; reason?: RegExp }
  | { effect: 'require_approvals'; ruleIds: string[]; requirements: { count: number; role: string }[] };

interface Case {
  name: string;
  rules: unknown[];
  extra?: Record<string, unknown>;
  intent: Intent;
  now?: Date;
  keysetId?: string;
  walletId?: string | null;
  /** usage per key id: `${scope}|${asset}` */
  usage?: Record<string, Usage>;
  expect: Expect;
}

const denyAbove1 = [{ id: 'deny-above-1', effect: 'deny', when: { asset: 'ETH', amount: { above: '1' } } }];
const denyAtLeast1 = [{ id: 'deny-atleast-1', effect: 'deny', when: { asset: 'ETH', amount: { atLeast: '1' } } }];
const denyBelow1 = [{ id: 'deny-below-1', effect: 'deny', when: { asset: 'ETH', amount: { below: '1' } } }];
const denyAtMost1 = [{ id: 'deny-atmost-1', effect: 'deny', when: { asset: 'ETH', amount: { atMost: '1' } } }];
const approveAbove1 = [{ id: 'approve-above-1', effect: 'require_approvals', when: { asset: 'ETH', amount: { above: '1' } }, approvals: [{ count: 2, role: 'treasury' }] }];
const tiered = [
  { id: 'allow-eth', effect: 'allow', when: { asset: 'ETH' } },
  { id: 'approve-above-1', effect: 'require_approvals', when: { asset: 'ETH', amount: { above: '1' } }, approvals: [{ count: 2, role: 'treasury' }] },
  { id: 'deny-above-5', effect: 'deny', when: { asset: 'ETH', amount: { above: '5' } } },
];
const denyList = [{ id: 'denylist', effect: 'deny', when: { destination: { in: [BOB_ADDR.toLowerCase(), CAROL_ADDR.toUpperCase().replace('0X', '0x')] } } }];
const allowList = [{ id: 'allowlist', effect: 'deny', when: { destination: { notIn: [ALICE_ADDR, BOB_ADDR.toLowerCase()] } } }];
const officeHours = [{ id: 'office-hours', effect: 'deny', when: { asset: 'ETH', time: { outside: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], from: '09:00', to: '17:00' }] } } }];
const mondayOnly = [{ id: 'monday-only', effect: 'deny', when: { time: { outside: [{ days: ['mon'], from: '00:00', to: '24:00' }] } } }];
const maintenance = [{ id: 'maintenance', effect: 'deny', when: { time: { inside: [{ days: ['sat'], from: '00:00', to: '24:00' }] } } }];
const walletVelocity = [{ id: 'wallet-10-eth', effect: 'deny', when: { asset: 'ETH', velocity: { scope: 'wallet', windowSeconds: 86400, maxAmount: '10', maxCount: 3 } } }];
const bothVelocity = [
  { id: 'wallet-10-eth', effect: 'deny', when: { asset: 'ETH', velocity: { scope: 'wallet', windowSeconds: 86400, maxAmount: '10' } } },
  { id: 'keyset-20-eth', effect: 'deny', when: { asset: 'ETH', velocity: { scope: 'keyset', windowSeconds: 3600, maxAmount: '20' } } },
];
const velocityApprovals = [
  { id: 'velocity-approvals', effect: 'require_approvals', when: { asset: 'USDC', velocity: { scope: 'keyset', windowSeconds: 600, maxAmount: '1000000' } }, approvals: [{ count: 1, role: 'compliance' }] },
];
const denyUnknown = [{ id: 'deny-unknown', effect: 'deny', when: { asset: 'unknown' } }];
const denyAll = [{ id: 'deny-all', effect: 'deny' }];
const rawOutsideHours = [{ id: 'raw-hours', effect: 'deny', when: { kinds: ['raw-digest'], time: { outside: [{ days: ['mon'], from: '09:00', to: '17:00' }] } } }];

const at = (iso: string) => new Date(iso);

const cases: Case[] = [
  // amounts: above / atLeast / below / atMost at the limit, one wei over and under, zero
  { name: 'above: exactly the limit passes', rules: denyAbove1, intent: ethIntent(ETH), expect: { effect: 'allow', ruleId: null } },
  { name: 'above: one wei over is denied', rules: denyAbove1, intent: ethIntent(ETH + WEI), expect: { effect: 'deny', ruleId: 'deny-above-1', reason: /1\.000000000000000001 ETH is above 1 ETH/ } },
  { name: 'above: one wei under passes', rules: denyAbove1, intent: ethIntent(ETH - WEI), expect: { effect: 'allow', ruleId: null } },
  { name: 'above: zero passes', rules: denyAbove1, intent: ethIntent(0n), expect: { effect: 'allow', ruleId: null } },
  { name: 'atLeast: exactly the limit is denied', rules: denyAtLeast1, intent: ethIntent(ETH), expect: { effect: 'deny', ruleId: 'deny-atleast-1' } },
  { name: 'atLeast: one wei under passes', rules: denyAtLeast1, intent: ethIntent(ETH - WEI), expect: { effect: 'allow', ruleId: null } },
  { name: 'below: one wei under is denied', rules: denyBelow1, intent: ethIntent(ETH - WEI), expect: { effect: 'deny', ruleId: 'deny-below-1' } },
  { name: 'below: zero is denied', rules: denyBelow1, intent: ethIntent(0n), expect: { effect: 'deny', ruleId: 'deny-below-1' } },
  { name: 'below: exactly the limit passes', rules: denyBelow1, intent: ethIntent(ETH), expect: { effect: 'allow', ruleId: null } },
  { name: 'atMost: exactly the limit is denied', rules: denyAtMost1, intent: ethIntent(ETH), expect: { effect: 'deny', ruleId: 'deny-atmost-1' } },
  { name: 'atMost: one wei over passes', rules: denyAtMost1, intent: ethIntent(ETH + WEI), expect: { effect: 'allow', ruleId: null } },
  { name: 'amount rules only see their asset', rules: denyAbove1, intent: usdcIntent(5_000_000n * 10n ** 6n), expect: { effect: 'allow', ruleId: null } },
  { name: 'approvals: one wei over needs approvals', rules: approveAbove1, intent: ethIntent(ETH + WEI), expect: { effect: 'require_approvals', ruleIds: ['approve-above-1'], requirements: [{ count: 2, role: 'treasury' }] } },
  { name: 'approvals: exactly the limit does not', rules: approveAbove1, intent: ethIntent(ETH), expect: { effect: 'allow', ruleId: null } },

  // precedence: deny > require_approvals > allow, whatever the rule order
  { name: 'tiered: small amount allowed by its rule', rules: tiered, intent: ethIntent(ETH / 2n), expect: { effect: 'allow', ruleId: 'allow-eth' } },
  { name: 'tiered: approvals beat allow', rules: tiered, intent: ethIntent(2n * ETH), expect: { effect: 'require_approvals', ruleIds: ['approve-above-1'], requirements: [{ count: 2, role: 'treasury' }] } },
  { name: 'tiered: deny beats approvals and allow', rules: tiered, intent: ethIntent(5n * ETH + WEI), expect: { effect: 'deny', ruleId: 'deny-above-5' } },
  { name: 'tiered, reversed order: deny still wins', rules: [...tiered].reverse(), intent: ethIntent(6n * ETH), expect: { effect: 'deny', ruleId: 'deny-above-5' } },
  { name: 'tiered, reversed order: approvals still beat allow', rules: [...tiered].reverse(), intent: ethIntent(2n * ETH), expect: { effect: 'require_approvals', ruleIds: ['approve-above-1'], requirements: [{ count: 2, role: 'treasury' }] } },
  {
    name: 'several approval rules: all requirements apply, merged per role',
    rules: [
      { id: 'a', effect: 'require_approvals', when: { asset: 'ETH' }, approvals: [{ count: 2, role: 'treasury' }] },
      { id: 'b', effect: 'require_approvals', when: { asset: 'ETH', amount: { above: '1' } }, approvals: [{ count: 3, role: 'treasury' }, { count: 1, role: 'compliance' }] },
      { id: 'c', effect: 'allow', when: { asset: 'ETH' } },
    ],
    intent: ethIntent(2n * ETH),
    expect: { effect: 'require_approvals', ruleIds: ['a', 'b'], requirements: [{ count: 3, role: 'treasury' }, { count: 1, role: 'compliance' }] },
  },

  // destinations: checksum-insensitive on both sides
  { name: 'denylist: listed (lowercase in policy, EIP-55 in intent) is denied', rules: denyList, intent: ethIntent(1n, BOB_ADDR), expect: { effect: 'deny', ruleId: 'denylist', reason: /is on the rule's list/ } },
  { name: 'denylist: listed (uppercase in policy) is denied', rules: denyList, intent: ethIntent(1n, CAROL_ADDR.toLowerCase()), expect: { effect: 'deny', ruleId: 'denylist' } },
  { name: 'denylist: unlisted passes', rules: denyList, intent: ethIntent(1n, ALICE_ADDR), expect: { effect: 'allow', ruleId: null } },
  { name: 'denylist applies to ERC-20 recipients too', rules: denyList, intent: usdcIntent(1n, 'erc20-transfer', BOB_ADDR), expect: { effect: 'deny', ruleId: 'denylist' } },
  { name: 'allowlist: listed passes', rules: allowList, intent: ethIntent(ETH, ALICE_ADDR.toLowerCase()), expect: { effect: 'allow', ruleId: null } },
  { name: 'allowlist: listed (other case) passes', rules: allowList, intent: ethIntent(ETH, BOB_ADDR), expect: { effect: 'allow', ruleId: null } },
  { name: 'allowlist: unlisted is denied', rules: allowList, intent: ethIntent(ETH, CAROL_ADDR), expect: { effect: 'deny', ruleId: 'allowlist', reason: /not on the rule's allow-list/ } },
  { name: 'allowlist: ERC-20 approve spender is the destination', rules: allowList, intent: usdcIntent(1n, 'erc20-approve', CAROL_ADDR), expect: { effect: 'deny', ruleId: 'allowlist' } },

  // time windows, UTC, edges
  { name: 'office hours: Monday 09:00:00.000 inside', rules: officeHours, intent: ethIntent(1n), now: at('2025-01-06T09:00:00.000Z'), expect: { effect: 'allow', ruleId: null } },
  { name: 'office hours: Monday 08:59:59.999 outside', rules: officeHours, intent: ethIntent(1n), now: at('2025-01-06T08:59:59.999Z'), expect: { effect: 'deny', ruleId: 'office-hours', reason: /mon UTC\) is outside/ } },
  { name: 'office hours: Friday 16:59:59.999 inside', rules: officeHours, intent: ethIntent(1n), now: at('2025-01-10T16:59:59.999Z'), expect: { effect: 'allow', ruleId: null } },
  { name: 'office hours: Friday 17:00:00.000 outside (end exclusive)', rules: officeHours, intent: ethIntent(1n), now: at('2025-01-10T17:00:00.000Z'), expect: { effect: 'deny', ruleId: 'office-hours' } },
  { name: 'office hours: Saturday noon outside', rules: officeHours, intent: ethIntent(1n), now: at('2025-01-11T12:00:00.000Z'), expect: { effect: 'deny', ruleId: 'office-hours' } },
  { name: 'office hours: 10:00 at UTC+2 is 08:00 UTC, outside', rules: officeHours, intent: ethIntent(1n), now: at('2025-01-06T10:00:00+02:00'), expect: { effect: 'deny', ruleId: 'office-hours' } },
  { name: 'whole day: Sunday 23:59:59.999 outside', rules: mondayOnly, intent: ethIntent(1n), now: at('2025-01-05T23:59:59.999Z'), expect: { effect: 'deny', ruleId: 'monday-only' } },
  { name: 'whole day: Monday 00:00 inside', rules: mondayOnly, intent: ethIntent(1n), now: at('2025-01-06T00:00:00.000Z'), expect: { effect: 'allow', ruleId: null } },
  { name: 'whole day: Monday 23:59:59.999 inside (24:00 end)', rules: mondayOnly, intent: ethIntent(1n), now: at('2025-01-06T23:59:59.999Z'), expect: { effect: 'allow', ruleId: null } },
  { name: 'whole day: Tuesday 00:00 outside', rules: mondayOnly, intent: ethIntent(1n), now: at('2025-01-07T00:00:00.000Z'), expect: { effect: 'deny', ruleId: 'monday-only' } },
  { name: 'inside: Saturday maintenance denied', rules: maintenance, intent: ethIntent(1n), now: at('2025-01-11T00:00:00.000Z'), expect: { effect: 'deny', ruleId: 'maintenance', reason: /inside a listed time window/ } },
  { name: 'inside: Friday 23:59:59.999 not in maintenance', rules: maintenance, intent: ethIntent(1n), now: at('2025-01-10T23:59:59.999Z'), expect: { effect: 'allow', ruleId: null } },

  // velocity: sum and count, wallet and keyset scope
  { name: 'velocity: 9 used + 1 = exactly the limit passes', rules: walletVelocity, intent: ethIntent(ETH), usage: { 'wallet|ETH': { amount: 9n * ETH, count: 0 } }, expect: { effect: 'allow', ruleId: null } },
  { name: 'velocity: 9 used + 1 ETH + 1 wei is denied', rules: walletVelocity, intent: ethIntent(ETH + WEI), usage: { 'wallet|ETH': { amount: 9n * ETH, count: 0 } }, expect: { effect: 'deny', ruleId: 'wallet-10-eth', reason: /moved 9 ETH.*exceeds the limit of 10 ETH/ } },
  { name: 'velocity: 10 used + 0 passes', rules: walletVelocity, intent: ethIntent(0n), usage: { 'wallet|ETH': { amount: 10n * ETH, count: 1 } }, expect: { effect: 'allow', ruleId: null } },
  { name: 'velocity: 10 used + 1 wei is denied', rules: walletVelocity, intent: ethIntent(WEI), usage: { 'wallet|ETH': { amount: 10n * ETH, count: 1 } }, expect: { effect: 'deny', ruleId: 'wallet-10-eth' } },
  { name: 'velocity count: 2 used, the 3rd passes', rules: walletVelocity, intent: ethIntent(1n), usage: { 'wallet|ETH': { amount: 0n, count: 2 } }, expect: { effect: 'allow', ruleId: null } },
  { name: 'velocity count: 3 used, the 4th is denied', rules: walletVelocity, intent: ethIntent(1n), usage: { 'wallet|ETH': { amount: 0n, count: 3 } }, expect: { effect: 'deny', ruleId: 'wallet-10-eth', reason: /made 3 request\(s\).*limit of 3/ } },
  { name: 'velocity: keyset scope trips while the wallet is fine', rules: bothVelocity, intent: ethIntent(ETH), usage: { 'wallet|ETH': { amount: 5n * ETH, count: 0 }, 'keyset|ETH': { amount: 19n * ETH + WEI, count: 0 } }, expect: { effect: 'deny', ruleId: 'keyset-20-eth' } },
  { name: 'velocity: wallet scope trips while the keyset is fine', rules: bothVelocity, intent: ethIntent(ETH), usage: { 'wallet|ETH': { amount: 9n * ETH + WEI, count: 0 }, 'keyset|ETH': { amount: 0n, count: 0 } }, expect: { effect: 'deny', ruleId: 'wallet-10-eth' } },
  { name: 'velocity: both scopes at the limit pass', rules: bothVelocity, intent: ethIntent(ETH), usage: { 'wallet|ETH': { amount: 9n * ETH, count: 0 }, 'keyset|ETH': { amount: 19n * ETH, count: 0 } }, expect: { effect: 'allow', ruleId: null } },
  { name: 'velocity: skipped without usage (signer nodes)', rules: walletVelocity, intent: ethIntent(100n * ETH), expect: { effect: 'allow', ruleId: null } },
  { name: 'velocity can require approvals instead of denying', rules: velocityApprovals, intent: usdcIntent(2n), usage: { 'keyset|USDC': { amount: 1_000_000n * 10n ** 6n - 1n, count: 0 } }, expect: { effect: 'require_approvals', ruleIds: ['velocity-approvals'], requirements: [{ count: 1, role: 'compliance' }] } },

  // unknown assets
  { name: 'unknown asset: denied by an explicit rule', rules: denyUnknown, intent: unknownTokenIntent(1n), expect: { effect: 'deny', ruleId: 'deny-unknown', reason: /matches every such request/ } },
  { name: 'unknown asset: default allow lets it through (why the example denies it explicitly)', rules: [], intent: unknownTokenIntent(1n), expect: { effect: 'allow', ruleId: null } },
  { name: 'unknown asset: rules for a named asset do not apply', rules: [{ id: 'allow-eth', effect: 'allow', when: { asset: 'ETH' } }], extra: { defaultEffect: 'deny' }, intent: unknownTokenIntent(1n), expect: { effect: 'deny', ruleId: '$default' } },
  { name: 'unknown asset: asset-less rules (denylist) apply', rules: denyList, intent: { ...unknownTokenIntent(1n), destination: BOB_ADDR }, expect: { effect: 'deny', ruleId: 'denylist' } },
  { name: 'unknown asset: zero amount still denied', rules: denyUnknown, intent: unknownTokenIntent(0n), expect: { effect: 'deny', ruleId: 'deny-unknown' } },

  // raw digests
  { name: 'raw digest: deny', rules: [{ id: 'raw-ok', effect: 'allow', when: { kinds: ['raw-digest'] } }], extra: { rawDigests: 'deny' }, intent: rawDigestIntent(), expect: { effect: 'deny', ruleId: '$rawDigests', reason: /rawDigests: "deny"/ } },
  { name: 'raw digest: allow, even under default deny', rules: [], extra: { rawDigests: 'allow', defaultEffect: 'deny' }, intent: rawDigestIntent(), expect: { effect: 'allow', ruleId: '$rawDigests' } },
  { name: 'raw digest: rules without kinds do not apply', rules: denyAll, extra: { rawDigests: 'allow' }, intent: rawDigestIntent(), expect: { effect: 'allow', ruleId: '$rawDigests' } },
  { name: 'raw digest: approve needs rawDigestApprovals', rules: [], extra: { rawDigests: 'approve', rawDigestApprovals: { count: 2, role: 'treasury' } }, intent: rawDigestIntent(), expect: { effect: 'require_approvals', ruleIds: ['$rawDigests'], requirements: [{ count: 2, role: 'treasury' }] } },
  { name: 'raw digest: a raw-digest rule denies outside its hours', rules: rawOutsideHours, extra: { rawDigests: 'allow' }, intent: rawDigestIntent(), now: at('2025-01-06T17:00:00.000Z'), expect: { effect: 'deny', ruleId: 'raw-hours' } },
  { name: 'raw digest: a raw-digest rule passes inside its hours', rules: rawOutsideHours, extra: { rawDigests: 'allow' }, intent: rawDigestIntent(), now: at('2025-01-06T16:59:00.000Z'), expect: { effect: 'allow', ruleId: '$rawDigests' } },

  // default effect and scoping
  { name: 'default deny with no rules', rules: [], extra: { defaultEffect: 'deny' }, intent: ethIntent(1n), expect: { effect: 'deny', ruleId: '$default', reason: /default effect is deny/ } },
  { name: 'default allow with no rules', rules: [], intent: ethIntent(1n), expect: { effect: 'allow', ruleId: null } },
  { name: 'default deny when no rule matches', rules: [{ id: 'allow-usdc', effect: 'allow', when: { asset: 'USDC' } }], extra: { defaultEffect: 'deny' }, intent: ethIntent(1n), expect: { effect: 'deny', ruleId: '$default' } },
  { name: 'keyset scoping: other keyset unaffected', rules: [{ id: 'ks', effect: 'deny', when: { keysets: ['ks-cold'] } }], keysetId: 'ks-hot', intent: ethIntent(1n), expect: { effect: 'allow', ruleId: null } },
  { name: 'keyset scoping: listed keyset denied', rules: [{ id: 'ks', effect: 'deny', when: { keysets: ['ks-cold'] } }], keysetId: 'ks-cold', intent: ethIntent(1n), expect: { effect: 'deny', ruleId: 'ks' } },
  { name: 'wallet scoping: listed wallet denied', rules: [{ id: 'w', effect: 'deny', when: { wallets: ['w-9'] } }], walletId: 'w-9', intent: ethIntent(1n), expect: { effect: 'deny', ruleId: 'w' } },
  { name: 'wallet scoping: keyset root (no wallet) not matched', rules: [{ id: 'w', effect: 'deny', when: { wallets: ['w-9'] } }], walletId: null, intent: ethIntent(1n), expect: { effect: 'allow', ruleId: null } },
  { name: 'chain scoping: other chain unaffected', rules: [{ id: 'c', effect: 'deny', when: { chainIds: ['5'] } }], intent: ethIntent(1n), expect: { effect: 'allow', ruleId: null } },
  { name: 'kind scoping: approve needs approvals', rules: [{ id: 'approves', effect: 'require_approvals', when: { kinds: ['erc20-approve'] }, approvals: [{ count: 1, role: 'compliance' }] }], intent: usdcIntent(1n, 'erc20-approve'), expect: { effect: 'require_approvals', ruleIds: ['approves'], requirements: [{ count: 1, role: 'compliance' }] } },
  { name: 'kind scoping: transfer unaffected', rules: [{ id: 'approves', effect: 'require_approvals', when: { kinds: ['erc20-approve'] }, approvals: [{ count: 1, role: 'compliance' }] }], intent: usdcIntent(1n, 'erc20-transfer'), expect: { effect: 'allow', ruleId: null } },
];

function run(c: Case): Decision {
  const doc = testPolicy(c.rules, c.extra);
  const usage = c.usage;
  return evaluate(doc, {
    intent: c.intent,
    keysetId: c.keysetId ?? 'ks-1',
    walletId: c.walletId === undefined ? 'w-1' : c.walletId,
    now: c.now ?? MON_NOON,
    usage: usage
      ? (k: VelocityKey) => {
          const u = usage[`${k.scope}|${k.asset}`];
          if (!u) throw new Error(`unexpected usage lookup ${JSON.stringify(k)}`);
          return u;
        }
      : undefined,
  });
}

describe('evaluate: table', () => {
  test.each(cases)('$name', (c) => {
    const d = run(c);
    expect(d.policyVersion).toBe(7);
    expect(d.effect).toBe(c.expect.effect);
    if (c.expect.effect === 'allow' && d.effect === 'allow') {
      if (c.expect.ruleId !== undefined) expect(d.ruleId).toBe(c.expect.ruleId);
    } else if (c.expect.effect === 'deny' && d.effect === 'deny') {
      expect(d.ruleId).toBe(c.expect.ruleId);
      if (c.expect.reason) expect(d.reason).toMatch(c.expect.reason);
    } else if (c.expect.effect === 'require_approvals' && d.effect === 'require_approvals') {
      expect(d.ruleIds).toEqual(c.expect.ruleIds);
      expect(d.requirements).toEqual(c.expect.requirements);
    }
  });

  it('refuses a negative amount and an invalid clock', () => {
    const doc = testPolicy([]);
    expect(() => evaluate(doc, { intent: ethIntent(-1n), keysetId: 'k', walletId: null, now: MON_NOON })).toThrow(/non-negative/);
    expect(() => evaluate(doc, { intent: ethIntent(1n), keysetId: 'k', walletId: null, now: new Date(NaN) })).toThrow(/valid Date/);
  });

  it('refuses malformed usage figures instead of treating them as zero', () => {
    const doc = testPolicy(walletVelocity);
    expect(() => evaluate(doc, { intent: ethIntent(1n), keysetId: 'k', walletId: 'w', now: MON_NOON, usage: () => ({ amount: 5 as unknown as bigint, count: 0 }) })).toThrow(/malformed/);
  });
});

describe('velocityKeys', () => {
  it('lists the usage the applicable velocity rules need, once each', () => {
    const doc = testPolicy([
      ...bothVelocity,
      { id: 'dup', effect: 'require_approvals', when: { asset: 'ETH', velocity: { scope: 'wallet', windowSeconds: 86400, maxCount: 50 } }, approvals: [{ count: 1, role: 'ops' }] },
      { id: 'count-all', effect: 'deny', when: { velocity: { scope: 'keyset', windowSeconds: 60, maxCount: 100 } } },
      { id: 'other-wallet', effect: 'deny', when: { asset: 'ETH', wallets: ['w-other'], velocity: { scope: 'wallet', windowSeconds: 7, maxAmount: '1' } } },
      { id: 'usdc', effect: 'deny', when: { asset: 'USDC', velocity: { scope: 'wallet', windowSeconds: 86400, maxAmount: '1' } } },
    ]);
    const keys = velocityKeys(doc, ethIntent(ETH), { keysetId: 'ks-1', walletId: 'w-1' });
    const txKinds = ['erc20-approve', 'erc20-transfer', 'erc20-transfer-from', 'native-transfer'];
    expect(keys).toEqual([
      { scope: 'wallet', asset: 'ETH', windowSeconds: 86400, kinds: txKinds },
      { scope: 'keyset', asset: 'ETH', windowSeconds: 3600, kinds: txKinds },
      { scope: 'keyset', asset: '*', windowSeconds: 60, kinds: txKinds },
    ]);
    expect(velocityKeys(doc, rawDigestIntent(), { keysetId: 'ks-1', walletId: 'w-1' })).toEqual([]);
  });
});

describe('the example policy (docs/examples/policy.json)', () => {
  const doc = parsePolicy(exampleJson());
  const decide = (amount: bigint, usedInWindow = 0n, intent: Intent = ethIntent(amount)) =>
    evaluate(doc, {
      intent,
      keysetId: 'ks-1',
      walletId: 'w-1',
      now: MON_NOON,
      usage: (k) => {
        expect(k).toMatchObject({ scope: 'wallet', asset: 'ETH', windowSeconds: 86400 });
        return { amount: usedInWindow, count: 0 };
      },
    });

  it('0.5 ETH signs without approval', () => {
    expect(decide(ETH / 2n)).toEqual({ effect: 'allow', ruleId: 'eth-allow', policyVersion: 1 });
  });
  it('exactly 1 ETH signs without approval', () => {
    expect(decide(ETH)).toEqual({ effect: 'allow', ruleId: 'eth-allow', policyVersion: 1 });
  });
  it('1 ETH + 1 wei needs 2 treasury approvals', () => {
    expect(decide(ETH + 1n)).toEqual({ effect: 'require_approvals', ruleIds: ['eth-above-1-needs-treasury'], requirements: [{ count: 2, role: 'treasury' }], policyVersion: 1 });
  });
  it('exactly 100 ETH needs approvals (and is not denied)', () => {
    const d = evaluate(doc, { intent: ethIntent(100n * ETH), keysetId: 'ks-1', walletId: 'w-1', now: MON_NOON });
    expect(d).toEqual({ effect: 'require_approvals', ruleIds: ['eth-above-1-needs-treasury'], requirements: [{ count: 2, role: 'treasury' }], policyVersion: 1 });
  });
  it('100 ETH + 1 wei is denied', () => {
    expect(decide(100n * ETH + 1n)).toMatchObject({ effect: 'deny', ruleId: 'eth-deny-above-100' });
  });
  it('velocity: 10 ETH used in the window, 1 wei more is denied', () => {
    expect(decide(1n, 10n * ETH)).toMatchObject({ effect: 'deny', ruleId: 'eth-wallet-10-per-24h' });
    expect(decide(ETH, 9n * ETH)).toMatchObject({ effect: 'allow', ruleId: 'eth-allow' });
  });
  it('unknown tokens and raw digests are denied explicitly', () => {
    expect(evaluate(doc, { intent: unknownTokenIntent(1n), keysetId: 'ks-1', walletId: 'w-1', now: MON_NOON })).toMatchObject({ effect: 'deny', ruleId: 'deny-unknown-assets' });
    expect(evaluate(doc, { intent: rawDigestIntent(), keysetId: 'ks-1', walletId: 'w-1', now: MON_NOON })).toMatchObject({ effect: 'deny', ruleId: '$rawDigests' });
  });
  it('ETH on a chain the policy does not list is an unknown asset', () => {
    const d = evaluate(doc, { intent: { ...ethIntent(1n), chainId: 5n, asset: 'unknown' }, keysetId: 'ks-1', walletId: 'w-1', now: MON_NOON });
    expect(d).toMatchObject({ effect: 'deny', ruleId: 'deny-unknown-assets' });
  });
});
