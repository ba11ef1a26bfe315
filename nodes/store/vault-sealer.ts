/**
 * The Vault Sealer (DESIGN.md sections 2 and 7): data keys wrapped by HashiCorp Vault Transit.
 *
 * Envelope encryption stays where it is: SealedFileStore draws a fresh 32-byte data key per
 * record and seals the record locally with XChaCha20-Poly1305 (crypto/seal.ts). This Sealer only
 * wraps that data key with `transit/encrypt/<key>` and unwraps it with `transit/decrypt/<key>`,
 * so record bodies never travel to Vault and the Transit key never leaves it. The stored wrapped
 * key is the Transit ciphertext itself, UTF-8: `vault:v<N>:<base64>`.
 *
 * Why `transit/encrypt` over `transit/datakey/plaintext`: the Sealer interface is "wrap this data
 * key" (the store owns key generation, exactly as with the local keystore), one round trip either
 * way, and the node policy stays at encrypt / decrypt / rewrap. datakey would move key generation
 * into Vault and need a second interface shape for no gain in what Vault can see (decrypt returns
 * the data key to the node anyway).
 *
 * Context binding: the Transit key is created with `derived=true`, and every call sends the
 * record name as `context`, so Vault derives a per-record key (HKDF-SHA256). A wrapped key copied
 * onto another record name no longer decrypts. `open()` checks that the key really is derived (a
 * non-derived key silently ignores `context`).
 *
 * Authentication: the node's own AppRole. The token is renewed at 2/3 of its TTL with
 * `auth/token/renew-self`; once Vault caps a renewal at the token's max TTL, the node logs in
 * again with its role id and secret id before the token runs out. A token Vault rejects mid-run
 * (revoked, expired) fails the call in progress with a VaultSealerError (nothing is written: the
 * store wraps before it writes) and the next call logs in again. If that login fails too (secret id
 * destroyed or expired), the sealer refuses every later call with the same error until the node
 * restarts with new credentials: retrying a dead secret id cannot succeed and trips Vault's lockout.
 * `checkCredentials` lets the node prove its access before it signs from shares held in memory.
 *
 * Batching: concurrent calls made in the same event-loop turn are sent as one `batch_input`
 * request per operation (encrypt / decrypt / rewrap), up to `maxBatch` items.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SealError, wipe } from '../../crypto/seal.js';
import { isErrno } from './durable-fs.js';
import type { RewrapResult, SealedFileStore } from './sealed-file-store.js';
import { DATA_KEY_LENGTH, type Sealer } from './sealer.js';
import { VaultClient, VaultError, VaultHttpError, VaultSealedError, VaultUnreachableError } from './vault-client.js';

export type VaultSealerErrorCode =
  | 'unreachable'
  | 'sealed'
  | 'not-initialized'
  | 'login-failed'
  | 'permission-denied'
  | 'token-rejected'
  | 'key-missing'
  | 'key-unsuitable'
  | 'vault-error'
  | 'closed'
  | 'config';

/** Every failure of the Vault sealer that is not "this record does not open". Messages carry no secret. */
export class VaultSealerError extends Error {
  override readonly name = 'VaultSealerError';
  constructor(
    readonly code: VaultSealerErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The wrapped key is older than the Transit key's min_decryption_version (it was not rewrapped). */
export class VaultCiphertextTooOldError extends SealError {
  // `name` stays 'SealError' (SealError fixes it); tell it apart with instanceof.
  constructor(
    message: string,
    readonly version: number,
  ) {
    super(message);
  }
}

/** Time source and timers; tests pass the emulator's manual clock. */
export interface VaultClock {
  now(): number;
  setTimer(fn: () => unknown, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: VaultClock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(() => void fn(), ms);
    t.unref();
    return t;
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};

/** The subset of pino the sealer uses. It logs token accessors and TTLs, never tokens or secret ids. */
export interface VaultSealerLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const silent: VaultSealerLogger = { info: () => undefined, warn: () => undefined };

export interface VaultSealerOptions {
  /** Vault address, e.g. `https://vault.internal:8200`. */
  address: string;
  /** AppRole credentials of this node. The secret id is kept in memory for re-login at max TTL. */
  roleId: string;
  secretId: string;
  /** This node's Transit key (aes256-gcm96, derived=true), e.g. `custody-node-1`. */
  transitKey: string;
  /** Used in messages before the first login tells us (Vault returns the role name on login). */
  roleName?: string;
  /** Transit mount path (default `transit`). */
  transitMount?: string;
  /** AppRole mount path (default `approle`). */
  approleMount?: string;
  namespace?: string;
  /** PEM CA bundle for Vault's TLS certificate. */
  caCert?: string | Buffer;
  /** Per-request timeout, default 10 000 ms. */
  requestTimeoutMs?: number;
  /** Renew at this fraction of the token TTL (default 2/3). */
  renewFraction?: number;
  /** Items per batch_input request (default 250). */
  maxBatch?: number;
  /** Check the rewrap capability at open (default true): rotation needs it on every node. */
  requireRewrap?: boolean;
  /** Revoke the token on close (default true). */
  revokeOnClose?: boolean;
  clock?: VaultClock;
  logger?: VaultSealerLogger;
}

export interface VaultSealerFileOptions extends Omit<VaultSealerOptions, 'roleId' | 'secretId'> {
  /** Files holding the role id and the secret id (whitespace trimmed); both should be 0600. */
  roleIdFile: string;
  secretIdFile: string;
}

export interface TransitKeyInfo {
  name: string;
  type: string;
  derived: boolean;
  exportable: boolean;
  deletionAllowed: boolean;
  latestVersion: number;
  minDecryptionVersion: number;
  minEncryptionVersion: number;
  /** Versions Vault still holds (min_decryption_version .. latest). */
  versions: number[];
}

export interface VaultSealerStats {
  logins: number;
  renewals: number;
  renewalFailures: number;
  /** HTTP calls to Transit (a batch counts once). */
  transitRequests: number;
  /** Items sent inside batch_input requests. */
  batchedItems: number;
}

type TransitOp = 'encrypt' | 'decrypt' | 'rewrap';

interface TransitItem {
  /** base64 plaintext (encrypt) or Transit ciphertext (decrypt, rewrap). */
  input: string;
  /** base64 context. */
  context: string;
  /** Record name, for messages. */
  label: string;
}

interface TransitOk {
  /** ciphertext (encrypt, rewrap) or base64 plaintext (decrypt). */
  output: string;
  keyVersion?: number;
}

interface Pending {
  item: TransitItem;
  resolve(r: TransitOk): void;
  reject(e: unknown): void;
}

interface AuthBlock {
  client_token?: unknown;
  accessor?: unknown;
  lease_duration?: unknown;
  renewable?: unknown;
  metadata?: { role_name?: unknown } | null;
  policies?: unknown;
}

const CIPHERTEXT_RE = /^vault:v(\d+):[A-Za-z0-9+/]+={0,2}$/;
const KEY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const MOUNT_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
/** Record names never contain NUL, so these contexts cannot collide with a record's. */
const CONTEXT_PREFIX = 'custody/record/v1\0';
const PROBE_CONTEXT = 'custody/probe/v1\0a';
const PROBE_OTHER_CONTEXT = 'custody/probe/v1\0b';
const TOO_OLD = 'ciphertext or signature version is disallowed by policy (too old)';
const KEY_NOT_FOUND = 'encryption key not found';
const POLICY_HINT = 'check the policy in deploy/vault/ (policies/custody-node.hcl.tmpl)';
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

function b64(bytes: Uint8Array | string): string {
  return (typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('base64');
}

/** The Transit key version of a wrapped key, or undefined if it is not a Transit ciphertext. */
export function wrappedKeyVersion(wrapped: Uint8Array | string): number | undefined {
  let text: string;
  try {
    text = typeof wrapped === 'string' ? wrapped : fromUtf8.decode(wrapped);
  } catch {
    return undefined;
  }
  const m = CIPHERTEXT_RE.exec(text);
  if (!m) return undefined;
  const v = Number(m[1]);
  return Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

function asCiphertext(wrapped: Uint8Array): string {
  let text: string;
  try {
    text = fromUtf8.decode(wrapped);
  } catch {
    throw new SealError('wrapped key is not a Vault Transit ciphertext');
  }
  if (!CIPHERTEXT_RE.test(text)) throw new SealError('wrapped key is not a Vault Transit ciphertext (expected vault:vN:...)');
  return text;
}

function num(v: unknown, fallback = 0): number {
  const n = typeof v === 'string' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? n : fallback;
}

export function parseKeyInfo(name: string, body: unknown): TransitKeyInfo {
  const d = ((body as { data?: Record<string, unknown> } | null)?.data ?? {}) as Record<string, unknown>;
  const keys = typeof d['keys'] === 'object' && d['keys'] !== null ? Object.keys(d['keys'] as object) : [];
  return {
    name,
    type: typeof d['type'] === 'string' ? d['type'] : 'unknown',
    derived: d['derived'] === true,
    exportable: d['exportable'] === true,
    deletionAllowed: d['deletion_allowed'] === true,
    latestVersion: num(d['latest_version']),
    minDecryptionVersion: num(d['min_decryption_version'], 1),
    minEncryptionVersion: num(d['min_encryption_version']),
    versions: keys.map(Number).filter((v) => Number.isSafeInteger(v)).sort((a, b) => a - b),
  };
}

/** Symmetric AEAD key types Transit can derive per-context keys for. */
const SUITABLE_TYPES = new Set(['aes256-gcm96', 'aes128-gcm96', 'chacha20-poly1305', 'xchacha20-poly1305']);

export class VaultSealer implements Sealer {
  readonly kind = 'vault' as const;
  readonly address: string;
  readonly transitKey: string;
  readonly #client: VaultClient;
  readonly #roleId: string;
  readonly #secretId: string;
  readonly #mount: string;
  readonly #approle: string;
  readonly #clock: VaultClock;
  readonly #log: VaultSealerLogger;
  readonly #renewFraction: number;
  readonly #maxBatch: number;
  readonly #requireRewrap: boolean;
  readonly #revokeOnClose: boolean;
  #roleName: string;
  #token: string | null = null;
  #accessor = '';
  #tokenInvalid = false;
  /** ms since epoch (clock time) at which the token expires; Infinity for non-expiring tokens. */
  #expiresAt = 0;
  /** TTL granted at login: a renewal granting less was capped by the token's max TTL. */
  #loginTtl = 0;
  #login: Promise<void> | null = null;
  /** Set once Vault refused both the token and the secret id at run time: final until restart. */
  #refused: VaultSealerError | null = null;
  /** Clock time of the last call Vault accepted with this node's credentials. */
  #verifiedAt = -Infinity;
  #checking: Promise<void> | null = null;
  #timer: unknown = undefined;
  #closed = false;
  #latestVersion = 0;
  #minDecryptionVersion = 1;
  readonly #queues: Record<TransitOp, Pending[]> = { encrypt: [], decrypt: [], rewrap: [] };
  readonly #scheduled: Record<TransitOp, boolean> = { encrypt: false, decrypt: false, rewrap: false };
  readonly #stats: VaultSealerStats = { logins: 0, renewals: 0, renewalFailures: 0, transitRequests: 0, batchedItems: 0 };

  private constructor(opts: VaultSealerOptions) {
    if (typeof opts.transitKey !== 'string' || !KEY_NAME_RE.test(opts.transitKey)) {
      throw new VaultSealerError('config', `invalid Transit key name ${JSON.stringify(String(opts.transitKey).slice(0, 64))}`);
    }
    if (!opts.roleId || !opts.secretId) throw new VaultSealerError('config', 'Vault sealer needs an AppRole role id and secret id');
    const mount = (opts.transitMount ?? 'transit').replace(/^\/+|\/+$/g, '');
    const approle = (opts.approleMount ?? 'approle').replace(/^\/+|\/+$/g, '');
    if (!MOUNT_RE.test(mount) || !MOUNT_RE.test(approle)) throw new VaultSealerError('config', 'invalid Vault mount path');
    const fraction = opts.renewFraction ?? 2 / 3;
    if (!(fraction > 0 && fraction < 1)) throw new VaultSealerError('config', 'renewFraction must be between 0 and 1');
    try {
      this.#client = new VaultClient({
        address: opts.address,
        ...(opts.namespace ? { namespace: opts.namespace } : {}),
        ...(opts.caCert ? { caCert: opts.caCert } : {}),
        timeoutMs: opts.requestTimeoutMs ?? 10_000,
      });
    } catch (err) {
      throw new VaultSealerError('config', (err as Error).message);
    }
    this.address = this.#client.address;
    this.transitKey = opts.transitKey;
    this.#roleId = opts.roleId;
    this.#secretId = opts.secretId;
    this.#mount = mount;
    this.#approle = approle;
    this.#roleName = opts.roleName ?? 'the configured AppRole';
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.logger ?? silent;
    this.#renewFraction = fraction;
    this.#maxBatch = Math.max(1, Math.floor(opts.maxBatch ?? 250));
    this.#requireRewrap = opts.requireRewrap ?? true;
    this.#revokeOnClose = opts.revokeOnClose ?? true;
  }

  /**
   * Connects, logs in and checks the Transit key, failing fast with an actionable message:
   * unreachable, sealed, bad AppRole credentials, missing or unsuitable key, missing capability.
   */
  static async open(opts: VaultSealerOptions): Promise<VaultSealer> {
    const sealer = new VaultSealer(opts);
    try {
      await sealer.#start();
    } catch (err) {
      await sealer.close().catch(() => undefined);
      throw err;
    }
    return sealer;
  }

  /** `open` with the role id and secret id read from files (e.g. systemd credentials). */
  static async openWithFiles(opts: VaultSealerFileOptions): Promise<VaultSealer> {
    const read = async (file: string, what: string): Promise<string> => {
      let text: string;
      try {
        text = (await fs.readFile(file, 'utf8')).trim();
      } catch (err) {
        throw new VaultSealerError('config', `cannot read the Vault ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
      }
      if (!text) throw new VaultSealerError('config', `the Vault ${what} file ${file} is empty`);
      return text;
    };
    const { roleIdFile, secretIdFile, ...rest } = opts;
    const roleId = await read(roleIdFile, 'AppRole role id');
    const secretId = await read(secretIdFile, 'AppRole secret id');
    return VaultSealer.open({ ...rest, roleId, secretId });
  }

  get roleName(): string {
    return this.#roleName;
  }

  /** The newest Transit key version this sealer has seen (from reads, encrypts and rewraps). */
  get latestVersion(): number {
    return this.#latestVersion;
  }

  /** min_decryption_version as last read from Vault (or set through this sealer). */
  get minDecryptionVersion(): number {
    return this.#minDecryptionVersion;
  }

  /** Non-secret handle of the current token (for audit correlation). */
  get tokenAccessor(): string {
    return this.#accessor;
  }

  stats(): Readonly<VaultSealerStats> {
    return { ...this.#stats };
  }

  get #keyPath(): string {
    return `${this.#mount}/keys/${this.transitKey}`;
  }

  // ---- start-up ------------------------------------------------------------------------------

  async #start(): Promise<void> {
    let health;
    try {
      health = await this.#client.health();
    } catch (err) {
      throw this.#mapTransport(err, 'check its health');
    }
    if (health.sealed === true) {
      throw new VaultSealerError('sealed', `Vault at ${this.address} is sealed; unseal it (vault operator unseal) before starting the node`);
    }
    if (health.initialized === false) {
      throw new VaultSealerError('not-initialized', `Vault at ${this.address} is not initialized (vault operator init)`);
    }
    await this.#doLogin('start-up');
    await this.#checkKey();
  }

  async #checkKey(): Promise<void> {
    let info: TransitKeyInfo | undefined;
    let readDenied = false;
    try {
      info = await this.#readKey();
    } catch (err) {
      if (err instanceof VaultSealerError && err.code === 'key-missing') throw err;
      // 403: the policy does not grant read on the key; the probes below still tell us enough.
      if (!(err instanceof VaultSealerError && err.code === 'permission-denied')) throw err;
      readDenied = true;
    }
    if (info) this.#checkInfo(info);

    const probe = randomBytes(DATA_KEY_LENGTH);
    let ciphertext: string;
    try {
      ciphertext = (await this.#single('encrypt', { input: b64(probe), context: b64(PROBE_CONTEXT), label: 'start-up probe' })).output;
    } catch (err) {
      if (err instanceof VaultSealerError && err.code === 'permission-denied' && !info) {
        // Encrypt to a missing key is a "create" in Vault's ACL, so a node policy (update only)
        // gets 403 for a missing key too. Decrypt is always "update" and names the missing key.
        await this.#single('decrypt', { input: 'vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', context: b64(PROBE_CONTEXT), label: 'start-up probe' }).catch(
          (e: unknown) => {
            if (e instanceof VaultSealerError && e.code === 'key-missing') throw e;
          },
        );
        if (readDenied) {
          throw new VaultSealerError('permission-denied', `${(err as Error).message}; read on it is denied too: is ${this.transitKey} this node's key (--vault-transit-key)?`);
        }
      }
      throw err;
    }
    const back = Buffer.from((await this.#single('decrypt', { input: ciphertext, context: b64(PROBE_CONTEXT), label: 'start-up probe' })).output, 'base64');
    if (!back.equals(probe)) throw new VaultSealerError('vault-error', `Vault at ${this.address} returned a different plaintext for the start-up probe of ${this.#keyPath}`);
    wipe(back, probe);
    if (!info) {
      // Without read access, prove derivation: another context must not decrypt.
      const other = await this.#single('decrypt', { input: ciphertext, context: b64(PROBE_OTHER_CONTEXT), label: 'start-up probe' }).then(
        () => true,
        (e: unknown) => {
          if (e instanceof SealError) return false;
          throw e;
        },
      );
      if (other) throw this.#notDerived();
    }
    if (this.#requireRewrap) await this.#single('rewrap', { input: ciphertext, context: b64(PROBE_CONTEXT), label: 'start-up probe' });
    this.#log.info({ address: this.address, key: this.#keyPath, version: this.#latestVersion, role: this.#roleName }, 'vault sealer ready');
  }

  #notDerived(): VaultSealerError {
    return new VaultSealerError(
      'key-unsuitable',
      `Transit key ${this.#keyPath} is not derived: each record name is bound as Transit context, so the key must be created with derived=true (deploy/vault/setup.sh)`,
    );
  }

  #checkInfo(info: TransitKeyInfo): void {
    if (!SUITABLE_TYPES.has(info.type)) {
      throw new VaultSealerError('key-unsuitable', `Transit key ${this.#keyPath} has type ${info.type}; the sealer needs a symmetric AEAD key (aes256-gcm96, derived=true)`);
    }
    if (!info.derived) throw this.#notDerived();
    if (info.exportable) {
      this.#log.warn({ key: this.#keyPath }, 'transit key is exportable: its material can leave Vault; recreate it with exportable=false');
    }
    this.#noteKey(info);
  }

  #noteKey(info: TransitKeyInfo): void {
    this.#latestVersion = Math.max(this.#latestVersion, info.latestVersion);
    this.#minDecryptionVersion = info.minDecryptionVersion;
  }

  // ---- tokens ------------------------------------------------------------------------------

  async #doLogin(why: string): Promise<void> {
    let body: { auth?: AuthBlock } | string;
    try {
      body = await this.#client.request('POST', `auth/${this.#approle}/login`, { body: { role_id: this.#roleId, secret_id: this.#secretId } });
    } catch (err) {
      if (err instanceof VaultHttpError && (err.status === 400 || err.status === 403)) {
        const vaultSays = err.errors.join('; ') || `HTTP ${err.status}`;
        if (why === 'start-up') {
          throw new VaultSealerError(
            'login-failed',
            `AppRole login to Vault at ${this.address} failed for role ${this.#roleName}: ${vaultSays}. ` +
              'Check the role id and secret id files; a secret id expires after secret_id_ttl or secret_id_num_uses: issue a new one (deploy/vault/README.md, "Secret IDs")',
          );
        }
        // The token is gone and the secret id no longer works: final until the node restarts.
        this.#refused = new VaultSealerError(
          'login-failed',
          `Vault refused the token of role ${this.#roleName} (revoked or expired) and the AppRole login with this node's secret id failed (${vaultSays}): ` +
            'issue a new secret id (deploy/vault/README.md, "Secret IDs"), write it to the node\'s secret id file and restart the node. ' +
            'Nothing was written; the sealed records are intact',
        );
        this.#clearTimer();
        this.#log.warn({ role: this.#roleName, accessor: this.#accessor, why }, 'vault refused the token and the secret id: the node needs new credentials and a restart');
        throw this.#refused;
      }
      throw this.#mapTransport(err, 'log in');
    }
    const auth = typeof body === 'object' && body !== null ? body.auth : undefined;
    if (!auth || typeof auth.client_token !== 'string' || !auth.client_token) {
      throw new VaultSealerError('vault-error', `Vault at ${this.address} answered the AppRole login without a token`);
    }
    if (typeof auth.metadata?.role_name === 'string' && auth.metadata.role_name) this.#roleName = auth.metadata.role_name;
    const ttl = num(auth.lease_duration);
    this.#token = auth.client_token;
    this.#accessor = typeof auth.accessor === 'string' ? auth.accessor : '';
    this.#tokenInvalid = false;
    this.#verifiedAt = this.#clock.now();
    this.#loginTtl = ttl;
    this.#expiresAt = ttl > 0 ? this.#clock.now() + ttl * 1000 : Infinity;
    this.#stats.logins++;
    this.#schedule(ttl, auth.renewable === true, false);
    this.#log.info({ role: this.#roleName, accessor: this.#accessor, ttl, why }, 'vault login');
  }

  /** Single flight: concurrent callers share one login. */
  #relogin(why: string): Promise<void> {
    if (this.#refused) return Promise.reject(this.#refused);
    this.#login ??= this.#doLogin(why).finally(() => {
      this.#login = null;
    });
    return this.#login;
  }

