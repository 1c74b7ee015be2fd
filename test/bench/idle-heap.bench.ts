/**
 * What a host keeps alive for agents that wait for a person: a host in this process, 10,000 agents
 * (BENCH_IDLE_AGENTS) started and left waiting for an input, and V8's used heap after a full
 * garbage collection before and after — the memory the host holds for them, as opposed to the
 * RSS `idle-memory.bench.ts` reads from a host process, which also counts the heap V8 grew while
 * the goals arrived and keeps. Needs `--expose-gc` (vitest.bench.config.ts passes it). Writes
 * test/bench/results/idle-heap.json and .md; asserts nothing about the numbers.
 */
import { afterAll, beforeAll, it } from 'vitest';
import { assign, setup } from 'xstate';
import { createRegistry, defineAgent, errandActions, type AgentInput } from '@errand/core';
import { provision, publishMessage, type ErrandConnection } from '@errand/nats';
import { createSubjects, MESSAGE_VERSION, resourceSpecs } from '@errand/protocols';
import { INBOX_CONSUMER, startHost } from '@errand/runtime/internal';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';
import { writeReport } from './report.js';

const AGENTS = Number(process.env.BENCH_IDLE_AGENTS ?? 10_000);
const TIMEOUT_MS = Number(process.env.BENCH_IDLE_TIMEOUT_MS ?? 300_000);
const MB = 1024 * 1024;

/** Waits for a person's input: no command, no timer. */
const waiter = defineAgent({
  id: 'bench-waiter',
  version: 1,
  machine: setup({ types: {} as { input: AgentInput; context: { heard: number }; events: { type: 'input'; text: string } }, actions: errandActions }).createMachine({
    context: { heard: 0 },
    initial: 'waiting',
    states: { waiting: { on: { input: { actions: assign({ heard: ({ context }) => context.heard + 1 }) } } } },
  }),
});

let srv: TestServer;
let conn: ErrandConnection;
const rows: { agents: number; heapBeforeMb: number; heapWaitingMb: number; rssBeforeMb: number; rssWaitingMb: number }[] = [];

beforeAll(async () => {
  srv = await startTestServer();
  conn = await srv.connect({ asyncTraces: false });
});
afterAll(async () => {
  await writeReport('idle-heap', 'Idle heap: what a host keeps alive for agents waiting for a person (in process, after a full GC)', conn.features.version.text, rows, {
    header: ['waiting agents', 'heap used before MB', 'heap used, all waiting MB', 'added MB', 'bytes per agent', 'RSS before → waiting MB'],
    align: ['---:', '---:', '---:', '---:', '---:', '---:'],
    cells: (r) => [
      r.agents,
      r.heapBeforeMb.toFixed(1),
      r.heapWaitingMb.toFixed(1),
      (r.heapWaitingMb - r.heapBeforeMb).toFixed(1),
      Math.round(((r.heapWaitingMb - r.heapBeforeMb) * MB) / r.agents),
      `${r.rssBeforeMb.toFixed(0)} → ${r.rssWaitingMb.toFixed(0)}`,
    ],
  });
  await srv.stop();
});

function collected(): { heap: number; rss: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc (vitest.bench.config.ts passes it)');
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed / MB, rss: m.rss / MB };
}

it(`${AGENTS} agents waiting for a person: the heap a host keeps for them`, async () => {
  const prefix = uniquePrefix('idleheap');
  const specs = resourceSpecs({ prefix });
  await provision(conn, { specs });
  const subjects = createSubjects(prefix);
  const host = await startHost({ conn, registry: createRegistry([waiter]), prefix, intake: false, timers: false, gcIntervalMs: 0 });
  try {
    let journaled = 0;
    let allWaiting!: () => void;
    const waiting = new Promise<void>((resolve) => (allWaiting = resolve));
    const sub = conn.nc.subscribe(subjects.agentEventAll(undefined, 'step'), { callback: () => void (++journaled === AGENTS && allWaiting()) });
    await conn.nc.flush();
    const before = collected();
    for (let a = 0; a < AGENTS; a++) {
      const agentId = `w-${a}`;
      await publishMessage(conn, subjects.agentIn(agentId, 'goal'), { v: MESSAGE_VERSION, kind: 'goal', agentId, goal: 'wait', agent: waiter.id, at: Date.now() }, { msgId: `goal:${agentId}` });
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([waiting, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`only ${journaled} of ${AGENTS} agents started within ${TIMEOUT_MS} ms`)), TIMEOUT_MS)))]);
    clearTimeout(timer);
    sub.unsubscribe();
    // A step's journal entry goes out before the step is acked: wait (bounded) until the host has
    // acked every goal, then measure with the host still running.
    const jsm = await conn.jsm();
    for (let i = 0; i < 100; i++) {
      const info = await jsm.consumers.info(specs.names.streams.inbox, INBOX_CONSUMER);
      if (info.num_ack_pending === 0 && info.num_pending === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const after = collected();
    rows.push({ agents: AGENTS, heapBeforeMb: before.heap, heapWaitingMb: after.heap, rssBeforeMb: before.rss, rssWaitingMb: after.rss });
  } finally {
    await host.stop();
  }
}, 600_000);
