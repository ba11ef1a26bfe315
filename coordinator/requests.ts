/**
 * The sign request lifecycle, shared by gRPC (Sign, SignBatch) and the NATS pipeline:
 *
 *   received -> policy_checked -> signing -> signed | failed        (policy adds the other states)
 *
 * Every transition is an audit record. Accepting is one transaction for a whole batch; single
 * requests that arrive together, and the completions of requests signed meanwhile, share one
 * (store/group-commit.ts). From acceptance on
 * the request belongs to this coordinator under a lease. A coordinator that dies leaves requests
 * whose lease expires; any coordinator (or the same one restarted, with the same id) claims and
 * finishes them. Finishing is a compare-and-set on (status signing, owner me), so when two
 * coordinators ever raced for one request only one result is stored and published.
 */
import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { checkMessageLength } from '../crypto/schemes.js';
import { bytesEqual } from '../crypto/transcript.js';
import { RpcError } from '../runtime/grpc.js';
import type { Logger } from '../runtime/log.js';
import { decodeUnsignedEthTx, EthTxError, evaluate, intentJson, intentOfPayload, signedEthTx, velocityKeyId, velocityKeys, type Usage } from '../policy/index.js';
import type { Policies } from './policies.js';
import type { PolicyContext } from './signers.js';
import { listApprovals, velocityUsage } from './store/approvals.js';
import type { LoadedKeyset, Signers } from './signers.js';
import { appendAuditAfter, auditHead, type AuditEntry } from './store/audit.js';
import type { Db, Queryable } from './store/db.js';
import { durably } from './store/durably.js';
import { GroupCommit } from './store/group-commit.js';
import {
  claimUnfinished,
  completeSignRequests,
  createSignRequests,
  DuplicateKeyError,
  findSignRequestByIdempotencyKey,
  getSignRequest,
  type NewSignRequest,
  type PolicyFields,
  type SignRequestCompletion,
  type SignRequestRow,
} from './store/repo.js';

export interface SubmitItem {
  /** May be empty when walletId is given (the wallet's keyset is used). */
  keysetId: string;
  /** Sign with this HD wallet's derived key. */
  walletId?: string;
  /** May be empty when ethTx is given (its signing hash is signed). */
  digest: Uint8Array;
  /** An unsigned Ethereum transaction: decoded, judged by the policy, and its signing hash signed. */
  ethTx?: Uint8Array;
  idempotencyKey: string;
}

export interface Submitter {
  /** Audit actor, e.g. "payment:shop-1". */
  actor: string;
  source: 'grpc' | 'nats';
  /** Where results go (the NATS client id), or the caller's certificate name. */
  clientId: string;
}

export type Accepted = { request: SignRequestRow; fresh: boolean } | { error: RpcError };

interface Verdict {
  status: 'signing' | 'rejected' | 'awaiting_approvals';
  reason?: string;
  fields: PolicyFields;
  audit: Record<string, unknown>;
}

type Checked =
  | { ks: LoadedKeyset; requestHash: Uint8Array; walletId: string | null; derivationPath: string; digest: Uint8Array; payload: Uint8Array | null }
  | { error: RpcError };

/** One request to accept, checked, with who submitted it. */
interface Entry {
  item: SubmitItem;
  checked: Checked;
  who: Submitter;
}

/** A finished request's outcome and its audit record. */
interface Completion {
  outcome: SignRequestCompletion;
  audit: AuditEntry;
}

type Write = { accept: Entry } | { complete: Completion };
type Written = Accepted | SignRequestRow | undefined;

export interface RequestServiceOptions {
  /** Stable id of this coordinator: a restart with the same id resumes its own requests at once. */
  owner: string;
  leaseMs?: number;
  /** Called once a request this coordinator finished has been stored. */
  onFinished?: (row: SignRequestRow) => void;
  /** The policy (absent: every authenticated request is allowed, as before a policy exists). */
  policies?: Policies;
}

const MAX_KEY_LENGTH = 200;
/** How long a request waits for enough nodes; leases outlast it so no one else takes it meanwhile. */
const TRANSIENT_RETRY_MS = 45_000;
const DEFAULT_LEASE_MS = 120_000;
const TERMINAL = new Set(['signed', 'failed', 'rejected', 'expired']);

