/**
 * How far V8 lets the old generation grow past what survived the last full collection.
 *
 * Left to itself, V8 sizes that headroom from how fast it collects against how fast the program
 * allocates. Our processes keep a small live heap (20-40 MB) and collect it quickly, so V8 chose a
 * headroom of a few megabytes; on the ECDSA path the coordinator (and the nodes, once they had run
 * one full collection) then ran one three to four times a second, each clearing hidden classes
 * that the next calls had to build again (docs/benchmarks.md). A fixed factor of 3 (200 % growth) stops that loop
 * for a few tens of megabytes more heap.
 */
import { setFlagsFromString } from 'node:v8';
import { wholeNumberFromEnv } from './env-number.js';

export const DEFAULT_HEAP_GROWING_PERCENT = 200;
const MAX_PERCENT = 1000;
const ENV = 'CUSTODY_HEAP_GROWING_PERCENT';

/** The growth to apply: CUSTODY_HEAP_GROWING_PERCENT when set (0 leaves V8's own heuristic), else the default. */
export function heapGrowingPercent(env: NodeJS.ProcessEnv = process.env): number {
  return wholeNumberFromEnv(env, ENV, DEFAULT_HEAP_GROWING_PERCENT, MAX_PERCENT, "keeps V8's own heuristic");
}

/**
 * Sets the growth for this process (V8 reads it at every full collection, so setting it at start
 * is enough; flags are per process, so the database thread gets it too). Returns what was applied.
 */
export function tuneHeapGrowth(env: NodeJS.ProcessEnv = process.env): number {
  const percent = heapGrowingPercent(env);
  // 0 is V8's own default: the dynamic heuristic.
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  return percent;
}
