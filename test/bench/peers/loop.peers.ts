/**
 * `pnpm bench:peers`: the agent loop of issue 14 (a turn = one instant model call + one no-op tool
 * call, each durably recorded; 2 steps per turn) on the systems users would pick instead of
 * Errand — BullMQ on Redis (AOF always), Restate 1.7, LangGraph JS with the Postgres saver — beside
 * the JetStream floor and Errand (test/bench/systems) measured in the same run, as one table in
 * test/bench/results/peers.json and peers.md. Nothing here asserts a time.
 *
 * Sizes as in turn.bench.ts: one agent (BENCH_SOLO_AGENTS agents, default 20, one after another)
 * and BENCH_AGENTS (default 1000, all at once, 64 steps in flight), BENCH_TURNS turns (default
 * 10), BENCH_REPEAT interleaved repetitions (default 3), medians, each ratio to the floor taken
 * within its repetition, after one unreported warm-up run per system. BENCH_SYSTEMS=a,b runs the
 * systems whose name contains one of them (keep `jetstream-floor` for the ratio). A peer that
 * cannot start is reported under the table, and the others still run.
 */
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, it } from 'vitest';
import { startTestServer, type TestServer } from '@errand/testing';
import { chosenSystems, loopSettings, runInterleaved, type Repetition } from '../lib/interleave.js';
import type { LoopSystem } from '../lib/loop.js';
import { summarize, writeLoopReport } from '../lib/loop-report.js';
import { createErrandBuiltin } from '../systems/errand-builtin.js';
import { createErrandCustom } from '../systems/errand-custom.js';
import { createJetStreamFloor } from '../systems/jetstream-floor.js';
import { bullmqSystem } from './bullmq.js';
import { langgraphSystem } from './langgraph.js';
import { restateSystem } from './restate.js';

const FLOOR = 'jetstream-floor';

type Versioned = LoopSystem & { version?(): string };

let srv: TestServer | undefined;
const started: Versioned[] = [];
const failed: { system: string; error: string }[] = [];
const repetitions: Repetition[] = [];

afterAll(async () => {
  for (const s of [...started].reverse()) await s.teardown().catch((e: unknown) => failed.push({ system: s.name, error: `teardown: ${String(e)}` }));
  if (repetitions.length && srv) {
    const conn = await srv.connect();
    const servers = [conn.features.version.text, ...started.map((s) => s.version?.()).filter((v): v is string => Boolean(v))].join('; ');
    await writeLoopReport('peers', `Agent loop: Errand, the floor and its peers — ${loopSettings.turns} turns per agent, medians of ${repetitions.length} interleaved repetitions`, servers, summarize(repetitions, FLOOR));
    if (failed.length) await addFailures(failed);
  }
  await srv?.stop();
}, 120_000);

/** A system that failed is named under the table (and in the JSON) with its error. */
async function addFailures(list: readonly { system: string; error: string }[]): Promise<void> {
  const dir = fileURLToPath(new URL('../results/', import.meta.url));
  const json = JSON.parse(await readFile(`${dir}peers.json`, 'utf8')) as Record<string, unknown>;
  await writeFile(`${dir}peers.json`, `${JSON.stringify({ ...json, failed: list }, null, 2)}\n`);
  const lines = list.map((f) => `- **${f.system} failed:** ${f.error.split('\n')[0]}`).join('\n');
  await appendFile(`${dir}peers.md`, `\n${lines}\n`);
  process.stdout.write(`${lines}\n`);
}

function failure(system: string, e: unknown): void {
  const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
  failed.push({ system, error });
  process.stderr.write(`\npeers bench: ${system} failed: ${error}\n`);
}

it('the agent loop on BullMQ, Restate and LangGraph beside the floor and Errand, one agent and many', async () => {
  srv = await startTestServer();
  const all: Versioned[] = [createJetStreamFloor(srv), createJetStreamFloor(srv, { cached: true }), createErrandCustom(srv), createErrandBuiltin(srv), bullmqSystem(), restateSystem(), langgraphSystem()];
  const chosen = chosenSystems ? all.filter((s) => chosenSystems!.some((o) => s.name.toLowerCase().includes(o))) : all;
  for (const s of chosen) {
    try {
      started.push(s);
      await s.setup();
    } catch (e) {
      failure(s.name, e);
    }
  }
  const ready = started.filter((s) => !failed.some((f) => f.system === s.name));
  await runInterleaved('peers bench', ready, repetitions, (s, e) => failure(s.name, e));
}, 4 * 3_600_000);
