import { defineConfig } from 'vitest/config';

// Forks, not threads: native addons and ffi-rs must not be loaded into worker threads that exit
// (see docs/operations.md). The simulated vCPUs are worker_threads of their own inside each fork.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});