  async #currentToken(): Promise<string> {
    if (this.#closed) throw new VaultSealerError('closed', `Vault sealer for ${this.#keyPath} is closed`);
    if (this.#refused) throw this.#refused;
    if (this.#login) await this.#login;
    if (this.#token === null || this.#tokenInvalid || this.#clock.now() >= this.#expiresAt) {
      await this.#relogin(this.#tokenInvalid ? 'token was rejected' : 'token expired');
    }
    return this.#token!;
  }

  #schedule(ttlSeconds: number, renewable: boolean, capped: boolean): void {
    this.#clearTimer();
    if (this.#closed || !(ttlSeconds > 0)) return;
    const action = renewable && !capped ? 'renew' : 'login';
    this.#timer = this.#clock.setTimer(() => this.#onTimer(action), Math.max(1000, ttlSeconds * 1000 * this.#renewFraction));
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  async #onTimer(action: 'renew' | 'login'): Promise<void> {
    this.#timer = undefined;
    if (this.#closed) return;
    try {
      if (action === 'renew') await this.#renew();
      else await this.#relogin('token reaches its max TTL');
    } catch (err) {
      if (this.#closed || this.#refused) return; // #doLogin logged the refusal; retrying cannot help
      this.#stats.renewalFailures++;
      // Retry while the token lives (a third of what is left, at most 30 s), then by logging in.
      const left = this.#expiresAt - this.#clock.now();
      const retryIn = left > 3000 ? Math.min(30_000, left / 3) : 5000;
      const next = left > 3000 ? action : 'login';
      this.#log.warn({ action, error: (err as Error).message, retryInMs: Math.round(retryIn) }, 'vault token upkeep failed; will retry');
      this.#timer = this.#clock.setTimer(() => this.#onTimer(next), retryIn);
    }
  }

  async #renew(): Promise<void> {
    const token = this.#token;
    if (token === null) return this.#relogin('no token');
    let body: { auth?: AuthBlock; warnings?: unknown } | string;
    try {
      body = await this.#client.request('POST', 'auth/token/renew-self', { token, body: {} });
    } catch (err) {
      if (err instanceof VaultHttpError && err.status === 403) {
        // Revoked or already expired: only a fresh login helps.
        if (this.#token === token) this.#tokenInvalid = true;
        return this.#relogin('renewal refused');
      }
      throw this.#mapTransport(err, 'renew its token');
    }
    if (this.#token !== token) return; // a login replaced it meanwhile
    const auth = typeof body === 'object' && body !== null ? body.auth : undefined;
    const ttl = num(auth?.lease_duration);
    if (!(ttl > 0)) {
      // Not a renewal we understand: keep the known expiry and replace the token soon.
      this.#timer = this.#clock.setTimer(() => this.#onTimer('login'), 1000);
      return;
    }
    this.#stats.renewals++;
    this.#expiresAt = this.#clock.now() + ttl * 1000;
    // Vault caps renewals at the token's max TTL (with a warning): from then on, log in again.
    const capped = ttl < this.#loginTtl;
    this.#schedule(ttl, auth?.renewable !== false, capped);
    this.#log.info({ accessor: this.#accessor, ttl, capped }, 'vault token renewed');
  }

  // ---- errors --------------------------------------------------------------------------------

  #mapTransport(err: unknown, what: string): Error {
    if (err instanceof VaultSealerError || err instanceof SealError) return err;
    if (err instanceof VaultUnreachableError) return new VaultSealerError('unreachable', err.message);
    if (err instanceof VaultSealedError) return new VaultSealerError('sealed', `Vault at ${this.address} is sealed; unseal it (vault operator unseal): could not ${what}`);
    if (err instanceof VaultHttpError && err.status === 501) return new VaultSealerError('not-initialized', `Vault at ${this.address} is not initialized (vault operator init)`);
    if (err instanceof VaultError) return new VaultSealerError('vault-error', err.message);
    return err instanceof Error ? err : new Error(String(err));
  }

  /** A 403: tells a dead token apart from a policy that lacks the capability. */
  async #forbidden(token: string, what: string, capabilityPath: string, doneNothing: string): Promise<VaultSealerError> {
    let tokenAlive: boolean | undefined;
    try {
      await this.#client.request('GET', 'auth/token/lookup-self', { token });
      tokenAlive = true;
    } catch (err) {
      if (err instanceof VaultHttpError && err.status === 403) tokenAlive = false;
    }
    if (tokenAlive === false) {
      if (this.#token === token) this.#tokenInvalid = true;
      return new VaultSealerError(
        'token-rejected',
        `Vault rejected the token of role ${this.#roleName} (revoked or expired) on ${capabilityPath}; ${doneNothing}. ` +
          'The node logs in again with its AppRole on its next Vault call',
      );
    }
    const sure = tokenAlive === true ? '' : ' (or its token was revoked)';
    return new VaultSealerError('permission-denied', `token for role ${this.#roleName} lacks ${what}${sure}: ${POLICY_HINT}`);
  }

  // ---- Transit calls -----------------------------------------------------------------------

  #opPath(op: TransitOp): string {
    return `${this.#mount}/${op}/${this.transitKey}`;
  }

  #capability(op: TransitOp): string {
    return `${op} on ${this.#keyPath} (Vault denied update on ${this.#opPath(op)})`;
  }

  #itemError(op: TransitOp, item: TransitItem, message: string): Error {
    if (message === KEY_NOT_FOUND) {
      return new VaultSealerError('key-missing', `Transit key ${this.#keyPath} does not exist at Vault ${this.address}: create it with deploy/vault/setup.sh (aes256-gcm96, derived=true)`);
    }
    if (op !== 'encrypt' && message === TOO_OLD) {
      const v = wrappedKeyVersion(item.input) ?? 0;
      return new VaultCiphertextTooOldError(
        `data key of ${item.label} is wrapped with ${this.#keyPath} version ${v}, below the key's min_decryption_version: ` +
          `rewrap every record before raising min_decryption_version (docs/vault.md), or lower it back to ${v} to read this record`,
        v,
      );
    }
    if (op !== 'encrypt' && /^(cipher: |invalid ciphertext)/.test(message)) {
      return new SealError(`Vault could not unwrap the data key of ${item.label} with ${this.#keyPath} (wrong record, another key or tampered): ${message}`);
    }
    if (/missing 'context' for key derivation/.test(message)) return this.#notDerived();
    return new VaultSealerError('vault-error', `Vault ${op} with ${this.#keyPath} failed for ${item.label}: ${message}`);
  }

  /** One Transit call for `items` (batch_input when more than one). Per-item outcomes, in order. */
  async #transit(op: TransitOp, items: TransitItem[]): Promise<(TransitOk | Error)[]> {
    const token = await this.#currentToken();
    const field = op === 'encrypt' ? 'plaintext' : 'ciphertext';
    const batch = items.length > 1;
    const body = batch
      ? { batch_input: items.map((i) => ({ [field]: i.input, context: i.context })) }
      : { [field]: items[0]!.input, context: items[0]!.context };
    this.#stats.transitRequests++;
    if (batch) this.#stats.batchedItems += items.length;
    let res: { data?: Record<string, unknown> } | string;
    try {
      res = await this.#client.request('POST', this.#opPath(op), { token, body, batch });
    } catch (err) {
      const nothing = op === 'decrypt' ? 'nothing was read or changed' : 'the operation did not run and nothing was written';
      if (err instanceof VaultHttpError && err.status === 403) throw await this.#forbidden(token, this.#capability(op), this.#opPath(op), nothing);
      // A 400 without batch_results: the whole request was refused (e.g. the key does not exist).
      if (err instanceof VaultHttpError && err.status === 400) return items.map((i) => this.#itemError(op, i, err.errors.join('; ')));
      if (err instanceof VaultSealedError) {
        throw new VaultSealerError('sealed', `Vault at ${this.address} is sealed; unseal it (vault operator unseal): ${op} with ${this.#keyPath} did not run, nothing was written`);
      }
      throw this.#mapTransport(err, `${op} with ${this.#keyPath}`);
    }
    this.#verifiedAt = this.#clock.now();
    const data = (typeof res === 'object' && res !== null ? res.data : undefined) ?? {};
    const outKey = op === 'decrypt' ? 'plaintext' : 'ciphertext';
    const results: Record<string, unknown>[] = batch
      ? Array.isArray(data['batch_results'])
        ? (data['batch_results'] as Record<string, unknown>[])
        : []
      : [data];
    if (results.length !== items.length) {
      throw new VaultSealerError('vault-error', `Vault ${op} with ${this.#keyPath} returned ${results.length} results for ${items.length} items`);
    }
    return results.map((r, i) => {
      const error = typeof r['error'] === 'string' ? r['error'] : '';
      if (error) return this.#itemError(op, items[i]!, error);
      const output = r[outKey];
      if (typeof output !== 'string' || (op !== 'decrypt' && !CIPHERTEXT_RE.test(output))) {
        return new VaultSealerError('vault-error', `Vault ${op} with ${this.#keyPath} returned no ${outKey} for ${items[i]!.label}`);
      }
      const keyVersion = op === 'decrypt' ? undefined : (wrappedKeyVersion(output) ?? num(r['key_version']));
      if (keyVersion !== undefined) this.#latestVersion = Math.max(this.#latestVersion, keyVersion);
      return keyVersion === undefined ? { output } : { output, keyVersion };
    });
  }

  async #single(op: TransitOp, item: TransitItem): Promise<TransitOk> {
    const [r] = await this.#transit(op, [item]);
    if (r instanceof Error) throw r;
    return r!;
  }

