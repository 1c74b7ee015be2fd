import { defineConfig } from 'vitest/config';

// Tests import workspace packages from their TypeScript sources (the `@errand/source` export
// condition), so a test run never depends on a stale build; child processes run the built JS.
const conditions = ['@errand/source', 'node', 'import', 'default'];

// The three tiers (test/README.md). A file's tier is where it lives and how it is named, so a
// new test lands in the right one without editing this list:
// - unit: the wire contract's tests, the tests of the packages that are pure by design (no NATS
//   in their graph), and any `*.unit.test.ts` beside other code — no server, no process, no port;
// - integration: every other test of a package or service, each against its own real nats-server;
// - e2e: `test/`, the services as real processes.
const unit = [
  'protocols/test/**/*.test.ts',
  'packages/{core,agent,replay,example-agents}/test/**/*.test.ts',
  'packages/*/test/**/*.unit.test.ts',
  'services/*/test/**/*.unit.test.ts',
];
const integration = ['packages/*/test/**/*.test.ts', 'services/*/test/**/*.test.ts', 'cli/test/**/*.test.ts'];
const e2e = ['test/**/*.test.ts'];
const exclude = ['**/node_modules/**', '**/dist/**', 'test/bench/**'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: {
    pool: 'forks',
    // Test files wait on servers and processes far more than they compute: on 2 cores, Vitest's
    // default (one worker per core but one) ran them one at a time. Each file has its own
    // nats-server and prefix, so they run side by side.
    maxWorkers: Number(process.env.ERRAND_TEST_WORKERS) || 3,
    // Three files at a time on 2 cores: a test that starts a dozen CLI processes in turn takes
    // twice as long as alone.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // `pnpm test` runs every project; `pnpm test:unit` only the first (`vitest run --project unit`).
    projects: [
      { extends: true, test: { name: 'unit', include: unit, exclude } },
      { extends: true, test: { name: 'integration', include: integration, exclude: [...exclude, ...unit] } },
      { extends: true, test: { name: 'e2e', include: e2e, exclude } },
    ],
    // CI also writes a JSON report, from which .ci/run prints its plain summary line.
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'test-results/vitest.json' }]] : ['default'],
  },
});
