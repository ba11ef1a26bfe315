/**
 * RFC 9591 FROST signing (sections 4 and 5) over a Ciphersuite: nonces, binding factors, group
 * commitment, signature shares, share verification and aggregation.
 *
 * The hot path is: the coordinator calls prepareSession() once per signing attempt and passes the
 * session to verifyShare()/aggregate(); a signer passes its own session to signShare(). Points are
 * taken already decoded (validated once at the wire boundary by group.decode).
 *
 * bip340 (frost-secp256k1-tr, noble's schnorr_FROST): the signature verifies under the even-Y form
 * of the group key and of R. If the group key has odd Y, every share is implicitly negated (the
 * shares of -s); if R has odd Y, every signer negates its nonces. Binding factors encode the
 * even-Y group key; commitments are used as published.
 */
import { randomBytes } from '@noble/hashes/utils.js';
import { ProtocolAbort } from '../protocol.js';
import type { Ciphersuite, FrostScheme } from './ciphersuite.js';

/** Caller misuse or an inconsistent request. Messages never contain secret values. */
export class FrostInputError extends Error {
  override readonly name = 'FrostInputError';
}

/** A signer's one-time nonce pair (secret). */
export interface Nonces {
  readonly hiding: bigint;
  readonly binding: bigint;
}

export interface NonceCommitments<P> {
  readonly hiding: P;
  readonly binding: P;
}

/** One participant's published commitments. Lists are sorted by index, unique, index >= 1. */
export interface SignerCommitment<P> extends NonceCommitments<P> {
  readonly index: number;
}

/** Explicit nonce randomness (32 bytes each), for test vectors; normally omitted. */
export interface NonceRandomness {
  readonly hiding: Uint8Array;
  readonly binding: Uint8Array;
}

/** Everything derived from (group key, commitment list, message): compute once per attempt. */
export interface SigningSession<P> {
  readonly scheme: FrostScheme;
  readonly ciphersuite: Ciphersuite<P>;
  /** The group key as given. */
  readonly groupPublicKey: P;
  /** The key the signature verifies under: groupPublicKey, or its even-Y form for bip340. */
  readonly signingKey: P;
  readonly commitments: readonly SignerCommitment<P>[];
  readonly message: Uint8Array;
  /** Binding factor per participant index. */
  readonly rho: ReadonlyMap<number, bigint>;
  /** Group commitment, as computed (bip340: before even-Y normalisation). */
  readonly R: P;
  readonly challenge: bigint;
  /** Lagrange coefficient at zero per participant index, within this signing set. */
  readonly lambda: ReadonlyMap<number, bigint>;
  /** bip340: the group key has odd Y, so secret shares and verifying shares are negated. */
  readonly negateKey: boolean;
  /** bip340: R has odd Y, so nonces and commitment shares are negated. */
  readonly negateNonces: boolean;
}

/** Either a prepared session or the raw inputs to prepare one. */
export type SessionInput<P> =
  | { readonly session: SigningSession<P> }
  | {
      readonly groupPublicKey: P;
      readonly commitments: readonly SignerCommitment<P>[];
      readonly message: Uint8Array;
    };

export type SignShareInput<P> = SessionInput<P> & {
  readonly index: number;
  readonly secretShare: bigint;
  readonly nonces: Nonces;
};

export type VerifyShareInput<P> = SessionInput<P> & {
  readonly index: number;
  readonly verifyingShare: P;
  readonly share: bigint;
};

export type AggregateInput<P> = SessionInput<P> & {
  readonly shares: ReadonlyMap<number, bigint>;
  /** Needed to name the faulty signer when the aggregate does not verify. */
  readonly verifyingShares?: ReadonlyMap<number, P>;
};

const inScalarRange = (order: bigint, s: bigint): boolean => typeof s === 'bigint' && s > 0n && s < order;

function assertBytes(b: unknown, what: string, length?: number): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
  if (length !== undefined && b.length !== length) throw new FrostInputError(`${what} must be ${length} bytes`);
}

