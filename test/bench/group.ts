/**
 * Group backend microbenchmark (printed, not asserted): native (libsodium, libsecp256k1) against
 * noble, per operation and per protocol, all in this process.
 *
 *   npm run build && node dist/test/bench/group.js [--quick]
 *   (or: npx vite-node test/bench/group.ts -- --quick)
 *
 * 1. Per operation: baseMul, mul, add, decode (validated), encode, msm of the verification shape.
 * 2. FROST 2-of-3 signing per scheme: two signers commit (encode), every party decodes the
 *    commitment list, each signer prepares its session and signs, the coordinator prepares,
 *    aggregates and verifies. With noble's own FROST for reference.
 * 3. DKLs23 2-of-3: keygen once (real multiplication), then presign + sign in a loop.
 */
import { randomBytes } from 'node:crypto';
import { ed25519_FROST } from '@noble/curves/ed25519.js';
import { schnorr_FROST, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { ciphersuite, curveOf, FROST_SCHEMES, type FrostScheme } from '../../crypto/frost/ciphersuite.js';
import { aggregate, generateNonces, nonceCommitments, prepareSession, signShare } from '../../crypto/frost/sign.js';
import { groupFor, nativeGroup, setGroupBackend, type CurveName, type Group, type GroupBackend } from '../../crypto/group/index.js';
import { evalPolynomial } from '../../crypto/shamir.js';
import { keygenAllAsync, presignAll, signWith } from '../crypto/support/ecdsa-driver.js';

const quick = process.argv.includes('--quick');
const SECONDS = quick ? 1 : 3;
const say = (s: string) => process.stdout.write(s + '\n');
const BACKENDS: GroupBackend[] = ['noble', 'native'];

/** Runs f for about `seconds` (after a short warm-up) and returns microseconds per call. */
function perCall(f: () => unknown, seconds = SECONDS / 3): number {
  const warm = performance.now() + 100;
  while (performance.now() < warm) f();
  let n = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    f();
    n++;
  }
  return ((performance.now() - t0) * 1000) / n;
}

