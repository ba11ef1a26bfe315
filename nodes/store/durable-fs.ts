/**
 * Durable file-system steps shared by the node stores. "Durable" means the change survives power
 * loss once the promise resolves: data fsync'd, then the directory entry fsync'd.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';

export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** fsync a directory so entries created, renamed or removed in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** mkdir -p with mode 0700 for every folder it creates; each new entry is made durable in its parent. */
export async function ensureDir(dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { mode: DIR_MODE });
  } catch (err) {
    if (isErrno(err, 'EEXIST')) {
      if (!(await fs.stat(dir)).isDirectory()) throw new Error(`${dir} exists and is not a directory`);
      return;
    }
    if (!isErrno(err, 'ENOENT')) throw err;
    await ensureDir(path.dirname(dir));
    try {
      await fs.mkdir(dir, { mode: DIR_MODE });
    } catch (again) {
      if (!isErrno(again, 'EEXIST')) throw again;
      return;
    }
  }
  // The umask can only clear bits, but be explicit: stores must never create group-readable folders.
  await fs.chmod(dir, DIR_MODE);
  await fsyncDir(path.dirname(dir));
}

export async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, data.length - off);
    off += bytesWritten;
  }
}

/** Temporary names start with a dot, which no valid record name does, so they never collide. */
function tmpPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
}

export function isTmpName(base: string): boolean {
  return base.startsWith('.') && base.endsWith('.tmp');
}

async function writeTmp(file: string, data: Uint8Array): Promise<string> {
  const tmp = tmpPathFor(file);
  const fh = await fs.open(tmp, 'wx', FILE_MODE);
  try {
    await writeAll(fh, data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  return tmp;
}

/** Atomic replace: write a temporary file, fsync it, rename over `file`, fsync the folder. */
export async function writeFileAtomic(file: string, data: Uint8Array): Promise<void> {
  const tmp = await writeTmp(file, data);
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

/**
 * Creates `file` atomically only if it does not exist yet (link() refuses to clobber).
 * Returns false, leaving the existing file alone, when another writer got there first.
 */
export async function createFileExclusive(file: string, data: Uint8Array): Promise<boolean> {
  const tmp = await writeTmp(file, data);
  let created = true;
  try {
    await fs.link(tmp, file);
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) {
      await fs.unlink(tmp).catch(() => undefined);
      throw err;
    }
    created = false;
  }
  await fs.unlink(tmp);
  await fsyncDir(path.dirname(file));
  return created;
}

/** Removes `file` durably. Returns false if it was not there. */
export async function unlinkDurable(file: string): Promise<boolean> {
  try {
    await fs.unlink(file);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
  await fsyncDir(path.dirname(file));
  return true;
}

export async function readFileIfExists(file: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}
