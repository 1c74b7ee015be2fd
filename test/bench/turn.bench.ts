/**
 * The agent-loop ("turn") benchmark of issue 14: an agent's turn — one model call and one tool
 * call, each durably recorded and its result applied — through Errand, beside the hand-written
 * JetStream loop of the same shape, in ONE run on ONE nats-server (with credentials, as a
 * deployment has). Run on demand with `pnpm bench`; writes test/bench/results/turn.json and
 * turn.md. Nothing here asserts a time.
 *
 * Systems (test/bench/systems): jetstream-floor, jetstream-floor-cached, errand-custom,
 * errand-custom-unsigned (what command signing costs), errand-custom-unclaimed (what the running-mark
 * claim of each command costs), errand-builtin. Each runs at one agent
 * (BENCH_SOLO_AGENTS agents, default 20, one after
 * another, so a lone agent's latency is measured over enough turns) and at BENCH_AGENTS agents
 * (default 1000, all started at once, 64 steps in flight per stage), BENCH_TURNS turns each
 * (default 10), BENCH_REPEAT interleaved repetitions (default 3; medians reported, and each ratio
 * to the floor is taken within its repetition), after one unreported warm-up run of each system
 * (50 agents). BENCH_SYSTEMS=a,b runs a subset (keep the floor for the ratio).
 */
import { afterAll, it } from 'vitest';
import { startTestServer, type TestServer } from '@errand/testing';
import { chosenSystems, loopSettings, runInterleaved, type Repetition } from './lib/interleave.js';
import type { LoopSystem } from './lib/loop.js';
import { summarize, writeLoopReport } from './lib/loop-report.js';
import { createErrandBuiltin } from './systems/errand-builtin.js';
import { createErrandCustom } from './systems/errand-custom.js';
import { createJetStreamFloor } from './systems/jetstream-floor.js';

let srv: TestServer | undefined;
let systems: LoopSystem[] = [];
const repetitions: Repetition[] = [];

afterAll(async () => {
  for (const s of systems) await s.teardown().catch(() => {});
  if (repetitions.length && srv) {
    const conn = await srv.connect();
    await writeLoopReport('turn', `Turn benchmark: ${loopSettings.turns} turns per agent, medians of ${repetitions.length} interleaved repetitions`, conn.features.version.text, summarize(repetitions, 'jetstream-floor'));
  }
  await srv?.stop();
});

it('the agent loop: Errand beside the JetStream floor, one agent and many', async () => {
  srv = await startTestServer();
  const all = [createJetStreamFloor(srv), createJetStreamFloor(srv, { cached: true }), createErrandCustom(srv), createErrandCustom(srv, { signed: false }), createErrandCustom(srv, { claimed: false }), createErrandBuiltin(srv)];
  systems = chosenSystems ? all.filter((s) => chosenSystems!.includes(s.name)) : all;
  for (const s of systems) await s.setup();
  await runInterleaved('turn bench', systems, repetitions);
}, 3_600_000);
