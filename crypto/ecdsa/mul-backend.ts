/**
 * The seam between the n-party DKLs23 protocol (keygen.ts, presign.ts) and the two-party
 * multiplication (mul.ts: DKLs23 section 3 / DKLs19 random-vector OLE over OT extension).
 *
 * The n-party code only ever calls the multiplication through this interface, so a test can
 * substitute an instrumented stand-in (e.g. to force a check failure) while production code
 * uses `defaultMul`, which is exactly crypto/ecdsa/mul.ts.
 */
import * as mul from './mul.js';

export type MulRole = mul.MulRole;
export type MulContext = mul.MulContext;
export type MulSetupState = mul.MulSetupState;
export type MulSenderSetup = mul.MulSenderSetup;
export type MulReceiverSetup = mul.MulReceiverSetup;
export type MulReceiverState = mul.MulReceiverState;
export type MulAbortReason = mul.MulAbortReason;

export type MulSetupStepResult =
  | { state: MulSetupState; msg?: Uint8Array }
  | { done: MulSenderSetup | MulReceiverSetup; msg?: Uint8Array };

export interface MulBackend {
  readonly name: string;
  /** Alice's inputs per multiplication: [instance key k_i, key share sk_i]. */
  readonly inputs: number;
  /** Setup flights between the two roles, alternating, `setupFirst` sending flight 1. */
  readonly setupFlights: number;
  readonly setupFirst: MulRole;
  setupStart(role: MulRole, ctx: MulContext): { state: MulSetupState; msg?: Uint8Array };
  setupStep(state: MulSetupState, msg: Uint8Array): MulSetupStepResult;
  encodeSenderSetup(s: MulSenderSetup): Uint8Array;
  decodeSenderSetup(b: Uint8Array): MulSenderSetup;
  encodeReceiverSetup(s: MulReceiverSetup): Uint8Array;
  decodeReceiverSetup(b: Uint8Array): MulReceiverSetup;
  /** Bob, round 1: samples chi and the OT-extension message. */
  receiverRound1(setup: MulReceiverSetup, ctx: MulContext): { state: MulReceiverState; chi: bigint; msg: Uint8Array };
  /** Alice, round 2: shares[k] + Bob's shares[k] == chi * inputs[k]. Throws a multiplication abort. */
  senderRound2(setup: MulSenderSetup, ctx: MulContext, inputs: readonly bigint[], msg: Uint8Array): { shares: bigint[]; msg: Uint8Array };
  /** Bob, before round 3. Throws a multiplication abort. */
  receiverRound3(state: MulReceiverState, msg: Uint8Array): bigint[];
  /** The reason if `e` is this backend's multiplication abort, else undefined (a bug: rethrow). */
  abortReason(e: unknown): MulAbortReason | undefined;
}

export const defaultMul: MulBackend = {
  name: 'dkls23-mul',
  inputs: mul.MUL_INPUTS,
  setupFlights: mul.MUL_SETUP_FLIGHTS,
  setupFirst: mul.MUL_SETUP_FIRST,
  setupStart: mul.mulSetupStart,
  setupStep: mul.mulSetupStep,
  encodeSenderSetup: mul.encodeSenderSetup,
  decodeSenderSetup: mul.decodeSenderSetup,
  encodeReceiverSetup: mul.encodeReceiverSetup,
  decodeReceiverSetup: mul.decodeReceiverSetup,
  receiverRound1: mul.mulReceiverRound1,
  senderRound2: mul.mulSenderRound2,
  receiverRound3: mul.mulReceiverRound3,
  abortReason: (e) => (e instanceof mul.MulAbort ? e.reason : undefined),
};
