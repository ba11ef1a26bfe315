/**
 * The policy document: types, strict parsing with JSON paths in every error, canonical bytes and
 * hash, exact decimal amounts.
 *
 * A policy is data, not code: a list of rules built from fixed predicates (asset, amount bounds,
 * destination lists, UTC time windows, velocity limits, scoping by kind / chain / keyset / wallet)
 * evaluated by policy/evaluate.ts. There is no expression language (docs/policy.md says why).
 *
 * Amounts are bigint in the asset's smallest unit. In authored JSON they are decimal strings in
 * the asset's units ("1.5" ETH); the canonical form (what admins sign and what is hashed) carries
 * `"amountUnits": "smallest"` and writes every amount as an integer string in smallest units, so
 * "1.5" and "1.50" hash the same and nothing depends on decimal formatting.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { checkAddress } from './address.js';
import { canonicalJson, hexToBytes, toHex, utf8 } from './canonical.js';

export class PolicyError extends Error {
  constructor(
    message: string,
    readonly path?: string,
  ) {
    super(message);
    this.name = 'PolicyError';
  }
}

/** What a request does, as decoded by policy/intent.ts. */
export type IntentKind = 'native-transfer' | 'erc20-transfer' | 'erc20-transfer-from' | 'erc20-approve' | 'raw-digest';
export const INTENT_KINDS: readonly IntentKind[] = ['native-transfer', 'erc20-transfer', 'erc20-transfer-from', 'erc20-approve', 'raw-digest'];
/** Kinds a rule applies to when it names none: every transaction kind, never raw digests. */
export const TRANSACTION_KINDS: readonly IntentKind[] = ['native-transfer', 'erc20-transfer', 'erc20-transfer-from', 'erc20-approve'];

export interface AssetSpec {
  symbol: string;
  decimals: number;
  /** empty = any chain */
  chainIds: bigint[];
  kind: 'native' | 'erc20';
  /** lowercase 0x address for erc20 */
  contract?: string;
}

export interface ApproverSpec {
  /** The approver's principal name; the same namespace as request initiators (docs/policy.md). */
  name: string;
  /** Ed25519, 32 bytes */
  publicKey: Uint8Array;
  roles: string[];
}

export interface ApprovalRequirement {
  count: number;
  role: string;
}

/**
 * Operator lifecycle commands a policy can put under an approval quorum (docs/policy.md, "Operator
 * quorum"). A closed list: a typo in a policy must be an error, not a command left ungated.
 */
export type OperationKind = 'keyset.refresh' | 'keyset.reshare' | 'keyset.rerun_setup' | 'keyset.export_recovery' | 'node.repair' | 'vault.rotate';
export const OPERATION_KINDS: readonly OperationKind[] = ['keyset.refresh', 'keyset.reshare', 'keyset.rerun_setup', 'keyset.export_recovery', 'node.repair', 'vault.rotate'];

/** `{"kinds": [...], "approvals": [{count, role}]}`: running any listed kind needs these approvals. */
export interface OperationRule {
  kinds: OperationKind[];
  approvals: ApprovalRequirement[];
  description?: string;
}

export type RuleEffect = 'deny' | 'require_approvals' | 'allow';
export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';
export const WEEKDAYS: readonly Weekday[] = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']; // index = Date.getUTCDay()

/** A UTC window: on the listed days, from `from` (inclusive) to `to` (exclusive), "HH:MM", `to` may be "24:00". */
export interface TimeWindow {
  days: Weekday[];
  from: string;
  to: string;
}

/** Holds when this request would take the target past the limit: used + amount > maxAmount, or count + 1 > maxCount. */
export interface VelocityLimit {
  scope: 'wallet' | 'keyset';
  windowSeconds: number;
  /** smallest units of the rule's asset (the rule must name one) */
  maxAmount?: bigint;
  maxCount?: number;
}

