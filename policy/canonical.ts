/**
 * Canonical JSON, byte-for-byte the encoding of coordinator/store/audit.ts (re-implemented here
 * because policy/ imports nothing from the processes):
 *   - object keys sorted by UTF-16 code units; undefined properties omitted; only plain objects;
 *   - numbers finite, integers safe (|n| <= 2^53 - 1), written in shortest round-trip form;
 *   - bigint, Date, Uint8Array... rejected: callers encode them as decimal / ISO / hex strings;
 *   - strings well-formed UTF-16 without U+0000.
 */
import { bytesToHex, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js';

const BAD_STRING = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function checkString(s: string, where: string): void {
  if (BAD_STRING.test(s)) throw new TypeError(`${where}: string contains NUL or an unpaired surrogate`);
}

function encode(v: unknown, path: string, depth: number): string {
  if (depth > 64) throw new TypeError(`${path}: nested too deeply (cycle?)`);
  switch (typeof v) {
    case 'string':
      checkString(v, path);
      return JSON.stringify(v);
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError(`${path}: ${v} is not a finite number`);
      if (Number.isInteger(v) && !Number.isSafeInteger(v)) throw new TypeError(`${path}: integer ${v} is beyond 2^53 - 1`);
      return JSON.stringify(v);
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) return `[${v.map((x, i) => encode(x, `${path}[${i}]`, depth + 1)).join(',')}]`;
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new TypeError(`${path}: only plain objects are allowed`);
      const obj = v as Record<string, unknown>;
      const parts: string[] = [];
      for (const key of Object.keys(obj).sort()) {
        const value = obj[key];
        if (value === undefined) continue;
        checkString(key, `${path} key`);
        parts.push(`${JSON.stringify(key)}:${encode(value, `${path}.${key}`, depth + 1)}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw new TypeError(`${path}: ${typeof v} is not representable in canonical JSON`);
  }
}

/** Canonical JSON text (rules above). */
export function canonicalJson(value: unknown): string {
  return encode(value, '$', 0);
}

export const utf8 = utf8ToBytes;
export const toHex = bytesToHex;
export { hexToBytes };

/** `custody/<domain>/v1\0` || message: the tagging of crypto/ed25519-sig.ts, so both verifiers agree. */
export function domainTagged(domain: string, message: Uint8Array): Uint8Array {
  const tag = utf8ToBytes(`custody/${domain}/v1\0`);
  const out = new Uint8Array(tag.length + message.length);
  out.set(tag);
  out.set(message, tag.length);
  return out;
}