export const isTerminal = (row: SignRequestRow) => TERMINAL.has(row.status);

const reusedKey = (key: string) => new RpcError(status.ALREADY_EXISTS, `idempotency key ${key} was already used for a different request`);

export class RequestService {
  private readonly writes = new GroupCommit<Write, Written>((group) => this.writeGroup(group));
  private readonly inflight = new Map<string, Promise<SignRequestRow>>();
  private readonly leaseMs: number;
  private resumeTimer?: NodeJS.Timeout;

  constructor(
    private readonly db: Db,
    private readonly signing: Signers,
    private readonly log: Logger,
    private readonly opts: RequestServiceOptions,
  ) {
    this.leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  }

  /**
   * Validates and stores a batch of requests in one transaction. Repeats of an idempotency key with
   * the same content return the original request; with other content (or from another client),
   * ALREADY_EXISTS. Invalid items get their own error and do not affect the others.
   */
  async accept(items: readonly SubmitItem[], who: Submitter): Promise<Accepted[]> {
    const checked = await Promise.all(items.map((item) => this.check(item)));
    return this.insertRetrying(items.map((item, i) => ({ item, checked: checked[i]!, who })));
  }

  /**
   * Single requests (gRPC Sign) arriving together share one transaction (store/group-commit.ts),
   * together with the completions of requests signed meanwhile: one writer, so under load one
   * transaction and one audit append serve both.
   */
  private async acceptOne(item: SubmitItem, who: Submitter): Promise<Accepted> {
    return (await this.writes.submit({ accept: { item, checked: await this.check(item), who } })) as Accepted;
  }

  /**
   * Moves a request out of `signing` if this coordinator still owns it. Resolves with the new row,
   * or undefined when another coordinator took the request over (our result is then discarded).
   */
  private async complete(outcome: SignRequestCompletion, audit: AuditEntry): Promise<SignRequestRow | undefined> {
    return (await this.writes.submit({ complete: { outcome, audit } })) as SignRequestRow | undefined;
  }

  private async writeGroup(group: Write[]): Promise<PromiseSettledResult<Written>[]> {
    const split = (ws: Write[]) => ({
      entries: ws.flatMap((w) => ('accept' in w ? [w.accept] : [])),
      completions: ws.flatMap((w) => ('complete' in w ? [w.complete] : [])),
    });
    const pick = (ws: Write[], r: { accepted: Accepted[]; completed: (SignRequestRow | undefined)[] }): Written[] => {
      let a = 0;
      let c = 0;
      return ws.map((w) => ('accept' in w ? r.accepted[a++]! : r.completed[c++]));
    };
    try {
      const { entries, completions } = split(group);
      return pick(group, await this.writeRetrying(entries, completions)).map((value) => ({ status: 'fulfilled', value }));
    } catch (e) {
      if (group.length === 1) throw e;
      // One item must not fail the others: each on its own, as if they had come one by one.
      return Promise.allSettled(group.map(async (w) => {
        const { entries, completions } = split([w]);
        return pick([w], await this.writeRetrying(entries, completions))[0];
      }));
    }
  }

  private async insertRetrying(entries: Entry[]): Promise<Accepted[]> {
    return (await this.writeRetrying(entries, [])).accepted;
  }

  private async writeRetrying(entries: Entry[], completions: Completion[]): Promise<{ accepted: Accepted[]; completed: (SignRequestRow | undefined)[] }> {
    for (let round = 1; ; round++) {
      try {
        return await this.write(entries, completions);
      } catch (e) {
        // Another coordinator inserted one of these keys at the same moment: a re-run sees its row.
        if (!(e instanceof DuplicateKeyError) || round >= 3) throw e;
      }
    }
  }

