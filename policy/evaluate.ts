/**
 * Policy evaluation: one pure function from (policy, intent, target, time, usage) to a decision.
 *
 * A rule applies when its scope matches (kinds, asset, chainIds, keysets, wallets) and matches
 * when, in addition, every trigger it names holds (amount, destination, time, velocity). Of the
 * matching rules, deny wins over require_approvals, which wins over allow; when several
 * require_approvals rules match, all their requirements apply (merged per role: the largest count).
 * When no rule matches: raw digests follow `rawDigests`, everything else `defaultEffect`.
 *
 * Raw digests: `rawDigests: "deny"` refuses them before any rule; "approve" adds
 * `rawDigestApprovals`; "allow" lets them through unless a rule that lists "raw-digest" in its
 * kinds says otherwise. Rules without `kinds` never apply to raw digests.
 *
 * Velocity: a velocity trigger needs usage figures (sum and count of what the target already
 * moved in the window), which only the coordinator has. Without `usage` (on signer nodes) every
 * rule with a velocity trigger is skipped: nodes enforce the per-transaction rules and approvals,
 * the coordinator additionally enforces velocity.
 */
import { formatAmount, minutesOf, PolicyError, TRANSACTION_KINDS, WEEKDAYS, type ApprovalRequirement, type IntentKind, type PolicyDocument, type Rule, type TimeWindow } from './document.js';
import { addressKey, type Intent } from './intent.js';

export interface VelocityKey {
  scope: 'wallet' | 'keyset';
  /** asset symbol, 'unknown', or '*' (count-only limits on rules that name no asset: every asset) */
  asset: string;
  windowSeconds: number;
  /** the intent kinds the usage counts (the rule's kinds, sorted) */
  kinds: IntentKind[];
}

export interface Usage {
  amount: bigint;
  count: number;
}

export interface Target {
  keysetId: string;
  walletId: string | null;
}

export interface EvaluationInput {
  intent: Intent;
  keysetId: string;
  walletId: string | null;
  now: Date;
  /** omitted on nodes: velocity rules are then skipped (documented) */
  usage?: (k: VelocityKey) => Usage;
}

export type Decision =
  | { effect: 'allow'; ruleId: string | null; policyVersion: number }
  | { effect: 'deny'; ruleId: string; reason: string; policyVersion: number }
  | { effect: 'require_approvals'; ruleIds: string[]; requirements: ApprovalRequirement[]; policyVersion: number };

/** Pseudo rule ids (real rule ids cannot start with '$'). */
export const RAW_DIGESTS_RULE = '$rawDigests';
export const DEFAULT_RULE = '$default';

function kindsOf(rule: Rule): readonly IntentKind[] {
  return rule.when.kinds ?? TRANSACTION_KINDS;
}

function applies(rule: Rule, intent: Intent, target: Target): boolean {
  const w = rule.when;
  if (!kindsOf(rule).includes(intent.kind)) return false;
  if (w.asset !== undefined && w.asset !== intent.asset) return false;
  if (w.chainIds !== undefined && (intent.chainId === null || !w.chainIds.includes(intent.chainId))) return false;
  if (w.keysets !== undefined && !w.keysets.includes(target.keysetId)) return false;
  if (w.wallets !== undefined && (target.walletId === null || !w.wallets.includes(target.walletId))) return false;
  return true;
}

function keyOf(rule: Rule): VelocityKey {
  const v = rule.when.velocity!;
  return { scope: v.scope, asset: rule.when.asset ?? '*', windowSeconds: v.windowSeconds, kinds: [...kindsOf(rule)].sort() };
}

/** A stable string for a velocity key, for maps and SQL caches. */
export function velocityKeyId(k: VelocityKey): string {
  return `${k.scope}|${k.asset}|${k.windowSeconds}|${[...k.kinds].sort().join(',')}`;
}

/** Which usage figures evaluate() will need for this intent (the coordinator reads them from its database). */
export function velocityKeys(doc: PolicyDocument, intent: Intent, target: Target): VelocityKey[] {
  const out = new Map<string, VelocityKey>();
  for (const rule of doc.rules) {
    if (!rule.when.velocity || !applies(rule, intent, target)) continue;
    const k = keyOf(rule);
    out.set(velocityKeyId(k), k);
  }
  return [...out.values()];
}

/** Requirements merged per role (largest count wins), in order of first appearance. */
export function mergeRequirements(...lists: readonly (readonly ApprovalRequirement[])[]): ApprovalRequirement[] {
  const byRole = new Map<string, number>();
  for (const list of lists) for (const r of list) byRole.set(r.role, Math.max(byRole.get(r.role) ?? 0, r.count));
  return [...byRole].map(([role, count]) => ({ count, role }));
}

function inWindow(w: TimeWindow, now: Date): boolean {
  const day = WEEKDAYS[now.getUTCDay()]!;
  const minute = now.getUTCHours() * 60 + now.getUTCMinutes();
  return w.days.includes(day) && minute >= minutesOf(w.from) && minute < minutesOf(w.to);
}

