/**
 * A thin, secret-safe layer over `node-vault` (DESIGN.md section 7). It exists for three reasons:
 *
 * - Errors. node-vault rejects with axios errors (network) or `ApiResponseError` (HTTP status).
 *   Both carry the request: axios' `config.headers` holds the `X-Vault-Token` and `config.data`
 *   the JSON body, which for Transit is a base64 data key. Nothing here is ever rethrown or attached
 *   as a `cause`; callers get `VaultUnreachableError`, `VaultSealedError` or `VaultHttpError`,
 *   whose messages hold the Vault address, the API path and Vault's own error strings only.
 * - Logging. node-vault calls `debug('write %o to %s', data, path)`, so `DEBUG=node-vault` would
 *   print plaintexts. The client is built with a no-op `debug`.
 * - Tokens. The token is passed per request (header) instead of living in `client.token`, and
 *   `VAULT_TOKEN` from the environment is never picked up: a login request carries no token.
 */
import nodeVault from 'node-vault';

export class VaultError extends Error {
  override readonly name: string = 'VaultError';
}

/** No HTTP answer at all: connection refused, DNS failure, TLS failure, timeout. */
export class VaultUnreachableError extends VaultError {
  override readonly name: string = 'VaultUnreachableError';
}

/** Vault answered 503 "Vault is sealed" (or sys/health reported sealed). */
export class VaultSealedError extends VaultError {
  override readonly name: string = 'VaultSealedError';
}

/** Vault answered with an error status. `errors` are Vault's own strings (`{"errors": [...]}`). */
export class VaultHttpError extends VaultError {
  override readonly name: string = 'VaultHttpError';
  constructor(
    message: string,
    readonly status: number,
    readonly path: string,
    readonly errors: readonly string[],
  ) {
    super(message);
  }
}

export interface VaultClientOptions {
  /** e.g. `https://vault.internal:8200` (no trailing `/v1`). */
  address: string;
  /** Vault Enterprise / HCP namespace, sent as X-Vault-Namespace. */
  namespace?: string;
  /** PEM CA bundle that signed Vault's TLS certificate. */
  caCert?: string | Buffer;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
}

export interface VaultRequest {
  /** Omit for unauthenticated endpoints (sys/health, auth/approle/login). */
  token?: string;
  body?: unknown;
  /**
   * Transit batch calls: Vault answers 400 when any item failed but still returns every item's
   * result in `data.batch_results`. With `batch`, such an answer resolves (the caller inspects each
   * item) instead of rejecting, so no error object ever holds the other items' results.
   */
  batch?: boolean;
}

export interface HealthStatus {
  initialized?: boolean;
  sealed?: boolean;
  standby?: boolean;
  version?: string;
}

interface NodeVaultResponseError {
  response: { statusCode: number; body: unknown };
}

function isResponseError(err: unknown): err is NodeVaultResponseError {
  const r = (err as { response?: { statusCode?: unknown } } | null)?.response;
  return typeof r === 'object' && r !== null && typeof r.statusCode === 'number';
}

function vaultErrors(body: unknown): string[] {
  const errors = (body as { errors?: unknown } | null)?.errors;
  return Array.isArray(errors) ? errors.filter((e): e is string => typeof e === 'string') : [];
}

/** A network failure in words, without the request it belonged to. */
function describeNetworkError(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown; errors?: unknown } | null;
  const message = typeof e?.message === 'string' ? e.message : '';
  const code = typeof e?.code === 'string' ? e.code : '';
  if (message) return message;
  // Node's happy-eyeballs AggregateError has an empty message; its parts name the addresses.
  if (Array.isArray(e?.errors)) {
    const parts = e.errors.map((x: { message?: unknown }) => (typeof x?.message === 'string' ? x.message : '')).filter(Boolean);
    if (parts.length > 0) return parts.join('; ');
  }
  return code || 'unknown network error';
}

function isNetworkError(err: unknown): boolean {
  const e = err as { isAxiosError?: unknown; code?: unknown } | null;
  return e?.isAxiosError === true || typeof e?.code === 'string';
}

export class VaultClient {
  readonly address: string;
  readonly #nv: nodeVault.client;
  readonly #timeoutMs: number;

  constructor(opts: VaultClientOptions) {
    let url: URL;
    try {
      url = new URL(opts.address);
    } catch {
      throw new VaultError(`invalid Vault address ${JSON.stringify(opts.address)}: expected e.g. https://vault.example:8200`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new VaultError(`invalid Vault address ${opts.address}: use http:// or https://`);
    if (url.username || url.password) throw new VaultError('the Vault address must not carry credentials');
    this.address = url.origin;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
    this.#nv = nodeVault({
      endpoint: this.address,
      apiVersion: 'v1',
      // A no-op: node-vault's debug output includes request bodies (data keys).
      debug: () => undefined,
      ...(opts.namespace ? { namespace: opts.namespace } : {}),
      ...(opts.caCert ? { requestOptions: { ca: opts.caCert } } : {}),
    });
    // node-vault falls back to VAULT_TOKEN / VAULT_PREFIX from the environment; this client takes
    // neither: tokens travel per request, paths are exactly what the caller names.
    this.#nv.token = '';
    (this.#nv as unknown as { pathPrefix: string }).pathPrefix = '';
  }

  /**
   * One API call. `path` has no leading slash and no `/v1` (e.g. `transit/encrypt/k`). Resolves
   * with Vault's JSON body (`''` for 204).
   */
  async request<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, req: VaultRequest = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (req.token) headers['X-Vault-Token'] = req.token;
    const options: nodeVault.RequestOption = { path: `/${path}`, method, headers, timeout: this.#timeoutMs };
    if (req.body !== undefined) options['json'] = req.body;
    const apiPath = path.split('?')[0]!;
    try {
      return (await this.#nv.request(options)) as T;
    } catch (err) {
      if (isResponseError(err)) {
        const { statusCode, body } = err.response;
        const data = (body as { data?: { batch_results?: unknown } } | null)?.data;
        if (req.batch && statusCode === 400 && Array.isArray(data?.batch_results)) return body as T;
        const errors = vaultErrors(body);
        if (statusCode === 503 && errors.some((e) => /sealed/i.test(e))) {
          throw new VaultSealedError(`Vault at ${this.address} is sealed; unseal it (vault operator unseal)`);
        }
        const detail = errors.length > 0 ? errors.join('; ') : `HTTP ${statusCode}`;
        throw new VaultHttpError(`Vault at ${this.address} answered ${statusCode} on ${apiPath}: ${detail}`, statusCode, apiPath, errors);
      }
      if (isNetworkError(err)) {
        throw new VaultUnreachableError(`Vault at ${this.address} is unreachable: ${describeNetworkError(err)}`);
      }
      // node-vault's own validation errors (tv4) and the like: no request content in them.
      throw new VaultError(`request to Vault at ${this.address} (${apiPath}) failed: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  /**
   * `GET sys/health`. Vault answers 200 active, 429 standby, 472/473 DR / performance standby,
   * 501 not initialised, 503 sealed; node-vault hands back the body for all of them.
   */
  async health(): Promise<HealthStatus> {
    const body = await this.request<HealthStatus | string>('GET', 'sys/health');
    return typeof body === 'object' && body !== null ? body : {};
  }
}