const fmt = (us: number) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} us`);

function opTable(curve: CurveName): void {
  const groups = BACKENDS.map((b) => groupFor(curve, b));
  const rows: [string, (g: Group<unknown>) => () => unknown][] = [
    ['baseMul', (g) => () => g.baseMul(g.randomScalar())],
    [
      'mul',
      (g) => {
        const P = g.baseMul(g.randomScalar());
        return () => g.mul(P, g.randomScalar());
      },
    ],
    [
      'add',
      (g) => {
        const P = g.baseMul(g.randomScalar());
        const Q = g.baseMul(g.randomScalar());
        return () => g.add(P, Q);
      },
    ],
    [
      'decode',
      (g) => {
        const e = g.encode(g.baseMul(g.randomScalar()));
        return () => g.decode(e);
      },
    ],
    [
      'encode(add)',
      (g) => {
        const P = g.baseMul(g.randomScalar());
        const Q = g.baseMul(g.randomScalar());
        return () => g.encode(g.add(P, Q));
      },
    ],
    [
      'msm [G, P]',
      (g) => {
        const P = g.baseMul(g.randomScalar());
        return () => g.msm([g.generator, P], [g.randomScalar(), g.randomScalar()]);
      },
    ],
  ];
  say(`\n${curve}: ${groups.map((g) => g.backend).join(' vs ')}`);
  for (const [name, mk] of rows) {
    const t = groups.map((g) => perCall(mk(g)));
    say(`  ${name.padEnd(12)} ${t.map((x) => fmt(x).padStart(10)).join('  ')}   x${(t[0]! / t[1]!).toFixed(1)}`);
  }
}

/** Our FROST, 2-of-3, every party in this process (see the file comment). Signatures per second. */
function frostThroughput(scheme: FrostScheme, g: Group<unknown>): number {
  const cs = ciphersuite(scheme, g);
  const coeffs = [g.randomScalar(), g.randomScalar()];
  const share = new Map([1, 2, 3].map((i) => [i, evalPolynomial(g.Fn, coeffs, BigInt(i))]));
  const verifying = new Map([...share].map(([i, s]) => [i, g.baseMul(s)]));
  const PKbytes = g.encode(g.baseMul(coeffs[0]!));
  const signers = [1, 2];
  const once = () => {
    const message = randomBytes(32);
    const nonces = new Map(signers.map((i) => [i, generateNonces(cs, share.get(i)!)]));
    const wire = signers.map((i) => {
      const c = nonceCommitments(cs, nonces.get(i)!);
      return { index: i, hiding: g.encode(c.hiding), binding: g.encode(c.binding) };
    });
    // Every party decodes the list and the group key it holds as bytes.
    const decodeList = () => wire.map((w) => ({ index: w.index, hiding: g.decode(w.hiding), binding: g.decode(w.binding) }));
    const shares = new Map<number, bigint>();
    for (const i of signers) {
      const session = prepareSession(cs, g.decode(PKbytes), decodeList(), message);
      shares.set(i, signShare(cs, { index: i, secretShare: share.get(i)!, nonces: nonces.get(i)!, session }));
    }
    const session = prepareSession(cs, g.decode(PKbytes), decodeList(), message);
    return aggregate(cs, { session, shares, verifyingShares: verifying });
  };
  return 1e6 / perCall(once, SECONDS);
}

type FrostLib = typeof ed25519_FROST;
const NOBLE_FROST: Record<FrostScheme, FrostLib> = { ed25519: ed25519_FROST, secp256k1: secp256k1_FROST, bip340: schnorr_FROST };

/** noble's FROST, 2-of-3, in this process: commit, two shares, aggregate (as test/bench/run.ts). */
function nobleFrostThroughput(frost: FrostLib): number {
  const ids = [1, 2, 3].map((n) => frost.Identifier.fromNumber(n));
  const deal = frost.trustedDealer({ min: 2, max: 3 }, ids);
  const signers = ids.slice(0, 2);
  const once = () => {
    const msg = randomBytes(32);
    const nonces = signers.map((id) => frost.commit(deal.secretShares[id]!));
    const commitments = nonces.map((n) => n.commitments);
    const shares: Record<string, Uint8Array> = {};
    signers.forEach((id, i) => (shares[id] = frost.signShare(deal.secretShares[id]!, deal.public, nonces[i]!.nonces, commitments, msg)));
    return frost.aggregate(deal.public, commitments, msg, shares);
  };
  return 1e6 / perCall(once, SECONDS);
}

async function ecdsa(backend: GroupBackend): Promise<{ keygenMs: number; perSecond: number; msPer: number }> {
  setGroupBackend(backend);
  try {
    const t0 = performance.now();
    const keys = await keygenAllAsync(3, 2);
    const keygenMs = performance.now() - t0;
    const us = perCall(() => signWith(presignAll(keys, [1, 2]), randomBytes(32)), SECONDS * 2);
    return { keygenMs, perSecond: 1e6 / us, msPer: us / 1000 };
  } finally {
    setGroupBackend('native');
  }
}

async function main(): Promise<void> {
  for (const c of ['ed25519', 'secp256k1'] as const) {
    if (!nativeGroup(c)) throw new Error(`native ${c} backend did not load`);
  }
  say(`node ${process.version}, ${SECONDS}s per figure${quick ? ' (--quick)' : ''}`);
  say('\nPer operation (noble, native, speed-up):');
  opTable('ed25519');
  opTable('secp256k1');

  say('\nFROST 2-of-3 signing, all parties in process (signatures/s):');
  say(`  ${'scheme'.padEnd(10)} ${'noble lib'.padStart(10)} ${'ours/noble'.padStart(11)} ${'ours/native'.padStart(12)}  speed-up`);
  for (const scheme of FROST_SCHEMES) {
    const lib = nobleFrostThroughput(NOBLE_FROST[scheme]);
    const [nob, nat] = BACKENDS.map((b) => frostThroughput(scheme, groupFor(curveOf(scheme), b))) as [number, number];
    say(`  ${scheme.padEnd(10)} ${lib.toFixed(1).padStart(10)} ${nob.toFixed(1).padStart(11)} ${nat.toFixed(1).padStart(12)}  x${(nat / nob).toFixed(1)}`);
  }

  say('\nDKLs23 2-of-3 (real multiplication), all parties in process:');
  const res: Record<string, Awaited<ReturnType<typeof ecdsa>>> = {};
  for (const b of BACKENDS) {
    res[b] = await ecdsa(b);
    const r = res[b]!;
    say(`  ${b.padEnd(7)} keygen ${r.keygenMs.toFixed(0).padStart(6)} ms   presign+sign ${r.msPer.toFixed(1).padStart(6)} ms  (${r.perSecond.toFixed(1)}/s)`);
  }
  say(`  speed-up presign+sign x${(res.native!.perSecond / res.noble!.perSecond).toFixed(1)}, keygen x${(res.noble!.keygenMs / res.native!.keygenMs).toFixed(1)}`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