  private write(entries: readonly Entry[], completions: readonly Completion[]): Promise<{ accepted: Accepted[]; completed: (SignRequestRow | undefined)[] }> {
    return durably(this.log, 'write requests', () =>
      this.db.tx(async (q) => {
        // Statements that need no earlier result go out together (the database thread and pg run
        // them in order): the audit head now, the inserts together with the completions below.
        const head = auditHead(q);
        head.catch(() => undefined); // awaited below; a body that fails first must not leave it unhandled
        const out: Accepted[] = [];
        const audits: AuditEntry[] = [];
        // Keys used earlier in this group: a repeat is answered like existing() would once the row is in.
        const keys = new Map<string, { actor: string; hash: Uint8Array; accepted: { request: SignRequestRow; fresh: boolean } }>();
        // Rows go in with one INSERT (store/repo.ts createSignRequests); the objects in `out` get them then.
        const rows: NewSignRequest[] = [];
        const slots: { request: SignRequestRow; fresh: boolean }[] = [];
        const repeats: { of: { request: SignRequestRow }; repeat: { request: SignRequestRow } }[] = [];
        const flush = async () => {
          const created = await createSignRequests(q, rows);
          created.forEach((row, i) => (slots[i]!.request = row));
          rows.length = 0;
          slots.length = 0;
        };
        const now = new Date();
        for (const { item, checked: c, who } of entries) {
          if ('error' in c) {
            out.push(c);
            // Refused before it became a request (malformed, unknown keyset, a transaction that is not
            // what the digest says): on the record all the same, with who tried and why.
            audits.push({
              actor: who.actor,
              action: 'sign.refused',
              subject: item.walletId || item.keysetId || 'unknown',
              details: { code: status[c.error.code] ?? String(c.error.code), message: c.error.message.slice(0, 300), source: who.source },
            });
            continue;
          }
          const key = item.idempotencyKey;
          const inGroup = key ? keys.get(key) : undefined;
          if (inGroup) {
            const same = inGroup.actor === who.actor && bytesEqual(inGroup.hash, c.requestHash);
            const repeat = { request: undefined as unknown as SignRequestRow, fresh: false };
            out.push(same ? repeat : { error: reusedKey(key) });
            // Its row exists once the group's rows are in.
            if (same) repeats.push({ of: inGroup.accepted, repeat });
            continue;
          }
          const earlier = key ? await this.existing(q, key, c.requestHash, who) : undefined;
          if (earlier) {
            out.push('error' in earlier ? earlier : { request: earlier.request, fresh: false });
            continue;
          }
          const requestId = randomUUID();
          // Velocity sums must see every request accepted before this one, in this group too.
          if (rows.length && this.opts.policies?.get()) await flush();
          const verdict = await this.judge(q, c, now);
          rows.push({
            requestId,
            keysetId: c.ks.row.keysetId,
            scheme: c.ks.row.scheme,
            digest: c.digest,
            idempotencyKey: key || null,
            requestHash: c.requestHash,
            status: verdict.status,
            createdBy: who.actor,
            createdAt: now,
            source: who.source,
            clientId: who.clientId,
            owner: this.opts.owner,
            leaseUntil: new Date(now.getTime() + this.leaseMs),
            walletId: c.walletId,
            derivationPath: c.derivationPath,
            policy: verdict.fields,
          });
          const accepted = { request: undefined as unknown as SignRequestRow, fresh: true };
          slots.push(accepted);
          out.push(accepted);
          if (key) keys.set(key, { actor: who.actor, hash: c.requestHash, accepted });
          const base = { keysetId: c.ks.row.keysetId, source: who.source, ...(c.walletId ? { walletId: c.walletId, path: c.derivationPath } : {}) };
          audits.push(
            { actor: who.actor, action: 'sign.received', subject: requestId, details: { ...base, digest: bytesToHex(c.digest), idempotencyKey: key || null, ...(verdict.fields.intent ? { intent: verdict.fields.intent } : {}) } },
            { actor: 'coordinator', action: 'sign.policy_checked', subject: requestId, details: verdict.audit },
            verdict.status === 'signing'
              ? { actor: 'coordinator', action: 'sign.signing', subject: requestId, details: { owner: this.opts.owner } }
              : verdict.status === 'rejected'
                ? { actor: 'coordinator', action: 'sign.rejected', subject: requestId, details: { rule: verdict.fields.rule, reason: verdict.reason } }
                : { actor: 'coordinator', action: 'sign.awaiting_approvals', subject: requestId, details: { requirements: verdict.fields.requirements, expiresAt: verdict.fields.approvalExpiresAt?.toISOString() ?? null } },
          );
        }
        const [, completed] = await Promise.all([flush(), completeSignRequests(q, this.opts.owner, completions.map((c) => c.outcome), now)]);
        for (const r of repeats) r.repeat.request = r.of.request;
        completions.forEach((c, i) => completed[i] && audits.push(c.audit));
        await appendAuditAfter(q, await head, audits, now);
        return { accepted: out, completed };
      }),
    );
  }

