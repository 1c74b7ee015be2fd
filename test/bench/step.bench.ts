/**
 * The step benchmark: Errand's step beside the raw NATS floor, measured in the same run on the
 * same server. Run on demand with `pnpm bench`; results go to test/bench/results/ as JSON and
 * markdown. Nothing here asserts a time.
 */
import { afterAll, beforeAll, it } from 'vitest';
import { openBucket, provision, type ErrandConnection } from '@errand/nats';
import { createSubjects, encodeMessage, MESSAGE_VERSION, resourceSpecs, type Message } from '@errand/protocols';
import { assign, setup } from 'xstate';
import { createRegistry, defineAgent, errandActions, type AgentInput } from '@errand/core';
import { startHost, StepExecutor } from '@errand/runtime/internal';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';
import { writeReport } from './report.js';

const STEPS_ONE = Number(process.env.BENCH_STEPS ?? 2000);
const AGENTS = Number(process.env.BENCH_AGENTS ?? 1000);
const STEPS_EACH = Number(process.env.BENCH_STEPS_EACH ?? 3);
const CONCURRENCY = 64;

let srv: TestServer;
let conn: ErrandConnection;
const rows: { name: string; steps: number; seconds: number; stepsPerSecond: number; note: string }[] = [];

beforeAll(async () => {
  srv = await startTestServer();
  conn = await srv.connect({ asyncTraces: false });
});
afterAll(async () => {
  await writeReport('step', 'Step benchmark', conn.features.version.text, rows, {
    header: ['run', 'steps', 'seconds', 'steps/s', 'what it does'],
    align: ['---', '---:', '---:', '---:', '---'],
    cells: (r) => [r.name, r.steps, r.seconds.toFixed(2), Math.round(r.stepsPerSecond), r.note],
  });
  await srv.stop();
});

async function measure(name: string, steps: number, note: string, run: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  await run();
  const seconds = (performance.now() - t0) / 1000;
  rows.push({ name, steps, seconds, stepsPerSecond: steps / seconds, note });
}