/**
 * RFC 9591 nonce_generate: H3(random_bytes(32) || SerializeScalar(secret)).
 *
 * With `secret` undefined, 32 fresh random bytes take the secret's place. Our nonce pools are per
 * curve, filled before the key is known. This is still safe: the nonce must be uniform and
 * unpredictable, which the 32 random bytes already give with a sound CSPRNG; the RFC mixes in the
 * secret only as defence in depth against a broken RNG (RFC 9591 section 4.1), and hashing more
 * randomness never weakens that.
 */
export function nonceGenerate<P>(cs: Ciphersuite<P>, secret: bigint | undefined, random?: Uint8Array): bigint {
  const { group } = cs;
  if (secret !== undefined && !inScalarRange(group.order, secret)) throw new FrostInputError('secret share is out of range');
  if (random !== undefined) assertBytes(random, 'nonce randomness', 32);
  const sl = group.scalarLength;
  const buf = new Uint8Array(32 + sl);
  for (;;) {
    const second = secret === undefined ? randomBytes(sl) : group.scalarToBytes(secret);
    buf.set(random ?? randomBytes(32), 0);
    buf.set(second, 32);
    second.fill(0);
    const k = cs.H3(buf);
    buf.fill(0);
    if (k !== 0n) return k;
    // Probability ~2^-252; a zero nonce would publish the identity as a commitment.
    if (random !== undefined) throw new FrostInputError('nonce randomness yields a zero nonce');
  }
}

/** RFC 9591 commit(), secret half: a fresh hiding and binding nonce. See nonceGenerate. */
export function generateNonces<P>(cs: Ciphersuite<P>, secretShare: bigint | undefined, randomness?: NonceRandomness): Nonces {
  return {
    hiding: nonceGenerate(cs, secretShare, randomness?.hiding),
    binding: nonceGenerate(cs, secretShare, randomness?.binding),
  };
}

/** RFC 9591 commit(), public half. */
export function nonceCommitments<P>(cs: Ciphersuite<P>, nonces: Nonces): NonceCommitments<P> {
  const { group } = cs;
  if (!inScalarRange(group.order, nonces.hiding) || !inScalarRange(group.order, nonces.binding)) {
    throw new FrostInputError('nonces are out of range (zero means already consumed)');
  }
  return { hiding: group.baseMul(nonces.hiding), binding: group.baseMul(nonces.binding) };
}

/** Sorted by index, unique, index a safe integer >= 1, no identity commitments. */
export function validateCommitments<P>(cs: Ciphersuite<P>, commitments: readonly SignerCommitment<P>[]): void {
  if (!Array.isArray(commitments) || commitments.length === 0) throw new FrostInputError('commitment list is empty');
  let prev = 0;
  for (const c of commitments) {
    const i = c.index;
    if (!Number.isSafeInteger(i) || i < 1) throw new FrostInputError(`invalid participant index ${String(i)}`);
    if (i === prev) throw new FrostInputError(`duplicate commitment for participant ${i}`);
    if (i < prev) throw new FrostInputError(`commitment list is not sorted by index (${i} after ${prev})`);
    if (cs.group.isIdentity(c.hiding) || cs.group.isIdentity(c.binding)) {
      throw new FrostInputError(`commitment from participant ${i} is the identity`);
    }
    prev = i;
  }
}

/** RFC 9591 encode_group_commitment_list: id || hiding || binding per participant. */
export function encodeGroupCommitmentList<P>(cs: Ciphersuite<P>, commitments: readonly SignerCommitment<P>[]): Uint8Array {
  const { group } = cs;
  const sl = group.scalarLength;
  const pl = group.pointLength;
  const stride = sl + 2 * pl;
  const out = new Uint8Array(commitments.length * stride);
  let off = 0;
  for (const c of commitments) {
    out.set(group.scalarToBytes(BigInt(c.index)), off);
    out.set(group.encode(c.hiding), off + sl);
    out.set(group.encode(c.binding), off + sl + pl);
    off += stride;
  }
  return out;
}