  /**
   * The policy's verdict on an accepted request, inside the accepting transaction (velocity sums
   * read here conflict under SERIALIZABLE with a concurrent request, which then retries).
   */
  private async judge(q: Queryable, c: Extract<Checked, { ks: LoadedKeyset }>, now: Date): Promise<Verdict> {
    const policy = this.opts.policies?.get();
    if (!policy) {
      return { status: 'signing', fields: { payload: c.payload }, audit: { decision: 'allow', policy: 'none' } };
    }
    const intent = intentOfPayload(policy.doc, c.payload, c.digest);
    const target = { keysetId: c.ks.row.keysetId, walletId: c.walletId };
    const usage = new Map<string, Usage>();
    for (const k of velocityKeys(policy.doc, intent, target)) {
      // A wallet rule applied to a root-key request counts the keyset's root-key requests as one wallet.
      const scope = k.scope === 'wallet' && !c.walletId ? 'root' : k.scope;
      const id = scope === 'wallet' ? c.walletId! : c.ks.row.keysetId;
      usage.set(velocityKeyId(k), await velocityUsage(q, { ...k, scope, id, since: new Date(now.getTime() - k.windowSeconds * 1000) }));
    }
    const decision = evaluate(policy.doc, { intent, ...target, now, usage: (k) => usage.get(velocityKeyId(k)) ?? { amount: 0n, count: 0 } });
    const base = { payload: c.payload, intent: intentJson(intent), policyVersion: policy.version };
    const audit = { policyVersion: policy.version, policyHash: bytesToHex(policy.hash) };
    if (decision.effect === 'allow') return { status: 'signing', fields: { ...base, rule: decision.ruleId }, audit: { ...audit, decision: 'allow', rule: decision.ruleId } };
    if (decision.effect === 'deny') {
      return { status: 'rejected', reason: decision.reason, fields: { ...base, rule: decision.ruleId }, audit: { ...audit, decision: 'deny', rule: decision.ruleId, reason: decision.reason } };
    }
    const approvalExpiresAt = new Date(now.getTime() + policy.doc.approvalTtlSeconds * 1000);
    return {
      status: 'awaiting_approvals',
      fields: { ...base, rule: decision.ruleIds.join(','), requirements: decision.requirements, approvalExpiresAt },
      audit: { ...audit, decision: 'require_approvals', rules: decision.ruleIds, requirements: decision.requirements },
    };
  }

  private async check(item: SubmitItem): Promise<Checked> {
    try {
      if (!item.keysetId && !item.walletId) throw new RpcError(status.INVALID_ARGUMENT, 'keyset_id or wallet_id is required');
      if (item.idempotencyKey.length > MAX_KEY_LENGTH) throw new RpcError(status.INVALID_ARGUMENT, `idempotency_key is longer than ${MAX_KEY_LENGTH} characters`);
      const wallet = item.walletId ? await this.signing.loadWallet(item.walletId) : undefined;
      if (wallet && item.keysetId && item.keysetId !== wallet.keysetId) {
        throw new RpcError(status.INVALID_ARGUMENT, `wallet ${item.walletId} belongs to keyset ${wallet.keysetId}, not ${item.keysetId}`);
      }
      const keysetId = wallet?.keysetId ?? item.keysetId;
      const ks = await this.signing.loadKeyset(keysetId);
      const payload = item.ethTx?.length ? item.ethTx : null;
      const digest = payload ? this.ethDigest(ks, payload, item.digest) : item.digest;
      const lengthError = checkMessageLength(ks.row.scheme, digest.length);
      if (lengthError) throw new RpcError(status.INVALID_ARGUMENT, lengthError);
      // Root-key requests keep the hash they always had, so stored idempotency keys still match.
      const scope = (wallet ? `sign/v1/${keysetId}/wallet/${wallet.walletId}/` : `sign/v1/${keysetId}/`) + (payload ? `ethtx/${bytesToHex(sha256(payload))}/` : '');
      return { ks, requestHash: sha256(concatBytes(utf8ToBytes(scope), digest)), walletId: wallet?.walletId ?? null, derivationPath: wallet?.path ?? '', digest, payload };
    } catch (e) {
      if (e instanceof RpcError) return { error: e };
      throw e;
    }
  }

