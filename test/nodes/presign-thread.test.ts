/**
 * Presigning on its own thread (nodes/presign-thread.ts, the compiled nodes/presign-worker.js that
 * `npm test` builds): two threads, one per party, run a batch of DKLs23 presignatures whose outputs
 * sign and verify with noble; a tampered multiplication comes back as the protocol's own abort with
 * the sender blamed; the thread runs at the lower priority it was given; bad settings are refused.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EcdsaKeyShare } from '../../crypto/ecdsa/keygen.js';
import type { Presignature } from '../../crypto/ecdsa/presign.js';
import { decodeFields } from '../../crypto/ecdsa/wire.js';
import { ProtocolAbort, type ProtocolMessage, type Step } from '../../crypto/protocol.js';
import { encodeFields } from '../../crypto/transcript.js';
import { DEFAULT_PRESIGN_NICE, keyRef, presignNice, PresignThread, presignWorkerFile } from '../../nodes/presign-thread.js';
import type { ProtocolRunner } from '../../nodes/sessions.js';
import type { Logger } from '../../runtime/log.js';
import { keygenAllAsync, signWith } from '../crypto/support/ecdsa-driver.js';

const WORKER = fileURLToPath(new URL('../../dist/nodes/presign-worker.js', import.meta.url));
const SIGNERS = [1, 2];
const NICE = 7;

const infos: unknown[] = [];
const log = { info: (o: unknown) => infos.push(o), warn: () => undefined, error: () => undefined } as unknown as Logger;

let keys: Map<number, EcdsaKeyShare>;
let threads: Map<number, PresignThread>;
beforeAll(async () => {
  keys = await keygenAllAsync(3, 2);
  threads = new Map(SIGNERS.map((i) => [i, new PresignThread(WORKER, { nice: NICE }, log)]));
}, 60_000);
afterAll(async () => {
  for (const t of threads.values()) await t.close();
});

type Tamper = (m: ProtocolMessage) => ProtocolMessage;

/** Relays every round between the two parties' threads until both have an output (or one fails). */
async function presign(count: number, tamper: Tamper = (m) => m): Promise<Map<number, unknown>> {
  const sessionId = `ps-${Buffer.from(randomBytes(8)).toString('hex')}`;
  const runners = new Map<number, ProtocolRunner>(
    SIGNERS.map((i) => [i, threads.get(i)!.runner(keyRef('ks', 0, keys.get(i)!), keys.get(i)!, count)]),
  );
  const params = (i: number) => Array.from({ length: count }, (_, k) => ({ key: keys.get(i)!, signers: SIGNERS, sessionId: `${sessionId}/${k}` }));
  let outgoing = new Map<number, ProtocolMessage[]>();
  for (const i of SIGNERS) outgoing.set(i, (await runners.get(i)!.start(sessionId, count === 1 ? params(i)[0] : params(i))).outgoing);
  const outputs = new Map<number, unknown>();
  while (outputs.size < SIGNERS.length) {
    const next = new Map<number, ProtocolMessage[]>();
    const steps = await Promise.all(
      SIGNERS.map((i): Promise<Step<unknown, unknown>> => {
        const inbox = SIGNERS.filter((j) => j !== i).flatMap((j) => outgoing.get(j)!.filter((m) => m.to === 0 || m.to === i).map(tamper));
        return runners.get(i)!.step(sessionId, null, inbox);
      }),
    );
    steps.forEach((s, n) => {
      next.set(SIGNERS[n]!, s.outgoing);
      if (s.done) outputs.set(SIGNERS[n]!, s.output);
    });
    outgoing = next;
  }
  return outputs;
}