/**
 * A rule matches when every condition it names holds (AND); a rule naming none matches every
 * request of its kinds. Scoping conditions: kinds, asset, chainIds, keysets, wallets. Triggers:
 * amount, destination, time, velocity.
 */
export interface RuleConditions {
  /** default: every transaction kind (TRANSACTION_KINDS); raw digests only when listed */
  kinds?: IntentKind[];
  /** an asset symbol from the policy, or 'unknown' (transactions on assets the policy does not list) */
  asset?: string;
  chainIds?: bigint[];
  keysets?: string[];
  wallets?: string[];
  /** bounds in smallest units of `asset`; every bound given must hold */
  amount?: { above?: bigint; atLeast?: bigint; below?: bigint; atMost?: bigint };
  /** exactly one: `in` = deny-list style (holds when the destination is listed), `notIn` = allow-list style. Lowercase addresses. */
  destination?: { in?: string[]; notIn?: string[] };
  /** exactly one: holds when now (UTC) is inside any / outside every window */
  time?: { inside?: TimeWindow[]; outside?: TimeWindow[] };
  velocity?: VelocityLimit;
}

export interface Rule {
  id: string;
  description?: string;
  effect: RuleEffect;
  when: RuleConditions;
  /** exactly when effect is 'require_approvals' */
  approvals?: ApprovalRequirement[];
}

export interface PolicyDocument {
  version: number;
  assets: AssetSpec[];
  approvers: ApproverSpec[];
  rules: Rule[];
  /** 'approve' = needs rawDigestApprovals */
  rawDigests: 'allow' | 'deny' | 'approve';
  rawDigestApprovals?: ApprovalRequirement;
  defaultEffect: 'allow' | 'deny';
  approvalTtlSeconds: number;
  /** Approval quorums for operator lifecycle commands; absent = none needs approvals. Each kind in at most one entry. */
  operations?: OperationRule[];
}

// ---------------------------------------------------------------------------------------------
// Amounts

const UINT256_MAX = (1n << 256n) - 1n;

/** Exact decimal string in units -> bigint in smallest units. No sign, exponent, spaces or excess decimals. */
export function parseAmount(s: string, decimals: number): bigint {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 77) throw new PolicyError(`decimals must be an integer 0..77, got ${decimals}`);
  if (typeof s !== 'string') throw new PolicyError(`amount must be a decimal string, got ${typeof s}`);
  if (s.startsWith('-')) throw new PolicyError(`amount ${JSON.stringify(s)} is negative`);
  const m = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/.exec(s);
  if (!m) throw new PolicyError(`amount ${JSON.stringify(s)} is not a plain decimal number (digits, optional "." and digits; no sign, exponent or leading zeros)`);
  const frac = m[2] ?? '';
  if (frac.length > decimals) {
    throw new PolicyError(`amount ${JSON.stringify(s)} has ${frac.length} decimal places; the asset has ${decimals}`);
  }
  return BigInt(m[1]! + frac.padEnd(decimals, '0'));
}

/** bigint smallest units -> shortest exact decimal string in units ("1", "1.5", "0.000000000000000001"). */
export function formatAmount(amount: bigint, decimals: number): string {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 77) throw new PolicyError(`decimals must be an integer 0..77, got ${decimals}`);
  const neg = amount < 0n;
  const digits = (neg ? -amount : amount).toString().padStart(decimals + 1, '0');
  const int = digits.slice(0, digits.length - decimals);
  const frac = digits.slice(digits.length - decimals).replace(/0+$/, '');
  return (neg ? '-' : '') + int + (frac ? '.' + frac : '');
}

// ---------------------------------------------------------------------------------------------
// Parsing helpers: each failure names its JSON path.

function fail(path: string, message: string): never {
  throw new PolicyError(`${path}: ${message}`, path);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function object(v: unknown, path: string, required: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, `must be an object, got ${typeName(v)}`);
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) fail(path, 'must be a plain JSON object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!required.includes(k) && !optional.includes(k)) {
      fail(`${path}.${k}`, `unknown field (allowed: ${[...required, ...optional].join(', ')})`);
    }
  }
  for (const k of required) if (o[k] === undefined) fail(`${path}.${k}`, 'is required');
  return o;
}