function evenKey<P>(cs: Ciphersuite<P>, pk: P): { key: P; negated: boolean } {
  if (!cs.evenY || cs.group.hasEvenY(pk)) return { key: pk, negated: false };
  return { key: cs.group.neg(pk), negated: true };
}

/**
 * Calls `each(index, input)` with rho_input = enc(PK) || H4(msg) || H5(list) || enc(id). The
 * buffer is reused between calls: copy it if you keep it.
 */
function forEachRhoInput<P>(
  cs: Ciphersuite<P>,
  signingKey: P,
  commitments: readonly SignerCommitment<P>[],
  message: Uint8Array,
  each: (index: number, input: Uint8Array) => void,
): void {
  const { group } = cs;
  const list = encodeGroupCommitmentList(cs, commitments);
  const pk = group.encode(signingKey);
  const msgHash = cs.H4(message);
  const comHash = cs.H5(list);
  const prefixLen = pk.length + msgHash.length + comHash.length;
  const sl = group.scalarLength;
  const buf = new Uint8Array(prefixLen + sl);
  buf.set(pk, 0);
  buf.set(msgHash, pk.length);
  buf.set(comHash, pk.length + msgHash.length);
  const stride = sl + 2 * group.pointLength;
  for (let k = 0; k < commitments.length; k++) {
    // The encoded id is already in the list: copy it instead of re-encoding.
    buf.set(list.subarray(k * stride, k * stride + sl), prefixLen);
    each(commitments[k]!.index, buf);
  }
}

/** RFC 9591 binding factor inputs (for test vectors and debugging). bip340: even-Y key. */
export function bindingFactorInputs<P>(
  cs: Ciphersuite<P>,
  groupPublicKey: P,
  commitments: readonly SignerCommitment<P>[],
  message: Uint8Array,
): Map<number, Uint8Array> {
  validateCommitments(cs, commitments);
  assertBytes(message, 'message');
  const out = new Map<number, Uint8Array>();
  forEachRhoInput(cs, evenKey(cs, groupPublicKey).key, commitments, message, (i, input) => out.set(i, input.slice()));
  return out;
}

/** RFC 9591 compute_binding_factors. bip340: the even-Y group key is encoded. */
export function bindingFactors<P>(
  cs: Ciphersuite<P>,
  groupPublicKey: P,
  commitments: readonly SignerCommitment<P>[],
  message: Uint8Array,
): Map<number, bigint> {
  validateCommitments(cs, commitments);
  assertBytes(message, 'message');
  return computeRho(cs, evenKey(cs, groupPublicKey).key, commitments, message);
}

function computeRho<P>(cs: Ciphersuite<P>, signingKey: P, commitments: readonly SignerCommitment<P>[], message: Uint8Array): Map<number, bigint> {
  const rho = new Map<number, bigint>();
  forEachRhoInput(cs, signingKey, commitments, message, (i, input) => rho.set(i, cs.H1(input)));
  return rho;
}

/** A signer's own index and secret nonces: its term of the group commitment is (d + rho*e)*G. */
interface OwnNonces {
  readonly index: number;
  readonly nonces: Nonces;
}

/**
 * RFC 9591 compute_group_commitment: sum(D_i) + msm(E_i, rho_i). A signer that passes its own
 * nonces gets its term as one fixed-base multiplication, the cheapest kind, instead of a
 * variable-base one on its published E_i (the caller has checked that its D_i, E_i are d*G, e*G).
 */