  /** The signing hash of an unsigned Ethereum transaction (which must decode); a digest given too must equal it. */
  private ethDigest(ks: LoadedKeyset, payload: Uint8Array, digest: Uint8Array): Uint8Array {
    if (ks.row.scheme !== 'ecdsa') throw new RpcError(status.INVALID_ARGUMENT, `Ethereum transactions are signed by ecdsa keysets; keyset ${ks.row.keysetId} is ${ks.row.scheme}`);
    let hash: Uint8Array;
    try {
      hash = decodeUnsignedEthTx(payload).signingHash;
    } catch (e) {
      if (e instanceof EthTxError) throw new RpcError(status.INVALID_ARGUMENT, `eth_tx: ${e.message}`);
      throw e;
    }
    if (digest.length && !bytesEqual(digest, hash)) throw new RpcError(status.INVALID_ARGUMENT, 'digest is not the signing hash of eth_tx (leave digest empty)');
    return hash;
  }

  private async existing(q: Queryable, key: string, requestHash: Uint8Array, who: Submitter): Promise<{ request: SignRequestRow } | { error: RpcError } | undefined> {
    const row = await findSignRequestByIdempotencyKey(q, key);
    if (!row) return undefined;
    if (!bytesEqual(row.requestHash, requestHash) || row.createdBy !== who.actor) return { error: reusedKey(key) };
    return { request: row };
  }

  /** Tells the result subscriber (the NATS pipeline) that a request reached a final state elsewhere (an approval, an expiry). */
  finished(row: SignRequestRow): void {
    this.opts.onFinished?.(row);
  }

  /** Signs an accepted request this coordinator owns and stores the outcome. Runs once per request at a time. */
  execute(row: SignRequestRow): Promise<SignRequestRow> {
    // Rejected at acceptance, or waiting for approvals: nothing to sign (yet).
    if (row.status !== 'signing') {
      if (isTerminal(row)) this.opts.onFinished?.(row);
      return Promise.resolve(row);
    }
    let p = this.inflight.get(row.requestId);
    if (!p) {
      p = this.run(row).finally(() => this.inflight.delete(row.requestId));
      this.inflight.set(row.requestId, p);
    }
    return p;
  }

  private async run(row: SignRequestRow): Promise<SignRequestRow> {
    const ks = await this.signing.loadKeyset(row.keysetId);
    // Too few reachable nodes is usually brief (a restart, an overloaded moment): wait, within
    // the lease, before failing an accepted request for it.
    const started = Date.now();
    const policy = await this.policyContext(row);
    let outcome = await this.signing.sign(ks, row.requestId, row.digest, row.derivationPath, policy);
    for (let delay = 250; outcome.transient && Date.now() - started < TRANSIENT_RETRY_MS; delay = Math.min(delay * 2, 5_000)) {
      await new Promise((r) => setTimeout(r, delay));
      outcome = await this.signing.sign(ks, row.requestId, row.digest, row.derivationPath, policy);
    }
    const final = outcome.signature
      ? await this.complete(
          {
            before: row,
            status: 'signed',
            signature: outcome.signature,
            publicKey: this.signing.publicKeyOf(ks, row.derivationPath),
            signers: outcome.signers,
            attempts: outcome.attempts,
            error: null,
            ...(row.payload ? { signedTx: signedEthTx(row.payload, outcome.signature) } : {}),
          },
          {
            actor: 'coordinator',
            action: 'sign.completed',
            subject: row.requestId,
            details: {
              keysetId: row.keysetId,
              signers: outcome.signers,
              attempts: outcome.attempts,
              signature: bytesToHex(outcome.signature),
              // ECDSA only: whether a pooled presignature was used (absent for FROST).
              ...(outcome.presigned !== undefined ? { presigned: outcome.presigned } : {}),
            },
          },
        )
      : await this.complete(
          { before: row, status: 'failed', error: outcome.error!, attempts: outcome.attempts },
          { actor: 'coordinator', action: 'sign.failed', subject: row.requestId, details: { keysetId: row.keysetId, error: outcome.error! } },
        );
    if (!final) {
      // Another coordinator took this request over (our lease ran out); its result stands.
      this.log.warn({ requestId: row.requestId }, 'request was taken over by another coordinator; discarding this result');
      return (await durably(this.log, 'read request', () => getSignRequest(this.db, row.requestId)))!;
    }
    if (!outcome.signature) this.log.warn({ requestId: row.requestId, error: outcome.error }, 'sign request failed');
    this.opts.onFinished?.(final);
    return final;
  }