  /** Queues one item; items queued in the same event-loop turn go out as one batch_input request. */
  #enqueue(op: TransitOp, item: TransitItem): Promise<TransitOk> {
    return new Promise<TransitOk>((resolve, reject) => {
      this.#queues[op].push({ item, resolve, reject });
      if (!this.#scheduled[op]) {
        this.#scheduled[op] = true;
        setImmediate(() => this.#drain(op));
      }
    });
  }

  #drain(op: TransitOp): void {
    this.#scheduled[op] = false;
    const queue = this.#queues[op];
    while (queue.length > 0) {
      const chunk = queue.splice(0, this.#maxBatch);
      this.#transit(
        op,
        chunk.map((p) => p.item),
      ).then(
        (results) => results.forEach((r, i) => (r instanceof Error ? chunk[i]!.reject(r) : chunk[i]!.resolve(r))),
        (err: unknown) => chunk.forEach((p) => p.reject(err)),
      );
    }
  }

  /** Runs `items` through `op` in chunks of maxBatch; throws the first item error. */
  async #many(op: TransitOp, items: TransitItem[]): Promise<TransitOk[]> {
    const out: TransitOk[] = [];
    for (let i = 0; i < items.length; i += this.#maxBatch) {
      const results = await this.#transit(op, items.slice(i, i + this.#maxBatch));
      for (const r of results) {
        if (r instanceof Error) throw r;
        out.push(r);
      }
    }
    return out;
  }

  // ---- access check ----------------------------------------------------------------------

  /**
   * Proves Vault still accepts this node's credentials, at most once per `maxAgeMs` (any call Vault
   * accepted counts): `auth/token/lookup-self`, and on a rejected token an AppRole login on the spot,
   * so a revoked token with a working secret id costs nothing. Rejects with 'login-failed' once Vault
   * refuses the secret id too, and with 'unreachable' / 'sealed' when Vault cannot answer. The node
   * asks before it signs from shares it holds in memory: revoking its Vault access stops its signing.
   */
  checkCredentials(maxAgeMs = 5_000): Promise<void> {
    if (this.#refused) return Promise.reject(this.#refused);
    if (this.#clock.now() - this.#verifiedAt < maxAgeMs) return Promise.resolve();
    this.#checking ??= this.#lookupSelf().finally(() => {
      this.#checking = null;
    });
    return this.#checking;
  }

  async #lookupSelf(): Promise<void> {
    const token = await this.#currentToken();
    try {
      await this.#client.request('GET', 'auth/token/lookup-self', { token });
      this.#verifiedAt = this.#clock.now();
    } catch (err) {
      if (!(err instanceof VaultHttpError && err.status === 403)) throw this.#mapTransport(err, 'look up its token');
      if (this.#token === token) this.#tokenInvalid = true;
      await this.#relogin('token was rejected');
    }
  }

  // ---- Sealer ----------------------------------------------------------------------------

  async wrapKey(dataKey: Uint8Array, context: string): Promise<Uint8Array> {
    if (!(dataKey instanceof Uint8Array) || dataKey.length !== DATA_KEY_LENGTH) throw new RangeError(`data key must be ${DATA_KEY_LENGTH} bytes`);
    const r = await this.#enqueue('encrypt', { input: b64(dataKey), context: b64(CONTEXT_PREFIX + context), label: `record ${context}` });
    return utf8.encode(r.output);
  }

  async unwrapKey(wrapped: Uint8Array, context: string): Promise<Uint8Array> {
    const ciphertext = asCiphertext(wrapped);
    const r = await this.#enqueue('decrypt', { input: ciphertext, context: b64(CONTEXT_PREFIX + context), label: `record ${context}` });
    return this.#dataKey(r.output);
  }

  #dataKey(b64Plaintext: string): Uint8Array {
    const buf = Buffer.from(b64Plaintext, 'base64');
    try {
      if (buf.length !== DATA_KEY_LENGTH) throw new SealError('unwrapped data key has the wrong length');
      return new Uint8Array(buf); // a copy; the Buffer is wiped below
    } finally {
      wipe(buf);
    }
  }

  /** Wrapped with the newest Transit key version this sealer knows (call refreshKeyVersion after a rotation). */
  isCurrent(wrapped: Uint8Array): boolean {
    const v = wrappedKeyVersion(wrapped);
    return v !== undefined && this.#latestVersion > 0 && v >= this.#latestVersion;
  }

  /** `transit/rewrap`: the data key never leaves Vault. */
  async rewrap(wrapped: Uint8Array, context: string): Promise<Uint8Array> {
    const ciphertext = asCiphertext(wrapped);
    const r = await this.#enqueue('rewrap', { input: ciphertext, context: b64(CONTEXT_PREFIX + context), label: `record ${context}` });
    return utf8.encode(r.output);
  }

  /** Batch forms (one batch_input request per maxBatch items). */
  async wrapKeys(items: { dataKey: Uint8Array; context: string }[]): Promise<Uint8Array[]> {
    for (const { dataKey } of items) {
      if (!(dataKey instanceof Uint8Array) || dataKey.length !== DATA_KEY_LENGTH) throw new RangeError(`data key must be ${DATA_KEY_LENGTH} bytes`);
    }
    const out = await this.#many(
      'encrypt',
      items.map(({ dataKey, context }) => ({ input: b64(dataKey), context: b64(CONTEXT_PREFIX + context), label: `record ${context}` })),
    );
    return out.map((r) => utf8.encode(r.output));
  }

  async unwrapKeys(items: { wrapped: Uint8Array; context: string }[]): Promise<Uint8Array[]> {
    const out = await this.#many(
      'decrypt',
      items.map(({ wrapped, context }) => ({ input: asCiphertext(wrapped), context: b64(CONTEXT_PREFIX + context), label: `record ${context}` })),
    );
    return out.map((r) => this.#dataKey(r.output));
  }

  /** `transit/rewrap` with batch_input: new `vault:vN:` ciphertexts for the latest key version, in order. */
  async rewrapKeys(items: { wrapped: Uint8Array; context: string }[]): Promise<Uint8Array[]> {
    const out = await this.#many(
      'rewrap',
      items.map(({ wrapped, context }) => ({ input: asCiphertext(wrapped), context: b64(CONTEXT_PREFIX + context), label: `record ${context}` })),
    );
    return out.map((r) => utf8.encode(r.output));
  }

  // ---- key versions and rotation -------------------------------------------------------------

  async #readKey(): Promise<TransitKeyInfo> {
    const token = await this.#currentToken();
    try {
      return parseKeyInfo(this.transitKey, await this.#client.request('GET', this.#keyPath, { token }));
    } catch (err) {
      if (err instanceof VaultHttpError && err.status === 404) {
        throw new VaultSealerError('key-missing', `Transit key ${this.#keyPath} does not exist at Vault ${this.address}: create it with deploy/vault/setup.sh (aes256-gcm96, derived=true)`);
      }
      if (err instanceof VaultHttpError && err.status === 403) throw await this.#forbidden(token, `read on ${this.#keyPath}`, this.#keyPath, 'nothing was changed');
      throw this.#mapTransport(err, `read ${this.#keyPath}`);
    }
  }

  /** Reads the key (versions, min_decryption_version). Needs read on transit/keys/<key>. */
  async keyInfo(): Promise<TransitKeyInfo> {
    const info = await this.#readKey();
    this.#noteKey(info);
    return info;
  }

  /**
   * Learns the latest key version after an operator rotated the key: reads the key, or, when the
   * policy does not grant read, encrypts a probe (Transit always encrypts with the latest version).
   */
  async refreshKeyVersion(): Promise<number> {
    try {
      return (await this.keyInfo()).latestVersion;
    } catch (err) {
      if (!(err instanceof VaultSealerError && err.code === 'permission-denied')) throw err;
    }
    const r = await this.#single('encrypt', { input: b64(randomBytes(DATA_KEY_LENGTH)), context: b64(PROBE_CONTEXT), label: 'version probe' });
    return r.keyVersion ?? this.#latestVersion;
  }

  async #adminWrite(suffix: string, body: object, what: string): Promise<unknown> {
    const token = await this.#currentToken();
    const p = `${this.#keyPath}/${suffix}`;
    try {
      return await this.#client.request('POST', p, { token, body });
    } catch (err) {
      if (err instanceof VaultHttpError && err.status === 403) {
        const e = await this.#forbidden(token, `update on ${p} (${what})`, p, 'nothing was changed');
        if (e.code !== 'permission-denied') throw e;
        throw new VaultSealerError('permission-denied', `${e.message}; ${what} is an operator action: use a token with policies/custody-operator.hcl`);
      }
      if (err instanceof VaultHttpError && err.status === 400) throw new VaultSealerError('vault-error', `${what} of ${this.#keyPath} refused: ${err.errors.join('; ')}`);
      throw this.#mapTransport(err, what);
    }
  }

  /** `transit/keys/<key>/rotate` (operator capability). Returns the new latest version. */
  async rotate(): Promise<number> {
    await this.#adminWrite('rotate', {}, 'rotation');
    return this.refreshKeyVersion();
  }

  /** `transit/keys/<key>/config` min_decryption_version (operator capability). Vault refuses v > latest. */
  async setMinDecryptionVersion(version: number): Promise<void> {
    if (!Number.isSafeInteger(version) || version < 1) throw new RangeError('min_decryption_version must be a positive integer');
    await this.#adminWrite('config', { min_decryption_version: version }, 'setting min_decryption_version');
    this.#minDecryptionVersion = version;
  }

  /** Rewraps Transit ciphertexts (batch) to the latest key version; the inverse of nothing: plaintext never leaves Vault. */
  async rewrapCiphertexts(items: { ciphertext: string; context: string }[]): Promise<string[]> {
    const out = await this.rewrapKeys(items.map((i) => ({ wrapped: utf8.encode(i.ciphertext), context: i.context })));
    return out.map((w) => fromUtf8.decode(w));
  }

  // ---- close -----------------------------------------------------------------------------

  /** Stops renewal and revokes the token (best effort). Later calls fail with code 'closed'. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer();
    await this.#login?.catch(() => undefined);
    const token = this.#token;
    this.#token = null;
    if (token && this.#revokeOnClose && !this.#tokenInvalid) {
      await this.#client.request('POST', 'auth/token/revoke-self', { token }).catch(() => undefined);
    }
  }
}

// ---- operators -------------------------------------------------------------------------------

export interface VaultTransitAdminOptions {
  address: string;
  /** An operator token (policies/custody-operator.hcl): from `vault login`, an operator AppRole or OIDC. */
  token: string;
  transitMount?: string;
  namespace?: string;
  caCert?: string | Buffer;
  requestTimeoutMs?: number;
}