export function groupCommitment<P>(
  cs: Ciphersuite<P>,
  commitments: readonly SignerCommitment<P>[],
  rho: ReadonlyMap<number, bigint>,
  own?: OwnNonces,
): P {
  const { group } = cs;
  const points: P[] = [];
  const scalars: bigint[] = [];
  let hidingSum = group.identity;
  let ownTerm: bigint | undefined;
  for (const c of commitments) {
    const r = rho.get(c.index);
    if (r === undefined) throw new FrostInputError(`no binding factor for participant ${c.index}`);
    if (own && c.index === own.index) {
      ownTerm = group.Fn.add(own.nonces.hiding, group.Fn.mul(own.nonces.binding, r));
      continue;
    }
    // Hiding nonces carry scalar 1: plain additions keep the MSM half the size.
    hidingSum = group.add(hidingSum, c.hiding);
    points.push(c.binding);
    scalars.push(r);
  }
  const R = group.add(hidingSum, group.msm(points, scalars));
  return ownTerm === undefined ? R : group.add(R, group.baseMul(ownTerm));
}

/** RFC 9591 compute_challenge (bip340: BIP-340 challenge over x-only R and PK). */
export function challenge<P>(cs: Ciphersuite<P>, R: P, PK: P, message: Uint8Array): bigint {
  return cs.challenge(R, PK, message);
}

/** Lagrange coefficients at zero for every index, with one field inversion. */
function lagrangeAll<P>(cs: Ciphersuite<P>, commitments: readonly SignerCommitment<P>[]): Map<number, bigint> {
  const { Fn } = cs.group;
  const n = commitments.length;
  const xs = commitments.map((c) => BigInt(c.index));
  const nums: bigint[] = new Array(n);
  const dens: bigint[] = new Array(n);
  for (let i = 0; i < n; i++) {
    let num = 1n;
    let den = 1n;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      num = Fn.mul(num, xs[j]!);
      den = Fn.mul(den, Fn.sub(xs[j]!, xs[i]!));
    }
    nums[i] = num;
    dens[i] = den;
  }
  const inv = Fn.invertBatch(dens);
  const out = new Map<number, bigint>();
  for (let i = 0; i < n; i++) out.set(commitments[i]!.index, Fn.mul(nums[i]!, inv[i]!));
  return out;
}

/** Computes binding factors, R, the challenge and Lagrange coefficients once per attempt. */
export function prepareSession<P>(
  cs: Ciphersuite<P>,
  groupPublicKey: P,
  commitments: readonly SignerCommitment<P>[],
  message: Uint8Array,
): SigningSession<P> {
  return buildSession(cs, groupPublicKey, commitments, message);
}

/** prepareSession, with a signer's own term from its nonces (see groupCommitment). */
function buildSession<P>(
  cs: Ciphersuite<P>,
  groupPublicKey: P,
  commitments: readonly SignerCommitment<P>[],
  message: Uint8Array,
  own?: OwnNonces,
): SigningSession<P> {
  validateCommitments(cs, commitments);
  assertBytes(message, 'message');
  const { group } = cs;
  if (group.isIdentity(groupPublicKey)) throw new FrostInputError('group public key is the identity');
  const list = Object.freeze(commitments.slice());
  const msg = message.slice();
  const { key: signingKey, negated: negateKey } = evenKey(cs, groupPublicKey);
  const rho = computeRho(cs, signingKey, list, msg);
  const R = groupCommitment(cs, list, rho, own);
  // Only a degenerate or malicious commitment set gets here (binding factors make it unreachable).
  if (group.isIdentity(R)) throw new FrostInputError('group commitment is the identity');
  const negateNonces = cs.evenY && !group.hasEvenY(R);
  return Object.freeze({
    scheme: cs.scheme,
    ciphersuite: cs,
    groupPublicKey,
    signingKey,
    commitments: list,
    message: msg,
    rho,
    R,
    challenge: cs.challenge(R, signingKey, msg),
    lambda: lagrangeAll(cs, list),
    negateKey,
    negateNonces,
  });
}

