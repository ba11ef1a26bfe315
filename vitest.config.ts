import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // End-to-end suites start real processes; two cores do not like many at once.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
