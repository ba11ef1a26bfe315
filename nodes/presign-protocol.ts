/**
 * The DKLs23 presigning protocol a node runs for a session of `count` presignatures: one instance,
 * or a batch of them in lockstep (crypto/protocol-batch.ts). Shared by the node's own thread and
 * its presigning thread (presign-worker.ts), so both run exactly the same protocol.
 */
import { ecdsaPresign } from '../crypto/ecdsa/presign.js';
import { decodeFields } from '../crypto/ecdsa/wire.js';
import { batchOf } from '../crypto/protocol-batch.js';
import type { Protocol } from '../crypto/protocol.js';
import { encodeFields } from '../crypto/transcript.js';
import type { Fault } from './signer.js';

export function presignProtocol(count: number, fault?: Fault): Protocol<unknown, unknown, unknown> {
  const one = fault === 'bad-mul' ? corruptMultiplication(ecdsaPresign) : ecdsaPresign;
  return (count === 1 ? one : batchOf(one)) as Protocol<unknown, unknown, unknown>;
}

/** Test-only ('bad-mul'): flips a bit of the multiplication message in every round-2 point-to-point payload. */
function corruptMultiplication(p: typeof ecdsaPresign): typeof ecdsaPresign {
  const MUL_FIELD = 3; // presign round-2 p2p layout: tag, sid, echo, mul, Gamma_u, Gamma_v, psi
  return {
    ...p,
    step(state, incoming) {
      const r = p.step(state, incoming);
      const outgoing = r.outgoing.map((m) => {
        if (m.round !== 2 || m.to === 0) return m;
        const fields = decodeFields(m.payload);
        const f = fields[MUL_FIELD]!.slice();
        f[f.length - 3]! ^= 0x01;
        fields[MUL_FIELD] = f;
        return { ...m, payload: encodeFields(fields) };
      });
      return { ...r, outgoing };
    },
  };
}
