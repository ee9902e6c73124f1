import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['node_modules', 'test/bench/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // CI logs name every test, so they show which backends (PGlite, PostgreSQL, memory, Redis) really ran.
    reporters: process.env.CI === 'true' ? ['verbose'] : ['default'],
  },
});
