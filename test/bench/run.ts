/**
 * `npm run bench [-- --json] [-- --quick]`: signatures through the real cluster (coordinator and
 * three node processes, mTLS on loopback, embedded database, audit on) at rising concurrency, next
 * to a baseline measured in the same run: @noble/curves' in-process FROST for each FROST scheme,
 * and our own DKLs23 protocol in one process (presign + sign, same group backend as the cluster) for cluster ECDSA
 * (at concurrency 1, 8 and 32; its rate is the sustained one, over the second half of each run, so
 * presignatures left in the pool by an earlier run do not count).
 * Prints a table, or with --json one object per scheme:
 * {"scheme","signatures_per_s","p50_ms","p99_ms","baseline_name","baseline_signatures_per_s","ratio"}.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519_FROST } from '@noble/curves/ed25519.js';
import { schnorr_FROST, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { HDKey } from '@scure/bip32';
import { computeAddress } from 'ethers';
import { LocalCluster } from '../../cli/launcher.js';
import { parseGroupBackend, setGroupBackend } from '../../crypto/group/index.js';
import { layout } from '../../cli/layout.js';
import { KeysetService, SigningService } from '../../proto/gen/custody/v1/api_pb.js';
import { Scheme } from '../../proto/gen/custody/v1/common_pb.js';
import { createClient, type Client } from '../../runtime/grpc.js';
import { clientCredentials, loadPem } from '../../runtime/tls.js';
import { keygenAllAsync, presignAll, signWith } from '../crypto/support/ecdsa-driver.js';

const json = process.argv.includes('--json');
// The bench process and the cluster it starts use the same default backend (native when the addons load).
const groups = setGroupBackend(parseGroupBackend(process.env.CUSTODY_GROUP_BACKEND));
const backendName = `${groups.secp256k1} backend`;
const quick = process.argv.includes('--quick');
/** `--only wallets`: just the batch wallet creation figure; `--only <scheme>` (ed25519, secp256k1, bip340, ecdsa): just that scheme. */
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const WALLETS = 100_000;
const CONCURRENCY = quick ? [1, 16] : [1, 8, 32, 128];
const say = (s: string) => {
  if (!json) process.stderr.write(s + '\n');
};

type FrostLib = typeof ed25519_FROST;

/** noble's FROST, 2-of-3, all parties in this process: commit, two shares, aggregate. */
function nobleBaseline(frost: FrostLib, seconds: number): number {
  const ids = [1, 2, 3].map((n) => frost.Identifier.fromNumber(n));
  const deal = frost.trustedDealer({ min: 2, max: 3 }, ids);
  const signers = ids.slice(0, 2);
  let count = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const msg = randomBytes(32);
    const nonces = signers.map((id) => frost.commit(deal.secretShares[id]!));
    const commitments = nonces.map((n) => n.commitments);
    const shares: Record<string, Uint8Array> = {};
    signers.forEach((id, i) => (shares[id] = frost.signShare(deal.secretShares[id]!, deal.public, nonces[i]!.nonces, commitments, msg)));
    frost.aggregate(deal.public, commitments, msg, shares);
    count++;
  }
  return count / seconds;
}

/** Our DKLs23 protocol, 2-of-3, all parties in this process: presign then the online round. */
async function ecdsaInProcess(seconds: number): Promise<{ perSecond: number; keygenMs: number }> {
  const t0 = performance.now();
  const keys = await keygenAllAsync(3, 2);
  const keygenMs = performance.now() - t0;
  let count = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    signWith(presignAll(keys, [1, 2]), randomBytes(32));
    count++;
  }
  return { perSecond: count / seconds, keygenMs };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

interface Run {
  concurrency: number;
  perSecond: number;
  /**
   * The rate over the second half of the completions. For ECDSA it is the sustained figure: the
   * presignatures an earlier run left in the pool are used up by then, so every signature in it
   * paid for its presigning (in the background or on the request path).
   */
  steadyPerSecond: number;
  p50: number;
  p99: number;
}

