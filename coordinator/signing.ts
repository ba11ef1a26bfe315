/**
 * Making a FROST signature: quorum choice among healthy nodes, one round of SignShares with pooled
 * commitments, the signature assembled from the R the signers report and verified, and otherwise
 * R computed here, aggregation and the per-share checks (RFC 9591 section 5.4) that name the
 * cheating node, which is recorded, bypassed on the retry and quarantined.
 */
import { randomUUID } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { ciphersuite, type Ciphersuite, type FrostScheme } from '../crypto/frost/ciphersuite.js';
import { equalBytes } from '@noble/curves/utils.js';
import { ed25519VerifyPlain } from '../crypto/ed25519-sig.js';
import { aggregate, assembleSignature, type SignerCommitment } from '../crypto/frost/sign.js';
import { InvalidEncoding } from '../crypto/group/index.js';
import type { HdScheme } from '../crypto/hd/derive.js';
import { deriveVerifyingShare, type DerivedKeyset } from '../crypto/hd/keyset.js';
import { ProtocolAbort } from '../crypto/protocol.js';
import { curveOfScheme } from '../crypto/schemes.js';
import { schemeToProto } from '../proto/convert.js';
import { SignAuthorizationSchema } from '../proto/gen/custody/v1/node_pb.js';
import type { CachedCommitment, NonceCache } from './nonce-cache.js';
import { errorCode, errorMessage, isUnreachable, type NodeRegistry } from './node-registry.js';
import type { ShareBatcher } from './share-batcher.js';
import type { KeysetRow } from './store/repo.js';
import type { AttemptResult, Quorum, QuorumKeyset, Quorums, SignOutcome } from './quorum.js';
import type { PolicyContext } from './signers.js';

export const AUTHORIZATION_TTL_MS = 30_000;

/** The keys a signature is checked against: the root's, or a derivation path's. */
interface Verifying {
  groupKey: unknown;
  /** The same key encoded, as the keyset or the derivation gives it (what the Ed25519 verifier takes). */
  groupKeyBytes: Uint8Array;
  verifyingShares: Map<number, unknown>;
}

export interface FrostKeyset extends QuorumKeyset, Verifying {
  row: KeysetRow;
  cs: Ciphersuite<unknown>;
  /** Decoded keys of recently used derivation paths. */
  derived: Map<string, Verifying>;
}

const MAX_DERIVED_PER_KEYSET = 1_000;

export type { SignOutcome };

/**
 * Ed25519 through crypto/ed25519-sig.ts (libsodium, or OpenSSL without the addon: one call), the
 * other suites through the group backend.
 */
function verifies(ks: FrostKeyset, v: Verifying, signature: Uint8Array, message: Uint8Array): boolean {
  if (ks.row.scheme === 'ed25519') return ed25519VerifyPlain(v.groupKeyBytes, message, signature);
  return ks.cs.verifyWithKey(signature, message, v.groupKey);
}

/** The quorum's commitments as points, or the nodes whose commitments are not valid points. */
function decodeCommitments(
  cs: Ciphersuite<unknown>,
  quorum: Quorum,
  picked: readonly CachedCommitment[],
): { commitments: SignerCommitment<unknown>[] } | { invalid: string[] } {
  const commitments: SignerCommitment<unknown>[] = [];
  const invalid: string[] = [];
  quorum.forEach((m, i) => {
    try {
      commitments.push({ index: m.index, hiding: cs.group.decode(picked[i]!.hiding), binding: cs.group.decode(picked[i]!.binding) });
    } catch (e) {
      if (!(e instanceof InvalidEncoding)) throw e;
      invalid.push(m.nodeId);
    }
  });
  return invalid.length ? { invalid } : { commitments };
}

/**
 * Makes one FROST signature for a digest with a keyset: quorum choice, retries, blame. The request
 * lifecycle around it (idempotency, states, audit of transitions) lives in requests.ts.
 */
export class FrostSigning {
  private readonly keysets = new Map<string, FrostKeyset>();

  constructor(
    private readonly registry: NodeRegistry,
    private readonly nonces: NonceCache,
    private readonly quorums: Quorums,
    private readonly batcher: ShareBatcher,
  ) {}

  sign(ks: FrostKeyset, requestId: string, digest: Uint8Array, key: DerivedKeyset, policy: PolicyContext): Promise<SignOutcome> {
    const verifying = this.verifying(ks, key);
    return this.quorums.run(ks, requestId, (quorum) => this.attempt(ks, requestId, digest, key.path, verifying, policy, quorum));
  }

  private verifying(ks: FrostKeyset, key: DerivedKeyset): Verifying {
    if (key.path === '') return ks;
    let v = ks.derived.get(key.path);
    if (!v) {
      if (ks.derived.size >= MAX_DERIVED_PER_KEYSET) ks.derived.clear();
      const g = ks.cs.group;
      const scheme = ks.row.scheme as HdScheme;
      v = {
        groupKey: g.decode(key.groupPublicKey),
        groupKeyBytes: key.groupPublicKey,
        verifyingShares: new Map(ks.row.members.map((m) => [m.index, g.decode(deriveVerifyingShare(scheme, key, m.verifyingShare))])),
      };
      ks.derived.set(key.path, v);
    }
    return v;
  }

