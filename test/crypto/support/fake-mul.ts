/**
 * TEST-ONLY, INSECURE stand-in for crypto/ecdsa/mul.ts behind the MulBackend seam.
 *
 * It computes correct additive shares (alice[k] + bob[k] == chi * a[k] mod n) but sends Bob's chi
 * in the clear. Each message carries a MAC under the pair's setup key, so tampering with a
 * message in transit is caught with the same abort reasons as the real protocol: round 1
 * (Bob -> Alice) -> 'ot-check-failed', round 2 (Alice -> Bob) -> 'mul-check-failed', bytes that
 * do not parse -> 'malformed'. `fault` makes a party deliberately fail a check or corrupt its
 * own output, to exercise the n-party blame paths.
 */
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type {
  MulAbortReason,
  MulBackend,
  MulContext,
  MulReceiverSetup,
  MulReceiverState,
  MulRole,
  MulSenderSetup,
  MulSetupState,
} from '../../../crypto/ecdsa/mul-backend.js';
import { encodeFields, bytesEqual } from '../../../crypto/transcript.js';
import { decodeFields } from '../../../crypto/ecdsa/wire.js';

const Fn = secp256k1.Point.Fn;

export class FakeMulAbort extends Error {
  override readonly name = 'FakeMulAbort';
  constructor(readonly reason: MulAbortReason) {
    super(`fake multiplication aborted: ${reason}`);
  }
}

interface FakeSetupState {
  role: MulRole;
  sid: Uint8Array;
  key?: Uint8Array;
  /** Flights seen or sent so far. */
  flight: number;
}
interface FakeSetup {
  role: MulRole;
  key: Uint8Array;
}
interface FakeReceiverState {
  key: Uint8Array;
  sid: Uint8Array;
  chi: bigint;
}

export interface FakeMulOptions {
  flights?: number;
  first?: MulRole;
  /** Corrupt Alice's output shares (the Gamma checks must catch it). */
  corruptSenderShares?: boolean;
}

const mac = (key: Uint8Array, ...parts: Uint8Array[]) => sha256(encodeFields([key, ...parts]));
const sc = (x: bigint) => numberToBytesBE(x, 32);

function parse(bytes: Uint8Array, count: number): Uint8Array[] {
  let f: Uint8Array[];
  try {
    f = decodeFields(bytes);
  } catch {
    throw new FakeMulAbort('malformed');
  }
  if (f.length !== count) throw new FakeMulAbort('malformed');
  return f;
}

export function fakeMul(opts: FakeMulOptions = {}): MulBackend {
  const flights = opts.flights ?? 3;
  const first: MulRole = opts.first ?? 'receiver';
  const roleOf = (f: number): MulRole => (f % 2 === 1 ? first : first === 'sender' ? 'receiver' : 'sender');

  function emit(st: FakeSetupState): Uint8Array {
    st.flight++;
    if (st.flight === 1) st.key = randomBytes(32);
    return encodeFields([st.sid, st.flight, st.flight === 1 ? st.key! : new Uint8Array(0)]);
  }

  return {
    name: 'fake-insecure',
    inputs: 2,
    setupFlights: flights,
    setupFirst: first,
    setupStart(role: MulRole, ctx: MulContext) {
      const st: FakeSetupState = { role, sid: ctx.sessionId.slice(), flight: 0 };
      const msg = roleOf(1) === role ? emit(st) : undefined;
      return { state: st as unknown as MulSetupState, ...(msg ? { msg } : {}) };
    },
    setupStep(state: MulSetupState, msg: Uint8Array) {
      const st = { ...(state as unknown as FakeSetupState) };
      const [sid, n, key] = parse(msg, 3) as [Uint8Array, Uint8Array, Uint8Array];
      const flight = new DataView(n.buffer, n.byteOffset, n.length).getUint32(0);
      if (!bytesEqual(sid, st.sid) || flight !== st.flight + 1 || roleOf(flight) === st.role) throw new FakeMulAbort('malformed');
      st.flight = flight;
      if (flight === 1) {
        if (key.length !== 32) throw new FakeMulAbort('malformed');
        st.key = key.slice();
      }
      const finished = (): MulSenderSetup => ({ role: st.role, key: st.key! }) as unknown as MulSenderSetup;
      if (st.flight === flights) return { done: finished() };
      const out = emit(st); // roles alternate: the next flight is ours
      if (st.flight === flights) return { done: finished(), msg: out };
      return { state: st as unknown as MulSetupState, msg: out };
    },
    encodeSenderSetup: (s: MulSenderSetup) => encodeFields(['fake-sender', (s as unknown as FakeSetup).key]),
    decodeSenderSetup: (b: Uint8Array) => {
      const f = decodeFields(b);
      return { role: 'sender', key: f[1]!.slice() } as unknown as MulSenderSetup;
    },
    encodeReceiverSetup: (s: MulReceiverSetup) => encodeFields(['fake-receiver', (s as unknown as FakeSetup).key]),
    decodeReceiverSetup: (b: Uint8Array) => {
      const f = decodeFields(b);
      return { role: 'receiver', key: f[1]!.slice() } as unknown as MulReceiverSetup;
    },
    receiverRound1(setup: MulReceiverSetup, ctx: MulContext) {
      const key = (setup as unknown as FakeSetup).key;
      const chi = Fn.create(bytesToNumberBE(randomBytes(48)));
      const st: FakeReceiverState = { key, sid: ctx.sessionId.slice(), chi };
      const msg = encodeFields([sc(chi), mac(key, ctx.sessionId, sc(chi))]);
      return { state: st as unknown as MulReceiverState, chi, msg };
    },
    senderRound2(setup: MulSenderSetup, ctx: MulContext, inputs: readonly bigint[], msg: Uint8Array) {
      const key = (setup as unknown as FakeSetup).key;
      const [chiB, tag] = parse(msg, 2) as [Uint8Array, Uint8Array];
      if (chiB.length !== 32 || tag.length !== 32) throw new FakeMulAbort('malformed');
      if (!bytesEqual(tag, mac(key, ctx.sessionId, chiB))) throw new FakeMulAbort('ot-check-failed');
      const chi = bytesToNumberBE(chiB);
      if (chi >= Fn.ORDER) throw new FakeMulAbort('malformed');
      const shares = inputs.map(() => Fn.create(bytesToNumberBE(randomBytes(48))));
      const bob = inputs.map((a, k) => Fn.sub(Fn.mul(chi, a), shares[k]!));
      if (opts.corruptSenderShares) shares[0] = Fn.add(shares[0]!, 1n);
      const body = bob.map(sc);
      return { shares, msg: encodeFields([...body, mac(key, ctx.sessionId, ...body)]) };
    },
    receiverRound3(state: MulReceiverState, msg: Uint8Array) {
      const st = state as unknown as FakeReceiverState;
      const f = parse(msg, 3);
      if (f.some((x) => x.length !== 32)) throw new FakeMulAbort('malformed');
      if (!bytesEqual(f[2]!, mac(st.key, st.sid, f[0]!, f[1]!))) throw new FakeMulAbort('mul-check-failed');
      return [bytesToNumberBE(f[0]!), bytesToNumberBE(f[1]!)].map((x) => Fn.create(x));
    },
    abortReason: (e: unknown) => (e instanceof FakeMulAbort ? e.reason : undefined),
  };
}