function sessionOf<P>(cs: Ciphersuite<P>, input: SessionInput<P>): SigningSession<P> {
  if ('session' in input) {
    const s = input.session;
    if (s.scheme !== cs.scheme || s.ciphersuite.group !== cs.group) {
      throw new FrostInputError(`session was prepared for ${s.scheme}/${s.ciphersuite.group.backend}, not ${cs.scheme}/${cs.group.backend}`);
    }
    // Callers may pass the raw inputs alongside the session: they must describe the same attempt.
    const raw = input as Partial<{ groupPublicKey: P; commitments: readonly SignerCommitment<P>[]; message: Uint8Array }>;
    if (raw.groupPublicKey !== undefined && raw.groupPublicKey !== s.groupPublicKey && !cs.group.eq(raw.groupPublicKey, s.groupPublicKey)) {
      throw new FrostInputError('group public key differs from the prepared session');
    }
    if (raw.commitments !== undefined && !sameCommitments(cs, raw.commitments, s.commitments)) {
      throw new FrostInputError('commitment list differs from the prepared session');
    }
    if (raw.message !== undefined && !sameMessage(raw.message, s.message)) {
      throw new FrostInputError('message differs from the prepared session');
    }
    return s;
  }
  return prepareSession(cs, input.groupPublicKey, input.commitments, input.message);
}

function sameCommitments<P>(cs: Ciphersuite<P>, a: readonly SignerCommitment<P>[], b: readonly SignerCommitment<P>[]): boolean {
  if (a.length !== b.length) return false;
  const { group } = cs;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (x.index !== y.index) return false;
    if (x.hiding !== y.hiding && !group.eq(x.hiding, y.hiding)) return false;
    if (x.binding !== y.binding && !group.eq(x.binding, y.binding)) return false;
  }
  return true;
}

