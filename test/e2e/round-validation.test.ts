/**
 * A node checks every relayed protocol message itself. The test plays a peer that the roster
 * knows (so its messages are properly signed) but that sends an invalid point, and a relay that
 * forges a signature; the node answers with a precise error naming the party, and drops the session.
 */
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex, randomBytes } from '@noble/hashes/utils.js';
import { layout } from '../../cli/layout.js';
import { generateIdentity, signBroadcast } from '../../crypto/peer-box.js';
import { Scheme } from '../../proto/gen/custody/v1/common_pb.js';
import { NodeService } from '../../proto/gen/custody/v1/node_pb.js';
import { DkgRound1Schema } from '../../proto/gen/custody/v1/wire_pb.js';
import type { RosterFile } from '../../nodes/roster.js';
import { CHANNEL_OPTIONS, createClient } from '../../runtime/grpc.js';
import { clientCredentials, loadPem } from '../../runtime/tls.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

describe('round message validation on a node', () => {
  let t: TestCluster;
  const fake = generateIdentity();

  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2 });
    const L = layout(t.dir);
    const roster = JSON.parse(await readFile(L.roster, 'utf8')) as RosterFile;
    roster.nodes.push({ nodeId: 'node-fake', address: '127.0.0.1:1', encryptionKey: bytesToHex(fake.encryptionPublic), signingKey: bytesToHex(fake.signingPublic) });
    await writeFile(L.roster, JSON.stringify(roster));
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  const startDkg = async () => {
    const n1 = await t.nodeClient(NodeService, 'node-1', 'coordinator');
    const sessionId = randomUUID();
    const r0 = await n1.runRound({
      sessionId,
      round: 0,
      params: {
        case: 'dkg',
        value: { keysetId: randomUUID(), scheme: Scheme.ED25519, threshold: 2, participants: [{ index: 1, nodeId: 'node-1' }, { index: 2, nodeId: 'node-fake' }] },
      },
    });
    expect(r0.outgoing).toHaveLength(1);
    expect(r0.outgoing[0]!.to).toBe(0);
    return { n1, sessionId };
  };

  const round1 = (commitment0: Uint8Array) =>
    toBinary(
      DkgRound1Schema,
      create(DkgRound1Schema, {
        commitments: [commitment0, ed25519.Point.BASE.multiply(7n).toBytes()],
        proofR: ed25519.Point.BASE.multiply(9n).toBytes(),
        proofZ: new Uint8Array(32),
        chainCodeCommitment: randomBytes(32),
      }),
    );

  it('rejects an invalid point from a signed peer message, blames that party, and drops the session', async () => {
    const { n1, sessionId } = await startDkg();
    const payload = round1(new Uint8Array(32).fill(0xff));
    const signature = signBroadcast(fake, { sessionId, round: 1, from: 'node-fake', to: '*' }, payload);
    const err = await n1.runRound({ sessionId, round: 1, incoming: [{ sessionId, round: 1, from: 2, to: 0, payload, signature }] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/malformed-message.*party 2/) });
    expect((err as { metadata: grpc.Metadata }).metadata.get('custody-blame')).toEqual(['2']);
    await expect(n1.runRound({ sessionId, round: 1, incoming: [] })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('RunRounds answers each item as RunRound would: blame and abort reason per item, the others unaffected', async () => {
    const a = await startDkg();
    const b = await startDkg();
    const bad = round1(new Uint8Array(32).fill(0xff));
    const badSig = signBroadcast(fake, { sessionId: a.sessionId, round: 1, from: 'node-fake', to: '*' }, bad);
    const res = await a.n1.runRounds({
      items: [
        { sessionId: a.sessionId, round: 1, incoming: [{ sessionId: a.sessionId, round: 1, from: 2, to: 0, payload: bad, signature: badSig }] },
        { sessionId: b.sessionId, round: 2, incoming: [] },
        { sessionId: randomUUID(), round: 0, params: { case: 'dkg', value: { keysetId: randomUUID(), scheme: Scheme.ED25519, threshold: 2, participants: [{ index: 1, nodeId: 'node-1' }, { index: 2, nodeId: 'node-fake' }] } } },
      ],
    });
    expect(res.results[0]!.result).toMatchObject({ case: 'error', value: { code: grpc.status.INVALID_ARGUMENT, blame: '2', abortReason: 'malformed-message' } });
    expect(res.results[1]!.result).toMatchObject({ case: 'error', value: { code: grpc.status.FAILED_PRECONDITION, message: expect.stringMatching(/expects round 1, got round 2/) } });
    expect(res.results[2]!.result.case).toBe('response');
    // Session b was not disturbed by its neighbours' failures.
    const signature = signBroadcast(fake, { sessionId: b.sessionId, round: 1, from: 'node-fake', to: '*' }, bad);
    await expect(b.n1.runRound({ sessionId: b.sessionId, round: 1, incoming: [{ sessionId: b.sessionId, round: 1, from: 2, to: 0, payload: bad, signature }] })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(a.n1.runRounds({ items: [] })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });

  it('rejects a broadcast whose signature does not verify (a lying relay)', async () => {
    const { n1, sessionId } = await startDkg();
    const payload = round1(ed25519.Point.BASE.multiply(5n).toBytes());
    await expect(
      n1.runRound({ sessionId, round: 1, incoming: [{ sessionId, round: 1, from: 2, to: 0, payload, signature: randomBytes(64) }] }),
    ).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/invalid signature/) });
  });

  it('rejects messages for the wrong round or session', async () => {
    const { n1, sessionId } = await startDkg();
    await expect(n1.runRound({ sessionId, round: 2, incoming: [] })).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
    await expect(n1.runRound({ sessionId: randomUUID(), round: 1, incoming: [] })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('refuses a server whose certificate is not the one the client expects', async () => {
    const L = layout(t.dir);
    const creds = clientCredentials(await loadPem(L.tls, 'ca'), await loadPem(L.tls, 'coordinator'), { role: 'node', name: 'node-2' });
    const wrong = createClient(NodeService, t.cluster.nodes.get('node-1')!.address, creds);
    await expect(wrong.getNodeInfo({}, { deadlineMs: 3_000 })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    wrong.close();
    const right = await t.nodeClient(NodeService, 'node-1', 'coordinator');
    expect((await right.getNodeInfo({})).nodeId).toBe('node-1');
  });

  it('answers malformed protobuf with INVALID_ARGUMENT at the coordinator', async () => {
    const L = layout(t.dir);
    const raw = new grpc.Client(t.cluster.coordinator!.address, clientCredentials(await loadPem(L.tls, 'ca'), await loadPem(L.tls, 'payment'), { role: 'coordinator' }), CHANNEL_OPTIONS);
    const err = await new Promise<grpc.ServiceError>((resolve) =>
      raw.makeUnaryRequest(
        '/custody.v1.SigningService/Sign',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.from([0xff, 0xff, 0xff, 0xff]),
        (e) => resolve(e!),
      ),
    );
    raw.close();
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/malformed custody\.v1\.SignRequest/);
  });
});
