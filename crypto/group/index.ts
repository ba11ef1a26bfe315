/**
 * Backend selection (DESIGN.md section 5): a native backend per curve (libsodium for Ed25519,
 * libsecp256k1 for secp256k1) and the noble backend, the reference and the fallback.
 *
 * The default is 'native': groupFor(curve) returns the native backend of that curve when its addon
 * loads, else the noble one (the load error is kept for the start-up log: groupBackendStatus()).
 * A process picks its backend once, at start, before any key material is decoded:
 *
 *   const status = setGroupBackend(parseGroupBackend(process.env.CUSTODY_GROUP_BACKEND));
 *   log.info(status, 'group backend');
 *
 * Points of one backend are not points of the other (each backend refuses foreign points), so the
 * backend must not change while decoded points are alive; tests that switch restore it after.
 * This module does no I/O: the caller reads the environment. Native addons are loaded lazily, with
 * a synchronous require, the first time a native group is asked for.
 */
import type { CurveName, Group } from './group.js';
import { nobleGroup } from './noble.js';
import { libsecp256k1Group } from './secp256k1-native.js';
import { sodiumEd25519Group } from './sodium.js';

export type { CurveName, Group } from './group.js';
export { InvalidEncoding } from './group.js';

/** 'native': libsodium / libsecp256k1 where the addon loads, noble otherwise. 'noble': noble only. */
export type GroupBackend = 'native' | 'noble';

export const GROUP_BACKENDS: readonly GroupBackend[] = ['native', 'noble'];

export interface GroupBackendStatus {
  /** What was asked for (setGroupBackend or the default). */
  readonly requested: GroupBackend;
  /** The backend groupFor returns per curve: 'libsodium', 'libsecp256k1' or 'noble'. */
  readonly ed25519: string;
  readonly secp256k1: string;
  /** Why a native backend is not in use although 'native' was asked for (addon load error). */
  readonly fallback: Partial<Record<CurveName, string>>;
}

let selected: GroupBackend = 'native';

type Loaded = { group: Group<unknown> } | { error: string };
const natives = new Map<CurveName, Loaded>();

function loadNative(curve: CurveName): Loaded {
  let l = natives.get(curve);
  if (!l) {
    try {
      l = { group: (curve === 'ed25519' ? sodiumEd25519Group() : libsecp256k1Group()) as Group<unknown> };
    } catch (e) {
      l = { error: e instanceof Error ? e.message : String(e) };
    }
    natives.set(curve, l);
  }
  return l;
}

function checkBackend(b: unknown): GroupBackend {
  if (b !== 'native' && b !== 'noble') throw new Error(`unknown group backend ${String(b)} (expected native or noble)`);
  return b;
}

/**
 * The native backend for a curve, or undefined when its addon did not load. Memoised: one group
 * object per backend, so memoised ciphersuites and tables stay per backend.
 */
export function nativeGroup(curve: CurveName): Group<unknown> | undefined {
  const l = loadNative(curve);
  return 'group' in l ? l.group : undefined;
}

/**
 * The group for a curve: the given backend, else the selected one (setGroupBackend, default
 * 'native'). 'native' falls back to noble when the addon does not load.
 */
export function groupFor(curve: CurveName, backend?: GroupBackend): Group<unknown> {
  const b = backend === undefined ? selected : checkBackend(backend);
  if (b === 'native') {
    const g = nativeGroup(curve);
    if (g) return g;
  }
  return nobleGroup(curve);
}

/** Which backend groupFor uses now, per curve, and why a native one is missing. Loads the addons. */
export function groupBackendStatus(): GroupBackendStatus {
  const fallback: Partial<Record<CurveName, string>> = {};
  if (selected === 'native') {
    for (const c of ['ed25519', 'secp256k1'] as const) {
      const l = loadNative(c);
      if ('error' in l) fallback[c] = l.error;
    }
  }
  return {
    requested: selected,
    ed25519: groupFor('ed25519').backend,
    secp256k1: groupFor('secp256k1').backend,
    fallback,
  };
}

/**
 * Chooses the backend groupFor returns from now on; call once at process start (before decoding
 * keys or points). Loads the native addons now, so a failure shows in the returned status.
 */
export function setGroupBackend(backend: GroupBackend): GroupBackendStatus {
  selected = checkBackend(backend);
  return groupBackendStatus();
}

/** The selected backend ('native' unless setGroupBackend said otherwise). */
export function selectedGroupBackend(): GroupBackend {
  return selected;
}

/**
 * Parses a configuration value (e.g. CUSTODY_GROUP_BACKEND): undefined or empty means the default
 * ('native'); anything but 'native' / 'noble' (case-insensitive) throws.
 */
export function parseGroupBackend(value: string | undefined): GroupBackend {
  if (value === undefined || value.trim() === '') return 'native';
  return checkBackend(value.trim().toLowerCase());
}

/**
 * Runs f with another selected backend and restores the previous selection after (also when f
 * throws or its promise rejects). For tests and benchmarks: production picks once at start.
 */
export function withGroupBackend<T>(backend: GroupBackend, f: () => T): T {
  const before = selected;
  selected = checkBackend(backend);
  let result: T;
  try {
    result = f();
  } catch (e) {
    selected = before;
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => {
      selected = before;
    }) as T;
  }
  selected = before;
  return result;
}
