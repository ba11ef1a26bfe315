/**
 * In-memory driver for the DKLs23 state machines: all parties in one process, messages routed by
 * `to` (0 = every other party). Test helper only: it holds every share at once.
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { ecdsaKeygen, type EcdsaKeyShare } from '../../../crypto/ecdsa/keygen.js';
import type { MulBackend } from '../../../crypto/ecdsa/mul-backend.js';
import { ecdsaSetup, type EcdsaExistingSharing, type EcdsaSetupParams } from '../../../crypto/ecdsa/setup.js';
import { ecdsaPresign, type Presignature, type PresignState } from '../../../crypto/ecdsa/presign.js';
import { combine, presignaturePublic, signRound, type EcdsaSignature } from '../../../crypto/ecdsa/sign.js';
import type { ProtocolMessage } from '../../../crypto/protocol.js';
import { runProtocol, runProtocolAsync, type RunResult, type Tamper } from '../../support/protocol-driver.js';

export { runProtocol, runProtocolAsync, type RunResult, type Tamper } from '../../support/protocol-driver.js';

export const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

const keygenParams = (n: number, t: number, mul: MulBackend | undefined, sessionId: string) => {
  const parties = range(n);
  return new Map(parties.map((i) => [i, { sessionId, self: i, participants: parties, threshold: t, ...(mul ? { mul } : {}) }]));
};
const freshId = () => `kg-${Buffer.from(randomBytes(8)).toString('hex')}`;

/** Keygen for fixtures (beforeAll): yields between steps. */
export async function keygenAllAsync(n: number, t: number, mul?: MulBackend, sessionId = freshId()): Promise<Map<number, EcdsaKeyShare>> {
  const r = await runProtocolAsync(ecdsaKeygen, keygenParams(n, t, mul, sessionId));
  if (r.aborts.size > 0) throw [...r.aborts.values()][0]!;
  return r.outputs;
}

export function keygenAll(n: number, t: number, mul?: MulBackend, sessionId = freshId()): Map<number, EcdsaKeyShare> {
  const r = runProtocol(ecdsaKeygen, keygenParams(n, t, mul, sessionId));
  if (r.aborts.size > 0) throw [...r.aborts.values()][0]!;
  return r.outputs;
}

export interface PresignOptions {
  tweak?: bigint;
  mul?: MulBackend;
  sessionId?: string;
  tamper?: Tamper;
  /** Per-party key override (e.g. a party with a wrong share). */
  keyOverride?: Map<number, EcdsaKeyShare>;
  afterStart?: (states: Map<number, PresignState>, outgoing: ProtocolMessage[]) => ProtocolMessage[];
}

export function presignRun(keys: ReadonlyMap<number, EcdsaKeyShare>, signers: readonly number[], o: PresignOptions = {}): RunResult<Presignature> {
  const sessionId = o.sessionId ?? `ps-${Buffer.from(randomBytes(16)).toString('hex')}`;
  const params = new Map(
    signers.map((i) => [
      i,
      {
        key: o.keyOverride?.get(i) ?? keys.get(i)!,
        signers,
        sessionId,
        ...(o.tweak !== undefined ? { tweak: o.tweak } : {}),
        ...(o.mul ? { mul: o.mul } : {}),
      },
    ]),
  );
  return runProtocol(ecdsaPresign, params, { ...(o.tamper ? { tamper: o.tamper } : {}), ...(o.afterStart ? { afterStart: o.afterStart } : {}) });
}

export function presignAll(keys: ReadonlyMap<number, EcdsaKeyShare>, signers: readonly number[], o: PresignOptions = {}): Map<number, Presignature> {
  const r = presignRun(keys, signers, o);
  if (r.aborts.size > 0) throw [...r.aborts.values()][0]!;
  return r.outputs;
}

/** Online round over a full set of presignatures: every signer's share, combined once. */
export function signWith(presigs: ReadonlyMap<number, Presignature>, digest: Uint8Array): EcdsaSignature {
  const shares = new Map<number, Uint8Array>();
  for (const [i, p] of presigs) shares.set(i, signRound(p, digest).payload);
  return combine(presignaturePublic(presigs.values().next().value!), digest, shares);
}

/** One shot: presign then sign, fully in memory. */
export function signAll(
  keys: ReadonlyMap<number, EcdsaKeyShare>,
  signers: readonly number[],
  digest: Uint8Array,
  o: PresignOptions = {},
): EcdsaSignature & { presignatures: Map<number, Presignature> } {
  const presignatures = presignAll(keys, signers, o);
  return { ...signWith(presignatures, digest), presignatures };
}

/** ecdsaSetup parameters for every holder of `sharings` (keygen outputs fit). */
export const setupParams = (sharings: ReadonlyMap<number, EcdsaExistingSharing>, t: number, mul: MulBackend | undefined, sessionId: string): Map<number, EcdsaSetupParams> => {
  const parties = [...sharings.keys()];
  return new Map(parties.map((i) => [i, { sessionId, self: i, participants: parties, threshold: t, existing: sharings.get(i)!, ...(mul ? { mul } : {}) }]));
};
const freshSetupId = () => `setup-${Buffer.from(randomBytes(8)).toString('hex')}`;
function outputsOrThrow<O>(r: RunResult<O>): Map<number, O> {
  const abort = r.aborts.values().next();
  if (!abort.done) throw abort.value;
  return r.outputs;
}

/** ecdsaSetup (new pairwise setups for an existing sharing, e.g. keygen outputs) for fixtures: yields between steps. */
export async function setupAllAsync(
  sharings: ReadonlyMap<number, EcdsaExistingSharing>,
  t: number,
  mul?: MulBackend,
  sessionId = freshSetupId(),
): Promise<Map<number, EcdsaKeyShare>> {
  return outputsOrThrow(await runProtocolAsync(ecdsaSetup, setupParams(sharings, t, mul, sessionId)));
}

export function setupAll(sharings: ReadonlyMap<number, EcdsaExistingSharing>, t: number, mul?: MulBackend, sessionId = freshSetupId()): Map<number, EcdsaKeyShare> {
  return outputsOrThrow(runProtocol(ecdsaSetup, setupParams(sharings, t, mul, sessionId)));
}

/** Every k-element subset of xs, in lexicographic order (bitmask walk; small n only). */
export function kSubsets<T>(xs: readonly T[], k: number): T[][] {
  const out: T[][] = [];
  for (let mask = 0; mask < 1 << xs.length; mask++) {
    const pick = xs.filter((_, bit) => (mask >> bit) & 1);
    if (pick.length === k) out.push(pick);
  }
  return out.sort((a, b) => a.join(',').localeCompare(b.join(',')));
}

/** The oracle: plain secp256k1 ECDSA with noble (low s), plus recovery of `publicKey` from the recovery id. */
export function nobleAccepts(sig: EcdsaSignature, digest: Uint8Array, publicKey: Uint8Array): boolean {
  if (!secp256k1.verify(sig.signature, digest, publicKey, { prehash: false, lowS: true })) return false;
  const recovered = secp256k1.Signature.fromBytes(sig.signature, 'compact').addRecoveryBit(sig.recovery).recoverPublicKey(digest);
  return Buffer.from(recovered.toBytes(true)).equals(Buffer.from(publicKey));
}
