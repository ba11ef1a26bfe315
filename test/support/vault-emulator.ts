/**
 * VaultEmulator: a HashiCorp Vault HTTP API EMULATOR for tests (DESIGN.md section 7). It is not
 * Vault and does not pretend to be: no Vault or OpenBao server is installable on these machines, so
 * tests run the real client (node-vault) over real HTTP against this server, which follows the
 * documented behaviour of the endpoints below. The real server is configured by deploy/vault/.
 *
 * Endpoints and behaviour followed (API docs under https://developer.hashicorp.com/vault/api-docs):
 *
 * - /system/health (`GET sys/health`: 200 active, 503 sealed, `sealedcode` / `activecode` query
 *   parameters) and /system/seal-status (`GET sys/seal-status`). Sealing is a test knob
 *   (`seal()` / `unseal()`); while sealed every other endpoint answers 503 `{"errors":["Vault is sealed"]}`.
 * - /system/policies (`sys/policies/acl/<name>` PUT/POST, GET, DELETE, LIST; legacy `sys/policy/<name>`
 *   with `rules`). Policies are HCL `path "..." { capabilities = [...] }` blocks (comments allowed)
 *   or the JSON form. Matching follows https://developer.hashicorp.com/vault/docs/concepts/policies:
 *   `*` glob at the end, `+` one-segment wildcard, capabilities of one pattern merged across the
 *   token's policies, `deny` wins, and the single highest-priority matching pattern decides
 *   ("priority matching" rules 1-5). `create` vs `update` follows each endpoint's existence check
 *   (Transit encrypt to a missing key is a `create`; KV v2 data and AppRole roles likewise).
 *   LIST requests carry a trailing `/` (Vault appends it). `sudo` is required on sys/mounts and sys/auth.
 *   The built-in `default` policy is the self-service subset (lookup-self, renew-self, revoke-self).
 * - /auth/approle (`auth/approle/role/<name>` with token_policies, token_ttl, token_max_ttl,
 *   secret_id_ttl, secret_id_num_uses, token_no_default_policy; `role-id` GET/POST;
 *   `secret-id` POST; `secret-id/destroy`; `login` → 400 "invalid role or secret ID").
 * - /auth/token (`lookup-self`, `renew-self` with `increment`, `revoke-self`, `create`,
 *   `revoke` with `token`, `revoke-accessor`). Tokens are `hvs.` service tokens with a TTL and a max TTL on the emulator's
 *   clock; an expired or revoked token gets 403 `{"errors":["permission denied"]}` everywhere.
 *   Renewing an AppRole token grants the role's current token_ttl (or `increment`), capped at the
 *   max TTL with Vault's warning text. Knobs: `revokeAccessor()`, `clock.advance()`.
 * - /secret/transit (`keys/<name>` create/read/delete/LIST, `keys/<name>/rotate`,
 *   `keys/<name>/config` (min_decryption_version / min_encryption_version / deletion_allowed, refusing
 *   a version above latest), `encrypt`, `decrypt`, `rewrap`, `datakey/plaintext|wrapped`, all with
 *   `batch_input`). Crypto is real: aes256-gcm96 = AES-256-GCM with a random 96-bit nonce,
 *   ciphertext `vault:v<N>:` + base64(nonce || ciphertext || tag) as in Vault's keysutil; derived
 *   keys use HKDF-SHA256(key version, salt = empty, info = context) like Vault's `hkdf_sha256`.
 *   Error strings are Vault's ("encryption key not found", "ciphertext or signature version is
 *   disallowed by policy (too old)", "invalid ciphertext: version is too new", "cipher: message
 *   authentication failed", the derived-key "missing 'context'" message...). A batch with any failed
 *   item answers 400 with every item in `batch_results` (unless `partial_failure_response_code`).
 *   Versions below min_decryption_version are archived: not listed by a read, refused by decrypt.
 * - /secret/kv/kv-v2 (`<mount>/data/<path>` write with `options.cas`, read latest or `?version=N`;
 *   `metadata/<path>` read / write (max_versions, cas_required, custom_metadata) / delete / LIST;
 *   `delete`, `undelete`, `destroy`). CAS failures answer 400 "check-and-set parameter did not
 *   match the current version"; deleted versions answer 404 with their metadata, as Vault does.
 * - /system/mounts and /system/auth: `sys/mounts/<path>` enables `transit` or `kv` v2, `sys/auth/<path>`
 *   enables `approle`. A `secret/` KV v2 mount exists from the start, as on a dev server.
 *
 * What it does NOT do: storage, HA, replication, leases other than tokens, response wrapping,
 * namespaces, entities/identity, audit devices, CIDR bindings (accepted, not enforced), token
 * parent/child revocation trees, periodic or batch tokens, policy parameter constraints
 * (`allowed_parameters` etc. are refused rather than ignored), key types other than aes128-gcm96,
 * aes256-gcm96 and chacha20-poly1305, convergent encryption, `trim`, export, backup/restore,
 * `associated_data`, KV v1, KV `patch`, `delete_version_after`. The HTTP `LIST` verb is not
 * accepted by node's HTTP parser: use `GET ...?list=true` (node-vault: `noCustomHTTPVerbs: true`).
 * Error strings were taken from Vault's source and docs but are not byte-for-byte guaranteed for
 * every path; tests should match on the parts documented above.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// ---- clock ---------------------------------------------------------------------------------

/**
 * Manual time for the emulator and (through VaultSealer's `clock` option) for the client under
 * test: `advance()` moves time forward and runs due timers in order, awaiting each.
 */
export class ManualClock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => unknown }>();

  constructor(start = Date.now()) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => unknown, ms: number): number {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimer(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.#timers.size;
  }

  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => unknown }] | undefined;
      for (const entry of this.#timers) if (entry[1].at <= target && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      await next[1].fn();
    }
    this.#now = target;
  }
}

// ---- errors and helpers --------------------------------------------------------------------

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
    readonly data?: unknown,
  ) {
    super(errors.join('; ') || `HTTP ${status}`);
  }
}

/** An item-level failure (Vault's errutil.UserError). */
class UserError extends Error {}

const bad = (msg: string) => new HttpError(400, [msg]);
const DENIED = () => new HttpError(403, ['permission denied']);
const MISSING_CONTEXT =
  "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";
const TOO_OLD = 'ciphertext or signature version is disallowed by policy (too old)';
const SYSTEM_MAX_TTL = 768 * 3600;

type Body = Record<string, unknown>;

interface Reply {
  status: number;
  body?: unknown;
}

function strictBase64(s: unknown): Buffer | undefined {
  if (typeof s !== 'string' || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  return Buffer.from(s, 'base64');
}

/** Seconds from an int or a Go duration string ("1h30m", "45s", "768h"). */
function parseDuration(v: unknown, field: string): number {
  if (v === undefined || v === null || v === '') return 0;
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.floor(v);
  if (typeof v === 'string') {
    if (/^\d+$/.test(v)) return Number(v);
    const re = /(\d+(?:\.\d+)?)(h|m|s|ms)/g;
    let total = 0;
    let consumed = 0;
    for (const m of v.matchAll(re)) {
      consumed += m[0].length;
      const n = Number(m[1]);
      total += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : m[2] === 's' ? n : n / 1000;
    }
    if (consumed === v.length && consumed > 0) return Math.floor(total);
  }
  throw bad(`invalid duration for ${field}: ${JSON.stringify(v)}`);
}

function parseIntField(v: unknown, field: string): number {
  if (v === undefined || v === null || v === '') return 0;
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) throw bad(`invalid value for ${field}: ${JSON.stringify(v)}`);
  return n;
}

function parseBool(v: unknown, fallback: boolean): boolean {
  if (v === undefined || v === null) return fallback;
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw bad(`invalid boolean value ${JSON.stringify(v)}`);
}

function parseList(v: unknown): string[] {
  if (v === undefined || v === null || v === '') return [];
  if (Array.isArray(v)) return v.map(String).map((s) => s.trim()).filter(Boolean);
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
  throw bad('expected a list or a comma-separated string');
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

// ---- policies ------------------------------------------------------------------------------

const CAPABILITIES = new Set(['create', 'read', 'update', 'patch', 'delete', 'list', 'sudo', 'deny', 'subscribe', 'recover']);

interface Rule {
  pattern: string;
  capabilities: Set<string>;
}

function stripComments(text: string): string {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
    } else if (c === '#' || (c === '/' && text[i + 1] === '/')) {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 1;
    } else out += c;
  }
  return out;
}

