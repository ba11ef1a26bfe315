/**
 * Byte plumbing for the OT layer: a bounds-checked reader for peer messages, scalar <-> bytes
 * without string round trips, 32-bit word views, and a constant-time comparison.
 *
 * Bit-packed vectors are Uint32Array words; bit k of a vector is bit (k & 31) of word k >> 5, which
 * on the wire is bit (k & 7) of byte k >> 3 (little-endian words). The code views byte buffers as
 * words directly, so it requires a little-endian host (every platform Node ships for in practice);
 * the check below fails loudly rather than computing garbage elsewhere.
 */
import { createHash } from 'node:crypto';
import { encodeFields, type Field } from '../../transcript.js';
import { MulAbort } from './abort.js';

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  throw new Error('crypto/ecdsa/ot requires a little-endian host');
}

/** Constant-time equality of two byte strings (length is public; false on length mismatch). */
export function ctEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** Word view of a byte range; copies when the range is not 4-byte aligned (peer buffers may not be). */
export function wordsOf(b: Uint8Array, offset: number, words: number): Uint32Array {
  const start = b.byteOffset + offset;
  if (start % 4 === 0) return new Uint32Array(b.buffer, start, words);
  return new Uint32Array(b.slice(offset, offset + words * 4).buffer);
}

/** Byte view of a word array (no copy). */
export function bytesOfWords(w: Uint32Array): Uint8Array {
  return new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
}

/** Sequential reader over a peer message; every short read is a 'malformed' abort. */
export class Reader {
  private off = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly what: string,
  ) {}

  /** Checks the 2-byte header (format version, message type). */
  header(version: number, type: number): void {
    const v = this.u8();
    const t = this.u8();
    if (v !== version) throw new MulAbort('malformed', `${this.what}: unsupported version ${v}`);
    if (t !== type) throw new MulAbort('malformed', `${this.what}: wrong message type ${t}`);
  }

  u8(): number {
    if (this.off + 1 > this.buf.length) throw new MulAbort('malformed', `${this.what}: truncated`);
    return this.buf[this.off++]!;
  }

  /** A subarray view (no copy) of the next n bytes. */
  take(n: number): Uint8Array {
    if (this.off + n > this.buf.length) throw new MulAbort('malformed', `${this.what}: truncated`);
    const out = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return out;
  }

  /** The next n 32-bit words. */
  words(n: number): Uint32Array {
    if (this.off + 4 * n > this.buf.length) throw new MulAbort('malformed', `${this.what}: truncated`);
    const out = wordsOf(this.buf, this.off, n);
    this.off += 4 * n;
    return out;
  }

  /** Current offset, for callers that parse a fixed-size block in place. */
  get offset(): number {
    return this.off;
  }

  skip(n: number): void {
    this.take(n);
  }

  end(): void {
    if (this.off !== this.buf.length) throw new MulAbort('malformed', `${this.what}: ${this.buf.length - this.off} trailing bytes`);
  }
}

/** Big-endian 32-byte integer at `off` (no reduction). */
export function readU256(dv: DataView, off: number): bigint {
  return (
    (((dv.getBigUint64(off) << 64n) | dv.getBigUint64(off + 8)) << 128n) |
    ((dv.getBigUint64(off + 16) << 64n) | dv.getBigUint64(off + 24))
  );
}

/** Writes x (0 <= x < 2^256) big-endian at `off`; setBigUint64 keeps the low 64 bits of each shift. */
export function writeU256(dv: DataView, off: number, x: bigint): void {
  dv.setBigUint64(off, x >> 192n);
  dv.setBigUint64(off + 8, x >> 128n);
  dv.setBigUint64(off + 16, x >> 64n);
  dv.setBigUint64(off + 24, x);
}

export function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * SHA-256(encodeFields([tag, ...fields]) || bulk_0 || bulk_1 ...): transcript hashing of the large
 * fixed-size message parts (tens of kilobytes per multiplication). Bulk parts have lengths fixed by
 * the wire version, so the encoding stays unambiguous. Uses node:crypto, which is ~10x faster than
 * pure-JS SHA-256 at this size; the output is plain SHA-256 (tests check it against @noble/hashes).
 */
export function sha256Bulk(tag: string, fields: readonly Field[], ...bulk: Uint8Array[]): Uint8Array {
  const h = createHash('sha256').update(encodeFields([tag, ...fields]));
  for (const b of bulk) h.update(b);
  const d = h.digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}
