/** Pure tests of the audit record encoding: no database. */
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { canonicalJson, GENESIS_HASH, recordHash } from '../../coordinator/store/audit.js';

describe('canonicalJson', () => {
  test('sorts keys at every depth and writes numbers in shortest form', () => {
    expect(canonicalJson({ b: 1.0, a: { d: [3, { z: 1, y: 2 }], c: -0 } })).toBe('{"a":{"c":0,"d":[3,{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson({ b: 2, a: 1 })).toBe(canonicalJson({ a: 1, b: 2 }));
    expect(canonicalJson({ x: 0.1, y: 1e-7, s: 'é"\n' })).toBe('{"s":"é\\"\\n","x":0.1,"y":1e-7}');
  });

  test('omits undefined properties like JSON.stringify', () => {
    expect(canonicalJson({ a: undefined, b: null })).toBe('{"b":null}');
  });

  test.each([
    ['bigint', { n: 1n }, /bigint/],
    ['NaN', { n: NaN }, /finite/],
    ['Infinity', { n: Infinity }, /finite/],
    ['unsafe integer', { n: 2 ** 53 }, /2\^53/],
    ['Date', { d: new Date(0) }, /plain objects/],
    ['bytes', { b: new Uint8Array(2) }, /plain objects/],
    ['Map', { m: new Map() }, /plain objects/],
    ['NUL in a string', { s: 'a\u0000b' }, /NUL/],
    ['NUL in a key', { 'a\u0000': 1 }, /NUL/],
    ['unpaired surrogate', { s: '\ud800x' }, /surrogate/],
    ['undefined in an array', { a: [undefined] }, /not representable/],
    ['function', { f: () => 1 }, /not representable/],
  ])('rejects %s', (_name, value, message) => {
    expect(() => canonicalJson(value)).toThrow(message);
  });

  test('rejects cycles', () => {
    const o: Record<string, unknown> = {};
    o.self = o;
    expect(() => canonicalJson(o)).toThrow(/deeply/);
  });

  test('accepts well-formed astral characters', () => {
    expect(canonicalJson({ k: '🔑' })).toBe('{"k":"🔑"}');
  });
});

describe('recordHash', () => {
  const base = {
    seq: 1,
    at: new Date('2025-03-04T05:06:07.089Z'),
    actor: 'operator-1',
    action: 'keyset.created',
    subject: 'ks-1',
    details: { threshold: 2, scheme: 'ed25519' },
  };

  test('is SHA-256 over the documented encoding', () => {
    // Recomputed by hand from the format in audit.ts, as an offline verifier would.
    const body = '{"action":"keyset.created","actor":"operator-1","at":"2025-03-04T05:06:07.089Z","details":{"scheme":"ed25519","threshold":2},"seq":1,"subject":"ks-1"}';
    const expected = createHash('sha256').update('custody.audit.v1\n').update(new Uint8Array(32)).update(body).digest();
    expect(Buffer.from(recordHash(GENESIS_HASH, base))).toEqual(expected);
  });

  test('changes with every field and with the previous hash', () => {
    const h = Buffer.from(recordHash(GENESIS_HASH, base)).toString('hex');
    const variants = [
      recordHash(new Uint8Array(32).fill(1), base),
      recordHash(GENESIS_HASH, { ...base, seq: 2 }),
      recordHash(GENESIS_HASH, { ...base, at: new Date(base.at.getTime() + 1) }),
      recordHash(GENESIS_HASH, { ...base, actor: 'operator-2' }),
      recordHash(GENESIS_HASH, { ...base, action: 'keyset.deleted' }),
      recordHash(GENESIS_HASH, { ...base, subject: 'ks-2' }),
      recordHash(GENESIS_HASH, { ...base, details: { threshold: 3, scheme: 'ed25519' } }),
    ].map((x) => Buffer.from(x).toString('hex'));
    expect(new Set([h, ...variants]).size).toBe(variants.length + 1);
  });

  test('does not depend on key order of details', () => {
    expect(recordHash(GENESIS_HASH, { ...base, details: { scheme: 'ed25519', threshold: 2 } })).toEqual(recordHash(GENESIS_HASH, base));
  });

  test('rejects a malformed previous hash or seq', () => {
    expect(() => recordHash(new Uint8Array(31), base)).toThrow(/32 bytes/);
    expect(() => recordHash(GENESIS_HASH, { ...base, seq: 0 })).toThrow(/seq/);
  });
});
