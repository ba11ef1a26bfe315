/**
 * The policy end to end across real processes, with the example policy (docs/examples/policy.json)
 * and three treasury approvers: 0.5 ETH signs at once; 5 ETH waits, one approval leaves it waiting,
 * the second signs it and the signed transaction recovers to the wallet's address; 200 ETH is
 * rejected; the wallet's 24-hour window stops the 11th ETH. Then every bypass we know of fails with a
 * precise error and leaves an audit record: a forged approval, one replayed onto another request,
 * self-approval, the same approver twice, an expired request, a compromised coordinator going
 * straight to the nodes without approvals, and a transaction that does not match the digest.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, toBinary } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';
import { bytesToHex, hexToBytes, randomBytes } from '@noble/hashes/utils.js';
import { parseEther, Transaction, Wallet as EthWallet } from 'ethers';
import { layout } from '../../cli/layout.js';
import { ed25519KeyPair, ed25519Signer, SIGN_AUTHORIZATION_DOMAIN } from '../../crypto/ed25519-sig.js';
import { ApprovalService } from '../../proto/gen/custody/v1/api_pb.js';
import { Scheme } from '../../proto/gen/custody/v1/common_pb.js';
import { NodeService, SignAuthorizationSchema } from '../../proto/gen/custody/v1/node_pb.js';
import { startTestCluster, type TestCluster } from '../support/cluster.js';

type Json = Record<string, unknown>;

describe('policy, approvals and node-side enforcement', () => {
  let t: TestCluster;
  let walletId: string;
  let address: string;
  /** A second wallet for the bypass tests: the first one's 24-hour budget is spent by then. */
  let otherWallet: string;
  let nonce = 0;
  const treasury = ['t1', 't2', 't3'];

  /** An unsigned EIP-1559 (or legacy EIP-155) transfer of `eth` ETH on mainnet. */
  const ethTx = (eth: string, legacy = false): string => {
    const to = EthWallet.createRandom().address;
    const base = { chainId: 1n, nonce: nonce++, to, value: parseEther(eth), gasLimit: 21_000n };
    const tx = legacy
      ? Transaction.from({ ...base, type: 0, gasPrice: 10n ** 9n })
      : Transaction.from({ ...base, type: 2, maxFeePerGas: 30n * 10n ** 9n, maxPriorityFeePerGas: 10n ** 9n });
    return tx.unsignedSerialized;
  };
  const sign = async (eth: string, legacy = false, wallet = walletId) => {
    const r = await t.cli('sign', '--wallet', wallet, '--eth-tx', ethTx(eth, legacy));
    expect(r.json.error, JSON.stringify(r.json)).toBeUndefined();
    return r.json;
  };
  const approve = (requestId: string, who: string) => t.cli('approve', requestId, '--key', join(t.dir, `${who}.key`));
  const audit = async () => (await t.cli('audit', 'list', '--limit', '5000')).json.records as { action: string; subject: string; details: Json }[];

  beforeAll(async () => {
    t = await startTestCluster({ nodes: 3, threshold: 2 });
    const ks = await t.cli('keyset', 'create', '--scheme', 'ecdsa');
    expect(ks.code, ks.stderr).toBe(0);
    const w = await t.cli('wallet', 'create', '--keyset', ks.json.keysetId as string, '--count', '2');
    const wallets = w.json.wallets as { walletId: string; addresses: { ethereum: string } }[];
    walletId = wallets[0]!.walletId;
    address = wallets[0]!.addresses.ethereum;
    otherWallet = wallets[1]!.walletId;
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
  });

  it('installs the example policy signed by the admin and registers three treasury approvers', async () => {
    const set = await t.cli('policy', 'set', '--file', join(process.cwd(), 'docs', 'examples', 'policy.json'));
    expect(set.code, `${set.stderr} ${JSON.stringify(set.json)}`).toBe(0);
    for (const name of treasury) {
      const kg = await t.cli('approver', 'keygen', '--out', join(t.dir, `${name}.key`));
      expect(kg.code, kg.stderr).toBe(0);
      const add = await t.cli('approver', 'add', '--name', name, '--role', 'treasury', '--public-key', kg.json.publicKey as string);
      expect(add.code, `${add.stderr} ${JSON.stringify(add.json)}`).toBe(0);
    }
    const shown = await t.cli('policy', 'show');
    expect(shown.json.version).toBe(4);
    const approvers = (shown.json.policy as { approvers: { name: string }[] }).approvers.map((a) => a.name);
    expect(approvers).toEqual(expect.arrayContaining(treasury));
    // A policy not signed by an admin key the nodes trust is refused.
    const forged = await t.cli('policy', 'set', '--file', join(process.cwd(), 'docs', 'examples', 'policy.json'), '--admin-key', join(t.dir, 't1.key'));
    expect(forged.code).not.toBe(0);
  });

  it('signs 0.5 ETH at once; the signed transaction recovers to the wallet address', async () => {
    const r = await sign('0.5');
    expect(r).toMatchObject({ status: 'signed', intent: { kind: 'native-transfer', asset: 'ETH', amount: parseEther('0.5').toString() } });
    expect(Transaction.from(r.signedTx as string).from).toBe(address);
    // Legacy EIP-155 transactions too.
    const legacy = await sign('0.1', true);
    expect(legacy.status).toBe('signed');
    const parsed = Transaction.from(legacy.signedTx as string);
    expect([parsed.type, parsed.chainId, parsed.from]).toEqual([0, 1n, address]);
  });

  it('holds 5 ETH for two treasury approvals: one leaves it waiting, the second signs it', async () => {
    const r = await sign('5');
    expect(r).toMatchObject({ status: 'pending_approval', missing: [{ count: 2, role: 'treasury' }] });
    const id = r.requestId as string;
    const first = await approve(id, 't1');
    expect(first.code, `${first.stderr} ${JSON.stringify(first.json)}`).toBe(0);
    expect(first.json.status).toBe('pending_approval');
    const twice = await approve(id, 't1');
    expect(twice.json.error).toMatchObject({ code: 'ALREADY_EXISTS' });
    const second = await approve(id, 't2');
    expect(second.code, `${second.stderr} ${JSON.stringify(second.json)}`).toBe(0);
    expect(second.json.status).toBe('signed');
    expect(Transaction.from(second.json.signedTx as string).from).toBe(address);
    const records = (await audit()).filter((x) => x.subject === id).map((x) => x.action);
    // The second try by t1 is on the record as refused.
    expect(records).toEqual(['sign.received', 'sign.policy_checked', 'sign.awaiting_approvals', 'approval.recorded', 'approval.refused', 'approval.recorded', 'sign.signing', 'sign.completed']);
  }, 60_000);

  it('rejects 200 ETH by rule, and the wallet window stops the 11th ETH', async () => {
    const big = await sign('200');
    expect(big).toMatchObject({ status: 'rejected', rule: 'eth-deny-above-100' });
    // 0.5 + 0.1 + 5 so far; four more ETH and 0.4 reach exactly 10.
    for (const eth of ['1', '1', '1', '1', '0.4']) expect((await sign(eth)).status).toBe('signed');
    const eleventh = await sign('1');
    expect(eleventh).toMatchObject({ status: 'rejected', rule: 'eth-wallet-10-per-24h' });
  }, 120_000);

  it('refuses forged, replayed and self-approvals with a precise error and an audit record', async () => {
    const a = (await sign('2', false, otherWallet)).requestId as string;
    const b = (await sign('3', false, otherWallet)).requestId as string;
    const approvals = await t.client(ApprovalService, 'approver');
    // Forged: t3's name with a signature that is not t3's.
    await expect(approvals.decide({ requestId: a, approval: { approver: 't3', decision: 'approve', expiresAtMs: 1n, signature: randomBytes(64) } })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    // Replayed: t1's valid approval of request a, presented for request b.
    const ok = await approve(a, 't1');
    expect(ok.json.status).toBe('pending_approval');
    const stored = (await t.cli('audit', 'list', '--limit', '5000')).json.records as { action: string; subject: string; details: { signature?: string; approver?: string } }[];
    const sig = stored.find((r) => r.action === 'approval.recorded' && r.subject === a && r.details.approver === 't1')!.details.signature!;
    const pending = (await approvals.listPending({})).requests.find((r) => r.requestId === a)!;
    const expiresAtMs = BigInt(Number(pending.approvalExpiresAt!.seconds) * 1000 + Math.floor(pending.approvalExpiresAt!.nanos / 1e6));
    await expect(approvals.decide({ requestId: b, approval: { approver: 't1', decision: 'approve', expiresAtMs, signature: hexToBytes(sig) } })).rejects.toMatchObject({ code: status.PERMISSION_DENIED });
    // Self-approval: the payment client's own name as an approver does not count.
    const kg = await t.cli('approver', 'keygen', '--out', join(t.dir, 'payment.key'));
    await t.cli('approver', 'add', '--name', 'payment', '--role', 'treasury', '--public-key', kg.json.publicKey as string);
    const c = (await sign('2', false, otherWallet)).requestId as string;
    const self = await approve(c, 'payment');
    expect(self.json.error).toMatchObject({ code: 'PERMISSION_DENIED' });
    expect((self.json.error as { message: string }).message).toMatch(/initiator/);
    const refused = (await audit()).filter((r) => r.action === 'approval.refused').map((r) => [r.subject, r.details.approver]);
    expect(refused).toEqual(expect.arrayContaining([[a, 't3'], [b, 't1'], [c, 'payment']]));
  }, 120_000);

  it('nodes refuse a coordinator that skips approvals or swaps the transaction', async () => {
    const L = layout(t.dir);
    const coordinator = ed25519Signer(ed25519KeyPair(hexToBytes((await readFile(L.coordinatorKey, 'utf8')).trim())));
    const node = await t.nodeClient(NodeService, 'node-1', 'coordinator');
    const version = (await t.cli('policy', 'show')).json.version as number;
    const keysetId = (await t.cli('wallet', 'show', walletId)).json.keysetId as string;
    const path = (await t.cli('wallet', 'show', walletId)).json.path as string;
    const item = (payload: string, digest: Uint8Array) => {
      const authorization = toBinary(
        SignAuthorizationSchema,
        create(SignAuthorizationSchema, {
          requestId: crypto.randomUUID(),
          sessionId: crypto.randomUUID(),
          keysetId,
          scheme: Scheme.ECDSA,
          digest,
          derivationPath: path,
          ecdsaSigners: [{ index: 1, nodeId: 'node-1', presignatureId: 'x' }, { index: 2, nodeId: 'node-2', presignatureId: 'y' }],
          presignSid: new Uint8Array(32),
          expiresAtMs: BigInt(Date.now() + 30_000),
          payload: hexToBytes(payload.slice(2)),
          policyVersion: version,
          initiator: 'payment',
          walletId,
        }),
      );
      return { authorization, coordinatorSignature: coordinator(SIGN_AUTHORIZATION_DOMAIN, authorization) };
    };
    const fiveEth = ethTx('5');
    const noApprovals = await node.signShares({ items: [item(fiveEth, hexToBytes(Transaction.from(fiveEth).unsignedHash.slice(2)))] });
    expect(noApprovals.results[0]!.result).toMatchObject({ case: 'error', value: { code: status.PERMISSION_DENIED, message: expect.stringMatching(/needs approvals/) } });
    const small = ethTx('0.1');
    const swapped = await node.signShares({ items: [item(small, hexToBytes(Transaction.from(ethTx('50')).unsignedHash.slice(2)))] });
    expect(swapped.results[0]!.result).toMatchObject({ case: 'error', value: { code: status.INVALID_ARGUMENT, message: expect.stringMatching(/not the signing hash/) } });
    const raw = await node.signShares({ items: [item('0x', randomBytes(32))] });
    expect(raw.results[0]!.result).toMatchObject({ case: 'error', value: { code: status.PERMISSION_DENIED, message: expect.stringMatching(/rawDigests/) } });
    // Through the API the same mismatch is refused before anything is stored.
    const mismatch = await t.cli('sign', '--wallet', walletId, '--eth-tx', small, '--digest', bytesToHex(randomBytes(32)));
    expect(mismatch.json.error).toMatchObject({ code: 'INVALID_ARGUMENT' });
    const refused = (await audit()).filter((r) => r.action === 'sign.refused' && r.subject === walletId);
    expect(refused.at(-1)?.details).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/signing hash/) });
  });

  it('a request whose approvals do not arrive in time expires', async () => {
    const file = join(t.dir, 'short.json');
    const example = JSON.parse(await readFile(join(process.cwd(), 'docs', 'examples', 'policy.json'), 'utf8')) as Json;
    const { writeFile } = await import('node:fs/promises');
    const current = (await t.cli('policy', 'show')).json.policy as { approvers: unknown[] };
    await writeFile(file, JSON.stringify({ ...example, approvers: current.approvers, amountUnits: 'smallest', assets: [{ symbol: 'ETH', decimals: 18, kind: 'native', chainIds: ['1'] }], rules: [{ id: 'all-need-approval', effect: 'require_approvals', when: { asset: 'ETH' }, approvals: [{ count: 1, role: 'treasury' }] }], approvalTtlSeconds: 2 }));
    const set = await t.cli('policy', 'set', '--file', file);
    expect(set.code, `${set.stderr} ${JSON.stringify(set.json)}`).toBe(0);
    const r = await sign('0.01', false, otherWallet);
    expect(r.status).toBe('pending_approval');
    await new Promise((res) => setTimeout(res, 2_500));
    const late = await approve(r.requestId as string, 't1');
    expect(late.json.error).toMatchObject({ code: 'FAILED_PRECONDITION' });
    const shown = await t.cli('request', 'show', r.requestId as string);
    expect(shown.json.status).toBe('expired');
    expect((await audit()).some((x) => x.action === 'sign.expired' && x.subject === r.requestId)).toBe(true);
  }, 60_000);
});