/**
 * Operator side of rotation: rotate a node's Transit key, read its versions, raise
 * min_decryption_version once every record is rewrapped. Rewrapping itself runs on each node
 * (rewrapSealedStore), because only the node holds its sealed records.
 */
export class VaultTransitAdmin {
  readonly #client: VaultClient;
  readonly #token: string;
  readonly #mount: string;

  constructor(opts: VaultTransitAdminOptions) {
    this.#client = new VaultClient({
      address: opts.address,
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
      ...(opts.caCert ? { caCert: opts.caCert } : {}),
      timeoutMs: opts.requestTimeoutMs ?? 10_000,
    });
    this.#token = opts.token;
    this.#mount = (opts.transitMount ?? 'transit').replace(/^\/+|\/+$/g, '');
  }

  async #call(method: 'GET' | 'POST', key: string, suffix: string, body: object | undefined, what: string): Promise<TransitKeyInfo> {
    if (!KEY_NAME_RE.test(key)) throw new VaultSealerError('config', `invalid Transit key name ${JSON.stringify(key.slice(0, 64))}`);
    const p = `${this.#mount}/keys/${key}${suffix}`;
    try {
      const res = await this.#client.request(method, p, { token: this.#token, ...(body ? { body } : {}) });
      // Recent Vault versions answer rotate/config with the key; older ones with 204.
      if (typeof res === 'object' && res !== null && (res as { data?: unknown }).data) return parseKeyInfo(key, res);
      return parseKeyInfo(key, await this.#client.request('GET', `${this.#mount}/keys/${key}`, { token: this.#token }));
    } catch (err) {
      if (err instanceof VaultHttpError && err.status === 403) {
        throw new VaultSealerError('permission-denied', `operator token lacks ${method === 'GET' ? 'read' : 'update'} on ${p} (${what}) or has expired: use a token with policies/custody-operator.hcl (deploy/vault/)`);
      }
      if (err instanceof VaultHttpError && err.status === 404) {
        throw new VaultSealerError('key-missing', `Transit key ${this.#mount}/keys/${key} does not exist at Vault ${this.#client.address}`);
      }
      if (err instanceof VaultHttpError && err.status === 400) throw new VaultSealerError('vault-error', `${what} of ${this.#mount}/keys/${key} refused by Vault: ${err.errors.join('; ')}`);
      if (err instanceof VaultUnreachableError) throw new VaultSealerError('unreachable', err.message);
      if (err instanceof VaultSealedError) throw new VaultSealerError('sealed', err.message);
      throw err;
    }
  }

  readKey(key: string): Promise<TransitKeyInfo> {
    return this.#call('GET', key, '', undefined, 'reading the key');
  }

  /** `transit/keys/<key>/rotate`: new encryptions use the new version; old versions still decrypt. */
  rotate(key: string): Promise<TransitKeyInfo> {
    return this.#call('POST', key, '/rotate', {}, 'rotation');
  }

  /** Only after every node reports no record below `version` (censusWrappedKeys). Vault refuses a version above latest. */
  setMinDecryptionVersion(key: string, version: number): Promise<TransitKeyInfo> {
    if (!Number.isSafeInteger(version) || version < 1) throw new RangeError('min_decryption_version must be a positive integer');
    return this.#call('POST', key, '/config', { min_decryption_version: version }, 'setting min_decryption_version');
  }
}