  /** One signing round with one quorum. */
  private async attempt(
    ks: FrostKeyset,
    requestId: string,
    digest: Uint8Array,
    derivationPath: string,
    verifying: Verifying,
    policy: PolicyContext,
    quorum: Quorum,
  ): Promise<AttemptResult> {
    const curve = curveOfScheme(ks.row.scheme);
    const taken = await Promise.allSettled(quorum.map((m) => this.nonces.take(m.nodeId, curve)));
    const failed = quorum.flatMap((m, i) => (taken[i]!.status === 'rejected' ? [{ nodeId: m.nodeId, reason: (taken[i] as PromiseRejectedResult).reason as unknown }] : []));
    if (failed.length) {
      // A node that answered with a refusal (e.g. Vault refused its token) sits out like a refused
      // share; only one that did not answer is down. Its own reason tells the operator what to fix.
      const refused = failed.filter((f) => errorCode(f.reason) !== undefined && !isUnreachable(errorCode(f.reason))).map((f) => f.nodeId);
      const unreachable = failed.map((f) => f.nodeId).filter((id) => !refused.includes(id));
      for (const id of unreachable) this.registry.markDown(id, 'nonce commitments unavailable');
      const why = failed.map((f) => `${f.nodeId} (${errorMessage(f.reason)})`).join(', ');
      return { problem: `no nonce commitments from ${why}`, exclude: refused, unreachable, blamed: [] };
    }
    const picked = taken.map((t) => (t as PromiseFulfilledResult<Awaited<ReturnType<NonceCache['take']>>>).value);
    const authorization = toBinary(
      SignAuthorizationSchema,
      create(SignAuthorizationSchema, {
        requestId,
        sessionId: randomUUID(),
        keysetId: ks.row.keysetId,
        scheme: schemeToProto(ks.row.scheme),
        digest,
        derivationPath,
        commitments: quorum.map((m, i) => ({ index: m.index, nodeId: m.nodeId, commitmentId: picked[i]!.id, hiding: picked[i]!.hiding, binding: picked[i]!.binding })),
        expiresAtMs: BigInt(Date.now() + AUTHORIZATION_TTL_MS),
        keysetEpoch: ks.row.epoch,
        ...policy,
      }),
    );
    const got = await this.batcher.collect(quorum.map((m) => m.nodeId), { authorization });
    if ('problem' in got) {
      // A node whose commitment is not a valid point makes its peers refuse: it is the one to blame.
      const decoded = decodeCommitments(ks.cs, quorum, picked);
      if ('invalid' in decoded) return this.invalidCommitments(decoded.invalid, got.unreachable);
      // A node that refused may have restarted or lost our commitments: fetch fresh ones next time.
      for (const id of got.refused) this.nonces.forget(id);
      return { problem: got.problem, exclude: got.refused, unreachable: got.unreachable, blamed: [] };
    }

    const shares = new Map<number, bigint>();
    const malformed: string[] = [];
    got.shares.forEach(({ share }, i) => {
      try {
        shares.set(quorum[i]!.index, ks.cs.group.scalarFromBytes(share));
      } catch {
        malformed.push(quorum[i]!.nodeId);
      }
    });
    if (malformed.length) return { problem: `malformed signature shares from ${malformed.join(', ')}`, exclude: malformed, unreachable: [], blamed: malformed };

    // The common case: every signer reports the same R, so the signature is assembled without
    // computing R here, and verified before it is used.
    const R = got.shares[0]!.groupCommitment;
    if (got.shares.every((s) => equalBytes(s.groupCommitment, R))) {
      const signature = assembleSignature(ks.cs, R, shares.values());
      if (signature && verifies(ks, verifying, signature, digest)) return { signature, exclude: [], unreachable: [], blamed: [] };
    }

    // Otherwise R is computed from the commitments and, if the signature still fails, every share
    // is checked to name the cheater.
    const decoded = decodeCommitments(ks.cs, quorum, picked);
    if ('invalid' in decoded) return this.invalidCommitments(decoded.invalid, []);
    try {
      const signature = aggregate(ks.cs, { groupPublicKey: verifying.groupKey, commitments: decoded.commitments, shares, message: digest, verifyingShares: verifying.verifyingShares });
      return { signature, exclude: [], unreachable: [], blamed: [] };
    } catch (e) {
      if (!(e instanceof ProtocolAbort)) throw e;
      const byIndex = new Map(quorum.map((m) => [m.index, m.nodeId]));
      const blamed = e.blame.map((i) => byIndex.get(i)).filter((id): id is string => id !== undefined);
      // Without blame nobody is excluded, so a retry picks a fresh quorum from the rotation.
      return { problem: e.message, exclude: blamed, unreachable: [], blamed };
    }
  }

  /** Nodes that handed out commitments that are not points: blamed, and their cached ones dropped. */
  private invalidCommitments(nodeIds: string[], unreachable: string[]): AttemptResult {
    for (const id of nodeIds) this.nonces.forget(id);
    return { problem: `invalid nonce commitments from ${nodeIds.join(', ')}`, exclude: nodeIds, unreachable, blamed: nodeIds };
  }

  /** Forgets a keyset (its shares were refreshed): the next use loads the new row. */
  forget(keysetId: string): void {
    this.keysets.delete(keysetId);
  }

  /** Decodes a FROST keyset row once (points validated at the boundary) and caches it. */
  load(row: KeysetRow): FrostKeyset {
    const keysetId = row.keysetId;
    const cached = this.keysets.get(keysetId);
    if (cached) return cached;
    const cs = ciphersuite(row.scheme as FrostScheme);
    const loaded: FrostKeyset = {
      row,
      cs,
      groupKey: cs.group.decode(row.publicKey),
      groupKeyBytes: row.publicKey,
      verifyingShares: new Map(row.members.map((m) => [m.index, cs.group.decode(m.verifyingShare)])),
      derived: new Map(),
      turn: 0,
    };
    this.keysets.set(keysetId, loaded);
    return loaded;
  }
}
