/**
 * Protocol batches (crypto/protocol-batch.ts) on DKLs23 presigning: a batch of presignatures made
 * in one session signs exactly as presignatures made one by one, and a message that is not a well
 * formed batch, or a tampered instance inside one, aborts with the sender blamed.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EcdsaKeyShare } from '../../crypto/ecdsa/keygen.js';
import { ecdsaPresign, type Presignature } from '../../crypto/ecdsa/presign.js';
import { decodeFields } from '../../crypto/ecdsa/wire.js';
import { batchOf, MAX_PROTOCOL_BATCH } from '../../crypto/protocol-batch.js';
import type { Protocol, ProtocolMessage, Step } from '../../crypto/protocol.js';
import { encodeFields } from '../../crypto/transcript.js';
import { runProtocol, type Tamper } from '../support/protocol-driver.js';
import { keygenAllAsync, signWith } from './support/ecdsa-driver.js';

let keys: Map<number, EcdsaKeyShare>;
beforeAll(async () => {
  keys = await keygenAllAsync(3, 2);
}, 60_000);

const batch = batchOf(ecdsaPresign);
const SIGNERS = [1, 3];

function run(count: number, tamper?: Tamper) {
  const ids = Array.from({ length: count }, (_, i) => `ps-${Buffer.from(randomBytes(8)).toString('hex')}/${i}`);
  const params = new Map(SIGNERS.map((i) => [i, ids.map((sessionId) => ({ key: keys.get(i)!, signers: SIGNERS, sessionId }))]));
  return { ids, result: runProtocol(batch, params, tamper ? { tamper } : {}) };
}

describe('protocol batches (DKLs23 presigning)', () => {
  it('makes one presignature per instance, each signing like a presignature made alone', () => {
    const { ids, result } = run(3);
    expect(result.aborts.size).toBe(0);
    const bySigner = SIGNERS.map((i) => result.outputs.get(i)!);
    bySigner.forEach((out) => expect(out).toHaveLength(3));
    const Rs = new Set<string>();
    for (let k = 0; k < 3; k++) {
      const presigs = new Map<number, Presignature>(SIGNERS.map((i, n) => [i, bySigner[n]![k]!]));
      for (const p of presigs.values()) expect(p.sessionId).toBe(ids[k]);
      Rs.add(Buffer.from(presigs.get(1)!.R).toString('hex'));
      const digest = randomBytes(32);
      const sig = signWith(presigs, digest);
      // An independent verifier: noble, against the keyset's public key.
      expect(secp256k1.verify(sig.signature, digest, keys.get(1)!.publicKey, { prehash: false })).toBe(true);
    }
    expect(Rs.size).toBe(3);
  });

  it('sends one message per sender, receiver and round, whatever the batch size', () => {
    const sizes = [1, 4].map((count) => {
      const seen: ProtocolMessage[] = [];
      run(count, (m) => (seen.push(m), [m]));
      return seen.length;
    });
    expect(sizes[0]).toBe(sizes[1]);
  });

  it('blames the sender of a message that is not a batch of the right size', () => {
    const short: Tamper = (m, receiver) => {
      if (m.from !== 3 || receiver !== 1 || m.round !== 1) return [m];
      const parts = decodeFields(m.payload);
      return [{ ...m, payload: encodeFields(parts.slice(0, 2)) }];
    };
    const { result } = run(2, short);
    const abort = result.aborts.get(1);
    expect(abort?.reason).toBe('malformed-message');
    expect(abort?.blame).toEqual([3]);
  });

  it('aborts the batch with the reason and blame of a tampered instance', () => {
    // Flip a bit of the multiplication message in the second instance's part of party 3's
    // round-2 message to party 1 (p2p layout: tag, sid, echo, mul, Gamma_u, Gamma_v, psi).
    const MUL_FIELD = 3;
    const flip: Tamper = (m, receiver) => {
      if (m.from !== 3 || receiver !== 1 || m.round !== 2 || m.to !== 1) return [m];
      const parts = decodeFields(m.payload);
      const fields = decodeFields(parts[2]!).map((f) => f.slice());
      const mul = fields[MUL_FIELD]!;
      mul[mul.length - 3]! ^= 0x01;
      parts[2] = encodeFields(fields);
      return [{ ...m, payload: encodeFields(parts) }];
    };
    const { result } = run(2, flip);
    const abort = result.aborts.get(1);
    expect(abort?.reason).toBe('mul-check-failed');
    expect(abort?.blame).toEqual([3]);
    expect(result.outputs.has(1)).toBe(false);
  });

  it('refuses an empty batch and one above the limit', () => {
    const p = { key: keys.get(1)!, signers: SIGNERS, sessionId: 'x' };
    expect(() => batch.start([])).toThrow(RangeError);
    expect(() => batch.start(Array.from({ length: MAX_PROTOCOL_BATCH + 1 }, (_, i) => ({ ...p, sessionId: `x/${i}` })))).toThrow(RangeError);
  });
});

/**
 * A deterministic two-party protocol (each party broadcasts its input; the output is both inputs
 * and the sum), so the sliced and whole forms of a batch can be compared output for output.
 */
const exchange: Protocol<{ self: number; value: number }, { self: number; value: number }, { values: number[]; sum: number }> = {
  name: 'exchange',
  rounds: 1,
  start: (p) => ({ state: p, outgoing: [{ from: p.self, to: 0, round: 1, payload: Uint8Array.of(p.value) }] }),
  step(state, incoming): Step<{ self: number; value: number }, { values: number[]; sum: number }> {
    const other = incoming.find((m) => m.round === 1 && m.from !== state.self)!.payload[0]!;
    return { done: true, output: { values: [state.value, other], sum: state.value + other }, outgoing: [] };
  },
};

describe('protocol batches in slices', () => {
  const toy = batchOf(exchange);
  const drain = <T>(g: Generator<void, T, void>) => {
    let pauses = 0;
    for (;;) {
      const r = g.next();
      if (r.done) return { value: r.value, pauses };
      pauses++;
    }
  };

  it('gives the same messages and outputs as the whole start and step, pausing once between instances', () => {
    const params = (self: number) => [3, 5, 7, 11].map((v) => ({ self, value: v * self }));
    const whole = [1, 2].map((self) => toy.start(params(self)));
    const sliced = [1, 2].map((self) => drain(toy.startSliced!(params(self))));
    sliced.forEach((s, i) => {
      expect(s.pauses).toBe(3);
      expect(s.value).toEqual(whole[i]);
    });
    const stepWhole = toy.step(whole[0]!.state, whole[1]!.outgoing);
    const stepSliced = drain(toy.stepSliced!(sliced[0]!.value.state, sliced[1]!.value.outgoing));
    expect(stepSliced.pauses).toBe(3);
    expect(stepSliced.value).toEqual(stepWhole);
    expect(stepWhole.done && stepWhole.output.map((o) => o.sum)).toEqual([9, 15, 21, 33]);
  });

  it('checks the batch before the first slice: a malformed message aborts without any instance having run', () => {
    const started = toy.start([{ self: 1, value: 1 }, { self: 1, value: 2 }]);
    const g = toy.stepSliced!(started.state, [{ from: 2, to: 0, round: 1, payload: Uint8Array.of(1) }]);
    expect(() => g.next()).toThrow(/not a batch of 2/);
  });
});

