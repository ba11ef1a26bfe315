/**
 * Backend selection. Only the noble backend exists today; the native backends (libsodium,
 * libsecp256k1) plug in here and are chosen at start with noble as the fallback.
 */
import type { CurveName, Group } from './group.js';
import { nobleGroup } from './noble.js';

export type { CurveName, Group } from './group.js';
export { InvalidEncoding } from './group.js';

export function groupFor(curve: CurveName): Group<unknown> {
  return nobleGroup(curve);
}
