/**
 * Unambiguous encoding of hash and AEAD inputs.
 *
 * Every field is written as a 4-byte big-endian length followed by its bytes, so no two different
 * field lists encode to the same bytes (no "ab"+"c" == "a"+"bc" confusions). Callers put a
 * versioned domain tag first and use a fixed field order per purpose; variable-length lists are
 * written as a count field followed by the items.
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js';

/** A transcript field: raw bytes, a UTF-8 string, or an unsigned 32-bit integer (4 bytes, big-endian). */
export type Field = Uint8Array | string | number;

const utf8 = new TextEncoder();

function fieldBytes(f: Field): Uint8Array {
  if (f instanceof Uint8Array) return f;
  if (typeof f === 'string') return utf8.encode(f);
  if (!Number.isInteger(f) || f < 0 || f > 0xffffffff) throw new RangeError('transcript integer must be a uint32');
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, f, false);
  return b;
}

/** Length-prefixed concatenation of the fields. */
export function encodeFields(fields: readonly Field[]): Uint8Array {
  const parts = fields.map(fieldBytes);
  const total = parts.reduce((n, p) => n + 4 + p.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const p of parts) {
    view.setUint32(off, p.length, false);
    out.set(p, off + 4);
    off += 4 + p.length;
  }
  return out;
}

export type TranscriptHash = 'sha256' | 'sha512';

/** hash(encodeFields([tag, ...fields])): the tag separates every use of the same hash. */
export function hashFields(hash: TranscriptHash, tag: string, fields: readonly Field[]): Uint8Array {
  const data = encodeFields([tag, ...fields]);
  return hash === 'sha256' ? sha256(data) : sha512(data);
}

/** Constant-time equality for equal-length byte strings (false on length mismatch). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