function string(v: unknown, path: string, pattern?: RegExp, what?: string): string {
  if (typeof v !== 'string') fail(path, `must be a string, got ${typeName(v)}`);
  if (pattern && !pattern.test(v)) fail(path, `${JSON.stringify(v)} is not ${what ?? `matching ${pattern}`}`);
  return v;
}

function integer(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(path, `must be an integer, got ${typeName(v) === 'number' ? v : typeName(v)}`);
  if (v < min || v > max) fail(path, `${v} is out of range ${min}..${max}`);
  return v;
}

function array(v: unknown, path: string, nonEmpty: boolean): unknown[] {
  if (!Array.isArray(v)) fail(path, `must be an array, got ${typeName(v)}`);
  if (nonEmpty && v.length === 0) fail(path, 'must not be empty');
  return v;
}

function oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
  if (typeof v !== 'string' || !values.includes(v as T)) fail(path, `must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

function uniqueList<T>(items: readonly unknown[], path: string, each: (v: unknown, p: string) => T, key: (t: T) => string = String, keyField = ''): T[] {
  const seen = new Map<string, number>();
  return items.map((v, i) => {
    const t = each(v, `${path}[${i}]`);
    const k = key(t);
    const prev = seen.get(k);
    if (prev !== undefined) fail(`${path}[${i}]${keyField}`, `duplicate of ${path}[${prev}]${keyField} (${JSON.stringify(k)})`);
    seen.set(k, i);
    return t;
  });
}

function chainId(v: unknown, path: string): bigint {
  let n: bigint;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) fail(path, `chain id must be a safe integer or a decimal string, got ${v}`);
    n = BigInt(v);
  } else if (typeof v === 'string' && /^(0|[1-9][0-9]{0,77})$/.test(v)) {
    n = BigInt(v);
  } else {
    fail(path, `chain id must be a positive integer or a decimal string, got ${JSON.stringify(v)}`);
  }
  if (n < 1n || n > UINT256_MAX) fail(path, `chain id ${n} is out of range`);
  return n;
}

function address(v: unknown, path: string): string {
  const r = checkAddress(v);
  if (!r.ok) fail(path, `${JSON.stringify(v)}: ${r.reason}`);
  return r.lower;
}

const SYMBOL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.@:/+-]{0,127}$/;
const ROLE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
const TARGET_ID = /^[^\u0000-\u001f\u007f]{1,128}$/;
const HHMM = /^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$/;
const MAX_WINDOW_SECONDS = 366 * 86400;
const MAX_APPROVAL_TTL = 30 * 86400;

/** Minutes since midnight of a validated "HH:MM". */
export function minutesOf(hhmm: string): number {
  return Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
}

type Units = 'asset' | 'smallest';

interface Ctx {
  units: Units;
  assets: Map<string, AssetSpec>;
  roles: Map<string, number>; // role -> number of approvers holding it
}

function amountIn(v: unknown, path: string, asset: AssetSpec, ctx: Ctx): bigint {
  if (typeof v !== 'string') fail(path, `amount must be a decimal string (exact; not a JSON number), got ${typeName(v)}`);
  let n: bigint;
  try {
    n = parseAmount(v, ctx.units === 'smallest' ? 0 : asset.decimals);
  } catch (e) {
    const msg = (e as Error).message;
    fail(path, ctx.units === 'smallest' ? `${msg} (amounts are in smallest units here: "amountUnits": "smallest")` : msg.replace('the asset has', `${asset.symbol} has`));
  }
  if (n > UINT256_MAX) fail(path, `amount ${v} exceeds 2^256 - 1 smallest units`);
  return n;
}

function requirement(v: unknown, path: string, ctx: Ctx): ApprovalRequirement {
  const o = object(v, path, ['count', 'role']);
  const role = string(o.role, `${path}.role`, ROLE, 'a role name');
  const holders = ctx.roles.get(role);
  if (holders === undefined) fail(`${path}.role`, `unknown role ${JSON.stringify(role)}: no approver holds it`);
  const count = integer(o.count, `${path}.count`, 1, 1000);
  if (count > holders) fail(`${path}.count`, `${count} approvals from role ${JSON.stringify(role)} can never be met: only ${holders} approver(s) hold it`);
  return { count, role };
}

function timeWindow(v: unknown, path: string): TimeWindow {
  const o = object(v, path, ['days', 'from', 'to']);
  const days = uniqueList(array(o.days, `${path}.days`, true), `${path}.days`, (d, p) => oneOf(d, p, ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const));
  const from = string(o.from, `${path}.from`, HHMM, 'a UTC time "HH:MM" (00:00..23:59)');
  if (from === '24:00') fail(`${path}.from`, '"24:00" is only allowed as the end of a window');
  const to = string(o.to, `${path}.to`, HHMM, 'a UTC time "HH:MM" (00:01..24:00)');
  if (minutesOf(to) <= minutesOf(from)) fail(`${path}.to`, `window must end after it starts (${from}..${to}); split windows that cross midnight in two`);
  return { days, from, to };
}

function conditions(v: unknown, path: string, effect: RuleEffect, ctx: Ctx): RuleConditions {
  const o = object(v, path, [], ['kinds', 'asset', 'chainIds', 'keysets', 'wallets', 'amount', 'destination', 'time', 'velocity']);
  const c: RuleConditions = {};
  if (o.kinds !== undefined) c.kinds = uniqueList(array(o.kinds, `${path}.kinds`, true), `${path}.kinds`, (k, p) => oneOf(k, p, INTENT_KINDS));
  let asset: AssetSpec | undefined;
  if (o.asset !== undefined) {
    const sym = string(o.asset, `${path}.asset`);
    if (sym !== 'unknown') {
      asset = ctx.assets.get(sym);
      if (!asset) fail(`${path}.asset`, `unknown asset ${JSON.stringify(sym)} (declare it in $.assets, or use "unknown" for assets the policy does not list)`);
    }
    c.asset = sym;
  }
  if (o.chainIds !== undefined) c.chainIds = uniqueList(array(o.chainIds, `${path}.chainIds`, true), `${path}.chainIds`, chainId);
  if (o.keysets !== undefined) c.keysets = uniqueList(array(o.keysets, `${path}.keysets`, true), `${path}.keysets`, (x, p) => string(x, p, TARGET_ID, 'a keyset id'));
  if (o.wallets !== undefined) c.wallets = uniqueList(array(o.wallets, `${path}.wallets`, true), `${path}.wallets`, (x, p) => string(x, p, TARGET_ID, 'a wallet id'));
  const needAsset = (p: string): AssetSpec => {
    if (!asset) fail(p, `amounts need the rule to name one asset from $.assets in ${path}.asset (units differ between assets)`);
    return asset;
  };
  if (o.amount !== undefined) {
    const p = `${path}.amount`;
    const a = object(o.amount, p, [], ['above', 'atLeast', 'below', 'atMost']);
    const keys = (['above', 'atLeast', 'below', 'atMost'] as const).filter((k) => a[k] !== undefined);
    if (keys.length === 0) fail(p, 'needs at least one of above, atLeast, below, atMost');
    const spec = needAsset(p);
    const amt: NonNullable<RuleConditions['amount']> = {};
    for (const k of keys) amt[k] = amountIn(a[k], `${p}.${k}`, spec, ctx);
    const lows = [amt.above !== undefined ? amt.above + 1n : undefined, amt.atLeast].filter((x): x is bigint => x !== undefined);
    const highs = [amt.below !== undefined ? amt.below - 1n : undefined, amt.atMost].filter((x): x is bigint => x !== undefined);
    if (lows.length && highs.length) {
      const lo = lows.reduce((x, y) => (x > y ? x : y));
      const hi = highs.reduce((x, y) => (x < y ? x : y));
      if (lo > hi) fail(p, 'the bounds exclude every amount; the rule could never match');
    }
    c.amount = amt;
  }
  if (o.destination !== undefined) {
    const p = `${path}.destination`;
    const d = object(o.destination, p, [], ['in', 'notIn']);
    if ((d.in === undefined) === (d.notIn === undefined)) fail(p, 'needs exactly one of "in" (deny-list style) or "notIn" (allow-list style)');
    const key = d.in !== undefined ? 'in' : 'notIn';
    c.destination = { [key]: uniqueList(array(d[key], `${p}.${key}`, true), `${p}.${key}`, address) };
  }
  if (o.time !== undefined) {
    const p = `${path}.time`;
    const t = object(o.time, p, [], ['inside', 'outside']);
    if ((t.inside === undefined) === (t.outside === undefined)) fail(p, 'needs exactly one of "inside" or "outside"');
    const key = t.inside !== undefined ? 'inside' : 'outside';
    c.time = { [key]: array(t[key], `${p}.${key}`, true).map((w, i) => timeWindow(w, `${p}.${key}[${i}]`)) };
  }
  if (o.velocity !== undefined) {
    const p = `${path}.velocity`;
    if (effect === 'allow') fail(p, 'a velocity condition holds when a limit is exceeded; it belongs on a "deny" or "require_approvals" rule, not "allow"');
    const vo = object(o.velocity, p, ['scope', 'windowSeconds'], ['maxAmount', 'maxCount']);
    if (vo.maxAmount === undefined && vo.maxCount === undefined) fail(p, 'needs maxAmount and/or maxCount');
    const vel: VelocityLimit = {
      scope: oneOf(vo.scope, `${p}.scope`, ['wallet', 'keyset'] as const),
      windowSeconds: integer(vo.windowSeconds, `${p}.windowSeconds`, 1, MAX_WINDOW_SECONDS),
    };
    if (vo.maxAmount !== undefined) vel.maxAmount = amountIn(vo.maxAmount, `${p}.maxAmount`, needAsset(`${p}.maxAmount`), ctx);
    if (vo.maxCount !== undefined) vel.maxCount = integer(vo.maxCount, `${p}.maxCount`, 1, Number.MAX_SAFE_INTEGER);
    c.velocity = vel;
  }
  return c;
}

function rule(v: unknown, path: string, ctx: Ctx): Rule {
  const o = object(v, path, ['id', 'effect'], ['description', 'when', 'approvals']);
  const id = string(o.id, `${path}.id`, RULE_ID, 'a rule id (letters, digits, _ . : -; at most 64; not starting with a symbol)');
  const effect = oneOf(o.effect, `${path}.effect`, ['deny', 'require_approvals', 'allow'] as const);
  const r: Rule = { id, effect, when: {} };
  if (o.description !== undefined) {
    r.description = string(o.description, `${path}.description`);
    if (r.description.length > 500) fail(`${path}.description`, 'at most 500 characters');
  }
  r.when = o.when === undefined ? {} : conditions(o.when, `${path}.when`, effect, ctx);
  if (effect === 'require_approvals') {
    if (o.approvals === undefined) fail(`${path}.approvals`, 'is required when effect is "require_approvals"');
    r.approvals = uniqueList(array(o.approvals, `${path}.approvals`, true), `${path}.approvals`, (x, p) => requirement(x, p, ctx), (q) => q.role, '.role');
  } else if (o.approvals !== undefined) {
    fail(`${path}.approvals`, `only allowed when effect is "require_approvals" (this rule's effect is ${JSON.stringify(effect)})`);
  }
  return r;
}