/** Signs `total` random digests with `concurrency` callers in parallel; throughput and latency percentiles. */
async function drive(signing: Client<typeof SigningService>, keysetId: string, concurrency: number, total: number): Promise<Run> {
  const latencies: number[] = [];
  const finished: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < total) {
        const t = performance.now();
        const r = await signing.sign({ keysetId, digest: randomBytes(32) }, { deadlineMs: 120_000 });
        if (r.request?.signature.length === 0) throw new Error(`signing failed: ${r.request.error}`);
        const now = performance.now();
        latencies.push(now - t);
        finished.push(now);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const half = Math.floor(total / 2);
  const steadyPerSecond = (total - half) / ((finished[total - 1]! - finished[half - 1]!) / 1000);
  return { concurrency, perSecond: total / seconds, steadyPerSecond, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/**
 * Open loop at a fixed rate (the latency target is p99 at half the peak rate): a request
 * starts every 1/rate seconds whether or not earlier ones finished, so queueing shows in the tail.
 * The first `warmup` requests run at the same rate but are not counted: the system adapts to a new
 * rate (pools size themselves from recent demand) before it is measured.
 */
async function driveAtRate(sign: () => Promise<void>, rate: number, total: number, warmup: number): Promise<{ p50: number; p99: number; achieved: number }> {
  const latencies: number[] = [];
  const start = performance.now();
  const running: Promise<void>[] = [];
  for (let i = 0; i < warmup + total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const counted = i >= warmup;
    running.push((async () => {
      const t = performance.now();
      await sign();
      if (counted) latencies.push(performance.now() - t);
    })());
  }
  await Promise.all(running);
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), achieved: (warmup + total) / ((performance.now() - start) / 1000) };
}

