/**
 * ShareStore over a folder and a Sealer, with envelope encryption per record:
 *
 *   file  = "CSR" 0x01 || u16 len(wrapped) || wrapped || aeadSeal(dataKey, plaintext, aad = record name)
 *
 * Every put draws a fresh 32-byte data key and has the Sealer wrap it with context = record name.
 * Both layers bind the name, so a record file moved or copied under another name fails to open.
 * Record "a/b" lives at `<dir>/a/b.rec`; files 0600, folders 0700.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { SealError, aeadOpen, aeadSeal, randomKey, wipe } from '../../crypto/seal.js';
import { ensureDir, isErrno, isTmpName, readFileIfExists, unlinkDurable, writeFileAtomic } from './durable-fs.js';
import type { Sealer } from './sealer.js';
import { type ShareStore, validateRecordName, validateRecordPrefix } from './share-store.js';

const MAGIC = Uint8Array.of(0x43, 0x53, 0x52, 0x01); // "CSR" v1
const HEADER = MAGIC.length + 2;
const SUFFIX = '.rec';
const utf8 = new TextEncoder();

/** A record exists but cannot be read back; the message carries the record name only. */
export class RecordError extends Error {
  override readonly name = 'RecordError';
}

export interface RewrapResult {
  /** Records examined. */
  records: number;
  /** Records whose data key was re-wrapped under the Sealer's current key version. */
  rewrapped: number;
}

function recordAad(name: string): Uint8Array {
  return utf8.encode(`custody/record/v1\0${name}`);
}

function encodeRecord(wrapped: Uint8Array, body: Uint8Array): Uint8Array {
  if (wrapped.length > 0xffff) throw new RangeError('wrapped key too long');
  const out = new Uint8Array(HEADER + wrapped.length + body.length);
  out.set(MAGIC, 0);
  out[MAGIC.length] = wrapped.length >>> 8;
  out[MAGIC.length + 1] = wrapped.length & 0xff;
  out.set(wrapped, HEADER);
  out.set(body, HEADER + wrapped.length);
  return out;
}

function decodeRecord(name: string, raw: Uint8Array): { wrapped: Uint8Array; body: Uint8Array } {
  if (raw.length < HEADER || !MAGIC.every((b, i) => raw[i] === b)) throw new RecordError(`record ${name} has an unknown format`);
  const len = (raw[MAGIC.length]! << 8) | raw[MAGIC.length + 1]!;
  if (raw.length < HEADER + len) throw new RecordError(`record ${name} is truncated`);
  return { wrapped: raw.subarray(HEADER, HEADER + len), body: raw.subarray(HEADER + len) };
}

export class SealedFileStore implements ShareStore {
  readonly dir: string;
  readonly #sealer: Sealer;
  readonly #locks = new Map<string, Promise<void>>();
  /** Folders known to exist (put makes each once). */
  readonly #dirs = new Set<string>();
  #ready: Promise<void> | null = null;

  /** Cheap and synchronous; the folder is created (0700) on first use. */
  constructor(dir: string, sealer: Sealer) {
    this.dir = path.resolve(dir);
    this.#sealer = sealer;
  }

  /** Constructs and prepares the folder now, so configuration errors surface at start-up. */
  static async open(dir: string, sealer: Sealer): Promise<SealedFileStore> {
    const store = new SealedFileStore(dir, sealer);
    await store.#init();
    return store;
  }

