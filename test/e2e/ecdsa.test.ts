/**
 * Threshold ECDSA (DKLs23) end to end across real processes: keygen through the CLI, presign +
 * sign per request, signatures checked by noble (low s, key recovery from r, s, v) and by ethers on
 * a real EIP-1559 transaction; one node killed; a presignature is single use, across restarts too.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, toBinary } from '@bufbuild/protobuf';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { status } from '@grpc/grpc-js';
import { Signature, Transaction, computeAddress, getBytes, hexlify } from 'ethers';
import { layout } from '../../cli/layout.js';
import { ed25519KeyPair, ed25519Signer, SIGN_AUTHORIZATION_DOMAIN } from '../../crypto/ed25519-sig.js';
import { combine } from '../../crypto/ecdsa/sign.js';
import { Scheme } from '../../proto/gen/custody/v1/common_pb.js';
import { NodeService, SignAuthorizationSchema, type PeerMessage, type RunRoundResponse } from '../../proto/gen/custody/v1/node_pb.js';
import type { Client } from '../../runtime/grpc.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

const N = secp256k1.Point.CURVE().n;

/** 65-byte r || s || v: verifies under noble with low s, and (r, s, v) recovers the key. */
function expectValid(sig: Uint8Array, digest: Uint8Array, publicKey: Uint8Array): void {
  expect(sig.length).toBe(65);
  const v = sig[64]!;
  expect(v === 0 || v === 1).toBe(true);
  const compact = sig.subarray(0, 64);
  const s = BigInt('0x' + bytesToHex(compact.subarray(32)));
  expect(s <= N >> 1n).toBe(true);
  expect(secp256k1.verify(compact, digest, publicKey, { prehash: false, lowS: true })).toBe(true);
  expect(secp256k1.verify(compact, randomBytes(32), publicKey, { prehash: false })).toBe(false);
  const recovered = secp256k1.Signature.fromBytes(compact, 'compact').addRecoveryBit(v).recoverPublicKey(digest);
  expect(bytesToHex(recovered.toBytes(true))).toBe(bytesToHex(publicKey));
}