function operationRule(v: unknown, path: string, ctx: Ctx): OperationRule {
  const o = object(v, path, ['kinds', 'approvals'], ['description']);
  const r: OperationRule = {
    kinds: uniqueList(array(o.kinds, `${path}.kinds`, true), `${path}.kinds`, (k, p) => oneOf(k, p, OPERATION_KINDS)),
    approvals: uniqueList(array(o.approvals, `${path}.approvals`, true), `${path}.approvals`, (x, p) => requirement(x, p, ctx), (q) => q.role, '.role'),
  };
  if (o.description !== undefined) {
    r.description = string(o.description, `${path}.description`);
    if (r.description.length > 500) fail(`${path}.description`, 'at most 500 characters');
  }
  return r;
}

/** Each kind in one entry only: two entries for one kind would leave the reader guessing which applies. */
function operationRules(v: unknown, ctx: Ctx): OperationRule[] {
  const rules = array(v, '$.operations', true).map((x, i) => operationRule(x, `$.operations[${i}]`, ctx));
  const seen = new Map<OperationKind, string>();
  rules.forEach((r, i) =>
    r.kinds.forEach((k, j) => {
      const prev = seen.get(k);
      if (prev !== undefined) fail(`$.operations[${i}].kinds[${j}]`, `${JSON.stringify(k)} is already listed in ${prev} (each kind in one entry)`);
      seen.set(k, `$.operations[${i}].kinds[${j}]`);
    }),
  );
  return rules;
}

