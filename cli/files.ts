/** Files the CLI reads and writes for operators: never overwrites, and says which file is wrong. */
import { readFile, writeFile } from 'node:fs/promises';
import { CliError } from './client.js';

/** A new file, mode 0600; an existing one is left alone and reported (keys, bundles, recovered keys). */
export async function writeNewFile(file: string, content: string): Promise<void> {
  try {
    await writeFile(file, content, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as { code?: string }).code === 'EEXIST') throw new CliError(`${file} exists; choose another --out (nothing was overwritten)`, 'ALREADY_EXISTS');
    throw e;
  }
}

export async function readJsonFile<T>(file: string, what: string): Promise<T> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (e) {
    throw new CliError(`cannot read the ${what} ${file}: ${e instanceof SyntaxError ? 'not JSON' : 'unreadable'}`, 'INVALID_ARGUMENT');
  }
}
