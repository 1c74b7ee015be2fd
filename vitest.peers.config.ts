import { defineConfig } from 'vitest/config';

// Not 'import': vitest hands these conditions to Node as --conditions, and with 'import' among
// them a CommonJS require() of a dual package (pg requiring pg-pool) gets the ESM build.
const conditions = ['@errand/source', 'node', 'default'];

// Dependencies load their production builds, as under `node dist/main.js` (see vitest.bench.config.ts).
process.env.NODE_ENV = 'production';

// `pnpm bench:peers`: the agent loop on the systems users would pick instead of Errand, beside the
// floor and Errand in the same run. On demand only, never in CI; `pnpm bench` does not pick it up
// (its files are *.bench.ts, these *.peers.ts).
export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    include: ['test/bench/peers/**/*.peers.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 3 * 60 * 60_000,
    hookTimeout: 120_000,
    // The Restate SDK logs every invocation at INFO to the console (read once, at import).
    env: { RESTATE_LOGGING: process.env.RESTATE_LOGGING ?? 'WARN' },
  },
});