function asset(v: unknown, path: string): AssetSpec {
  const o = object(v, path, ['symbol', 'decimals', 'kind'], ['chainIds', 'contract']);
  const symbol = string(o.symbol, `${path}.symbol`, SYMBOL, 'an asset symbol (letters, digits, . _ -; at most 32)');
  if (symbol.toLowerCase() === 'unknown') fail(`${path}.symbol`, '"unknown" is reserved for assets the policy does not list');
  const a: AssetSpec = {
    symbol,
    decimals: integer(o.decimals, `${path}.decimals`, 0, 77),
    kind: oneOf(o.kind, `${path}.kind`, ['native', 'erc20'] as const),
    chainIds: o.chainIds === undefined ? [] : uniqueList(array(o.chainIds, `${path}.chainIds`, false), `${path}.chainIds`, chainId),
  };
  if (a.kind === 'erc20') {
    if (o.contract === undefined) fail(`${path}.contract`, 'is required for an erc20 asset');
    a.contract = address(o.contract, `${path}.contract`);
  } else if (o.contract !== undefined) {
    fail(`${path}.contract`, 'only erc20 assets have a contract');
  }
  return a;
}

function overlaps(a: AssetSpec, b: AssetSpec): boolean {
  if (a.kind !== b.kind || a.contract !== b.contract) return false;
  if (a.chainIds.length === 0 || b.chainIds.length === 0) return true;
  return a.chainIds.some((c) => b.chainIds.includes(c));
}