function sameMessage(a: Uint8Array, b: Uint8Array): boolean {
  if (!(a instanceof Uint8Array) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function commitmentOf<P>(list: readonly SignerCommitment<P>[], index: number): SignerCommitment<P> {
  // Sorted list: binary search keeps large signing sets cheap.
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = list[mid]!;
    if (c.index === index) return c;
    if (c.index < index) lo = mid + 1;
    else hi = mid - 1;
  }
  throw new FrostInputError(`participant ${String(index)} is not in the commitment list`);
}

/**
 * RFC 9591 sign(): z_i = d_i + e_i * rho_i + lambda_i * s_i * c.
 *
 * Refuses when the commitment listed for this index is not the one these nonces produce (a
 * coordinator substituting commitments). The caller must delete the nonces before releasing z_i
 * and never use them again.
 */
export function signShare<P>(cs: Ciphersuite<P>, input: SignShareInput<P>): bigint {
  const { index, secretShare, nonces } = input;
  if ('session' in input) {
    const s = sessionOf(cs, input);
    checkedOwnCommitments(cs, commitmentOf(s.commitments, index), secretShare, nonces, pointEq(cs));
    return shareOf(cs, s, index, secretShare, nonces);
  }
  // Raw inputs: the session is built here, with this signer's term from its nonces.
  validateCommitments(cs, input.commitments);
  checkedOwnCommitments(cs, commitmentOf(input.commitments, index), secretShare, nonces, pointEq(cs));
  return shareOf(cs, buildSession(cs, input.groupPublicKey, input.commitments, input.message, { index, nonces }), index, secretShare, nonces);
}

export interface OwnShareInput<P> {
  readonly index: number;
  readonly secretShare: bigint;
  readonly nonces: Nonces;
  readonly groupPublicKey: P;
  readonly message: Uint8Array;
  /** The other signers' commitments, decoded (validated) by the caller. */
  readonly peers: readonly SignerCommitment<P>[];
  /** This signer's commitment as listed by the coordinator, still encoded. */
  readonly listed: { readonly hiding: Uint8Array; readonly binding: Uint8Array };
}

/**
 * signShare for a signer that received its own commitment encoded: the listed bytes are compared
 * with the encodings of d*G and e*G, so its own points are never decoded. Also returns the group
 * commitment R, which lets a coordinator skip computing it (it still verifies the signature).
 */
export function signOwnShare<P>(cs: Ciphersuite<P>, input: OwnShareInput<P>): { share: bigint; R: P } {
  const { index, secretShare, nonces, listed } = input;
  const byteEq = (m: P, bytes: Uint8Array) => sameMessage(cs.group.encode(m), bytes);
  if (input.peers.some((c) => c.index === index)) throw new FrostInputError(`duplicate commitment for participant ${index}`);
  const mine = checkedOwnCommitments(cs, { index, ...listed }, secretShare, nonces, byteEq);
  const commitments = [...input.peers, { index, ...mine }].sort((a, b) => a.index - b.index);
  const s = buildSession(cs, input.groupPublicKey, commitments, input.message, { index, nonces });
  return { share: shareOf(cs, s, index, secretShare, nonces), R: s.R };
}

const pointEq =
  <P>(cs: Ciphersuite<P>) =>
  (a: P, b: P): boolean =>
    cs.group.eq(a, b);

/** The signer's D_i, E_i from its nonces, after checking they are what the coordinator listed. */
function checkedOwnCommitments<P, L>(
  cs: Ciphersuite<P>,
  listed: { readonly index: number; readonly hiding: L; readonly binding: L },
  secretShare: bigint,
  nonces: Nonces,
  same: (mine: P, listed: L) => boolean,
): NonceCommitments<P> {
  if (!inScalarRange(cs.group.order, secretShare)) throw new FrostInputError('secret share is out of range');
  const mine = nonceCommitments(cs, nonces);
  if (!same(mine.hiding, listed.hiding) || !same(mine.binding, listed.binding)) {
    throw new FrostInputError(`commitment listed for participant ${listed.index} does not match this signer's nonces`);
  }
  return mine;
}

function shareOf<P>(cs: Ciphersuite<P>, s: SigningSession<P>, index: number, secretShare: bigint, nonces: Nonces): bigint {
  const { Fn } = cs.group;
  const sk = s.negateKey ? Fn.neg(secretShare) : secretShare;
  const d = s.negateNonces ? Fn.neg(nonces.hiding) : nonces.hiding;
  const e = s.negateNonces ? Fn.neg(nonces.binding) : nonces.binding;
  const rho = s.rho.get(index)!;
  const lambda = s.lambda.get(index)!;
  return Fn.add(Fn.add(d, Fn.mul(e, rho)), Fn.mul(Fn.mul(lambda, sk), s.challenge));
}

/**
 * RFC 9591 section 5.4 verify_signature_share: z_i*G == D_i + rho_i*E_i + c*lambda_i*Y_i, with
 * the bip340 negations of the commitment share and of the verifying share.
 */
export function verifyShare<P>(cs: Ciphersuite<P>, input: VerifyShareInput<P>): boolean {
  const s = sessionOf(cs, input);
  return checkShare(cs, s, input.index, input.share, input.verifyingShare);
}

function checkShare<P>(cs: Ciphersuite<P>, s: SigningSession<P>, index: number, share: bigint, verifyingShare: P): boolean {
  const { group } = cs;
  const { Fn } = group;
  const own = commitmentOf(s.commitments, index);
  if (typeof share !== 'bigint' || share < 0n || share >= group.order) return false;
  const rho = s.rho.get(index)!;
  const cl = Fn.mul(s.challenge, s.lambda.get(index)!);
  // z*G - (+-rho)*E - (+-c*lambda)*Y == +-D, as one MSM.
  const lhs = group.msm(
    [group.generator, own.binding, verifyingShare],
    [share, s.negateNonces ? rho : Fn.neg(rho), s.negateKey ? cl : Fn.neg(cl)],
  );
  return group.eq(lhs, s.negateNonces ? group.neg(own.hiding) : own.hiding);
}

/** Indices whose shares fail verifyShare (identifiable abort). */
export function invalidShares<P>(
  cs: Ciphersuite<P>,
  session: SigningSession<P>,
  shares: ReadonlyMap<number, bigint>,
  verifyingShares: ReadonlyMap<number, P>,
): number[] {
  const s = sessionOf(cs, { session });
  const bad: number[] = [];
  for (const c of s.commitments) {
    const y = verifyingShares.get(c.index);
    if (y === undefined) throw new FrostInputError(`no verifying share for participant ${c.index}`);
    const z = shares.get(c.index);
    if (z === undefined || !checkShare(cs, s, c.index, z, y)) bad.push(c.index);
  }
  return bad;
}

/**
 * RFC 9591 aggregate(): z = sum(z_i), then the signature is verified once (the cheap path of
 * PROTOCOLS.md). On failure the shares are checked one by one and the faulty signers named in a
 * ProtocolAbort('proof-failed'); without verifyingShares the abort carries no blame.
 */
export function aggregate<P>(cs: Ciphersuite<P>, input: AggregateInput<P>): Uint8Array {
  const s = sessionOf(cs, input);
  const { group } = cs;
  const { Fn } = group;
  const { shares, verifyingShares } = input;
  const missing: number[] = [];
  const malformed: number[] = [];
  let z = 0n;
  for (const c of s.commitments) {
    const zi = shares.get(c.index);
    if (zi === undefined) missing.push(c.index);
    else if (typeof zi !== 'bigint' || zi < 0n || zi >= group.order) malformed.push(c.index);
    else z = Fn.add(z, zi);
  }
  if (missing.length > 0) throw new ProtocolAbort('missing-message', missing, `no signature share from participants ${missing.join(', ')}`);
  if (malformed.length > 0) throw new ProtocolAbort('malformed-message', malformed, `signature shares out of range from participants ${malformed.join(', ')}`);
  if (shares.size !== s.commitments.length) {
    const extra = [...shares.keys()].filter((i) => !s.commitments.some((c) => c.index === i));
    throw new ProtocolAbort('unexpected-message', extra, `signature shares from participants outside the signing set: ${extra.join(', ')}`);
  }
  const R = s.negateNonces ? group.neg(s.R) : s.R;
  if (group.eq(group.msm([group.generator, s.signingKey], [z, Fn.neg(s.challenge)]), R)) {
    return cs.encodeSignature(s.R, z);
  }
  if (!verifyingShares) {
    throw new ProtocolAbort('check-failed', [], 'aggregate signature does not verify (no verifying shares to name the signer)');
  }
  const bad = invalidShares(cs, s, shares, verifyingShares);
  if (bad.length === 0) throw new ProtocolAbort('check-failed', [], 'aggregate signature does not verify but every share does');
  throw new ProtocolAbort('proof-failed', bad, `signature shares from participants ${bad.join(', ')} failed verification`);
}

/**
 * The signature from a group commitment R as the signers reported it (encoded) and their shares,
 * z = sum(z_i); undefined if R is not even the right length. Unchecked: the caller verifies it
 * against the group key before use, and otherwise falls back to aggregate(), which computes R
 * itself and names a cheater.
 */
export function assembleSignature<P>(cs: Ciphersuite<P>, encodedR: Uint8Array, shares: Iterable<bigint>): Uint8Array | undefined {
  const { group } = cs;
  if (encodedR.length !== group.pointLength) return undefined;
  let z = 0n;
  for (const zi of shares) {
    if (zi < 0n || zi >= group.order) return undefined;
    z = group.Fn.add(z, zi);
  }
  // bip340 signatures carry x(R) only; the signers already negated their nonces for an odd-Y R.
  const r = cs.evenY ? encodedR.subarray(1) : encodedR;
  const sig = new Uint8Array(cs.signatureLength);
  sig.set(r, 0);
  sig.set(group.scalarToBytes(z), r.length);
  return sig;
}

/** Verifies a complete signature under a decoded group key (bip340: its x-only form). */
export function verifySignature<P>(cs: Ciphersuite<P>, signature: Uint8Array, message: Uint8Array, groupPublicKey: P): boolean {
  return cs.verifyWithKey(signature, message, groupPublicKey);
}
