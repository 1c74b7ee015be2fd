import { defineConfig } from 'vitest/config';

const conditions = ['@errand/source', 'node', 'import', 'default'];

// Benchmarks run on demand (`pnpm bench`), one file at a time, never in CI.
export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    include: ['test/bench/**/*.bench.ts'],
    pool: 'forks',
    // idle-heap.bench.ts collects garbage before it reads the heap.
    execArgv: ['--expose-gc'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 60_000,
  },
});
