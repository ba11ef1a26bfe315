/**
 * Where a signer node keeps secret records (key shares, seeds, nonce batches). Every
 * implementation seals before anything reaches disk; callers see only names and plaintext.
 */

export interface ShareStore {
  /** Which Sealer protects the records: 'local' | 'vault'. */
  readonly sealer: string;
  /** Durable and atomic: once this resolves the record survives a crash, and readers see old or new, never half. */
  put(name: string, plaintext: Uint8Array): Promise<void>;
  /** The plaintext, or undefined when there is no such record. Throws if the record fails to open. */
  get(name: string): Promise<Uint8Array | undefined>;
  /** Durable; deleting a missing record is not an error. */
  delete(name: string): Promise<void>;
  /** Names starting with `prefix` (plain string prefix), sorted. */
  list(prefix: string): Promise<string[]>;
}

export class RecordNameError extends Error {
  override readonly name = 'RecordNameError';
}

const NAME_RE = /^[a-z0-9][a-z0-9._\-/]{0,200}$/;
/** Each path segment starts with a letter or digit, so no segment is empty, ".", ".." or hidden. */
const SEGMENT_RE = /^[a-z0-9][a-z0-9._-]*$/;
const PREFIX_RE = /^[a-z0-9._\-/]{0,201}$/;

/** Record names are slash-separated paths of lowercase segments; they map directly to files. */
export function validateRecordName(name: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name) || name.includes('..') || !name.split('/').every((s) => SEGMENT_RE.test(s))) {
    throw new RecordNameError(`invalid record name ${JSON.stringify(String(name).slice(0, 64))}`);
  }
}

export function validateRecordPrefix(prefix: string): void {
  if (typeof prefix !== 'string' || !PREFIX_RE.test(prefix) || prefix.includes('..') || prefix.startsWith('/') || prefix.includes('//')) {
    throw new RecordNameError(`invalid record prefix ${JSON.stringify(String(prefix).slice(0, 64))}`);
  }
}
