import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real nodes and databases: files run in parallel, each on its own ports and files.
    pool: 'forks',
  },
});
