/**
 * Share repair: t helpers rebuild a lost share without revealing theirs; the rebuilt share is the
 * lost one exactly, and a relay that lies about the keyset or a helper that sends a bad sum is caught.
 */
import { describe, expect, it } from 'vitest';
import { deal, dealtVerifyingShares } from '../../crypto/dealer.js';
import { groupFor, type CurveName } from '../../crypto/group/index.js';
import { ProtocolAbort } from '../../crypto/protocol.js';
import { shareRepair, type RepairOutput, type RepairParams } from '../../crypto/repair.js';
import { runProtocol } from '../support/protocol-driver.js';

function setup(curve: CurveName, n: number, t: number) {
  const g = groupFor(curve);
  const secret = g.randomScalar();
  const participants = Array.from({ length: n }, (_, i) => i + 1);
  const d = deal(g, secret, t, participants);
  const commitments = d.commitments.map((c) => g.decode(c));
  return { g, shares: d.shares, verifyingShares: dealtVerifyingShares(g, commitments, participants), publicKey: d.commitments[0]!, chainCode: new Uint8Array(32).fill(7) };
}

function params(k: ReturnType<typeof setup>, helpers: number[], lost: number, threshold = helpers.length): Map<number, RepairParams> {
  const base = { sessionId: 'repair-1', helpers, lost, threshold, group: k.g, publicKey: k.publicKey, verifyingShares: k.verifyingShares, chainCode: k.chainCode };
  const m = new Map<number, RepairParams>();
  for (const h of helpers) m.set(h, { ...base, self: h, secretShare: k.shares.get(h)! });
  m.set(lost, { ...base, self: lost });
  return m;
}

describe('share repair', () => {
  it.each([
    ['ed25519', 3, 2, [1, 2], 3],
    ['secp256k1', 3, 2, [2, 3], 1],
    ['secp256k1', 5, 3, [1, 3, 5], 4],
    ['ed25519', 5, 3, [2, 4, 5], 1],
  ] as const)('%s, n=%i, t=%i: helpers %j rebuild party %i\'s share exactly', (curve, n, t, helpers, lost) => {
    const k = setup(curve, n, t);
    const r = runProtocol(shareRepair, params(k, [...helpers], lost));
    expect(r.aborts.size).toBe(0);
    const out = r.outputs.get(lost) as Extract<RepairOutput, { role: 'receiver' }>;
    expect(out.role).toBe('receiver');
    expect(out.secretShare).toBe(k.shares.get(lost));
    for (const h of helpers) expect(r.outputs.get(h)).toEqual({ role: 'helper', transcriptHash: out.transcriptHash });
  });

  it('what a helper receives and what it sends on are not its own share or the lost one', () => {
    const k = setup('secp256k1', 3, 2);
    const seen: bigint[] = [];
    runProtocol(shareRepair, params(k, [1, 2], 3), {
      tamper: (m, receiver) => {
        seen.push(k.g.scalarFromBytes(m.payload.subarray(0, 32)));
        void receiver;
        return [m];
      },
    });
    expect(seen.length).toBe(4);
    for (const v of seen) for (const s of k.shares.values()) expect(v).not.toBe(s);
  });

  it('a relay that changes the chain code for the lost party is caught', () => {
    const k = setup('ed25519', 3, 2);
    const p = params(k, [1, 2], 3);
    p.set(3, { ...p.get(3)!, chainCode: new Uint8Array(32).fill(9) });
    const r = runProtocol(shareRepair, p);
    expect(r.aborts.get(3)).toBeInstanceOf(ProtocolAbort);
    expect(r.aborts.get(3)!.reason).toBe('inconsistent-broadcast');
  });

  it('a wrong sum from a helper fails the check against the verifying share', () => {
    const k = setup('secp256k1', 3, 2);
    const r = runProtocol(shareRepair, params(k, [1, 2], 3), {
      tamper: (m) => {
        // One helper's sum only (two flipped low bits could cancel out).
        if (m.round !== 2 || m.from !== 1) return [m];
        const payload = m.payload.slice();
        payload[31] ^= 1;
        return [{ ...m, payload }];
      },
    });
    expect([...r.outputs.keys()]).not.toContain(3);
    expect(r.aborts.get(3)?.reason).toBe('check-failed');
  });

  it('refuses bad parameters at start', () => {
    const k = setup('ed25519', 3, 2);
    expect(() => runProtocol(shareRepair, params(k, [1], 3, 2))).toThrow(/exactly/);
    const p = params(k, [1, 2], 3);
    p.set(1, { ...p.get(1)!, secretShare: k.shares.get(2)! });
    expect(() => runProtocol(shareRepair, p)).toThrow(/verifying share/);
  });
});
