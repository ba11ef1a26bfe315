/** Process lifecycle shared by the node, the coordinator and `custody up`. */
import { tuneHeapGrowth } from './heap-growth.js';

/** Runs `stop` once on the first SIGINT or SIGTERM, then exits 0. */
export function onStopSignal(stop: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    void stop(signal).finally(() => process.exit(0));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/**
 * Runs a process's main, with the heap growth tuned first (runtime/heap-growth.ts); a start-up
 * failure is one line on stderr (no stack, no secrets) and exit 1.
 */
export function runMain(what: string, main: () => Promise<void>): void {
  (async () => {
    tuneHeapGrowth();
    await main();
  })().catch((e: unknown) => {
    process.stderr.write(`${what} failed to start: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