function checkPattern(pattern: string): void {
  const star = pattern.indexOf('*');
  if (star >= 0 && star !== pattern.length - 1) throw bad(`failed to parse policy: glob "*" must be the last character in path "${pattern}"`);
  for (const seg of pattern.split('/')) {
    if (seg.includes('+') && seg !== '+') throw bad(`failed to parse policy: "+" must be a whole path segment in "${pattern}"`);
  }
}

function makeRule(pattern: string, caps: unknown): Rule {
  if (!Array.isArray(caps)) throw bad(`failed to parse policy: path "${pattern}" needs a capabilities list`);
  const set = new Set<string>();
  for (const c of caps) {
    if (typeof c !== 'string' || !CAPABILITIES.has(c)) throw bad(`failed to parse policy: invalid capability ${JSON.stringify(c)} in path "${pattern}"`);
    set.add(c);
  }
  checkPattern(pattern);
  return { pattern: pattern.replace(/^\//, ''), capabilities: set };
}

export function parsePolicy(text: string): Rule[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let obj: { path?: Record<string, { capabilities?: unknown; [k: string]: unknown }> };
    try {
      obj = JSON.parse(trimmed) as typeof obj;
    } catch (err) {
      throw bad(`failed to parse policy: ${(err as Error).message}`);
    }
    return Object.entries(obj.path ?? {}).map(([p, block]) => {
      const extra = Object.keys(block).filter((k) => k !== 'capabilities');
      if (extra.length > 0) throw bad(`emulator: policy key ${extra[0]} is not emulated (path "${p}")`);
      return makeRule(p, block.capabilities);
    });
  }
  const src = stripComments(text);
  const rules: Rule[] = [];
  const re = /path\s+"((?:[^"\\]|\\.)*)"\s*\{([^{}]*)\}/g;
  let last = 0;
  for (const m of src.matchAll(re)) {
    if (src.slice(last, m.index).trim() !== '') throw bad(`failed to parse policy: unexpected text near ${JSON.stringify(src.slice(last, m.index).trim().slice(0, 40))}`);
    last = m.index! + m[0].length;
    const inner = m[2]!;
    const caps = /^\s*capabilities\s*=\s*\[([^\]]*)\]\s*$/.exec(inner);
    if (!caps) {
      const key = /^\s*([A-Za-z_]+)/.exec(inner)?.[1];
      throw bad(key && key !== 'capabilities' ? `emulator: policy key ${key} is not emulated (path "${m[1]}")` : `failed to parse policy: path "${m[1]}" needs capabilities = [...]`);
    }
    const list = caps[1]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) => {
        const q = /^"([^"]*)"$/.exec(s);
        if (!q) throw bad(`failed to parse policy: capability ${s} must be a quoted string`);
        return q[1]!;
      });
    rules.push(makeRule(m[1]!, list));
  }
  if (src.slice(last).trim() !== '') throw bad(`failed to parse policy: unexpected text near ${JSON.stringify(src.slice(last).trim().slice(0, 40))}`);
  return rules;
}