function approver(v: unknown, path: string): ApproverSpec {
  const o = object(v, path, ['name', 'publicKey', 'roles']);
  const name = string(o.name, `${path}.name`, NAME, 'an approver name (letters, digits, _ . @ : / + -; at most 128)');
  const hex = string(o.publicKey, `${path}.publicKey`);
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length % 2) fail(`${path}.publicKey`, 'must be hex');
  if (hex.length !== 64) fail(`${path}.publicKey`, `an Ed25519 public key is 32 bytes (64 hex digits), got ${hex.length / 2} bytes`);
  const publicKey = hexToBytes(hex.toLowerCase());
  try {
    const pt = ed25519.Point.fromBytes(publicKey);
    if (pt.isSmallOrder()) fail(`${path}.publicKey`, 'is a small-order point, not a usable Ed25519 key');
  } catch (e) {
    if (e instanceof PolicyError) throw e;
    fail(`${path}.publicKey`, 'is not a valid Ed25519 point encoding');
  }
  const roles = uniqueList(array(o.roles, `${path}.roles`, true), `${path}.roles`, (r, p) => string(r, p, ROLE, 'a role name (letters, digits, _ . -; at most 64)'));
  return { name, publicKey, roles };
}

/** Parses and validates a policy (authored JSON or the canonical form). Throws PolicyError naming the JSON path. */
export function parsePolicy(json: unknown): PolicyDocument {
  const o = object(json, '$', ['version', 'assets', 'approvers', 'rules', 'rawDigests', 'defaultEffect', 'approvalTtlSeconds'], ['rawDigestApprovals', 'amountUnits', 'operations']);
  const units: Units = o.amountUnits === undefined ? 'asset' : oneOf(o.amountUnits, '$.amountUnits', ['asset', 'smallest'] as const);
  const version = integer(o.version, '$.version', 1, Number.MAX_SAFE_INTEGER);

  const ctx: Ctx = { units, assets: new Map(), roles: new Map() };
  const assetList = array(o.assets, '$.assets', false);
  const assets: AssetSpec[] = [];
  const lowerSymbols = new Map<string, number>();
  assetList.forEach((v, i) => {
    const a = asset(v, `$.assets[${i}]`);
    const prev = lowerSymbols.get(a.symbol.toLowerCase());
    if (prev !== undefined) fail(`$.assets[${i}].symbol`, `duplicate of $.assets[${prev}].symbol (symbols are compared case-insensitively)`);
    const clash = assets.findIndex((b) => overlaps(a, b));
    if (clash >= 0) {
      fail(`$.assets[${i}]`, a.kind === 'native' ? `native asset on a chain already covered by $.assets[${clash}] (chainIds overlap; empty means any chain)` : `contract already declared by $.assets[${clash}] on an overlapping chain`);
    }
    lowerSymbols.set(a.symbol.toLowerCase(), i);
    assets.push(a);
    ctx.assets.set(a.symbol, a);
  });

  const approvers = uniqueList(array(o.approvers, '$.approvers', false), '$.approvers', approver, (a) => a.name, '.name');
  const keys = new Map<string, number>();
  approvers.forEach((a, i) => {
    const k = toHex(a.publicKey);
    const prev = keys.get(k);
    if (prev !== undefined) fail(`$.approvers[${i}].publicKey`, `same key as $.approvers[${prev}]: each approver needs their own key`);
    keys.set(k, i);
    for (const r of a.roles) ctx.roles.set(r, (ctx.roles.get(r) ?? 0) + 1);
  });

  const rules = uniqueList(array(o.rules, '$.rules', false), '$.rules', (v, p) => rule(v, p, ctx), (r) => r.id, '.id');

  const rawDigests = oneOf(o.rawDigests, '$.rawDigests', ['allow', 'deny', 'approve'] as const);
  const doc: PolicyDocument = {
    version,
    assets,
    approvers,
    rules,
    rawDigests,
    defaultEffect: oneOf(o.defaultEffect, '$.defaultEffect', ['allow', 'deny'] as const),
    approvalTtlSeconds: integer(o.approvalTtlSeconds, '$.approvalTtlSeconds', 1, MAX_APPROVAL_TTL),
  };
  if (rawDigests === 'approve') {
    if (o.rawDigestApprovals === undefined) fail('$.rawDigestApprovals', 'is required when rawDigests is "approve"');
    doc.rawDigestApprovals = requirement(o.rawDigestApprovals, '$.rawDigestApprovals', ctx);
  } else if (o.rawDigestApprovals !== undefined) {
    fail('$.rawDigestApprovals', `only allowed when rawDigests is "approve" (it is ${JSON.stringify(rawDigests)})`);
  }
  if (o.operations !== undefined) doc.operations = operationRules(o.operations, ctx);
  return doc;
}

