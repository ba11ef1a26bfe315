/**
 * Canonical JSON: the one encoding that audit records and policy documents are hashed and signed
 * in, so an auditor re-derives the same bytes from the same values.
 *   - object keys sorted by UTF-16 code units; undefined properties omitted; only plain objects;
 *   - numbers finite, integers safe (|n| <= 2^53 - 1), written in shortest round-trip form;
 *   - bigint, Date, Uint8Array... rejected: callers encode them as decimal / ISO / hex strings;
 *   - strings well-formed UTF-16 without U+0000.
 */
// NUL, or a surrogate half without its partner.
const BAD_STRING = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function checkString(s: string, where: string): void {
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
      if (Number.isInteger(v) && !Number.isSafeInteger(v)) {
        throw new TypeError(`${path}: integer ${v} is beyond 2^53 - 1; pass it as a decimal string`);
      }
      return JSON.stringify(v);
    case 'bigint':
      throw new TypeError(`${path}: bigint is not allowed; pass it as a decimal string`);
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        return `[${v.map((x, i) => encode(x, `${path}[${i}]`, depth + 1)).join(',')}]`;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError(`${path}: only plain objects are allowed (encode ${describe(v)} explicitly)`);
      }
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
      throw new TypeError(`${path}: ${typeof v} is not representable in JSON`);
  }
}

function describe(v: object): string {
  return (v as { constructor?: { name?: string } }).constructor?.name ?? 'object';
}

/** Canonical JSON text of a value (rules in the header). Throws TypeError on anything it cannot represent exactly. */
export function canonicalJson(value: unknown): string {
  return encode(value, '$', 0);
}