// ---- rewrapping a node's records ---------------------------------------------------------------

/** Must match nodes/store/sealed-file-store.ts (see the note in the reply: export decodeRecord there). */
const RECORD_MAGIC = Uint8Array.of(0x43, 0x53, 0x52, 0x01);
const RECORD_SUFFIX = '.rec';

export interface WrappedKeyCensus {
  /** Record files examined. */
  records: number;
  /** Count of records per Transit key version. */
  byVersion: Record<number, number>;
  /** Records whose wrapped key is not a Transit ciphertext (e.g. still sealed by the local keystore). */
  foreign: number;
  /** Files that are not records of the known format. */
  unreadable: number;
  /** Lowest version found, or undefined when there is no Transit-wrapped record. */
  oldestVersion: number | undefined;
}

/**
 * Read-only census of a SealedFileStore folder: which Transit key version wraps each record's data
 * key. An operator raises min_decryption_version to N only once every node reports oldestVersion >= N.
 */
export async function censusWrappedKeys(storeDir: string): Promise<WrappedKeyCensus> {
  const census: WrappedKeyCensus = { records: 0, byVersion: {}, foreign: 0, unreadable: 0, oldestVersion: undefined };
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && e.name.endsWith(RECORD_SUFFIX)) {
        census.records++;
        const raw = await fs.readFile(p);
        if (raw.length < 6 || !RECORD_MAGIC.every((b, i) => raw[i] === b)) {
          census.unreadable++;
          continue;
        }
        const len = (raw[4]! << 8) | raw[5]!;
        const v = raw.length >= 6 + len ? wrappedKeyVersion(raw.subarray(6, 6 + len)) : undefined;
        if (v === undefined) {
          census.foreign++;
          continue;
        }
        census.byVersion[v] = (census.byVersion[v] ?? 0) + 1;
        census.oldestVersion = census.oldestVersion === undefined ? v : Math.min(census.oldestVersion, v);
      }
    }
  };
  await walk(path.resolve(storeDir));
  return census;
}

