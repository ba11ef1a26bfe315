/**
 * Greps folders for known secrets (DESIGN.md section 2: "tests grep for it"). A hit means a share,
 * nonce or seed reached disk unsealed. Hits name the file, the secret's index and the encoding,
 * never the secret itself, so a failing assertion prints nothing sensitive.
 *
 * Encodings: raw bytes, lowercase and uppercase hex, base64 and base64url (at all three byte
 * alignments, so a secret inside a longer base64 blob is still found), and for 32-byte scalars
 * also the reversed byte order (little- vs big-endian) in raw and hex, and both decimal readings.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface SecretHit {
  file: string;
  secretIndex: number;
  encoding: string;
}

/** Shorter secrets would match by chance in large files. */
const MIN_SECRET_LENGTH = 16;
const CHUNK = 1 << 20;

interface Pattern {
  secretIndex: number;
  encoding: string;
  bytes: Buffer;
}

/**
 * The base64 characters that depend only on the secret when it starts `shift` bytes into a
 * 3-byte group; the partial characters at either end also depend on neighbouring bytes.
 */
function base64Core(secret: Buffer, shift: number, url: boolean): string {
  const enc = Buffer.concat([Buffer.alloc(shift), secret]).toString(url ? 'base64url' : 'base64');
  const first = Math.ceil((8 * shift) / 6);
  const end = Math.floor((8 * (shift + secret.length)) / 6);
  return enc.slice(first, end);
}

function patternsFor(secret: Uint8Array, secretIndex: number): Pattern[] {
  const raw = Buffer.from(secret);
  const out: Pattern[] = [];
  const add = (encoding: string, bytes: Buffer) => out.push({ secretIndex, encoding, bytes });
  const addHex = (suffix: string, b: Buffer) => {
    add(`raw${suffix}`, b);
    add(`hex${suffix}`, Buffer.from(b.toString('hex'), 'latin1'));
    add(`HEX${suffix}`, Buffer.from(b.toString('hex').toUpperCase(), 'latin1'));
  };
  addHex('', raw);
  for (const shift of [0, 1, 2]) {
    const at = shift === 0 ? '' : `@${shift}`;
    add(`base64${at}`, Buffer.from(base64Core(raw, shift, false), 'latin1'));
    add(`base64url${at}`, Buffer.from(base64Core(raw, shift, true), 'latin1'));
  }
  if (raw.length === 32) {
    const rev = Buffer.from(raw).reverse();
    addHex('-reversed', rev);
    add('base64-reversed', Buffer.from(base64Core(rev, 0, false), 'latin1'));
    add('decimal-be', Buffer.from(BigInt('0x' + raw.toString('hex')).toString(10), 'latin1'));
    add('decimal-le', Buffer.from(BigInt('0x' + rev.toString('hex')).toString(10), 'latin1'));
  }
  // Identical encodings (e.g. all-zero secrets) would only duplicate hits.
  const seen = new Set<string>();
  return out.filter((p) => {
    const key = p.bytes.toString('latin1');
    if (p.bytes.length === 0 || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

async function* walk(dir: string): AsyncGenerator<string> {
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    // Symlinks are not followed: no loops, and every real file is reached through its own folder.
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}

async function scanFile(file: string, patterns: Pattern[], maxLen: number, hits: SecretHit[]): Promise<void> {
  const found = new Set<Pattern>();
  const fh = await fs.open(file, 'r');
  try {
    // Chunks overlap by maxLen-1 bytes, so a match across a boundary is still seen.
    let carry = Buffer.alloc(0);
    const buf = Buffer.alloc(CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      const window = Buffer.concat([carry, buf.subarray(0, bytesRead)]);
      for (const p of patterns) if (!found.has(p) && window.includes(p.bytes)) found.add(p);
      carry = Buffer.from(window.subarray(Math.max(0, window.length - (maxLen - 1))));
    }
    buf.fill(0);
    carry.fill(0);
  } finally {
    await fh.close();
  }
  for (const p of found) hits.push({ file, secretIndex: p.secretIndex, encoding: p.encoding });
}

/**
 * Every occurrence (one per file, secret and encoding) of any secret under `dirs` (a path that is
 * a file, such as a database file, is scanned itself). Throws if a path does not exist, so a
 * mistyped path cannot make a test pass vacuously.
 */
export async function scanForSecrets(dirs: string[], secrets: Uint8Array[]): Promise<SecretHit[]> {
  if (secrets.length === 0) throw new Error('scanForSecrets needs at least one secret');
  const patterns: Pattern[] = [];
  for (const [i, s] of secrets.entries()) {
    if (s.length < MIN_SECRET_LENGTH) throw new Error(`secret ${i} is shorter than ${MIN_SECRET_LENGTH} bytes; a scan for it is meaningless`);
    patterns.push(...patternsFor(s, i));
  }
  const maxLen = Math.max(...patterns.map((p) => p.bytes.length));
  const hits: SecretHit[] = [];
  for (const dir of dirs) {
    const st = await fs.stat(dir); // throws ENOENT on a wrong path
    if (st.isFile()) await scanFile(dir, patterns, maxLen, hits);
    else for await (const file of walk(dir)) await scanFile(file, patterns, maxLen, hits);
  }
  for (const p of patterns) p.bytes.fill(0);
  return hits;
}