/** Why a rule matches, or null when it does not; 'skip' when it needs usage that was not given. */
function match(doc: PolicyDocument, rule: Rule, input: EvaluationInput): string[] | null | 'skip' {
  const w = rule.when;
  const { intent } = input;
  const spec = doc.assets.find((a) => a.symbol === intent.asset);
  const fmt = (n: bigint) => (spec ? `${formatAmount(n, spec.decimals)} ${spec.symbol}` : `${n} smallest units of ${intent.asset}`);
  const why: string[] = [];
  if (w.amount) {
    const a = w.amount;
    const x = intent.amount;
    if (a.above !== undefined) {
      if (!(x > a.above)) return null;
      why.push(`amount ${fmt(x)} is above ${fmt(a.above)}`);
    }
    if (a.atLeast !== undefined) {
      if (!(x >= a.atLeast)) return null;
      why.push(`amount ${fmt(x)} is at least ${fmt(a.atLeast)}`);
    }
    if (a.below !== undefined) {
      if (!(x < a.below)) return null;
      why.push(`amount ${fmt(x)} is below ${fmt(a.below)}`);
    }
    if (a.atMost !== undefined) {
      if (!(x <= a.atMost)) return null;
      why.push(`amount ${fmt(x)} is at most ${fmt(a.atMost)}`);
    }
  }
  if (w.destination) {
    const d = addressKey(intent.destination);
    if (w.destination.in) {
      if (!w.destination.in.includes(d)) return null;
      why.push(`destination ${intent.destination} is on the rule's list`);
    } else if (w.destination.notIn) {
      if (w.destination.notIn.includes(d)) return null;
      why.push(`destination ${intent.destination || '(none)'} is not on the rule's allow-list`);
    }
  }
  if (w.time) {
    const when = `${input.now.toISOString()} (${WEEKDAYS[input.now.getUTCDay()]} UTC)`;
    if (w.time.inside) {
      if (!w.time.inside.some((tw) => inWindow(tw, input.now))) return null;
      why.push(`${when} is inside a listed time window`);
    } else if (w.time.outside) {
      if (w.time.outside.some((tw) => inWindow(tw, input.now))) return null;
      why.push(`${when} is outside the allowed time windows`);
    }
  }
  if (w.velocity) {
    if (!input.usage) return 'skip';
    const v = w.velocity;
    const k = keyOf(rule);
    const used = input.usage(k);
    if (typeof used?.amount !== 'bigint' || !Number.isSafeInteger(used.count) || used.amount < 0n || used.count < 0) {
      throw new PolicyError(`usage for ${velocityKeyId(k)} is malformed (need a non-negative bigint amount and integer count)`);
    }
    const over: string[] = [];
    if (v.maxAmount !== undefined && used.amount + intent.amount > v.maxAmount) {
      over.push(`${v.scope} moved ${fmt(used.amount)} in the last ${v.windowSeconds}s; ${fmt(intent.amount)} more exceeds the limit of ${fmt(v.maxAmount)}`);
    }
    if (v.maxCount !== undefined && used.count + 1 > v.maxCount) {
      over.push(`${v.scope} made ${used.count} request(s) in the last ${v.windowSeconds}s; one more exceeds the limit of ${v.maxCount}`);
    }
    if (over.length === 0) return null;
    why.push(over.join(' and '));
  }
  return why;
}

/** Deny wins over require_approvals wins over allow; several approval requirements all apply. */
export function evaluate(doc: PolicyDocument, input: EvaluationInput): Decision {
  const { intent } = input;
  const policyVersion = doc.version;
  if (!(input.now instanceof Date) || Number.isNaN(input.now.getTime())) throw new PolicyError('evaluation time is not a valid Date');
  if (typeof intent.amount !== 'bigint' || intent.amount < 0n) throw new PolicyError('intent amount must be a non-negative bigint');
  const raw = intent.kind === 'raw-digest';
  if (raw && doc.rawDigests === 'deny') {
    return { effect: 'deny', ruleId: RAW_DIGESTS_RULE, reason: 'signing raw digests is denied by this policy (rawDigests: "deny")', policyVersion };
  }
  const target: Target = { keysetId: input.keysetId, walletId: input.walletId };
  const approvalRules: Rule[] = [];
  let allowRule: Rule | null = null;
  for (const rule of doc.rules) {
    if (!applies(rule, intent, target)) continue;
    const why = match(doc, rule, input);
    if (why === null || why === 'skip') continue;
    if (rule.effect === 'deny') {
      const text = why.length ? why.join('; ') : 'the rule matches every such request';
      return { effect: 'deny', ruleId: rule.id, reason: `rule ${rule.id}${rule.description ? ` (${rule.description})` : ''}: ${text}`, policyVersion };
    }
    if (rule.effect === 'require_approvals') approvalRules.push(rule);
    else allowRule ??= rule;
  }
  const ruleIds = approvalRules.map((r) => r.id);
  const lists = approvalRules.map((r) => r.approvals ?? []);
  if (raw && doc.rawDigests === 'approve') {
    if (!doc.rawDigestApprovals) throw new PolicyError('$.rawDigestApprovals: missing although rawDigests is "approve"', '$.rawDigestApprovals');
    ruleIds.push(RAW_DIGESTS_RULE);
    lists.push([doc.rawDigestApprovals]);
  }
  if (ruleIds.length) return { effect: 'require_approvals', ruleIds, requirements: mergeRequirements(...lists), policyVersion };
  if (allowRule) return { effect: 'allow', ruleId: allowRule.id, policyVersion };
  if (raw) return { effect: 'allow', ruleId: RAW_DIGESTS_RULE, policyVersion };
  if (doc.defaultEffect === 'allow') return { effect: 'allow', ruleId: null, policyVersion };
  return { effect: 'deny', ruleId: DEFAULT_RULE, reason: 'no rule allows this request and the default effect is deny', policyVersion };
}
