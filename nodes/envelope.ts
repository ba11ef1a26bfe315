/**
 * Turns protocol messages into what the coordinator may relay and back: broadcasts are signed by
 * the sender's identity key, point-to-point payloads are sealed to the receiver. Every check names
 * the party at fault so the coordinator can blame it.
 */
import { create } from '@bufbuild/protobuf';
import { openFromPeer, sealToPeer, signBroadcast, verifyBroadcast, type IdentityKeys } from '../crypto/peer-box.js';
import { ProtocolAbort, type ProtocolMessage } from '../crypto/protocol.js';
import { PeerMessageSchema, type PeerMessage } from '../proto/gen/custody/v1/node_pb.js';
import type { Roster } from './roster.js';

export interface SessionPeers {
  sessionId: string;
  selfIndex: number;
  selfNodeId: string;
  /** Party index -> node id. */
  nodeIds: Map<number, string>;
}

function peerKeys(roster: Roster, nodeId: string) {
  const n = roster.nodes.get(nodeId);
  if (!n) throw new Error(`node ${nodeId} is not in the cluster roster`);
  return n;
}

export function wrapOutgoing(
  identity: IdentityKeys,
  roster: Roster,
  peers: SessionPeers,
  messages: readonly ProtocolMessage[],
): PeerMessage[] {
  return messages.map((m) => {
    if (m.to === 0) {
      const context = { sessionId: peers.sessionId, round: m.round, from: peers.selfNodeId, to: '*' };
      return create(PeerMessageSchema, {
        sessionId: peers.sessionId,
        round: m.round,
        from: m.from,
        to: 0,
        payload: m.payload,
        signature: signBroadcast(identity, context, m.payload),
      });
    }
    const receiver = peers.nodeIds.get(m.to);
    if (!receiver) throw new Error(`protocol addressed unknown party ${m.to}`);
    const context = { sessionId: peers.sessionId, round: m.round, from: peers.selfNodeId, to: receiver };
    return create(PeerMessageSchema, {
      sessionId: peers.sessionId,
      round: m.round,
      from: m.from,
      to: m.to,
      payload: sealToPeer({ sender: identity, receiverPublic: peerKeys(roster, receiver).encryptionKey, context, plaintext: m.payload }),
    });
  });
}

/** Authenticates and decrypts relayed messages; throws ProtocolAbort blaming the sender on failure. */
export function unwrapIncoming(
  identity: IdentityKeys,
  roster: Roster,
  peers: SessionPeers,
  round: number,
  messages: readonly PeerMessage[],
): ProtocolMessage[] {
  return messages.map((m) => {
    const sender = peers.nodeIds.get(m.from);
    if (!sender || m.from === peers.selfIndex) {
      throw new ProtocolAbort('unexpected-message', [], `message from party ${m.from}, which is not a peer in this session`);
    }
    if (m.sessionId !== peers.sessionId || m.round !== round) {
      throw new ProtocolAbort('unexpected-message', [], `message from party ${m.from} is for session ${m.sessionId} round ${m.round}, expected round ${round}`);
    }
    const keys = peerKeys(roster, sender);
    if (m.to === 0) {
      const context = { sessionId: peers.sessionId, round, from: sender, to: '*' };
      if (!verifyBroadcast(keys.signingKey, context, m.payload, m.signature)) {
        throw new ProtocolAbort('malformed-message', [m.from], `broadcast from party ${m.from} (${sender}) has an invalid signature`);
      }
      return { from: m.from, to: 0, round, payload: m.payload };
    }
    if (m.to !== peers.selfIndex) {
      throw new ProtocolAbort('unexpected-message', [], `message for party ${m.to} was relayed to party ${peers.selfIndex}`);
    }
    const context = { sessionId: peers.sessionId, round, from: sender, to: peers.selfNodeId };
    let plaintext: Uint8Array;
    try {
      plaintext = openFromPeer({ receiver: identity, senderPublic: keys.encryptionKey, context, box: m.payload });
    } catch {
      throw new ProtocolAbort('malformed-message', [m.from], `sealed message from party ${m.from} (${sender}) does not open`);
    }
    return { from: m.from, to: m.to, round, payload: plaintext };
  });
}