// ---------------------------------------------------------------------------------------------
// Canonical form

function windowJson(w: TimeWindow): unknown {
  return { days: [...w.days], from: w.from, to: w.to };
}

function conditionsJson(c: RuleConditions): Record<string, unknown> {
  const s = (n: bigint | undefined) => (n === undefined ? undefined : n.toString());
  return {
    kinds: c.kinds ? [...c.kinds] : undefined,
    asset: c.asset,
    chainIds: c.chainIds?.map((x) => x.toString()),
    keysets: c.keysets ? [...c.keysets] : undefined,
    wallets: c.wallets ? [...c.wallets] : undefined,
    amount: c.amount ? { above: s(c.amount.above), atLeast: s(c.amount.atLeast), below: s(c.amount.below), atMost: s(c.amount.atMost) } : undefined,
    destination: c.destination ? { in: c.destination.in ? [...c.destination.in] : undefined, notIn: c.destination.notIn ? [...c.destination.notIn] : undefined } : undefined,
    time: c.time ? { inside: c.time.inside?.map(windowJson), outside: c.time.outside?.map(windowJson) } : undefined,
    velocity: c.velocity ? { scope: c.velocity.scope, windowSeconds: c.velocity.windowSeconds, maxAmount: s(c.velocity.maxAmount), maxCount: c.velocity.maxCount } : undefined,
  };
}

