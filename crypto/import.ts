/**
 * Accepting an imported key (a trusted-dealer sharing, crypto/dealer.ts) as a one-round protocol:
 * each party checks its own share against the dealer's Feldman commitments, then broadcasts a
 * digest of the public dealing (commitments, chain code, threshold, participants). Every party
 * must see the same digest from every other, so a relay that showed different dealings to
 * different nodes aborts the import instead of leaving the nodes with shares of different keys.
 *
 * ECDSA keysets run the DKLs23 pairwise setup on the accepted share instead (crypto/ecdsa/keygen.ts
 * setup mode), which binds the same public inputs into every pairwise instance.
 */
import type { Group } from './group/index.js';
import { checkDealtShare, dealtVerifyingShares } from './dealer.js';
import { collectRound, ProtocolAbort, type Protocol, type ProtocolMessage } from './protocol.js';
import type { ThresholdShare } from './shamir.js';
import { bytesEqual, hashFields } from './transcript.js';

export interface ImportParams {
  sessionId: string;
  self: number;
  participants: readonly number[];
  threshold: number;
  group: Group<unknown>;
  /** Decoded (validated) dealer commitments; commitments[0] is the public key. */
  commitments: readonly unknown[];
  chainCode: Uint8Array;
  /** This party's share, opened from the dealer's box. */
  share: bigint;
}

/** transcriptHash: the agreed digest of the public dealing. */
export type ImportedShare = ThresholdShare;

interface ImportState {
  readonly params: ImportParams;
  readonly participants: readonly number[];
  readonly digest: Uint8Array;
  consumed: boolean;
}

const TAG = 'custody-import/v1';

/** Digest of the public dealing that every party must agree on. */
export function dealingDigest(sessionId: string, g: Group<unknown>, threshold: number, participants: readonly number[], commitments: readonly unknown[], chainCode: Uint8Array): Uint8Array {
  return hashFields('sha256', TAG, [sessionId, g.curve, threshold, participants.length, ...participants, chainCode, ...commitments.map((c) => g.encode(c))]);
}

export const importShare: Protocol<ImportParams, ImportState, ImportedShare> = {
  name: 'dealer-import',
  rounds: 1,
  start(params) {
    const participants = [...params.participants].sort((a, b) => a - b);
    if (!participants.includes(params.self)) throw new Error(`party ${params.self} is not a participant`);
    if (params.commitments.length !== params.threshold) throw new Error(`the dealing has ${params.commitments.length} commitments, threshold ${params.threshold} needs as many`);
    if (params.chainCode.length !== 32) throw new Error('the chain code must be 32 bytes');
    if (!checkDealtShare(params.group, params.commitments, params.self, params.share)) {
      // The dealer (or whoever relayed the box) gave this node a share off the committed polynomial.
      throw new ProtocolAbort('proof-failed', [], `party ${params.self}: the imported share does not match the dealer's commitments`);
    }
    const digest = dealingDigest(params.sessionId, params.group, params.threshold, participants, params.commitments, params.chainCode);
    const outgoing: ProtocolMessage[] = [{ from: params.self, to: 0, round: 1, payload: digest }];
    return { state: { params, participants, digest, consumed: false }, outgoing };
  },
  step(state, incoming) {
    if (state.consumed) throw new Error('import state already used: states are single-use');
    state.consumed = true;
    const p = state.params;
    const got = collectRound(incoming, 1, p.self, state.participants, 'broadcast');
    const differ = [...got].filter(([, m]) => !bytesEqual(m.payload, state.digest)).map(([from]) => from);
    if (differ.length) throw new ProtocolAbort('inconsistent-broadcast', [], `parties ${differ.join(', ')} saw a different dealing`);
    const g = p.group;
    return {
      done: true,
      outgoing: [],
      output: {
        index: p.self,
        participants: state.participants,
        threshold: p.threshold,
        secretShare: p.share,
        publicKey: g.encode(p.commitments[0]),
        verifyingShares: dealtVerifyingShares(g, p.commitments, state.participants),
        chainCode: p.chainCode,
        transcriptHash: state.digest,
      },
    };
  },
};