async function pool(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

async function freshPrefix() {
  const prefix = uniquePrefix('bench');
  const specs = resourceSpecs({ prefix });
  await provision(conn, { specs });
  return { prefix, subjects: createSubjects(prefix), kv: await openBucket(conn, specs.names.buckets.agents) };
}

/** A counter whose record stays the same size: what a step costs, not what a growing context costs. */
const counter = defineAgent({
  id: 'counter',
  version: 1,
  machine: setup({
    types: {} as { input: AgentInput; context: { n: number; target: number }; events: { type: 'input'; text: string } },
    actions: errandActions,
  }).createMachine({
    context: ({ input }) => ({ n: 0, target: Number(input.input.expect) }),
    initial: 'counting',
    states: {
      counting: {
        always: { guard: ({ context }) => context.n >= context.target, target: 'done' },
        on: { input: { actions: assign({ n: ({ context }) => context.n + 1 }) } },
      },
      done: { type: 'final' },
    },
  }),
});

const body = new Uint8Array(600).fill(7); // about the size of a small agent record

it('raw NATS floor: KV get + KV update with revision + JetStream publish with ack', async () => {
  const { kv, subjects } = await freshPrefix();
  await kv.put('floor', body);
  await measure('NATS floor, one agent', STEPS_ONE, 'hand-written loop, awaited in turn', async () => {
    for (let i = 0; i < STEPS_ONE; i++) {
      const e = await kv.get('floor');
      await kv.update('floor', body, e!.revision);
      await conn.js.publish(subjects.agentEvent('floor', 'step'), body);
    }
  });
  for (let a = 0; a < AGENTS; a++) await kv.put(`f-${a}`, body);
  await measure(`NATS floor, ${AGENTS} agents`, AGENTS * STEPS_EACH, `${CONCURRENCY} in flight`, () =>
    pool(AGENTS * STEPS_EACH, CONCURRENCY, async (i) => {
      const key = `f-${i % AGENTS}`;
      const e = await kv.get(key);
      try {
        await kv.update(key, body, e!.revision);
      } catch {
        // another worker of the pool wrote the same key first: the floor does not retry
      }
      await conn.js.publish(subjects.agentEvent(key, 'step'), body);
    }),
  );
}, 600_000);

it('Errand step: decide (XState transition) + commit with revision + publish the outbox', async () => {
  const { kv, subjects } = await freshPrefix();
  const executor = new StepExecutor({ js: conn.js, agents: kv, subjects, registry: createRegistry([counter]) });
  const goal = (agentId: string, expect: number): Message<'goal'> => ({
    v: MESSAGE_VERSION, kind: 'goal', agentId, goal: 'count', agent: 'counter', input: { expect }, at: Date.now(),
  });
  const input = (agentId: string, i: number): Message<'input'> => ({
    v: MESSAGE_VERSION, kind: 'input', agentId, text: String(i), by: { id: 'bench', channel: 'bench' }, at: Date.now(),
  });
  await executor.run(goal('one', STEPS_ONE + 1), 'goal:one');
  await measure('Errand, one agent', STEPS_ONE, 'a counter agent waiting for input (its record is read from KV each step), awaited in turn', async () => {
    for (let i = 0; i < STEPS_ONE; i++) await executor.run(input('one', i), `in-${i}`);
  });
  for (let a = 0; a < AGENTS; a++) await executor.run(goal(`a-${a}`, STEPS_EACH + 1), `goal:a-${a}`);
  await measure(`Errand, ${AGENTS} agents`, AGENTS * STEPS_EACH, `${CONCURRENCY} in flight, one agent's steps in turn`, () =>
    pool(AGENTS * STEPS_EACH, CONCURRENCY, async (i) => {
      const agentId = `a-${i % AGENTS}`;
      await executor.run(input(agentId, i), `in-${i}`);
    }),
  );
}, 600_000);

it('Errand host: inbox consumer → step → ack, the whole path a message takes', async () => {
  const { prefix, subjects } = await freshPrefix();
  const host = await startHost({ conn, registry: createRegistry([counter]), prefix, concurrency: CONCURRENCY, intake: false, timers: false });
  const done = new Set<string>();
  let finished: () => void = () => {};
  const all = new Promise<void>((resolve) => (finished = resolve));
  const sub = conn.nc.subscribe(subjects.agentEventAll(undefined, 'done'), {
    callback: (_e, m) => {
      const p = subjects.parse(m.subject);
      if (p.type === 'agent.ev') done.add(p.agentId);
      if (done.size === AGENTS) finished();
    },
  });
  await conn.nc.flush();
  const publishAll = (make: (a: number) => Message<'goal' | 'input'>, token: 'goal' | 'input', tag: string) =>
    pool(AGENTS, CONCURRENCY, async (a) => {
      await conn.js.publish(subjects.agentIn(`h-${a}`, token), encodeMessage(make(a)).data, { msgID: `${tag}-${a}` });
    });
  await measure(`Errand host, ${AGENTS} agents`, AGENTS * (STEPS_EACH + 1), 'goal + inputs published to the inbox until every agent is done (the publishing included)', async () => {
    await publishAll((a) => ({ v: MESSAGE_VERSION, kind: 'goal', agentId: `h-${a}`, goal: 'count', agent: 'counter', input: { expect: STEPS_EACH }, at: Date.now() }), 'goal', 'goal');
    for (let i = 0; i < STEPS_EACH; i++) {
      await publishAll((a) => ({ v: MESSAGE_VERSION, kind: 'input', agentId: `h-${a}`, text: String(i), by: { id: 'bench', channel: 'bench' }, at: Date.now() }), 'input', `in${i}`);
    }
    await all;
  });
  sub.unsubscribe();
  await host.stop();
}, 600_000);
