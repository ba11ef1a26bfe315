/**
 * End to end across real processes: a coordinator and three signer nodes, each its own OS
 * process, gRPC over mutual TLS on loopback, the embedded database, the real `custody` CLI.
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { create, toBinary } from '@bufbuild/protobuf';
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { status } from '@grpc/grpc-js';
import { layout } from '../../cli/layout.js';
import { ed25519KeyPair, ed25519Signer, SIGN_AUTHORIZATION_DOMAIN, SIGN_BATCH_DOMAIN, signBatchMessage } from '../../crypto/ed25519-sig.js';
import { KeysetService, SigningService, ClusterService } from '../../proto/gen/custody/v1/api_pb.js';
import { Curve, Scheme } from '../../proto/gen/custody/v1/common_pb.js';
import { NodeService, SignAuthorizationSchema } from '../../proto/gen/custody/v1/node_pb.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

const SCHEMES = ['ed25519', 'secp256k1', 'bip340'] as const;
type S = (typeof SCHEMES)[number];

function verifies(scheme: S, sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  if (scheme === 'ed25519') return ed25519.verify(sig, msg, pub);
  if (scheme === 'bip340') return schnorr.verify(sig, msg, pub);
  return secp256k1_FROST.verify(sig, msg, pub);
}

function nodeCryptoVerifiesEd25519(sig: Uint8Array, msg: Uint8Array, pub: Uint8Array): boolean {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(pub).toString('base64url') }, format: 'jwk' });
  return nodeVerify(null, msg, key, sig);
}

describe('cluster end to end', () => {
  let t: TestCluster;
  const keysets: Partial<Record<S, { keysetId: string; publicKey: string }>> = {};

  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2, traceFiles: true });
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('reports three nodes up', async () => {
    const { json, code } = await t.cli('nodes');
    expect(code).toBe(0);
    const nodes = json.nodes as { nodeId: string; status: string; pid: number }[];
    expect(nodes.map((n) => n.nodeId)).toEqual(['node-1', 'node-2', 'node-3']);
    expect(nodes.every((n) => n.status === 'up' && n.pid > 0)).toBe(true);
    expect(nodes.map((n) => n.pid)).toEqual(['node-1', 'node-2', 'node-3'].map((id) => t.cluster.nodes.get(id)!.pid));
  });

  it.each(SCHEMES)('creates a %s keyset by DKG through the CLI', async (scheme) => {
    const { json, code, stderr } = await t.cli('keyset', 'create', '--scheme', scheme);
    expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
    expect(json.scheme).toBe(scheme);
    expect(json.threshold).toBe(2);
    expect(json.nodes).toEqual(['node-1', 'node-2', 'node-3']);
    const pub = hexToBytes(json.publicKey as string);
    expect(pub.length).toBe(scheme === 'secp256k1' ? 33 : 32);
    keysets[scheme] = { keysetId: json.keysetId as string, publicKey: json.publicKey as string };
  });

  it.each(SCHEMES)('signs with every 2-subset of 3 nodes (%s), signatures verify under noble', async (scheme) => {
    const ks = keysets[scheme]!;
    const pub = hexToBytes(ks.publicKey);
    const subsets = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const digest = randomBytes(32);
      const { json, code, stderr } = await t.cli('sign', '--keyset', ks.keysetId, '--digest', bytesToHex(digest));
      expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
      expect(json.status).toBe('signed');
      expect(json.publicKey).toBe(ks.publicKey);
      const sig = hexToBytes(json.signature as string);
      expect(sig.length).toBe(scheme === 'secp256k1' ? 65 : 64);
      expect(verifies(scheme, sig, digest, pub)).toBe(true);
      if (scheme === 'ed25519') expect(nodeCryptoVerifiesEd25519(sig, digest, pub)).toBe(true);
      expect(verifies(scheme, sig, randomBytes(32), pub)).toBe(false);
      const signers = json.signers as string[];
      expect(signers).toHaveLength(2);
      subsets.add([...signers].sort().join('+'));
    }
    expect([...subsets].sort()).toEqual(['node-1+node-2', 'node-1+node-3', 'node-2+node-3']);
  });

  it('returns the original result for a repeated idempotency key and refuses it for another request', async () => {
    const ks = keysets.ed25519!;
    const digest = bytesToHex(randomBytes(32));
    const a = await t.cli('sign', '--keyset', ks.keysetId, '--digest', digest, '--idempotency-key', 'pay-42');
    const b = await t.cli('sign', '--keyset', ks.keysetId, '--digest', digest, '--idempotency-key', 'pay-42');
    expect(a.code).toBe(0);
    expect(b.json.requestId).toBe(a.json.requestId);
    expect(b.json.signature).toBe(a.json.signature);
    const c = await t.cli('sign', '--keyset', ks.keysetId, '--digest', bytesToHex(randomBytes(32)), '--idempotency-key', 'pay-42');
    expect(c.code).toBe(1);
    expect((c.json.error as { code: string }).code).toBe('ALREADY_EXISTS');
    const shown = await t.cli('request', 'show', a.json.requestId as string);
    expect(shown.json.status).toBe('signed');
    expect(shown.json.signature).toBe(a.json.signature);
  });

  it('signs a batch file with progress; repeats return the original, bad lines are refused alone', async () => {
    const ks = keysets.ed25519!;
    const digests = Array.from({ length: 40 }, () => randomBytes(32));
    const lines = digests.map((d, i) => JSON.stringify({ keysetId: ks.keysetId, digest: bytesToHex(d), idempotencyKey: `batch-${i}` }));
    lines.push(lines[0]!); // a repeat
    lines.push(JSON.stringify({ keysetId: keysets.secp256k1!.keysetId, digest: 'abcd', idempotencyKey: 'short' })); // wrong length
    const file = join(t.dir, 'batch.jsonl');
    await writeFile(file, lines.join('\n') + '\n');
    const { json, code, stderr } = await t.cli('sign', '--batch', file);
    expect(code).toBe(1); // not everything was signed
    expect(stderr).toContain('42/42');
    expect(json).toMatchObject({ total: 42, signed: 41, failed: 1 });
    const results = json.results as { requestId?: string; status: string; signature?: string; error?: { code: string } }[];
    expect(results[40]!.requestId).toBe(results[0]!.requestId);
    expect(results[41]).toMatchObject({ status: 'refused', error: { code: 'INVALID_ARGUMENT' } });
    results.slice(0, 40).forEach((r, i) => expect(ed25519.verify(hexToBytes(r.signature!), digests[i]!, hexToBytes(ks.publicKey))).toBe(true));
  });

  it('answers bad input with precise gRPC errors', async () => {
    const signing = await t.client(SigningService, 'payment');
    const ks = keysets.secp256k1!;
    await expect(signing.sign({ keysetId: ks.keysetId, digest: randomBytes(31) })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringMatching(/32-byte digest/) });
    await expect(signing.sign({ keysetId: '00000000-0000-4000-8000-000000000000', digest: randomBytes(32) })).rejects.toMatchObject({ code: status.NOT_FOUND });
    await expect(signing.sign({ keysetId: 'not-a-uuid', digest: randomBytes(32) })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
    // A payment service may not create keysets.
    const keysetsAsPayment = await t.client(KeysetService, 'payment');
    await expect(keysetsAsPayment.createKeyset({ scheme: Scheme.ED25519 })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    // Nodes serve only the coordinator.
    const nodeAsOperator = await t.nodeClient(NodeService, 'node-1', 'operator');
    await expect(nodeAsOperator.getNodeInfo({})).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    // Nothing half-written: the failed calls left no sign request behind and the cluster still signs.
    const ok = await signing.sign({ keysetId: ks.keysetId, digest: randomBytes(32) });
    expect(ok.request?.signature.length).toBe(65);
  });

  it('refuses replayed, unknown and forged nonce commitments at the node', async () => {
    const L = layout(t.dir);
    const coordinator = ed25519Signer(ed25519KeyPair(hexToBytes((await readFile(L.coordinatorKey, 'utf8')).trim())));
    const n1 = await t.nodeClient(NodeService, 'node-1', 'coordinator');
    const n2 = await t.nodeClient(NodeService, 'node-2', 'coordinator');
    const ks = keysets.ed25519!;
    const [c1] = (await n1.reserveNonces({ curve: Curve.ED25519, count: 1 })).commitments;
    const [c2] = (await n2.reserveNonces({ curve: Curve.ED25519, count: 1 })).commitments;
    const authorization = (commitmentId1: string, hiding1 = c1!.hiding, hiding2 = c2!.hiding) =>
      toBinary(
        SignAuthorizationSchema,
        create(SignAuthorizationSchema, {
          requestId: 'test',
          sessionId: bytesToHex(randomBytes(8)),
          keysetId: ks.keysetId,
          scheme: Scheme.ED25519,
          digest: randomBytes(32),
          commitments: [
            { index: 1, nodeId: 'node-1', commitmentId: commitmentId1, hiding: hiding1, binding: c1!.binding },
            { index: 2, nodeId: 'node-2', commitmentId: c2!.commitmentId, hiding: hiding2, binding: c2!.binding },
          ],
          expiresAtMs: BigInt(Date.now() + 60_000),
        }),
      );
    const item = (auth: Uint8Array) => ({ authorization: auth, coordinatorSignature: coordinator(SIGN_AUTHORIZATION_DOMAIN, auth) });
    const resultOf = async (auth: Uint8Array, signature?: Uint8Array) => {
      const res = await n1.signShares({ items: [signature ? { authorization: auth, coordinatorSignature: signature } : item(auth)] });
      return res.results[0]!.result;
    };

    const first = await resultOf(authorization(c1!.commitmentId));
    expect(first.case).toBe('share');
    const replay = await resultOf(authorization(c1!.commitmentId));
    expect(replay).toMatchObject({ case: 'error', value: { code: status.FAILED_PRECONDITION, message: expect.stringMatching(/already used/) } });
    const unknown = await resultOf(authorization(bytesToHex(randomBytes(16))));
    expect(unknown).toMatchObject({ case: 'error', value: { code: status.FAILED_PRECONDITION, message: expect.stringMatching(/not issued/) } });
    const forged = await resultOf(authorization(c1!.commitmentId), randomBytes(64));
    expect(forged).toMatchObject({ case: 'error', value: { code: status.PERMISSION_DENIED } });
    // A peer's point that does not decode is refused before any nonce is touched.
    const [c1b] = (await n1.reserveNonces({ curve: Curve.ED25519, count: 1 })).commitments;
    const badPoint = await resultOf(authorization(c1b!.commitmentId, c1b!.hiding, new Uint8Array(32).fill(0xff)));
    expect(badPoint).toMatchObject({ case: 'error', value: { code: status.INVALID_ARGUMENT, message: expect.stringMatching(/invalid point in the commitment of party 2/) } });
    // Its own commitment is compared, not decoded: bytes that are not its nonces' are refused (and the nonce is spent).
    const notMine = await resultOf(authorization(c1b!.commitmentId, new Uint8Array(32).fill(0xff)));
    expect(notMine).toMatchObject({ case: 'error', value: { code: status.FAILED_PRECONDITION, message: expect.stringMatching(/does not match this signer's nonces/) } });

    // One coordinator signature can cover a whole batch; a batch signature that does not verify
    // (here: over other authorizations) authorizes nothing.
    const batchSign = (auths: Uint8Array[]) => coordinator(SIGN_BATCH_DOMAIN, signBatchMessage(auths));
    const fresh = async () => {
      const [a] = (await n1.reserveNonces({ curve: Curve.ED25519, count: 1 })).commitments;
      const [b] = (await n2.reserveNonces({ curve: Curve.ED25519, count: 1 })).commitments;
      return { a: a!, b: b! };
    };
    const batchAuth = ({ a, b }: { a: { commitmentId: string; hiding: Uint8Array; binding: Uint8Array }; b: typeof a }) =>
      toBinary(
        SignAuthorizationSchema,
        create(SignAuthorizationSchema, {
          requestId: 'test-batch',
          sessionId: bytesToHex(randomBytes(8)),
          keysetId: ks.keysetId,
          scheme: Scheme.ED25519,
          digest: randomBytes(32),
          commitments: [
            { index: 1, nodeId: 'node-1', ...a },
            { index: 2, nodeId: 'node-2', ...b },
          ],
          expiresAtMs: BigInt(Date.now() + 60_000),
        }),
      );
    const batch = [batchAuth(await fresh()), batchAuth(await fresh())];
    const wrongBatch = await n1.signShares({ items: batch.map((authorization) => ({ authorization })), batchSignature: batchSign([batch[1]!, batch[0]!]) });
    for (const r of wrongBatch.results) expect(r.result).toMatchObject({ case: 'error', value: { code: status.PERMISSION_DENIED } });
    const signedBatch = await n1.signShares({ items: batch.map((authorization) => ({ authorization })), batchSignature: batchSign(batch) });
    expect(signedBatch.results.map((r) => r.result.case)).toEqual(['share', 'share']);
    // With the share comes the group commitment R the node computed.
    for (const r of signedBatch.results) expect(r.groupCommitment.length).toBe(32);

    // Single use survives a restart of the node.
    await t.cluster.stopProcess(t.cluster.nodes.get('node-1')!);
    await t.cluster.startNode('node-1');
    const n1again = await t.nodeClient(NodeService, 'node-1', 'coordinator');
    const after = await n1again.signShares({ items: [item(authorization(c1!.commitmentId))] });
    expect(after.results[0]!.result).toMatchObject({ case: 'error', value: { code: status.FAILED_PRECONDITION } });
  });

  it('keeps signing with one node killed, and reports it down', async () => {
    const victim = t.cluster.nodes.get('node-3')!;
    await t.cluster.stopProcess(victim, 'SIGKILL');
    for (const scheme of SCHEMES) {
      const ks = keysets[scheme]!;
      for (let i = 0; i < 2; i++) {
        const digest = randomBytes(32);
        const { json, code, stderr } = await t.cli('sign', '--keyset', ks.keysetId, '--digest', bytesToHex(digest));
        expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
        expect(json.signers).not.toContain('node-3');
        expect(verifies(scheme, hexToBytes(json.signature as string), digest, hexToBytes(ks.publicKey))).toBe(true);
      }
    }
    const cluster = await t.client(ClusterService, 'operator');
    const nodes = (await cluster.listNodes({})).nodes;
    expect(nodes.find((n) => n.nodeId === 'node-3')?.state).toBe(2 /* DOWN */);
    await t.cluster.startNode('node-3');
  });

  it('traces one request across the coordinator and the nodes, and logs carry its trace id', async () => {
    const keysets = await t.client(KeysetService, 'operator');
    const created = await keysets.createKeyset({ scheme: Scheme.ED25519, label: 'traced' });
    const keysetId = created.keyset!.keysetId;
    const L = layout(t.dir);
    const spans = async (name: string) =>
      (await readFile(join(L.logs, `${name}.spans.jsonl`), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes: Record<string, unknown> });
    const server = (await spans('coordinator')).findLast((s) => s.attributes['rpc.method'] === 'CreateKeyset' && s.attributes['rpc.grpc.status_code'] === 0 && s.parentSpanId === undefined)!;
    expect(server).toBeDefined();
    const traceId = server.traceId;
    for (const node of ['node-1', 'node-2', 'node-3']) {
      const nodeSpans = (await spans(node)).filter((s) => s.traceId === traceId);
      // Round 0, two protocol rounds (batched RunRounds calls) and the commit: every node call joins the coordinator's trace.
      expect(nodeSpans.map((s) => s.attributes['rpc.method'])).toEqual(expect.arrayContaining(['RunRounds', 'FinishSession']));
      expect(nodeSpans.filter((s) => s.attributes['rpc.method'] === 'RunRounds')).toHaveLength(3);
      // Logs reach the file through an asynchronous pipe: wait for the line rather than race it.
      await vi.waitFor(async () => expect(await readFile(L.log(node), 'utf8')).toContain(`"trace_id":"${traceId}"`), { timeout: 5_000 });
    }
    await vi.waitFor(async () => {
      const line = (await readFile(L.log('coordinator'), 'utf8')).split('\n').find((l) => l.includes(keysetId) && l.includes('keyset created'));
      expect(line).toContain(`"trace_id":"${traceId}"`);
    }, { timeout: 5_000 });
  });

  it('keeps every key across a restart of the whole cluster and signs again', async () => {
    await t.restart();
    for (const scheme of SCHEMES) {
      const ks = keysets[scheme]!;
      const shown = await t.cli('keyset', 'show', ks.keysetId);
      expect(shown.json.publicKey).toBe(ks.publicKey);
      const digest = randomBytes(32);
      const { json, code, stderr } = await t.cli('sign', '--keyset', ks.keysetId, '--digest', bytesToHex(digest));
      expect(code, `${stderr} ${JSON.stringify(json)}`).toBe(0);
      expect(verifies(scheme, hexToBytes(json.signature as string), digest, hexToBytes(ks.publicKey))).toBe(true);
    }
    const audit = await t.cli('audit', 'verify');
    expect(audit.json.ok).toBe(true);
    expect(audit.json.records as number).toBeGreaterThan(20);
  });
});