  /** Creates the folder and removes temporary files a crash may have left (they hold sealed bytes only). */
  #init(): Promise<void> {
    this.#ready ??= (async () => {
      await ensureDir(this.dir);
      await this.#removeStaleTmp(this.dir);
    })().catch((err: unknown) => {
      this.#ready = null; // let a later call retry, e.g. after the operator fixed permissions
      throw err;
    });
    return this.#ready;
  }

  get sealer(): string {
    return this.#sealer.kind;
  }

  #file(name: string): string {
    validateRecordName(name);
    // Validation already rules out "..", absolute paths and hidden segments; this is belt and braces.
    const file = path.join(this.dir, ...name.split('/')) + SUFFIX;
    if (!file.startsWith(this.dir + path.sep)) throw new RecordError(`record ${name} maps outside the store`);
    return file;
  }

  /** Serialises writers of one name (put, delete, rewrap) within this process. */
  async #exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#locks.set(name, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.#locks.get(name) === tail) this.#locks.delete(name);
    }
  }

  async put(name: string, plaintext: Uint8Array): Promise<void> {
    const file = this.#file(name);
    if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext must be a Uint8Array');
    const dataKey = randomKey();
    let record: Uint8Array;
    try {
      const wrapped = await this.#sealer.wrapKey(dataKey, name);
      record = encodeRecord(wrapped, aeadSeal(dataKey, plaintext, recordAad(name)));
    } finally {
      wipe(dataKey);
    }
    await this.#init();
    await this.#exclusive(name, async () => {
      const dir = path.dirname(file);
      // Folders are never removed while the store runs: each is made (or checked) once, not per write.
      if (!this.#dirs.has(dir)) {
        await ensureDir(dir);
        this.#dirs.add(dir);
      }
      await writeFileAtomic(file, record);
    });
  }

  async get(name: string): Promise<Uint8Array | undefined> {
    const file = this.#file(name);
    await this.#init();
    const raw = await readFileIfExists(file);
    if (raw === undefined) return undefined;
    const { wrapped, body } = decodeRecord(name, raw);
    let dataKey: Uint8Array | undefined;
    try {
      dataKey = await this.#sealer.unwrapKey(wrapped, name);
      return aeadOpen(dataKey, body, recordAad(name));
    } catch (err) {
      if (err instanceof SealError) throw new RecordError(`record ${name} could not be opened: ${err.message}`, { cause: err });
      throw err;
    } finally {
      wipe(dataKey);
    }
  }

  async delete(name: string): Promise<void> {
    const file = this.#file(name);
    await this.#init();
    await this.#exclusive(name, async () => {
      await unlinkDurable(file);
    });
  }

  async list(prefix: string): Promise<string[]> {
    validateRecordPrefix(prefix);
    await this.#init();
    const slash = prefix.lastIndexOf('/');
    const out: string[] = [];
    await this.#walk(slash >= 0 ? prefix.slice(0, slash) : '', out);
    return out.filter((n) => n.startsWith(prefix)).sort();
  }

  async #walk(rel: string, out: string[]): Promise<void> {
    let entries;
    try {
      entries = await fs.readdir(path.join(this.dir, ...rel.split('/').filter(Boolean)), { withFileTypes: true });
    } catch (err) {
      if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return;
      throw err;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const child = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await this.#walk(child, out);
      else if (e.isFile() && e.name.endsWith(SUFFIX)) {
        const name = child.slice(0, -SUFFIX.length);
        try {
          validateRecordName(name);
          out.push(name);
        } catch {
          // Not one of ours (hand-made file with a foreign name); never surface it as a record.
        }
      }
    }
  }

  async #removeStaleTmp(dir: string): Promise<void> {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && !e.name.startsWith('.')) await this.#removeStaleTmp(p);
      else if (e.isFile() && isTmpName(e.name)) await fs.unlink(p).catch(() => undefined);
    }
  }

  /**
   * Re-wraps every record's data key that is not under the Sealer's current key version (after a
   * Transit key rotation). Uses `sealer.rewrap` when present, so the data key never leaves Vault;
   * otherwise unwraps and wraps again. Record bodies are untouched. Safe to run while serving.
   */
  async rewrapAll(prefix = ''): Promise<RewrapResult> {
    const result: RewrapResult = { records: 0, rewrapped: 0 };
    for (const name of await this.list(prefix)) {
      const file = this.#file(name);
      await this.#exclusive(name, async () => {
        const raw = await readFileIfExists(file);
        if (raw === undefined) return; // deleted meanwhile
        result.records++;
        const { wrapped, body } = decodeRecord(name, raw);
        if (this.#sealer.isCurrent(wrapped)) return;
        let fresh: Uint8Array;
        if (this.#sealer.rewrap) {
          fresh = await this.#sealer.rewrap(wrapped, name);
        } else {
          const dataKey = await this.#sealer.unwrapKey(wrapped, name);
          try {
            fresh = await this.#sealer.wrapKey(dataKey, name);
          } finally {
            wipe(dataKey);
          }
        }
        await writeFileAtomic(file, encodeRecord(fresh, body));
        result.rewrapped++;
      });
    }
    return result;
  }
}