/** Signatures per second through SignBatch: `batches` concurrent callers, `size` digests per call. */
async function driveBatches(signing: Client<typeof SigningService>, keysetId: string, size: number, callers: number, rounds: number): Promise<number> {
  const start = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      for (let r = 0; r < rounds; r++) {
        const res = await signing.signBatch({ requests: Array.from({ length: size }, () => ({ keysetId, digest: randomBytes(32) })) }, { deadlineMs: 300_000 });
        if (res.results.some((x) => !x.request?.signature.length)) throw new Error('a batched signature failed');
      }
    }),
  );
  return (size * callers * rounds) / ((performance.now() - start) / 1000);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'custody-bench-'));
  say(`starting a local cluster in ${dir} (3 nodes, threshold 2, embedded database; group backends ${groups.ed25519} / ${groups.secp256k1})`);
  const cluster = await LocalCluster.start({ dir, nodes: 3, threshold: 2 });
  const L = layout(dir);
  const ca = await loadPem(L.tls, 'ca');
  const address = cluster.coordinator!.address;
  const keysets = createClient(KeysetService, address, clientCredentials(ca, await loadPem(L.tls, 'operator'), { role: 'coordinator' }));
  const signing = createClient(SigningService, address, clientCredentials(ca, await loadPem(L.tls, 'payment'), { role: 'coordinator' }));
  const results: Record<string, unknown>[] = [];
  try {
    if (only === 'wallets') {
      results.push(await walletBench(dir, keysets));
      return;
    }
    const schemes = [
      { name: 'ed25519', proto: Scheme.ED25519, noble: ed25519_FROST },
      { name: 'secp256k1', proto: Scheme.SECP256K1, noble: secp256k1_FROST },
      { name: 'bip340', proto: Scheme.BIP340, noble: schnorr_FROST },
    ] as const;
    for (const s of schemes.filter((x) => only === undefined || only === x.name)) {
      const t0 = performance.now();
      const ks = (await keysets.createKeyset({ scheme: s.proto })).keyset!;
      const keygenMs = performance.now() - t0;
      // Warm up: nonce pools, channels, JIT.
      await Promise.all(Array.from({ length: 20 }, () => signing.sign({ keysetId: ks.keysetId, digest: randomBytes(32) })));
      const runs: Run[] = [];
      for (const c of CONCURRENCY) {
        const total = quick ? Math.max(50, c * 4) : Math.max(200, c * 10);
        const run = await drive(signing, ks.keysetId, c, total);
        runs.push(run);
        say(`  ${s.name.padEnd(9)} concurrency ${String(c).padStart(3)}: ${run.perSecond.toFixed(1).padStart(7)} sig/s  p50 ${run.p50.toFixed(1)} ms  p99 ${run.p99.toFixed(1)} ms`);
      }
      const baseline = nobleBaseline(s.noble as FrostLib, quick ? 1 : 2);
      const peak = runs.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
      const half = await driveAtRate(
        async () => void (await signing.sign({ keysetId: ks.keysetId, digest: randomBytes(32) }, { deadlineMs: 120_000 })),
        peak.perSecond / 2,
        Math.round(peak.perSecond * (quick ? 2 : 5)),
        Math.round(peak.perSecond / 2), // one second
      );
      say(`  ${s.name.padEnd(9)} open loop at half the peak (${round(peak.perSecond / 2)}/s): p50 ${half.p50.toFixed(1)} ms  p99 ${half.p99.toFixed(1)} ms`);
      const batchSize = 64;
      const batched = await driveBatches(signing, ks.keysetId, batchSize, 4, quick ? 2 : 6);
      say(`  ${s.name.padEnd(9)} SignBatch of ${batchSize}, 4 callers: ${batched.toFixed(1)} sig/s`);
      const row = {
        scheme: s.name,
        signatures_per_s: round(peak.perSecond),
        p50_ms: round(peak.p50),
        p99_ms: round(peak.p99),
        baseline_name: `@noble/curves ${s.name === 'bip340' ? 'schnorr' : s.name}_FROST in-process 2-of-3`,
        baseline_signatures_per_s: round(baseline),
        ratio: round(peak.perSecond / baseline),
        concurrency: peak.concurrency,
        keygen_ms: round(keygenMs),
        p99_ms_at_half_peak: round(half.p99),
        batch_signatures_per_s: round(batched),
        batch_size: batchSize,
      };
      results.push(row);
      say(`  ${s.name}: peak ${row.signatures_per_s} sig/s at concurrency ${peak.concurrency}; baseline ${row.baseline_signatures_per_s} sig/s; ratio ${row.ratio}; keyset ${row.keygen_ms} ms`);
    }
    if (only === undefined || only === 'ecdsa') {
      say(`ecdsa: our DKLs23 in one process (${backendName})`);
      const ecdsa = await ecdsaInProcess(quick ? 1 : 3);
      say(`  ecdsa presign+sign in process: ${round(ecdsa.perSecond)} sig/s; keygen ${round(ecdsa.keygenMs)} ms`);

      say('ecdsa through the cluster (DKLs23 keygen, then presignatures from the pool or on the request path)');
      const t0 = performance.now();
      const ks = (await keysets.createKeyset({ scheme: Scheme.ECDSA }, { deadlineMs: 300_000 })).keyset!;
      const keygenMs = performance.now() - t0;
      say(`  ecdsa keyset created in ${round(keygenMs)} ms`);
      // Warm up, and let the coordinator's presignature pool start filling (it does after a first signature).
      await signing.sign({ keysetId: ks.keysetId, digest: randomBytes(32) }, { deadlineMs: 120_000 });
      await new Promise((r) => setTimeout(r, 2_000));
      const ecdsaRuns: Run[] = [];
      // Concurrent presigning sessions share node calls (RunRounds): the peak needs some concurrency.
      for (const c of quick ? [1, 8] : [1, 8, 32]) {
        const total = quick ? c * 5 + 10 : Math.min(c * 30 + 60, 480);
        const run = await drive(signing, ks.keysetId, c, total);
        ecdsaRuns.push(run);
        say(`  ecdsa     concurrency ${String(c).padStart(3)}: ${run.steadyPerSecond.toFixed(1).padStart(7)} sig/s sustained (${run.perSecond.toFixed(1)} over the whole run)  p50 ${run.p50.toFixed(1)} ms  p99 ${run.p99.toFixed(1)} ms`);
      }
      // Sustained: what a run left in the presignature pool flatters the next one's whole-run rate.
      const peak = ecdsaRuns.reduce((a, b) => (b.steadyPerSecond > a.steadyPerSecond ? b : a));
      const half = await driveAtRate(
        async () => void (await signing.sign({ keysetId: ks.keysetId, digest: randomBytes(32) }, { deadlineMs: 120_000 })),
        peak.steadyPerSecond / 2,
        Math.round(peak.steadyPerSecond * (quick ? 2 : 5)),
        // Three seconds: the closed-loop runs above may have emptied the presignature pool, and it
        // sizes itself from the last two seconds of demand. The target is stated with a
        // presignature ready, i.e. once the pool has adapted to this rate.
        Math.round((peak.steadyPerSecond / 2) * 3),
      );
      say(`  ecdsa     open loop at half the peak (${round(peak.steadyPerSecond / 2)}/s): p50 ${half.p50.toFixed(1)} ms  p99 ${half.p99.toFixed(1)} ms`);
      results.push({
        scheme: 'ecdsa',
        signatures_per_s: round(peak.steadyPerSecond),
        p50_ms: round(peak.p50),
        p99_ms: round(peak.p99),
        baseline_name: `our DKLs23 in one process, ${backendName}`,
        baseline_signatures_per_s: round(ecdsa.perSecond),
        ratio: round(peak.steadyPerSecond / ecdsa.perSecond),
        concurrency: peak.concurrency,
        keygen_ms: round(keygenMs),
        runs: ecdsaRuns.map((r) => ({ concurrency: r.concurrency, signatures_per_s: round(r.steadyPerSecond), whole_run_signatures_per_s: round(r.perSecond), p50_ms: round(r.p50), p99_ms: round(r.p99) })),
        p99_ms_at_half_peak: round(half.p99),
      });
      results.push({
        scheme: 'ecdsa-in-process',
        signatures_per_s: round(ecdsa.perSecond),
        p50_ms: round(1000 / ecdsa.perSecond),
        p99_ms: null,
        baseline_name: 'WASM build of a public DKLs23 library, figure quoted in the issue (not measured here)',
        baseline_signatures_per_s: 21,
        ratio: round(ecdsa.perSecond / 21),
        keygen_ms: round(ecdsa.keygenMs),
      });
    }
    if (only === undefined) results.push(await walletBench(dir, keysets));
  } finally {
    keysets.close();
    signing.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
  if (json) for (const r of results) process.stdout.write(JSON.stringify(r) + '\n');
  else if (only === 'wallets') process.stdout.write(JSON.stringify(results[0]) + '\n');
  else {
    process.stdout.write('\nscheme            sig/s     p50 ms   p99 ms   baseline sig/s   ratio\n');
    for (const r of results) {
      if (r.benchmark) {
        process.stdout.write(`${String(r.benchmark).padEnd(17)} ${r.count} wallets in ${r.seconds} s: ${r.wallets_per_s}/s vs ${r.baseline_wallets_per_s}/s baseline, ratio ${r.ratio}\n`);
        continue;
      }
      process.stdout.write(
        `${String(r.scheme).padEnd(17)} ${String(r.signatures_per_s).padStart(7)}  ${String(r.p50_ms).padStart(8)} ${String(r.p99_ms ?? '-').padStart(8)}   ${String(r.baseline_signatures_per_s).padStart(14)}   ${r.ratio}\n`,
      );
    }
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

/**
 * 100,000 wallets (keys, Ethereum and P2WPKH addresses, metadata) created and persisted by one
 * `custody wallet create` call on an ecdsa keyset, timed around the CLI process. Baseline: the
 * same derivation one child at a time with @scure/bip32 plus ethers' address, in this process,
 * without storage (measured on a sample and scaled).
 */
async function walletBench(dir: string, keysets: Client<typeof KeysetService>): Promise<Record<string, unknown>> {
  // ecdsa wallets carry the most work per wallet: an Ethereum and a P2WPKH address each.
  const ks = (await keysets.createKeyset({ scheme: Scheme.ECDSA }, { deadlineMs: 300_000 })).keyset!;
  const count = quick ? 20_000 : WALLETS;
  say(`wallets: ${count} through one CLI call (custody wallet create)`);
  const t0 = performance.now();
  const { stdout } = await runCli(['wallet', 'create', '--keyset', ks.keysetId, '--count', String(count), '--dir', dir, '--json']);
  const seconds = (performance.now() - t0) / 1000;
  const out = JSON.parse(stdout.trim().split('\n').pop()!) as { created: number; complete: boolean };
  if (!out.complete || out.created !== count) throw new Error(`wallet batch incomplete: ${stdout}`);
  const sample = 2_000;
  const root = new HDKey({ publicKey: ks.publicKey, chainCode: ks.chainCode }).deriveChild(0);
  const b0 = performance.now();
  for (let i = 0; i < sample; i++) computeAddress('0x' + Buffer.from(root.deriveChild(i).publicKey!).toString('hex'));
  const baselinePerSecond = sample / ((performance.now() - b0) / 1000);
  const row = {
    benchmark: 'wallet-create',
    count,
    seconds: round(seconds),
    wallets_per_s: round(count / seconds),
    baseline_name: '@scure/bip32 deriveChild + ethers computeAddress, one at a time, in process, no storage',
    baseline_wallets_per_s: round(baselinePerSecond),
    ratio: round(count / seconds / baselinePerSecond),
  };
  say(`  ${count} wallets in ${row.seconds} s (${row.wallets_per_s}/s, persisted); baseline ${row.baseline_wallets_per_s}/s; ratio ${row.ratio}`);
  return row;
}

function runCli(args: string[]): Promise<{ stdout: string }> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [join(process.cwd(), 'dist', 'cli', 'custody.js'), ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve({ stdout }),
    ),
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
