/**
 * Picks the group backend at process start (CUSTODY_GROUP_BACKEND=native|noble, native by default)
 * and says which one runs: native libsodium / libsecp256k1 when their addons load, noble otherwise.
 * Must run before any point is decoded: points of one backend are refused by the other.
 */
import { parseGroupBackend, setGroupBackend } from '../crypto/group/index.js';
import type { Logger } from './log.js';

export function logGroupBackend(log: Logger): void {
  const status = setGroupBackend(parseGroupBackend(process.env.CUSTODY_GROUP_BACKEND));
  log.info({ groupBackend: status }, 'group backend');
  if (Object.keys(status.fallback).length) log.warn({ fallback: status.fallback }, 'native group backend unavailable: using noble');
}
