/**
 * Making a threshold ECDSA (DKLs23) signature, simplest correct path: per request, a presigning
 * session over the chosen quorum (runSession; each node seals its presignature in its single-use
 * pool and reports the id and the public part), then one SignShares round with a coordinator-signed
 * authorization naming every signer's presignature and the digest, then combine (which verifies).
 *
 * A presigning abort for a failed OT or multiplication check bans the blamed node for the keyset
 * (PROTOCOLS.md: retrying with it would let it run a selective-abort attack on the key).
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { bytesToHex } from '@noble/hashes/utils.js';
import { combine } from '../crypto/ecdsa/sign.js';
import { ProtocolAbort } from '../crypto/protocol.js';
import { schemeToProto } from '../proto/convert.js';
import { SignAuthorizationSchema, type PresignResult } from '../proto/gen/custody/v1/node_pb.js';
import type { Logger } from '../runtime/log.js';
import type { NodeRegistry } from './node-registry.js';
import type { AttemptResult, Quorum, QuorumKeyset, Quorums, SignOutcome } from './quorum.js';
import { finishAll, runSession, SessionFailed } from './session-driver.js';
import type { ShareBatcher } from './share-batcher.js';
import { AUTHORIZATION_TTL_MS } from './signing.js';
import type { KeysetRow } from './store/repo.js';

/** Abort reasons that ban the blamed counterparty for the keyset (crypto/protocol.ts). */
const BAN_REASONS = new Set(['ot-check-failed', 'mul-check-failed']);

export interface EcdsaKeyset extends QuorumKeyset {
  row: KeysetRow;
}

export class EcdsaSigning {
  private readonly keysets = new Map<string, EcdsaKeyset>();

  constructor(
    private readonly registry: NodeRegistry,
    private readonly signAuthorization: (bytes: Uint8Array) => Uint8Array,
    private readonly quorums: Quorums,
    private readonly batcher: ShareBatcher,
    private readonly log: Logger,
  ) {}

  load(row: KeysetRow): EcdsaKeyset {
    let ks = this.keysets.get(row.keysetId);
    if (!ks) this.keysets.set(row.keysetId, (ks = { row, turn: 0 }));
    return ks;
  }

  /** The 33-byte compressed key signatures verify under. */
  publicKeyOf(ks: EcdsaKeyset): Uint8Array {
    return ks.row.publicKey;
  }

  sign(ks: EcdsaKeyset, requestId: string, digest: Uint8Array): Promise<SignOutcome> {
    return this.quorums.run(ks, requestId, (quorum) => this.attempt(ks, requestId, digest, quorum));
  }

  private async attempt(ks: EcdsaKeyset, requestId: string, digest: Uint8Array, quorum: Quorum): Promise<AttemptResult> {
    const keysetId = ks.row.keysetId;
    const participants = quorum.map((m) => ({ index: m.index, nodeId: m.nodeId }));
    const started = Date.now();
    let session: Awaited<ReturnType<typeof runSession>>;
    try {
      session = await runSession(this.registry, participants, { case: 'presign', value: { keysetId, signers: participants.map((p) => p.index) } });
    } catch (e) {
      if (!(e instanceof SessionFailed)) throw e;
      for (const id of e.unreachable) this.registry.markDown(id, e);
      const banned = e.reason !== undefined && BAN_REASONS.has(e.reason) ? e.blamed : [];
      // Without blame nobody is excluded, so a retry picks a fresh quorum from the rotation.
      return { problem: `presigning failed: ${e.message}`, exclude: e.blamed, unreachable: e.unreachable, blamed: e.blamed, banned };
    }
    const outputs: PresignResult[] = [];
    for (const p of participants) {
      const o = session.outputs.get(p.nodeId);
      if (o?.case !== 'presign') return { problem: `node ${p.nodeId} returned no presignature`, exclude: [p.nodeId], unreachable: [], blamed: [] };
      outputs.push(o.value);
    }
    // Nodes keep a completed session until it is finished; there is nothing to commit (the
    // presignatures are already sealed), so release them without waiting.
    void finishAll(this.registry, participants, session.sessionId, true);
    const first = outputs[0]!;
    const fingerprint = (o: PresignResult) => [o.sid, o.bigR, o.publicKey].map((b) => bytesToHex(b)).join('|');
    if (outputs.some((o) => fingerprint(o) !== fingerprint(first)) || bytesToHex(first.publicKey) !== bytesToHex(ks.row.publicKey)) {
      return { problem: 'presigning aborted: nodes disagree on the presignature', exclude: [], unreachable: [], blamed: [] };
    }
    const presignMs = Date.now() - started;

    const authorization = toBinary(
      SignAuthorizationSchema,
      create(SignAuthorizationSchema, {
        requestId,
        sessionId: session.sessionId,
        keysetId,
        scheme: schemeToProto('ecdsa'),
        digest,
        derivationPath: '',
        ecdsaSigners: participants.map((p, i) => ({ index: p.index, nodeId: p.nodeId, presignatureId: outputs[i]!.presignatureId })),
        presignSid: first.sid,
        expiresAtMs: BigInt(Date.now() + AUTHORIZATION_TTL_MS),
      }),
    );
    const item = { authorization, coordinatorSignature: this.signAuthorization(authorization) };
    const got = await this.batcher.collect(quorum.map((m) => m.nodeId), item);
    if ('problem' in got) return { problem: got.problem, exclude: got.refused, unreachable: got.unreachable, blamed: [] };

    const shares = new Map(quorum.map((m, i) => [m.index, got.shares[i]!]));
    try {
      const sig = combine({ sid: first.sid, signers: participants.map((p) => p.index), R: first.bigR, publicKey: ks.row.publicKey }, digest, shares);
      const signature = new Uint8Array(65);
      signature.set(sig.signature, 0);
      signature[64] = sig.recovery;
      this.log.debug({ requestId, keysetId, presignMs, ms: Date.now() - started }, 'ecdsa signature');
      return { signature, exclude: [], unreachable: [], blamed: [] };
    } catch (e) {
      if (!(e instanceof ProtocolAbort)) throw e;
      const byIndex = new Map(quorum.map((m) => [m.index, m.nodeId]));
      const blamed = e.blame.map((i) => byIndex.get(i)).filter((id): id is string => id !== undefined);
      return { problem: e.message, exclude: blamed, unreachable: [], blamed };
    }
  }
}