/** `+` matches exactly one (non-empty) segment; a trailing `*` matches any suffix. */
function patternMatches(pattern: string, p: string): boolean {
  const glob = pattern.endsWith('*');
  const body = glob ? pattern.slice(0, -1) : pattern;
  const re = body
    .split('/')
    .map((seg) => (seg === '+' ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${re}${glob ? '' : '$'}`).test(p);
}

/** Vault's priority matching: true when `a` has LOWER priority than `b`. */
function lowerPriority(a: string, b: string): boolean {
  const firstWild = (s: string) => {
    const i = [s.indexOf('+'), s.indexOf('*')].filter((x) => x >= 0);
    return i.length ? Math.min(...i) : Infinity;
  };
  const fa = firstWild(a);
  const fb = firstWild(b);
  if (fa !== fb) return fa < fb; // 1. wildcard earlier = lower
  const ga = a.endsWith('*');
  const gb = b.endsWith('*');
  if (ga !== gb) return ga; // 2. ends in * = lower
  const pa = a.split('/').filter((s) => s === '+').length;
  const pb = b.split('/').filter((s) => s === '+').length;
  if (pa !== pb) return pa > pb; // 3. more + segments = lower
  if (a.length !== b.length) return a.length < b.length; // 4. shorter = lower
  return a < b; // 5. lexicographically smaller = lower
}

const DEFAULT_POLICY = `
# Subset of Vault's built-in default policy: token self-service.
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
`;

// ---- state ---------------------------------------------------------------------------------

interface Token {
  id: string;
  accessor: string;
  policies: string[];
  issuedAt: number;
  /** null: never expires (root). */
  expiresAt: number | null;
  maxExpiresAt: number | null;
  creationTtl: number;
  renewable: boolean;
  meta: Record<string, string>;
  displayName: string;
  path: string;
  /** AppRole mount and role for AppRole tokens: renewals use the role's current TTLs. */
  role?: { mount: string; name: string };
  revoked: boolean;
}

export interface TokenView {
  accessor: string;
  policies: string[];
  role: string | undefined;
  displayName: string;
  issuedAt: number;
  expiresAt: number | null;
  maxExpiresAt: number | null;
  revoked: boolean;
  expired: boolean;
}

interface SecretId {
  accessor: string;
  createdAt: number;
  expiresAt: number | null;
  usesLeft: number | null;
}

interface Role {
  name: string;
  roleId: string;
  tokenPolicies: string[];
  tokenTtl: number;
  tokenMaxTtl: number;
  tokenNoDefaultPolicy: boolean;
  secretIdTtl: number;
  secretIdNumUses: number;
  secretIdBoundCidrs: string[];
  tokenBoundCidrs: string[];
  secretIds: Map<string, SecretId>;
}

interface KeyVersion {
  key: Buffer;
  createdAt: number;
}

interface TransitKey {
  name: string;
  type: 'aes256-gcm96' | 'aes128-gcm96' | 'chacha20-poly1305';
  derived: boolean;
  exportable: boolean;
  allowPlaintextBackup: boolean;
  deletionAllowed: boolean;
  versions: Map<number, KeyVersion>;
  latest: number;
  minDecryption: number;
  minEncryption: number;
}

interface KvVersion {
  data: Record<string, unknown> | null;
  createdAt: number;
  deletedAt: number | null;
  destroyed: boolean;
}

interface KvEntry {
  versions: Map<number, KvVersion>;
  current: number;
  oldest: number;
  maxVersions: number;
  casRequired: boolean;
  customMetadata: Record<string, string> | null;
  createdAt: number;
  updatedAt: number;
}

type Mount =
  | { type: 'transit'; keys: Map<string, TransitKey> }
  | { type: 'kv'; entries: Map<string, KvEntry>; maxVersions: number; casRequired: boolean };

interface AuthMount {
  type: 'approle';
  roles: Map<string, Role>;
}

export interface RequestLogEntry {
  method: string;
  /** API path without /v1/ and without the query string. */
  path: string;
  status: number;
  /** Whether the body carried batch_input, and how many items. */
  batchItems: number;
  at: number;
}

export interface VaultEmulatorOptions {
  clock?: ManualClock;
  rootToken?: string;
  sealed?: boolean;
  /** Reported by sys/health and sys/seal-status. */
  version?: string;
}

type Op = 'read' | 'list' | 'write' | 'delete';
type Capability = 'read' | 'list' | 'create' | 'update' | 'delete';

interface Ctx {
  op: Op;
  path: string;
  query: URLSearchParams;
  body: Body;
  token: Token | null;
}

// ---- the emulator --------------------------------------------------------------------------

export class VaultEmulator {
  readonly clock: ManualClock;
  readonly rootToken: string;
  readonly version: string;
  readonly requests: RequestLogEntry[] = [];
  readonly #server: http.Server;
  #address = '';
  #sealed: boolean;
  readonly #tokens = new Map<string, Token>();
  readonly #accessors = new Map<string, string>();
  readonly #policies = new Map<string, { text: string; rules: Rule[] }>();
  readonly #mounts = new Map<string, Mount>();
  readonly #auths = new Map<string, AuthMount>();
  readonly #clusterId = randomUUID();

  private constructor(opts: VaultEmulatorOptions) {
    this.clock = opts.clock ?? new ManualClock();
    this.version = opts.version ?? '1.17.0+emulator';
    this.#sealed = opts.sealed ?? false;
    this.rootToken = opts.rootToken ?? `hvs.root-${randomBytes(12).toString('base64url')}`;
    this.#tokens.set(this.rootToken, {
      id: this.rootToken,
      accessor: randomBytes(12).toString('base64url'),
      policies: ['root'],
      issuedAt: this.clock.now(),
      expiresAt: null,
      maxExpiresAt: null,
      creationTtl: 0,
      renewable: false,
      meta: {},
      displayName: 'root',
      path: 'auth/token/root',
      revoked: false,
    });
    this.#policies.set('default', { text: DEFAULT_POLICY, rules: parsePolicy(DEFAULT_POLICY) });
    this.#mounts.set('secret/', { type: 'kv', entries: new Map(), maxVersions: 0, casRequired: false });
    this.#server = http.createServer((req, res) => void this.#serve(req, res));
  }

  /** Starts on 127.0.0.1 on a free port. */
  static async start(opts: VaultEmulatorOptions = {}): Promise<VaultEmulator> {
    const emu = new VaultEmulator(opts);
    await new Promise<void>((resolve, reject) => {
      emu.#server.once('error', reject);
      emu.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = emu.#server.address() as AddressInfo;
    emu.#address = `http://127.0.0.1:${port}`;
    return emu;
  }

  get address(): string {
    return this.#address;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ---- test knobs ----------------------------------------------------------------------------

  seal(): void {
    this.#sealed = true;
  }

  unseal(): void {
    this.#sealed = false;
  }

  get sealed(): boolean {
    return this.#sealed;
  }

  /** Moves the emulator's clock (and every client sharing it) forward. */
  advance(seconds: number): Promise<void> {
    return this.clock.advance(seconds * 1000);
  }

  tokens(): TokenView[] {
    return [...this.#tokens.values()].map((t) => ({
      accessor: t.accessor,
      policies: [...t.policies],
      role: t.role?.name,
      displayName: t.displayName,
      issuedAt: t.issuedAt,
      expiresAt: t.expiresAt,
      maxExpiresAt: t.maxExpiresAt,
      revoked: t.revoked,
      expired: t.expiresAt !== null && this.clock.now() >= t.expiresAt,
    }));
  }

  /** Revokes a token by accessor, as `vault token revoke -accessor` would. */
  revokeAccessor(accessor: string): boolean {
    const id = this.#accessors.get(accessor);
    const t = id === undefined ? undefined : this.#tokens.get(id);
    if (!t) return false;
    t.revoked = true;
    return true;
  }

  /**
   * The raw bytes of a Transit key version: lets a test decrypt a ciphertext independently
   * (AES-GCM, HKDF-SHA256 for derived keys) to check the format, as Vault documents it.
   */
  transitKeyMaterial(name: string, version: number, mount = 'transit'): Buffer {
    const m = this.#mounts.get(`${mount}/`);
    const v = m?.type === 'transit' ? m.keys.get(name)?.versions.get(version) : undefined;
    if (!v) throw new Error(`no transit key ${mount}/${name} version ${version}`);
    return Buffer.from(v.key);
  }

  /** Requests matching `method` and `path` (string = exact API path, or a RegExp). */
  count(method: string, path: string | RegExp): number {
    return this.requests.filter((r) => r.method === method && (typeof path === 'string' ? r.path === path : path.test(r.path))).length;
  }

  // ---- HTTP ----------------------------------------------------------------------------------

  async #serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const method = (req.method ?? 'GET').toUpperCase();
    let apiPath = '';
    let batchItems = 0;
    let reply: Reply;
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of req) {
        size += (c as Buffer).length;
        if (size > 32 * 1024 * 1024) throw new HttpError(413, ['request body too large']);
        chunks.push(c as Buffer);
      }
      if (!url.pathname.startsWith('/v1/')) throw new HttpError(404, []);
      apiPath = decodeURIComponent(url.pathname.slice(4));
      let body: Body = {};
      const raw = Buffer.concat(chunks).toString('utf8');
      if (raw.trim() !== '') {
        try {
          const parsed: unknown = JSON.parse(raw);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('body must be a JSON object');
          body = parsed as Body;
        } catch (err) {
          throw bad(`failed to parse JSON input: ${(err as Error).message}`);
        }
      }
      if (Array.isArray(body['batch_input'])) batchItems = (body['batch_input'] as unknown[]).length;
      const headerToken = req.headers['x-vault-token'];
      const bearer = /^Bearer\s+(.+)$/i.exec(req.headers['authorization'] ?? '')?.[1];
      const tokenId = (Array.isArray(headerToken) ? headerToken[0] : headerToken) ?? bearer ?? '';
      reply = this.#dispatch(method, apiPath, url.searchParams, body, tokenId);
    } catch (err) {
      if (err instanceof HttpError) {
        reply = { status: err.status, body: err.data !== undefined ? err.data : { errors: err.errors } };
      } else {
        reply = { status: 500, body: { errors: [`1 error occurred:\n\t* ${(err as Error).message}\n\n`] } };
      }
    }
    this.requests.push({ method, path: apiPath, status: reply.status, batchItems, at: this.clock.now() });
    if (reply.body === undefined || reply.status === 204) {
      res.writeHead(reply.status === 200 ? 204 : reply.status);
      res.end();
      return;
    }
    const text = JSON.stringify(reply.body);
    res.writeHead(reply.status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  #envelope(data: unknown, extra: Body = {}): Body {
    return {
      request_id: randomUUID(),
      lease_id: '',
      renewable: false,
      lease_duration: 0,
      data,
      wrap_info: null,
      warnings: null,
      auth: null,
      ...extra,
    };
  }

  #ok(data: unknown, extra: Body = {}): Reply {
    return { status: 200, body: this.#envelope(data, extra) };
  }

  #dispatch(method: string, rawPath: string, query: URLSearchParams, body: Body, tokenId: string): Reply {
    let path = rawPath.replace(/^\/+/, '');
    let op: Op;
    if (method === 'GET' && (query.get('list') === 'true' || query.get('list') === '1')) op = 'list';
    else if (method === 'GET' || method === 'HEAD') op = 'read';
    else if (method === 'POST' || method === 'PUT') op = 'write';
    else if (method === 'DELETE') op = 'delete';
    else if (method === 'LIST') op = 'list';
    else throw new HttpError(405, ['unsupported operation']);
    if (op === 'list' && !path.endsWith('/')) path += '/';

    // Unauthenticated endpoints.
    if (path === 'sys/health') return this.#health(query);
    if (path === 'sys/seal-status') return { status: 200, body: this.#sealStatus() };
    if (this.#sealed) throw new HttpError(503, ['Vault is sealed']);
    const loginMount = /^auth\/(.+)\/login$/.exec(path);
    if (loginMount && op === 'write' && this.#auths.has(`${loginMount[1]}/`)) return this.#approleLogin(this.#auths.get(`${loginMount[1]}/`)!, loginMount[1]!, body);

    const token = this.#validToken(tokenId);
    if (!token) throw DENIED();
    const ctx: Ctx = { op, path, query, body, token };
    const cap = this.#capabilityFor(ctx);
    if (!this.#allowed(token, path, cap, this.#needsSudo(path, op))) throw DENIED();
    return this.#route(ctx);
  }

  #health(query: URLSearchParams): Reply {
    const body = {
      initialized: true,
      sealed: this.#sealed,
      standby: false,
      performance_standby: false,
      replication_performance_mode: 'disabled',
      replication_dr_mode: 'disabled',
      server_time_utc: Math.floor(this.clock.now() / 1000),
      version: this.version,
      cluster_name: 'vault-emulator',
      cluster_id: this.#clusterId,
    };
    const code = (name: string, fallback: number) => {
      const v = query.get(name);
      return v !== null && /^\d{3}$/.test(v) ? Number(v) : fallback;
    };
    return { status: this.#sealed ? code('sealedcode', 503) : code('activecode', 200), body };
  }

  #sealStatus(): Body {
    return {
      type: 'shamir',
      initialized: true,
      sealed: this.#sealed,
      t: 1,
      n: 1,
      progress: 0,
      nonce: '',
      version: this.version,
      build_date: '2024-01-01T00:00:00Z',
      migration: false,
      recovery_seal: false,
      storage_type: 'inmem',
      ...(this.#sealed ? {} : { cluster_name: 'vault-emulator', cluster_id: this.#clusterId }),
    };
  }

  // ---- tokens and ACL ------------------------------------------------------------------------

  #validToken(id: string): Token | null {
    if (!id) return null;
    const t = this.#tokens.get(id);
    if (!t || t.revoked) return null;
    if (t.expiresAt !== null && this.clock.now() >= t.expiresAt) return null;
    return t;
  }

  #needsSudo(path: string, op: Op): boolean {
    return op !== 'read' && op !== 'list' && /^sys\/(mounts|auth)\//.test(path);
  }

  #allowed(token: Token, path: string, cap: Capability, sudo: boolean): boolean {
    if (token.policies.includes('root')) return true;
    const merged = new Map<string, Set<string>>();
    for (const name of token.policies) {
      for (const rule of this.#policies.get(name)?.rules ?? []) {
        const set = merged.get(rule.pattern) ?? new Set<string>();
        for (const c of rule.capabilities) set.add(c);
        merged.set(rule.pattern, set);
      }
    }
    let best: string | undefined;
    for (const pattern of merged.keys()) {
      if (!patternMatches(pattern, path)) continue;
      if (best === undefined || lowerPriority(best, pattern)) best = pattern;
    }
    if (best === undefined) return false;
    const caps = merged.get(best)!;
    if (caps.has('deny')) return false;
    return caps.has(cap) && (!sudo || caps.has('sudo'));
  }

  #capabilityFor(ctx: Ctx): Capability {
    if (ctx.op === 'read') return 'read';
    if (ctx.op === 'list') return 'list';
    if (ctx.op === 'delete') return 'delete';
    // Existence checks: create when the target does not exist yet.
    const m = this.#mountFor(ctx.path);
    if (m) {
      const rest = ctx.path.slice(m.prefix.length);
      if (m.mount.type === 'transit') {
        const enc = /^encrypt\/([^/]+)$/.exec(rest);
        if (enc) return m.mount.keys.has(enc[1]!) ? 'update' : 'create';
      } else {
        const kv = /^(data|metadata)\/(.+)$/.exec(rest);
        if (kv) return m.mount.entries.has(kv[2]!) ? 'update' : 'create';
      }
    }
    const role = /^auth\/(.+)\/role\/([^/]+)$/.exec(ctx.path);
    if (role) return this.#auths.get(`${role[1]}/`)?.roles.has(role[2]!.toLowerCase()) ? 'update' : 'create';
    return 'update';
  }

  #issueToken(p: {
    policies: string[];
    ttl: number;
    maxTtl: number;
    renewable: boolean;
    meta: Record<string, string>;
    displayName: string;
    path: string;
    role?: { mount: string; name: string };
  }): Token {
    const now = this.clock.now();
    const id = `hvs.${randomBytes(18).toString('base64url')}`;
    const accessor = randomBytes(18).toString('base64url');
    const max = Math.min(p.maxTtl > 0 ? p.maxTtl : SYSTEM_MAX_TTL, SYSTEM_MAX_TTL);
    const ttl = Math.min(p.ttl > 0 ? p.ttl : SYSTEM_MAX_TTL, max);
    const t: Token = {
      id,
      accessor,
      policies: [...new Set(p.policies)].sort(),
      issuedAt: now,
      expiresAt: now + ttl * 1000,
      maxExpiresAt: now + max * 1000,
      creationTtl: ttl,
      renewable: p.renewable,
      meta: p.meta,
      displayName: p.displayName,
      path: p.path,
      ...(p.role ? { role: p.role } : {}),
      revoked: false,
    };
    this.#tokens.set(id, t);
    this.#accessors.set(accessor, id);
    return t;
  }

  #authBlock(t: Token, ttl: number): Body {
    return {
      client_token: t.id,
      accessor: t.accessor,
      policies: t.policies,
      token_policies: t.policies,
      metadata: Object.keys(t.meta).length ? t.meta : null,
      lease_duration: ttl,
      renewable: t.renewable,
      entity_id: '',
      token_type: 'service',
      orphan: true,
      mfa_requirement: null,
      num_uses: 0,
    };
  }

  #tokenRoutes(ctx: Ctx): Reply | undefined {
    const t = ctx.token!;
    const now = this.clock.now();
    switch (ctx.path) {
      case 'auth/token/lookup-self': {
        if (ctx.op !== 'read' && ctx.op !== 'write') break;
        return this.#ok({
          accessor: t.accessor,
          creation_time: Math.floor(t.issuedAt / 1000),
          creation_ttl: t.creationTtl,
          display_name: t.displayName,
          entity_id: '',
          expire_time: t.expiresAt === null ? null : iso(t.expiresAt),
          explicit_max_ttl: 0,
          id: t.id,
          issue_time: iso(t.issuedAt),
          meta: Object.keys(t.meta).length ? t.meta : null,
          num_uses: 0,
          orphan: true,
          path: t.path,
          policies: t.policies,
          renewable: t.renewable,
          ttl: t.expiresAt === null ? 0 : Math.max(0, Math.floor((t.expiresAt - now) / 1000)),
          type: 'service',
        });
      }
      case 'auth/token/renew-self': {
        if (ctx.op !== 'write') break;
        if (!t.renewable || t.expiresAt === null) throw bad('lease is not renewable');
        const increment = parseDuration(ctx.body['increment'], 'increment');
        let base = increment;
        if (base <= 0) {
          const role = t.role ? this.#auths.get(`${t.role.mount}/`)?.roles.get(t.role.name) : undefined;
          base = role ? role.tokenTtl || SYSTEM_MAX_TTL : t.creationTtl;
        }
        const remainingMax = Math.max(0, Math.floor((t.maxExpiresAt! - now) / 1000));
        const ttl = Math.min(base, remainingMax);
        const warnings = ttl < base ? [`TTL of "${base}s" exceeded the effective max_ttl of "${remainingMax}s"; TTL value is capped accordingly`] : null;
        t.expiresAt = now + ttl * 1000;
        return this.#ok(null, { auth: this.#authBlock(t, ttl), warnings });
      }
      case 'auth/token/revoke-self': {
        if (ctx.op !== 'write') break;
        t.revoked = true;
        return { status: 204 };
      }
      case 'auth/token/create': {
        if (ctx.op !== 'write') break;
        const policies = parseList(ctx.body['policies']);
        const requested = policies.length ? policies : t.policies.filter((p) => p !== 'root');
        if (!t.policies.includes('root') && requested.some((p) => !t.policies.includes(p))) throw bad('child policies must be subset of parent');
        const noDefault = parseBool(ctx.body['no_default_policy'], false);
        const child = this.#issueToken({
          policies: noDefault || requested.includes('root') ? requested : [...requested, 'default'],
          ttl: parseDuration(ctx.body['ttl'], 'ttl'),
          maxTtl: parseDuration(ctx.body['explicit_max_ttl'], 'explicit_max_ttl'),
          renewable: parseBool(ctx.body['renewable'], true),
          meta: (ctx.body['meta'] as Record<string, string>) ?? {},
          displayName: `token${ctx.body['display_name'] ? `-${String(ctx.body['display_name'])}` : ''}`,
          path: 'auth/token/create',
        });
        return this.#ok(null, { auth: this.#authBlock(child, child.creationTtl) });
      }
      case 'auth/token/revoke': {
        // Vault answers 204 whether or not the token existed ("Revoked token (if it existed)").
        if (ctx.op !== 'write') break;
        const id = ctx.body['token'];
        if (typeof id !== 'string' || id === '') throw bad('missing token ID');
        const target = this.#tokens.get(id);
        if (target) target.revoked = true;
        return { status: 204 };
      }
      case 'auth/token/revoke-accessor': {
        if (ctx.op !== 'write') break;
        if (!this.revokeAccessor(String(ctx.body['accessor'] ?? ''))) throw bad('invalid accessor');
        return { status: 204 };
      }
      default:
        return undefined;
    }
    throw new HttpError(405, ['unsupported operation']);
  }

  // ---- routing -------------------------------------------------------------------------------

  #mountFor(path: string): { prefix: string; mount: Mount } | undefined {
    let best: { prefix: string; mount: Mount } | undefined;
    for (const [prefix, mount] of this.#mounts) {
      if (path.startsWith(prefix) && (!best || prefix.length > best.prefix.length)) best = { prefix, mount };
    }
    return best;
  }

  #route(ctx: Ctx): Reply {
    const p = ctx.path;
    if (p.startsWith('auth/token/')) {
      const r = this.#tokenRoutes(ctx);
      if (r) return r;
    }
    if (p.startsWith('sys/')) return this.#sys(ctx);
    const auth = /^auth\/(.+?)\/(role\/.*|role\/?)$/.exec(p);
    if (auth && this.#auths.has(`${auth[1]}/`)) return this.#approleAdmin(this.#auths.get(`${auth[1]}/`)!, auth[1]!, auth[2]!, ctx);
    const m = this.#mountFor(p);
    if (m) return m.mount.type === 'transit' ? this.#transit(m.mount, p.slice(m.prefix.length), ctx) : this.#kv(m.mount, p.slice(m.prefix.length), ctx);
    throw new HttpError(404, [`no handler for route "${p}". route entry not found.`]);
  }

  // ---- sys -----------------------------------------------------------------------------------

  #sys(ctx: Ctx): Reply {
    const { op, body } = ctx;
    const p = ctx.path.slice('sys/'.length);
    let m: RegExpExecArray | null;
    if ((m = /^policies\/acl\/([^/]+)$/.exec(p)) || (m = /^policy\/([^/]+)$/.exec(p))) {
      const name = m[1]!.toLowerCase();
      const legacy = p.startsWith('policy/');
      if (op === 'read') {
        const pol = this.#policies.get(name);
        if (!pol) throw new HttpError(404, []);
        return this.#ok(legacy ? { name, rules: pol.text } : { name, policy: pol.text });
      }
      if (op === 'write') {
        if (name === 'root') throw bad('cannot update "root" policy');
        const text = body[legacy ? 'rules' : 'policy'] ?? body['policy'] ?? body['rules'];
        if (typeof text !== 'string' || !text.trim()) throw bad("'policy' parameter not supplied or empty");
        this.#policies.set(name, { text, rules: parsePolicy(text) });
        return { status: 204 };
      }
      if (op === 'delete') {
        if (name === 'root' || name === 'default') throw bad(`cannot delete "${name}" policy`);
        this.#policies.delete(name);
        return { status: 204 };
      }
    }
    if ((p === 'policies/acl/' || p === 'policy/' || p === 'policy') && (op === 'list' || op === 'read')) {
      const keys = [...this.#policies.keys(), 'root'].sort();
      return this.#ok({ keys, policies: keys });
    }
    if ((m = /^mounts\/(.+?)\/?$/.exec(p))) {
      const prefix = `${m[1]}/`;
      if (op === 'write') {
        if (this.#mounts.has(prefix) || [...this.#mounts.keys()].some((k) => k.startsWith(prefix) || prefix.startsWith(k))) {
          throw bad(`path is already in use at ${prefix}`);
        }
        const type = String(body['type'] ?? '');
        const version = String((body['options'] as Body | undefined)?.['version'] ?? (type === 'kv-v2' ? '2' : '1'));
        if (type === 'transit') this.#mounts.set(prefix, { type: 'transit', keys: new Map() });
        else if ((type === 'kv' || type === 'kv-v2') && version === '2') this.#mounts.set(prefix, { type: 'kv', entries: new Map(), maxVersions: 0, casRequired: false });
        else throw bad(`emulator: secrets engine ${type}${type === 'kv' ? ` version ${version}` : ''} is not emulated`);
        return { status: 204 };
      }
      if (op === 'delete') {
        this.#mounts.delete(prefix);
        return { status: 204 };
      }
    }
    if (p === 'mounts' && op === 'read') {
      const data: Body = {};
      for (const [k, v] of this.#mounts) data[k] = { type: v.type, options: v.type === 'kv' ? { version: '2' } : null };
      return this.#ok(data, data);
    }
    if ((m = /^auth\/(.+?)\/?$/.exec(p))) {
      const prefix = `${m[1]}/`;
      if (op === 'write') {
        if (this.#auths.has(prefix)) throw bad(`path is already in use at auth/${prefix}`);
        if (body['type'] !== 'approle') throw bad(`emulator: auth method ${String(body['type'])} is not emulated`);
        this.#auths.set(prefix, { type: 'approle', roles: new Map() });
        return { status: 204 };
      }
      if (op === 'delete') {
        this.#auths.delete(prefix);
        return { status: 204 };
      }
    }
    if (p === 'auth' && op === 'read') {
      const data: Body = { 'token/': { type: 'token' } };
      for (const [k, v] of this.#auths) data[k] = { type: v.type };
      return this.#ok(data, data);
    }
    throw new HttpError(404, [`no handler for route "sys/${p}". route entry not found.`]);
  }

  // ---- AppRole -------------------------------------------------------------------------------

  #approleAdmin(mount: AuthMount, mountName: string, rest: string, ctx: Ctx): Reply {
    const { op, body } = ctx;
    if (rest === 'role/' && op === 'list') {
      if (mount.roles.size === 0) throw new HttpError(404, []);
      return this.#ok({ keys: [...mount.roles.keys()].sort() });
    }
    const m = /^role\/([^/]+)(?:\/(role-id|secret-id|secret-id\/destroy))?$/.exec(rest);
    if (!m) throw new HttpError(404, [`no handler for route "auth/${mountName}/${rest}". route entry not found.`]);
    const name = m[1]!.toLowerCase();
    const sub = m[2];
    const role = mount.roles.get(name);
    if (sub === undefined) {
      if (op === 'write') {
        const r: Role = role ?? {
          name,
          roleId: randomUUID(),
          tokenPolicies: [],
          tokenTtl: 0,
          tokenMaxTtl: 0,
          tokenNoDefaultPolicy: false,
          secretIdTtl: 0,
          secretIdNumUses: 0,
          secretIdBoundCidrs: [],
          tokenBoundCidrs: [],
          secretIds: new Map(),
        };
        if ('token_policies' in body || 'policies' in body) r.tokenPolicies = parseList(body['token_policies'] ?? body['policies']).map((s) => s.toLowerCase());
        if ('token_ttl' in body) r.tokenTtl = parseDuration(body['token_ttl'], 'token_ttl');
        if ('token_max_ttl' in body) r.tokenMaxTtl = parseDuration(body['token_max_ttl'], 'token_max_ttl');
        if ('token_no_default_policy' in body) r.tokenNoDefaultPolicy = parseBool(body['token_no_default_policy'], false);
        if ('secret_id_ttl' in body) r.secretIdTtl = parseDuration(body['secret_id_ttl'], 'secret_id_ttl');
        if ('secret_id_num_uses' in body) r.secretIdNumUses = parseIntField(body['secret_id_num_uses'], 'secret_id_num_uses');
        if ('secret_id_bound_cidrs' in body) r.secretIdBoundCidrs = parseList(body['secret_id_bound_cidrs']);
        if ('token_bound_cidrs' in body) r.tokenBoundCidrs = parseList(body['token_bound_cidrs']);
        if ('bind_secret_id' in body && !parseBool(body['bind_secret_id'], true)) throw bad('emulator: bind_secret_id=false is not emulated');
        if (r.tokenMaxTtl > 0 && r.tokenTtl > r.tokenMaxTtl) throw bad('token_ttl should not be greater than token_max_ttl');
        if (r.secretIdNumUses < 0) throw bad('secret_id_num_uses cannot be negative');
        mount.roles.set(name, r);
        return { status: 204 };
      }
      if (!role) throw new HttpError(404, []);
      if (op === 'read') {
        return this.#ok({
          bind_secret_id: true,
          secret_id_bound_cidrs: role.secretIdBoundCidrs,
          secret_id_num_uses: role.secretIdNumUses,
          secret_id_ttl: role.secretIdTtl,
          token_bound_cidrs: role.tokenBoundCidrs,
          token_max_ttl: role.tokenMaxTtl,
          token_no_default_policy: role.tokenNoDefaultPolicy,
          token_num_uses: 0,
          token_period: 0,
          token_policies: role.tokenPolicies,
          policies: role.tokenPolicies,
          token_ttl: role.tokenTtl,
          token_type: 'default',
        });
      }
      if (op === 'delete') {
        mount.roles.delete(name);
        return { status: 204 };
      }
    }
    if (!role) throw bad(`role "${name}" does not exist`);
    if (sub === 'role-id') {
      if (op === 'read') return this.#ok({ role_id: role.roleId });
      if (op === 'write') {
        const id = body['role_id'];
        if (typeof id !== 'string' || !id) throw bad('missing role_id');
        role.roleId = id;
        return { status: 204 };
      }
    }
    if (sub === 'secret-id' && op === 'write') {
      const now = this.clock.now();
      const ttl = 'ttl' in body ? parseDuration(body['ttl'], 'ttl') : role.secretIdTtl;
      const uses = 'num_uses' in body ? parseIntField(body['num_uses'], 'num_uses') : role.secretIdNumUses;
      const secretId = randomUUID();
      const accessor = randomUUID();
      role.secretIds.set(secretId, { accessor, createdAt: now, expiresAt: ttl > 0 ? now + ttl * 1000 : null, usesLeft: uses > 0 ? uses : null });
      return this.#ok({ secret_id: secretId, secret_id_accessor: accessor, secret_id_ttl: ttl, secret_id_num_uses: uses });
    }
    if (sub === 'secret-id/destroy' && (op === 'write' || op === 'delete')) {
      // Tokens already issued with it stay valid, as in Vault: revoke them separately.
      if (typeof body['secret_id'] !== 'string' || body['secret_id'] === '') throw bad('missing secret_id');
      role.secretIds.delete(body['secret_id']);
      return { status: 204 };
    }
    throw new HttpError(405, ['unsupported operation']);
  }

  #approleLogin(mount: AuthMount, mountName: string, body: Body): Reply {
    const roleId = body['role_id'];
    const secretId = body['secret_id'];
    if (typeof roleId !== 'string' || !roleId) throw bad('missing role_id');
    const role = [...mount.roles.values()].find((r) => r.roleId === roleId);
    if (!role) throw bad('invalid role or secret ID');
    if (typeof secretId !== 'string' || !secretId) throw bad('missing secret_id');
    const entry = role.secretIds.get(secretId);
    const now = this.clock.now();
    if (!entry || (entry.expiresAt !== null && now >= entry.expiresAt)) {
      if (entry) role.secretIds.delete(secretId);
      throw bad('invalid role or secret ID');
    }
    if (entry.usesLeft !== null) {
      entry.usesLeft--;
      if (entry.usesLeft <= 0) role.secretIds.delete(secretId);
    }
    const t = this.#issueToken({
      policies: role.tokenNoDefaultPolicy ? role.tokenPolicies : [...role.tokenPolicies, 'default'],
      ttl: role.tokenTtl,
      maxTtl: role.tokenMaxTtl,
      renewable: true,
      meta: { role_name: role.name },
      displayName: `approle`,
      path: `auth/${mountName}/login`,
      role: { mount: mountName, name: role.name },
    });
    return this.#ok(null, { auth: this.#authBlock(t, t.creationTtl) });
  }

  // ---- Transit -------------------------------------------------------------------------------

  #keyInfo(k: TransitKey): Body {
    const keys: Record<string, number> = {};
    for (const [v, kv] of k.versions) if (v >= k.minDecryption) keys[String(v)] = Math.floor(kv.createdAt / 1000);
    return {
      name: k.name,
      type: k.type,
      derived: k.derived,
      ...(k.derived ? { kdf: 'hkdf_sha256' } : {}),
      exportable: k.exportable,
      allow_plaintext_backup: k.allowPlaintextBackup,
      deletion_allowed: k.deletionAllowed,
      keys,
      latest_version: k.latest,
      min_available_version: 0,
      min_decryption_version: k.minDecryption,
      min_encryption_version: k.minEncryption,
      supports_encryption: true,
      supports_decryption: true,
      supports_derivation: true,
      supports_signing: false,
      imported_key: false,
      auto_rotate_period: 0,
      convergent_encryption: false,
    };
  }

  #newKey(name: string, body: Body): TransitKey {
    const type = String(body['type'] ?? 'aes256-gcm96');
    if (type !== 'aes256-gcm96' && type !== 'aes128-gcm96' && type !== 'chacha20-poly1305') throw bad(`emulator: key type ${type} is not emulated`);
    if (parseBool(body['convergent_encryption'], false)) throw bad('emulator: convergent encryption is not emulated');
    const k: TransitKey = {
      name,
      type,
      derived: parseBool(body['derived'], false),
      exportable: parseBool(body['exportable'], false),
      allowPlaintextBackup: parseBool(body['allow_plaintext_backup'], false),
      deletionAllowed: false,
      versions: new Map(),
      latest: 0,
      minDecryption: 1,
      minEncryption: 0,
    };
    this.#rotate(k);
    return k;
  }

  #rotate(k: TransitKey): void {
    k.latest++;
    k.versions.set(k.latest, { key: randomBytes(k.type === 'aes128-gcm96' ? 16 : 32), createdAt: this.clock.now() });
  }

  #encKey(k: TransitKey, version: number, context: Buffer | undefined): Buffer {
    const entry = k.versions.get(version);
    if (!entry) throw new UserError('no such key version');
    if (!k.derived) return entry.key;
    if (!context || context.length === 0) throw new UserError(MISSING_CONTEXT);
    return Buffer.from(hkdfSync('sha256', entry.key, Buffer.alloc(0), context, entry.key.length));
  }

  #cipher(k: TransitKey): 'aes-256-gcm' | 'aes-128-gcm' | 'chacha20-poly1305' {
    return k.type === 'aes256-gcm96' ? 'aes-256-gcm' : k.type === 'aes128-gcm96' ? 'aes-128-gcm' : 'chacha20-poly1305';
  }

  #encryptRaw(k: TransitKey, version: number, context: Buffer | undefined, plaintext: Buffer): string {
    const key = this.#encKey(k, version, context);
    const nonce = randomBytes(12);
    const c = createCipheriv(this.#cipher(k) as 'aes-256-gcm', key, nonce, { authTagLength: 16 });
    const ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
    return `vault:v${version}:${Buffer.concat([nonce, ct]).toString('base64')}`;
  }

  #decryptRaw(k: TransitKey, value: string, context: Buffer | undefined): { plaintext: Buffer; version: number } {
    if (!value.startsWith('vault:v')) throw new UserError('invalid ciphertext: no prefix');
    const rest = value.slice('vault:v'.length);
    const colon = rest.indexOf(':');
    if (colon < 0) throw new UserError('invalid ciphertext: wrong number of fields');
    const verText = rest.slice(0, colon);
    if (!/^-?\d+$/.test(verText)) throw new UserError('invalid ciphertext: version number could not be decoded');
    let version = Number(verText);
    if (version === 0) version = 1;
    if (version > k.latest) throw new UserError('invalid ciphertext: version is too new');
    if (k.minDecryption > 0 && version < k.minDecryption) throw new UserError(TOO_OLD);
    const decoded = strictBase64(rest.slice(colon + 1));
    if (!decoded) throw new UserError('invalid ciphertext: could not decode base64');
    const key = this.#encKey(k, version, context);
    if (decoded.length < 12 + 16) throw new UserError('invalid ciphertext length');
    const d = createDecipheriv(this.#cipher(k) as 'aes-256-gcm', key, decoded.subarray(0, 12), { authTagLength: 16 });
    d.setAuthTag(decoded.subarray(decoded.length - 16));
    try {
      return { plaintext: Buffer.concat([d.update(decoded.subarray(12, decoded.length - 16)), d.final()]), version };
    } catch {
      throw new UserError('cipher: message authentication failed');
    }
  }

  #encryptVersion(k: TransitKey, requested: unknown): number {
    const v = parseIntField(requested, 'key_version');
    if (v === 0) return k.latest;
    if (v < 0) throw new UserError('requested version for encryption is negative');
    if (v > k.latest) throw new UserError('requested version for encryption is higher than the latest key version');
    if (k.minEncryption > 0 && v < k.minEncryption) throw new UserError('requested version for encryption is less than the minimum encryption key version');
    return v;
  }

  /** Runs single or batch_input items through `fn`, with Vault's status rules. */
  #batch(body: Body, fields: string[], fn: (item: Body) => Body): Reply {
    const batchRaw = body['batch_input'];
    if (batchRaw === undefined) {
      const item: Body = {};
      for (const f of [...fields, 'context', 'key_version', 'nonce']) if (f in body) item[f] = body[f];
      try {
        return this.#ok(fn(item));
      } catch (err) {
        if (err instanceof UserError) throw bad(err.message);
        throw err;
      }
    }
    if (!Array.isArray(batchRaw)) throw bad('failed to parse batch input: expected a list');
    if (batchRaw.length === 0) throw bad('missing batch input to process');
    const items = batchRaw as Body[];
    const contextSet = typeof items[0]?.['context'] === 'string' && items[0]['context'] !== '';
    for (const it of items) {
      const has = typeof it?.['context'] === 'string' && it['context'] !== '';
      if (has !== contextSet) throw bad('context should be set either in all the request blocks or in none');
    }
    let failures = 0;
    const results = items.map((it) => {
      const reference = it?.['reference'];
      try {
        const r = fn(it ?? {});
        return reference !== undefined ? { ...r, reference } : r;
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        failures++;
        return reference !== undefined ? { error: err.message, reference } : { error: err.message };
      }
    });
    const partial = body['partial_failure_response_code'];
    let status = 200;
    if (failures === items.length) status = 400;
    else if (failures > 0) status = typeof partial === 'number' ? partial : 400;
    return { status, body: this.#envelope({ batch_results: results }) };
  }

  #context(item: Body): Buffer | undefined {
    const c = item['context'];
    if (c === undefined || c === '') return undefined;
    const buf = strictBase64(c);
    if (!buf) throw new UserError('failed to base64-decode context');
    return buf;
  }

  #transit(mount: Extract<Mount, { type: 'transit' }>, rest: string, ctx: Ctx): Reply {
    const { op, body } = ctx;
    if (rest === 'keys/' && op === 'list') {
      if (mount.keys.size === 0) throw new HttpError(404, []);
      return this.#ok({ keys: [...mount.keys.keys()].sort() });
    }
    let m: RegExpExecArray | null;
    if ((m = /^keys\/([^/]+)$/.exec(rest))) {
      const name = m[1]!;
      const k = mount.keys.get(name);
      if (op === 'write') {
        if (k) return this.#ok(this.#keyInfo(k));
        const nk = this.#newKey(name, body);
        mount.keys.set(name, nk);
        return this.#ok(this.#keyInfo(nk));
      }
      if (op === 'read') {
        if (!k) throw new HttpError(404, []);
        return this.#ok(this.#keyInfo(k));
      }
      if (op === 'delete') {
        if (!k) throw bad(`error deleting policy ${name}: could not delete key; not found`);
        if (!k.deletionAllowed) throw bad(`error deleting policy ${name}: deletion is not allowed for this key`);
        mount.keys.delete(name);
        return { status: 204 };
      }
    }
    if ((m = /^keys\/([^/]+)\/(rotate|config)$/.exec(rest)) && op === 'write') {
      const k = mount.keys.get(m[1]!);
      if (!k) throw bad('no such key');
      if (m[2] === 'rotate') {
        this.#rotate(k);
        return this.#ok(this.#keyInfo(k));
      }
      const minDec = 'min_decryption_version' in body ? parseIntField(body['min_decryption_version'], 'min_decryption_version') : 0;
      const minEnc = 'min_encryption_version' in body ? parseIntField(body['min_encryption_version'], 'min_encryption_version') : k.minEncryption;
      if (minDec < 0) throw bad('min decryption version cannot be negative');
      if (minDec > k.latest) throw bad(`cannot set min decryption version of ${minDec}, latest key version is ${k.latest}`);
      if (minEnc < 0) throw bad('min encryption version cannot be negative');
      if (minEnc > k.latest) throw bad(`cannot set min encryption version of ${minEnc}, latest key version is ${k.latest}`);
      const newDec = minDec > 0 ? minDec : k.minDecryption;
      if (minEnc !== 0 && minEnc < newDec) throw bad('min encryption version should not be less than min decryption version');
      if ('exportable' in body && k.exportable && !parseBool(body['exportable'], true)) throw bad('exportable key cannot be made non-exportable');
      k.minDecryption = newDec;
      k.minEncryption = minEnc;
      if ('deletion_allowed' in body) k.deletionAllowed = parseBool(body['deletion_allowed'], false);
      if ('exportable' in body) k.exportable = parseBool(body['exportable'], false);
      if ('allow_plaintext_backup' in body) k.allowPlaintextBackup = parseBool(body['allow_plaintext_backup'], false);
      return this.#ok(this.#keyInfo(k));
    }
    if ((m = /^(encrypt|decrypt|rewrap)\/([^/]+)$/.exec(rest)) && op === 'write') {
      const name = m[2]!;
      let k = mount.keys.get(name);
      if (m[1] === 'encrypt') {
        if (!k) {
          // Upsert (the ACL already demanded "create"): derived when a context is supplied.
          const first = Array.isArray(body['batch_input']) ? ((body['batch_input'] as Body[])[0] ?? {}) : body;
          k = this.#newKey(name, { type: body['type'], derived: typeof first['context'] === 'string' && first['context'] !== '' });
          mount.keys.set(name, k);
        }
        const key = k;
        return this.#batch(body, ['plaintext'], (item) => {
          if (!('plaintext' in item)) throw new UserError('missing plaintext to encrypt');
          const pt = strictBase64(item['plaintext']);
          if (!pt) throw new UserError('failed to base64-decode plaintext');
          const version = this.#encryptVersion(key, item['key_version']);
          return { ciphertext: this.#encryptRaw(key, version, this.#context(item), pt), key_version: version };
        });
      }
      if (!k) throw bad('encryption key not found');
      const key = k;
      if (m[1] === 'decrypt') {
        return this.#batch(body, ['ciphertext'], (item) => {
          if (typeof item['ciphertext'] !== 'string' || item['ciphertext'] === '') throw new UserError('missing ciphertext to decrypt');
          return { plaintext: this.#decryptRaw(key, item['ciphertext'], this.#context(item)).plaintext.toString('base64') };
        });
      }
      return this.#batch(body, ['ciphertext'], (item) => {
        if (typeof item['ciphertext'] !== 'string' || item['ciphertext'] === '') throw new UserError('missing ciphertext to rewrap');
        const context = this.#context(item);
        const { plaintext } = this.#decryptRaw(key, item['ciphertext'], context);
        const version = this.#encryptVersion(key, item['key_version']);
        return { ciphertext: this.#encryptRaw(key, version, context, plaintext), key_version: version };
      });
    }
    if ((m = /^datakey\/(plaintext|wrapped)\/([^/]+)$/.exec(rest)) && op === 'write') {
      const k = mount.keys.get(m[2]!);
      if (!k) throw bad('encryption key not found');
      const bits = parseIntField(body['bits'] ?? 256, 'bits');
      if (bits !== 128 && bits !== 256 && bits !== 512) throw bad('invalid bits length');
      const includePlain = m[1] === 'plaintext';
      try {
        const version = this.#encryptVersion(k, body['key_version']);
        const dk = randomBytes(bits / 8);
        const ciphertext = this.#encryptRaw(k, version, this.#context(body), dk);
        return this.#ok({ ciphertext, key_version: version, ...(includePlain ? { plaintext: dk.toString('base64') } : {}) });
      } catch (err) {
        if (err instanceof UserError) throw bad(err.message);
        throw err;
      }
    }
    throw new HttpError(404, [`no handler for route "${ctx.path}". route entry not found.`]);
  }

  // ---- KV v2 ---------------------------------------------------------------------------------

  #kvMeta(v: KvVersion, version: number, entry: KvEntry): Body {
    return {
      created_time: iso(v.createdAt),
      custom_metadata: entry.customMetadata,
      deletion_time: v.deletedAt === null ? '' : iso(v.deletedAt),
      destroyed: v.destroyed,
      version,
    };
  }

  #kvVersions(body: Body): number[] {
    const list = body['versions'];
    if (!Array.isArray(list) || list.length === 0) throw bad('no version number provided');
    return list.map((v) => parseIntField(v, 'versions'));
  }

  #kv(mount: Extract<Mount, { type: 'kv' }>, rest: string, ctx: Ctx): Reply {
    const { op, body, query } = ctx;
    const now = this.clock.now();
    const m = /^(data|metadata|delete|undelete|destroy)\/(.*)$/.exec(rest);
    if (!m) throw new HttpError(404, [`no handler for route "${ctx.path}". route entry not found.`]);
    const kind = m[1]!;
    const key = m[2]!;
    const entry = mount.entries.get(key);
    if (kind === 'metadata' && op === 'list') {
      const keys = new Set<string>();
      for (const k of mount.entries.keys()) {
        if (!k.startsWith(key)) continue;
        const tail = k.slice(key.length);
        const slash = tail.indexOf('/');
        keys.add(slash >= 0 ? tail.slice(0, slash + 1) : tail);
      }
      if (keys.size === 0) throw new HttpError(404, []);
      return this.#ok({ keys: [...keys].sort() });
    }
    if (key === '' || key.endsWith('/')) throw bad('invalid key');
    if (kind === 'data') {
      if (op === 'read') {
        if (!entry) throw new HttpError(404, []);
        const version = query.has('version') && query.get('version') !== '0' ? Number(query.get('version')) : entry.current;
        const v = entry.versions.get(version);
        if (!v) throw new HttpError(404, []);
        const metadata = this.#kvMeta(v, version, entry);
        if (v.deletedAt !== null || v.destroyed) throw new HttpError(404, [], this.#envelope({ data: null, metadata }));
        return this.#ok({ data: v.data, metadata });
      }
      if (op === 'write') {
        const data = body['data'];
        if (typeof data !== 'object' || data === null || Array.isArray(data)) throw bad('no data provided');
        const options = (body['options'] ?? {}) as Body;
        const casRequired = mount.casRequired || (entry?.casRequired ?? false);
        if ('cas' in options) {
          const cas = parseIntField(options['cas'], 'cas');
          if (cas !== (entry?.current ?? 0)) throw bad('check-and-set parameter did not match the current version');
        } else if (casRequired) {
          throw bad('check-and-set parameter required for this call');
        }
        const e: KvEntry = entry ?? {
          versions: new Map(),
          current: 0,
          oldest: 0,
          maxVersions: 0,
          casRequired: false,
          customMetadata: null,
          createdAt: now,
          updatedAt: now,
        };
        e.current++;
        e.updatedAt = now;
        e.versions.set(e.current, { data: data as Record<string, unknown>, createdAt: now, deletedAt: null, destroyed: false });
        if (e.oldest === 0) e.oldest = 1;
        const max = e.maxVersions || mount.maxVersions || 10;
        while (e.versions.size > max) {
          e.versions.delete(e.oldest);
          e.oldest++;
          while (!e.versions.has(e.oldest) && e.oldest < e.current) e.oldest++;
        }
        mount.entries.set(key, e);
        return this.#ok(this.#kvMeta(e.versions.get(e.current)!, e.current, e));
      }
      if (op === 'delete') {
        const v = entry?.versions.get(entry.current);
        if (v && v.deletedAt === null) v.deletedAt = now;
        return { status: 204 };
      }
    }
    if (kind === 'metadata') {
      if (op === 'read') {
        if (!entry) throw new HttpError(404, []);
        const versions: Body = {};
        for (const [n, v] of entry.versions) {
          versions[String(n)] = { created_time: iso(v.createdAt), deletion_time: v.deletedAt === null ? '' : iso(v.deletedAt), destroyed: v.destroyed };
        }
        return this.#ok({
          cas_required: entry.casRequired,
          created_time: iso(entry.createdAt),
          current_version: entry.current,
          custom_metadata: entry.customMetadata,
          delete_version_after: '0s',
          max_versions: entry.maxVersions,
          oldest_version: entry.oldest,
          updated_time: iso(entry.updatedAt),
          versions,
        });
      }
      if (op === 'write') {
        const e: KvEntry = entry ?? { versions: new Map(), current: 0, oldest: 0, maxVersions: 0, casRequired: false, customMetadata: null, createdAt: now, updatedAt: now };
        if ('max_versions' in body) e.maxVersions = parseIntField(body['max_versions'], 'max_versions');
        if ('cas_required' in body) e.casRequired = parseBool(body['cas_required'], false);
        if ('custom_metadata' in body) e.customMetadata = (body['custom_metadata'] as Record<string, string>) ?? null;
        e.updatedAt = now;
        mount.entries.set(key, e);
        return { status: 204 };
      }
      if (op === 'delete') {
        mount.entries.delete(key);
        return { status: 204 };
      }
    }
    if (op === 'write' && (kind === 'delete' || kind === 'undelete' || kind === 'destroy')) {
      const versions = this.#kvVersions(body);
      for (const n of versions) {
        const v = entry?.versions.get(n);
        if (!v) continue;
        if (kind === 'delete' && v.deletedAt === null) v.deletedAt = now;
        if (kind === 'undelete' && !v.destroyed) v.deletedAt = null;
        if (kind === 'destroy') {
          v.destroyed = true;
          v.data = null;
        }
      }
      return { status: 204 };
    }
    throw new HttpError(405, ['unsupported operation']);
  }
}