/** The canonical JSON value of a document (amounts in smallest units, keys hex). */
export function policyJson(doc: PolicyDocument): Record<string, unknown> {
  const req = (r: ApprovalRequirement) => ({ count: r.count, role: r.role });
  return {
    amountUnits: 'smallest',
    version: doc.version,
    assets: doc.assets.map((a) => ({ symbol: a.symbol, decimals: a.decimals, kind: a.kind, chainIds: a.chainIds.map((c) => c.toString()), contract: a.contract })),
    approvers: doc.approvers.map((a) => ({ name: a.name, publicKey: a.publicKey instanceof Uint8Array ? toHex(a.publicKey) : a.publicKey, roles: [...a.roles] })),
    rules: doc.rules.map((r) => ({ id: r.id, description: r.description, effect: r.effect, when: conditionsJson(r.when ?? {}), approvals: r.approvals?.map(req) })),
    rawDigests: doc.rawDigests,
    rawDigestApprovals: doc.rawDigestApprovals ? req(doc.rawDigestApprovals) : undefined,
    defaultEffect: doc.defaultEffect,
    approvalTtlSeconds: doc.approvalTtlSeconds,
    // Absent stays absent: documents without it keep the canonical bytes (and hash) they always had.
    operations: doc.operations?.map((o) => ({ kinds: [...o.kinds], approvals: o.approvals.map(req), description: o.description })),
  };
}

/**
 * Canonical bytes: UTF-8 canonical JSON (sorted keys, no whitespace) of the normalized document
 * with `"amountUnits": "smallest"`. The document is validated on the way (an invalid document has
 * no canonical bytes), and addresses come out lowercase.
 */
export function canonicalPolicyBytes(doc: PolicyDocument): Uint8Array {
  let normalized: PolicyDocument;
  try {
    normalized = parsePolicy(policyJson(doc));
  } catch (e) {
    if (e instanceof PolicyError) throw e;
    throw new PolicyError(`$: document cannot be encoded: ${(e as Error).message}`, '$');
  }
  return utf8(canonicalJson(policyJson(normalized)));
}

/** SHA-256 of the canonical bytes. */
export function policyHash(doc: PolicyDocument): Uint8Array {
  return sha256(canonicalPolicyBytes(doc));
}

/** Inverse of canonicalPolicyBytes: strict UTF-8 and JSON, parsed, and refused unless the bytes are exactly canonical. */
export function decodePolicyBytes(bytes: Uint8Array): PolicyDocument {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new PolicyError('$: policy bytes are not valid UTF-8', '$');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PolicyError(`$: policy bytes are not JSON: ${(e as Error).message}`, '$');
  }
  const doc = parsePolicy(json);
  const again = canonicalPolicyBytes(doc);
  if (again.length !== bytes.length || again.some((b, i) => b !== bytes[i])) {
    throw new PolicyError('$: policy bytes are valid but not in canonical form (re-encode with canonicalPolicyBytes)', '$');
  }
  return doc;
}