  /** What the nodes need to check the policy themselves: the payload, the version, who asked, the approvals. */
  private async policyContext(row: SignRequestRow): Promise<PolicyContext> {
    // Only requests the policy held for approvals have any: the common case reads nothing more.
    const approvals = row.requirements?.length ? await durably(this.log, 'read approvals', () => listApprovals(this.db, row.requestId)) : [];
    return {
      payload: row.payload ?? new Uint8Array(),
      policyVersion: row.policyVersion ?? 0,
      initiator: row.clientId,
      walletId: row.walletId ?? '',
      approvals: approvals.map((a) => ({ approver: a.approver, decision: a.decision, expiresAtMs: BigInt(a.expiresAt.getTime()), signature: a.signature })),
      approvalExpiresAtMs: BigInt(row.approvalExpiresAt?.getTime() ?? 0),
      requiredApprovals: row.requirements ?? [],
    };
  }

  /** Accept + execute for one request (gRPC Sign): the stored result, or the original for a repeat. */
  async signOne(item: SubmitItem, who: Submitter): Promise<SignRequestRow> {
    const a = await this.acceptOne(item, who);
    if ('error' in a) throw a.error;
    return a.fresh ? this.execute(a.request) : ((await this.inflight.get(a.request.requestId)) ?? a.request);
  }

  /** Accept + execute for many (SignBatch): one accept transaction, signatures in parallel. */
  async signMany(items: readonly SubmitItem[], who: Submitter): Promise<Accepted[]> {
    const accepted = await this.accept(items, who);
    // Fresh ones start first (in order), so a repeat later in the same batch finds the original in flight.
    return Promise.all(
      accepted.map(async (a) => {
        if ('error' in a) return a;
        if (a.fresh) return { request: await this.execute(a.request), fresh: true };
        const running = this.inflight.get(a.request.requestId);
        return running ? { request: await running, fresh: false } : a;
      }),
    );
  }

  /**
   * Claims unfinished requests (expired leases; with includeOwn also this owner's, after a restart)
   * and finishes them. Returns how many it claimed.
   */
  async resume(includeOwn: boolean): Promise<number> {
    const now = new Date();
    const claimed = await durably(this.log, 'claim unfinished requests', () =>
      this.db.tx((q) => claimUnfinished(q, { owner: this.opts.owner, leaseUntil: new Date(now.getTime() + this.leaseMs), now, limit: 500, includeOwn, statuses: ['signing'] })),
    );
    const mine = claimed.filter((r) => !this.inflight.has(r.requestId));
    if (mine.length) this.log.info({ count: mine.length }, 'resuming unfinished sign requests');
    for (const r of mine) {
      void this.execute(r).catch((e: unknown) => this.log.error({ requestId: r.requestId, err: e }, 'resumed request failed'));
    }
    return mine.length;
  }

  /** Resumes this owner's requests now, then looks for abandoned ones periodically. */
  startResuming(intervalMs = 5_000): void {
    void this.resume(true).catch((e: unknown) => this.log.error({ err: e }, 'resume failed'));
    this.resumeTimer = setInterval(() => void this.resume(false).catch((e: unknown) => this.log.error({ err: e }, 'resume failed')), intervalMs);
    this.resumeTimer.unref();
  }

  /** Waits for requests in flight (graceful stop). */
  async drain(): Promise<void> {
    if (this.resumeTimer) clearInterval(this.resumeTimer);
    await Promise.allSettled([...this.inflight.values()]);
  }
}