// ---- provisioning, the way deploy/vault/setup.sh does it -------------------------------------

/** One API call with plain fetch (independent of the client under test). */
export async function vaultApi(
  address: string,
  token: string | undefined,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${address}/v1/${path}`, {
    method,
    headers: { ...(token ? { 'X-Vault-Token': token } : {}), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function must(address: string, token: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<any> {
  const r = await vaultApi(address, token, method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export const POLICY_TEMPLATES = fileURLToPath(new URL('../../deploy/vault/policies/', import.meta.url));

/** Renders deploy/vault/policies/<name>.hcl.tmpl exactly as setup.sh's sed does. */
export function renderPolicy(name: 'custody-node' | 'custody-operator', key: string, mount = 'transit'): string {
  const text = readFileSync(path.join(POLICY_TEMPLATES, `${name}.hcl.tmpl`), 'utf8');
  return text.replaceAll('__MOUNT__', mount).replaceAll('__KEY__', key);
}

export interface ProvisionOptions {
  nodes: string[];
  tokenTtl?: string | number;
  tokenMaxTtl?: string | number;
  /** Create the node keys (default true); false leaves them missing. */
  createKeys?: boolean;
  /** derived flag of the node keys (default true, as setup.sh). */
  derived?: boolean;
}

export interface ProvisionedNode {
  node: string;
  role: string;
  key: string;
  roleId: string;
  secretId: string;
}

/**
 * Steps of deploy/vault/setup.sh over the HTTP API with the root token: enable transit and
 * approle, per node a derived aes256-gcm96 key, the rendered node policy and an AppRole role
 * (token_no_default_policy, TTLs, unlimited secret id uses); the operator policy; then a secret
 * id per node (what an operator delivers out of band) and an operator token.
 */
export async function provisionLikeSetupSh(emu: VaultEmulator, opts: ProvisionOptions): Promise<{ nodes: Record<string, ProvisionedNode>; operatorToken: string }> {
  const a = emu.address;
  const root = emu.rootToken;
  const mounts = await must(a, root, 'GET', 'sys/mounts');
  if (!mounts.data['transit/']) await must(a, root, 'POST', 'sys/mounts/transit', { type: 'transit' });
  const auths = await must(a, root, 'GET', 'sys/auth');
  if (!auths.data['approle/']) await must(a, root, 'POST', 'sys/auth/approle', { type: 'approle' });
  const nodes: Record<string, ProvisionedNode> = {};
  for (const node of opts.nodes) {
    const key = `custody-${node}`;
    const role = `custody-${node}`;
    if (opts.createKeys ?? true) {
      await must(a, root, 'POST', `transit/keys/${key}`, { type: 'aes256-gcm96', derived: opts.derived ?? true, exportable: false, allow_plaintext_backup: false });
      await must(a, root, 'POST', `transit/keys/${key}/config`, { deletion_allowed: false });
    }
    await must(a, root, 'PUT', `sys/policies/acl/${role}`, { policy: renderPolicy('custody-node', key) });
    await must(a, root, 'POST', `auth/approle/role/${role}`, {
      token_policies: role,
      token_no_default_policy: true,
      token_type: 'service',
      token_ttl: opts.tokenTtl ?? '1h',
      token_max_ttl: opts.tokenMaxTtl ?? '24h',
      secret_id_ttl: 0,
      secret_id_num_uses: 0,
    });
    const roleId = (await must(a, root, 'GET', `auth/approle/role/${role}/role-id`)).data.role_id as string;
    const secretId = (await must(a, root, 'POST', `auth/approle/role/${role}/secret-id`, {})).data.secret_id as string;
    nodes[node] = { node, role, key, roleId, secretId };
  }
  await must(a, root, 'PUT', 'sys/policies/acl/custody-operator', { policy: renderPolicy('custody-operator', '') });
  const operatorToken = (await must(a, root, 'POST', 'auth/token/create', { policies: ['custody-operator'], ttl: '8h' })).auth.client_token as string;
  return { nodes, operatorToken };
}
