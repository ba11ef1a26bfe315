/**
 * A whole number from 0 to `max` from an environment variable: unset or empty gives `fallback`, and
 * anything else stops the process at start with a message that names the variable and says what 0
 * does (the process switches of docs/operations.md).
 */
export function wholeNumberFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, max: number, zeroMeans: string): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n > max) {
    throw new Error(`${name} must be a whole number from 0 to ${max} (0 ${zeroMeans}), got ${JSON.stringify(raw)}`);
  }
  return n;
}
