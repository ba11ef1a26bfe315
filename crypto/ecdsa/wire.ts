/**
 * Versioned binary codec for DKLs23 payloads and sealed records.
 *
 * Every payload is crypto/transcript.ts encodeFields([tag, ...fields]): 4-byte big-endian length
 * prefixes, so the encoding is unambiguous, and the tag names both the message kind and its
 * version ("custody-ecdsa-presign-r1b/v1"). A new layout gets a new tag: old readers reject it
 * instead of misreading it. Decoding is strict (exact tag, exact field count, exact lengths,
 * canonical scalars, valid non-identity points); protocol code turns a WireError into
 * ProtocolAbort('malformed-message', [sender]).
 */
import type { Group } from '../group/index.js';
import { encodeFields, type Field } from '../transcript.js';

export class WireError extends Error {
  override readonly name = 'WireError';
}

/** Upper bound on fields per payload: far above any honest message, stops allocation games. */
const MAX_FIELDS = 1 << 16;

export function encodeMessage(tag: string, fields: readonly Field[]): Uint8Array {
  return encodeFields([tag, ...fields]);
}

/** Inverse of encodeFields; throws WireError unless the bytes are exactly a list of fields. */
export function decodeFields(bytes: Uint8Array): Uint8Array[] {
  if (!(bytes instanceof Uint8Array)) throw new WireError('payload must be bytes');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < bytes.length) {
    if (out.length >= MAX_FIELDS) throw new WireError('too many fields');
    if (off + 4 > bytes.length) throw new WireError('truncated length prefix');
    const len = view.getUint32(off, false);
    off += 4;
    if (len > bytes.length - off) throw new WireError('truncated field');
    out.push(bytes.subarray(off, off + len));
    off += len;
  }
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Sequential reader over a decoded payload; every accessor validates what it returns. */
export class FieldReader {
  private readonly fields: Uint8Array[];
  private pos = 1;

  constructor(bytes: Uint8Array, tag: string) {
    this.fields = decodeFields(bytes);
    const first = this.fields[0];
    let got: string | undefined;
    try {
      got = first ? utf8.decode(first) : undefined;
    } catch {
      got = undefined;
    }
    if (got !== tag) throw new WireError(`expected a ${tag} payload`);
  }

  private next(): Uint8Array {
    const f = this.fields[this.pos];
    if (!f) throw new WireError('missing field');
    this.pos++;
    return f;
  }

  /** Raw bytes, optionally of an exact length. Copied, so callers may keep them. */
  bytes(length?: number): Uint8Array {
    const f = this.next();
    if (length !== undefined && f.length !== length) throw new WireError(`field must be ${length} bytes, got ${f.length}`);
    return f.slice();
  }

  u32(): number {
    const f = this.next();
    if (f.length !== 4) throw new WireError('integer field must be 4 bytes');
    return new DataView(f.buffer, f.byteOffset, 4).getUint32(0, false);
  }

  /** A count bounded by `max`, for length-prefixed lists. */
  count(max: number): number {
    const n = this.u32();
    if (n > max) throw new WireError(`list too long (${n} > ${max})`);
    return n;
  }

  scalar(g: Group<unknown>): bigint {
    try {
      return g.scalarFromBytes(this.next());
    } catch {
      throw new WireError('invalid scalar');
    }
  }

  /** A valid, non-identity point (decoded once here, at the boundary). */
  point(g: Group<unknown>): { point: unknown; bytes: Uint8Array } {
    const f = this.next();
    try {
      const point = g.decode(f);
      return { point, bytes: f.slice() };
    } catch {
      throw new WireError('invalid or identity point');
    }
  }

  /** Asserts that every field was consumed. */
  end(): void {
    if (this.pos !== this.fields.length) throw new WireError('unexpected trailing fields');
  }
}