describe('threshold ECDSA end to end', () => {
  let t: TestCluster;
  let keysetId: string;
  let publicKey: Uint8Array;

  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2 });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  const sign = async (digest: Uint8Array) => {
    const started = Date.now();
    const r = await t.cli('sign', '--keyset', keysetId, '--digest', bytesToHex(digest));
    expect(r.code, `${r.stderr} ${JSON.stringify(r.json)}`).toBe(0);
    expect(r.json.status).toBe('signed');
    expect(r.json.publicKey).toBe(bytesToHex(publicKey));
    return { json: r.json, ms: Date.now() - started };
  };

  /**
   * Drives a presigning session between node-1 and node-2 the way the coordinator does, as the
   * coordinator (its signing key signs authorizations). Returns each node's output and how many
   * messages the nodes sent.
   */
  const presignBetween12 = async (sessionId: string, count?: number) => {
    const L = layout(t.dir);
    const coordinator = ed25519Signer(ed25519KeyPair(hexToBytes((await readFile(L.coordinatorKey, 'utf8')).trim())));
    const clients = new Map<number, Client<typeof NodeService>>([
      [1, await t.nodeClient(NodeService, 'node-1', 'coordinator')],
      [2, await t.nodeClient(NodeService, 'node-2', 'coordinator')],
    ]);
    const outputs = new Map<number, RunRoundResponse['output']>();
    let inbox = new Map<number, PeerMessage[]>();
    let messages = 0;
    for (let round = 0; outputs.size < 2 && round < 5; round++) {
      const next = new Map<number, PeerMessage[]>([[1, []], [2, []]]);
      for (const [i, c] of clients) {
        if (outputs.has(i)) continue;
        const res = await c.runRound(
          round === 0 ? { sessionId, round, params: { case: 'presign', value: { keysetId, signers: [1, 2], ...(count ? { count } : {}) } } } : { sessionId, round, incoming: inbox.get(i) ?? [] },
        );
        messages += res.outgoing.length;
        for (const m of res.outgoing) next.get(i === 1 ? 2 : 1)!.push(m);
        if (res.output.case) outputs.set(i, res.output);
      }
      inbox = next;
    }
    return { coordinator, clients, outputs, messages };
  };

  it('creates an ecdsa keyset by DKLs23 keygen through the CLI (33-byte key)', async () => {
    const started = Date.now();
    const { json, code, stderr } = await t.cli('keyset', 'create', '--scheme', 'ecdsa');
    expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
    console.log(`ecdsa keygen across 3 processes (CLI round trip): ${Date.now() - started} ms`);
    expect(json.scheme).toBe('ecdsa');
    expect(json.nodes).toEqual(['node-1', 'node-2', 'node-3']);
    publicKey = hexToBytes(json.publicKey as string);
    expect(publicKey.length).toBe(33);
    expect(() => secp256k1.Point.fromBytes(publicKey)).not.toThrow();
    keysetId = json.keysetId as string;
  }, 120_000);

  it('signs with every 2-subset of 3 nodes; 65-byte signatures verify and recover the key', async () => {
    const subsets = new Set<string>();
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const digest = randomBytes(32);
      const { json, ms } = await sign(digest);
      times.push(ms);
      expectValid(hexToBytes(json.signature as string), digest, publicKey);
      const signers = json.signers as string[];
      expect(signers).toHaveLength(2);
      subsets.add([...signers].sort().join('+'));
    }
    console.log(`ecdsa sign latency (CLI round trip, presign + sign): ${times.join(', ')} ms`);
    expect([...subsets].sort()).toEqual(['node-1+node-2', 'node-1+node-3', 'node-2+node-3']);
  }, 120_000);

  it('signs an EIP-1559 transaction that ethers parses back with the threshold address as sender', async () => {
    const tx = Transaction.from({
      type: 2,
      chainId: 1n,
      nonce: 7,
      maxPriorityFeePerGas: 1_500_000_000n,
      maxFeePerGas: 30_000_000_000n,
      gasLimit: 21_000n,
      to: '0x000000000000000000000000000000000000dEaD',
      value: 10n ** 17n,
      data: '0x',
    });
    const { json } = await sign(getBytes(tx.unsignedHash));
    const sig = hexToBytes(json.signature as string);
    tx.signature = Signature.from({ r: hexlify(sig.subarray(0, 32)), s: hexlify(sig.subarray(32, 64)), v: 27 + sig[64]! });
    const parsed = Transaction.from(tx.serialized);
    expect(parsed.from).toBe(computeAddress(hexlify(publicKey)));
    expect(parsed.type).toBe(2);
  }, 60_000);

  it('makes a batch of presignatures in one session, each of which signs once; a batch over the limit is refused', async () => {
    const sessionId = `test-batch-${bytesToHex(randomBytes(8))}`;
    const run = await presignBetween12(sessionId, 3);
    const { coordinator, clients, messages } = run;
    const outputs = new Map([...run.outputs].map(([i, o]) => [i, o.case === 'presignBatch' ? o.value.presignatures : []]));
    expect(outputs.get(1)).toHaveLength(3);
    expect(outputs.get(2)).toHaveLength(3);
    // One message per party and round for the whole batch: 2 parties x 2 rounds x (broadcast + p2p).
    expect(messages).toBe(8);
    const Rs = new Set<string>();
    for (let k = 0; k < 3; k++) {
      const [p1, p2] = [outputs.get(1)![k]!, outputs.get(2)![k]!];
      expect(bytesToHex(p1.bigR)).toBe(bytesToHex(p2.bigR));
      Rs.add(bytesToHex(p1.bigR));
      const digest = randomBytes(32);
      const auth = toBinary(
        SignAuthorizationSchema,
        create(SignAuthorizationSchema, {
          requestId: `batch-${k}`,
          sessionId: `${sessionId}/${k}`,
          keysetId,
          scheme: Scheme.ECDSA,
          digest,
          ecdsaSigners: [
            { index: 1, nodeId: 'node-1', presignatureId: p1.presignatureId },
            { index: 2, nodeId: 'node-2', presignatureId: p2.presignatureId },
          ],
          presignSid: p1.sid,
          expiresAtMs: BigInt(Date.now() + 60_000),
        }),
      );
      const item = { authorization: auth, coordinatorSignature: coordinator(SIGN_AUTHORIZATION_DOMAIN, auth) };
      const shares = new Map<number, Uint8Array>();
      for (const [i, c] of clients) {
        const r = (await c.signShares({ items: [item] })).results[0]!.result;
        expect(r.case).toBe('share');
        shares.set(i, r.value as Uint8Array);
        const again = (await c.signShares({ items: [item] })).results[0]!.result;
        expect(again).toMatchObject({ case: 'error', value: { code: status.FAILED_PRECONDITION } });
      }
      const sig = combine({ sid: p1.sid, signers: [1, 2], R: p1.bigR, publicKey }, digest, shares);
      expectValid(Uint8Array.from([...sig.signature, sig.recovery]), digest, publicKey);
    }
    expect(Rs.size).toBe(3);

    await expect(
      clients.get(1)!.runRound({ sessionId: `${sessionId}-big`, round: 0, params: { case: 'presign', value: { keysetId, signers: [1, 2], count: 17 } } }),
    ).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/1 to 16 presignatures/) });
  }, 120_000);

  it('refuses a replayed presignature at the node, also after the node restarts', async () => {
    const sessionId = `test-presign-${bytesToHex(randomBytes(8))}`;
    const run = await presignBetween12(sessionId);
    const { coordinator, clients } = run;
    const outputs = new Map([...run.outputs].flatMap(([i, o]) => (o.case === 'presign' ? [[i, o.value] as const] : [])));
    expect(outputs.size).toBe(2);
    const [p1, p2] = [outputs.get(1)!, outputs.get(2)!];
    expect(bytesToHex(p1.bigR)).toBe(bytesToHex(p2.bigR));
    // A presign session is forgotten once complete (the presignature is sealed): nothing to finish.
    for (const c of clients.values()) await expect(c.finishSession({ sessionId, commit: true })).rejects.toMatchObject({ code: status.NOT_FOUND });

    const authorization = (presignatureId1: string) =>
      toBinary(
        SignAuthorizationSchema,
        create(SignAuthorizationSchema, {
          requestId: 'test',
          sessionId,
          keysetId,
          scheme: Scheme.ECDSA,
          digest: randomBytes(32),
          ecdsaSigners: [
            { index: 1, nodeId: 'node-1', presignatureId: presignatureId1 },
            { index: 2, nodeId: 'node-2', presignatureId: p2.presignatureId },
          ],
          presignSid: p1.sid,
          expiresAtMs: BigInt(Date.now() + 60_000),
        }),
      );
    const item = (auth: Uint8Array) => ({ authorization: auth, coordinatorSignature: coordinator(SIGN_AUTHORIZATION_DOMAIN, auth) });
    const resultOf = async (c: Client<typeof NodeService>, auth: Uint8Array) => (await c.signShares({ items: [item(auth)] })).results[0]!.result;

    const first = await resultOf(clients.get(1)!, authorization(p1.presignatureId));
    expect(first.case).toBe('share');
    // Same presignature, another digest: refused (two shares from one presignature reveal the key).
    const replay = await resultOf(clients.get(1)!, authorization(p1.presignatureId));
    expect(replay).toMatchObject({ case: 'error', value: { code: status.FAILED_PRECONDITION, message: expect.stringMatching(/already used/) } });
    const unknown = await resultOf(clients.get(1)!, authorization(bytesToHex(randomBytes(16))));
    expect(unknown).toMatchObject({ case: 'error', value: { code: status.FAILED_PRECONDITION, message: expect.stringMatching(/not issued/) } });

    await t.cluster.stopProcess(t.cluster.nodes.get('node-1')!);
    await t.cluster.startNode('node-1');
    const again = await t.nodeClient(NodeService, 'node-1', 'coordinator');
    const after = await resultOf(again, authorization(p1.presignatureId));
    expect(after).toMatchObject({ case: 'error', value: { code: status.FAILED_PRECONDITION } });
    // The restarted node reloaded its sealed ECDSA share and still signs.
    const digest = randomBytes(32);
    const { json } = await sign(digest);
    expectValid(hexToBytes(json.signature as string), digest, publicKey);
  }, 120_000);

  it('keeps signing with one node killed', async () => {
    await t.cluster.stopProcess(t.cluster.nodes.get('node-3')!, 'SIGKILL');
    for (let i = 0; i < 2; i++) {
      const digest = randomBytes(32);
      const { json } = await sign(digest);
      expect(json.signers).not.toContain('node-3');
      expectValid(hexToBytes(json.signature as string), digest, publicKey);
    }
    await t.cluster.startNode('node-3');
  }, 120_000);

  it('shows no bans for healthy nodes', async () => {
    const { json, code } = await t.cli('nodes');
    expect(code).toBe(0);
    const nodes = json.nodes as { nodeId: string; bans: string[] }[];
    expect(nodes.every((n) => Array.isArray(n.bans) && n.bans.length === 0)).toBe(true);
  });
});