export interface RewrapReport extends RewrapResult {
  /** The Transit key version every record is now wrapped with. */
  latestVersion: number;
  before: WrappedKeyCensus;
  after: WrappedKeyCensus;
}

/**
 * Rewraps every record of `store` to the latest Transit key version: learns the version (after an
 * operator rotated the key), then runs `store.rewrapAll`, which holds the store's per-record lock,
 * calls `transit/rewrap` and replaces each file atomically (record bodies untouched, the data key
 * never leaves Vault). Safe while the node serves. Returns a census before and after; throws if
 * any record is still below the latest version afterwards.
 */
export async function rewrapSealedStore(store: SealedFileStore, sealer: VaultSealer, prefix = ''): Promise<RewrapReport> {
  const latestVersion = await sealer.refreshKeyVersion();
  const before = await censusWrappedKeys(store.dir);
  const result = await store.rewrapAll(prefix);
  const after = await censusWrappedKeys(store.dir);
  if (prefix === '' && after.oldestVersion !== undefined && after.oldestVersion < latestVersion) {
    throw new VaultSealerError(
      'vault-error',
      `rewrap of ${store.dir} left records below ${sealer.transitKey} version ${latestVersion} (oldest v${after.oldestVersion}); run it again before raising min_decryption_version`,
    );
  }
  return { ...result, latestVersion, before, after };
}