describe('presigning on its own thread', () => {
  it('makes a batch of presignatures that sign and verify like ones made in the main thread', async () => {
    const outputs = await presign(3);
    const bySigner = SIGNERS.map((i) => outputs.get(i) as Presignature[]);
    bySigner.forEach((list) => expect(list).toHaveLength(3));
    for (let k = 0; k < 3; k++) {
      const digest = randomBytes(32);
      const sig = signWith(new Map(SIGNERS.map((i, n) => [i, bySigner[n]![k]!])), digest);
      // An independent verifier: noble, against the keyset's public key.
      expect(secp256k1.verify(sig.signature, digest, keys.get(1)!.publicKey, { prehash: false })).toBe(true);
    }
  });

  it('runs a session of one presignature too (no batch framing)', async () => {
    const outputs = await presign(1);
    const digest = randomBytes(32);
    const sig = signWith(new Map(SIGNERS.map((i) => [i, outputs.get(i) as Presignature])), digest);
    expect(secp256k1.verify(sig.signature, digest, keys.get(1)!.publicKey, { prehash: false })).toBe(true);
  });

  it('returns a failed multiplication check as the protocol abort, blaming the sender', async () => {
    // Party 2's round-2 message to party 1, second instance: flip a bit of its multiplication field.
    const MUL_FIELD = 3;
    const flip: Tamper = (m) => {
      if (m.from !== 2 || m.to !== 1 || m.round !== 2) return m;
      const parts = decodeFields(m.payload);
      const fields = decodeFields(parts[2]!).map((f) => f.slice());
      fields[MUL_FIELD]![fields[MUL_FIELD]!.length - 3]! ^= 0x01;
      parts[2] = encodeFields(fields);
      return { ...m, payload: encodeFields(parts) };
    };
    const failure = await presign(2, flip).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(ProtocolAbort);
    expect((failure as ProtocolAbort).reason).toBe('mul-check-failed');
    expect((failure as ProtocolAbort).blame).toEqual([2]);
  });

  it('forgets a dropped session and answers an unknown one with an error', async () => {
    const t = threads.get(1)!;
    const r = t.runner(keyRef('ks', 0, keys.get(1)!), keys.get(1)!, 1);
    await r.start('dropped', { key: keys.get(1)!, signers: SIGNERS, sessionId: 'dropped' });
    r.drop('dropped');
    await expect(r.step('dropped', null, [])).rejects.toThrow(/no session dropped/);
    await expect(r.step('never-started', null, [])).rejects.toThrow(/no session never-started/);
  });

  it('answers a call still out when the node stops, instead of leaving it waiting', async () => {
    const t = new PresignThread(WORKER, { nice: 0 }, log);
    const pending = t.runner(keyRef('ks', 0, keys.get(1)!), keys.get(1)!, 1).start('stopping', { key: keys.get(1)!, signers: SIGNERS, sessionId: 'stopping' });
    // Awaited before the close, so the rejection is never without a handler.
    const refused = expect(pending).rejects.toThrow(/the node is stopping/);
    await t.close();
    await refused;
  });

  it('runs at the priority it was given, below the rest of the process', () => {
    expect(infos).toContainEqual({ nice: NICE });
    // Field 19 of /proc/<pid>/task/<tid>/stat is the thread's nice value.
    const nice = readdirSync('/proc/self/task').map((tid) => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'latin1').split(') ')[1]!.split(' ')[16]));
    expect(nice.filter((n) => n === NICE).length).toBe(threads.size);
  });
});

describe('presigning thread settings', () => {
  it('reads CUSTODY_PRESIGN_NICE: default, 0 to keep the node priority, and refuses anything else with the variable named', () => {
    expect(presignNice({})).toBe(DEFAULT_PRESIGN_NICE);
    expect(presignNice({ CUSTODY_PRESIGN_NICE: '0' })).toBe(0);
    expect(presignNice({ CUSTODY_PRESIGN_NICE: '19' })).toBe(19);
    for (const bad of ['20', '-1', 'low', '1.5']) expect(() => presignNice({ CUSTODY_PRESIGN_NICE: bad })).toThrow(/CUSTODY_PRESIGN_NICE must be a whole number from 0 to 19/);
  });

  it('CUSTODY_PRESIGN_THREAD=0 keeps presigning on the main thread', () => {
    expect(presignWorkerFile({ CUSTODY_PRESIGN_THREAD: '0' })).toBeUndefined();
  });
});
