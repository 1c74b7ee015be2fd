import { defineConfig } from 'vitest/config';

const conditions = ['@errand/source', 'node', 'import', 'default'];

// Dependencies load their production builds, as they do under `node dist/main.js` (Vitest otherwise
// adds the `development` condition: xstate's development build, with its extra checks, was what
// the benchmarks measured).
process.env.NODE_ENV = 'production';

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
