/**
 * Idle memory: many agents waiting for a person, all started through one host process. Measures
 * the host's resident memory (VmRSS) before any agent and once all wait, and the CPU the host (and
 * the nats-server) use over an idle window after that; then wakes the agents (a person answers) to
 * show they still work. Two kinds of waiting agent:
 * - `tally` (the example agents) waiting for an input: a small record;
 * - the built-in `assistant` waiting for an approval: its planner (the real planner service) asks a
 *   loopback OpenAI-protocol server, which answers every request with a call of an `ask` tool, so
 *   each agent carries its conversation and an approval request.
 * Waits are bounded; nothing here asserts a time or a size.
 *
 * BENCH_IDLE_AGENTS (10000), BENCH_IDLE_BUILTIN_AGENTS (10000; 0 skips the built-in run),
 * BENCH_IDLE_WINDOW_MS (10000), BENCH_IDLE_TIMEOUT_MS (600000, per wait).
 */
import { afterAll, beforeAll, it } from 'vitest';
import { startMockLlm, type MockLlm } from '@errand/llm';
import { freePort, startTestServer, startTestToolRunner, type Deployment, type TestProcess, type TestServer, type TestToolRunner } from '@errand/testing';
import { writeReport } from './report.js';
import { answerAll, benchDeployment, fmt, sleep, stopDeployment, submitAll, trackProgress, until, type Progress } from './ops/harness.js';
import { cpuMicros, MB, rssBytes } from './ops/proc.js';

const AGENTS = Number(process.env.BENCH_IDLE_AGENTS ?? 10_000);
const BUILTIN_AGENTS = Number(process.env.BENCH_IDLE_BUILTIN_AGENTS ?? 10_000);
const WINDOW_MS = Number(process.env.BENCH_IDLE_WINDOW_MS ?? 10_000);
const TIMEOUT_MS = Number(process.env.BENCH_IDLE_TIMEOUT_MS ?? 600_000);
/** Time for a process to settle (start-up work, the last acks) before a reading. */
const SETTLE_MS = 3_000;

interface Row {
  agent: string;
  agents: number;
  waiting: number;
  startSeconds: number;
  rssBeforeMb: number;
  rssWaitingMb: number;
  /** V8's used heap (the host's /metrics), beside the RSS: what is live (and not yet collected), not what V8 keeps reserved. */
  heapBeforeMb: number | undefined;
  heapWaitingMb: number | undefined;
  rssIdleEndMb: number;
  hostIdleCpuMs: number;
  serverIdleCpuMs: number;
  wakeSeconds: number | undefined;
  woken: number;
  rssAfterWakeMb: number | undefined;
  note: string;
}

let srv: TestServer;
const rows: Row[] = [];

beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  const conn = await srv.connect();
  await writeReport('idle-memory', 'Idle memory: agents waiting for a person, one host process', conn.features.version.text, rows, {
    header: ['agent', 'waiting', 'start s', 'host RSS before MB', 'all waiting MB', 'added MB', 'KB per agent', 'heap used before → waiting MB', `host CPU ms over ${WINDOW_MS / 1000} s idle`, `nats-server CPU ms idle`, 'RSS idle end MB', 'wake s', 'RSS after wake MB', 'note'],
    align: ['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---'],
    cells: (r) => [
      r.agent,
      `${r.waiting}/${r.agents}`,
      fmt(r.startSeconds, 1),
      fmt(r.rssBeforeMb, 1),
      fmt(r.rssWaitingMb, 1),
      fmt(r.rssWaitingMb - r.rssBeforeMb, 1),
      fmt(((r.rssWaitingMb - r.rssBeforeMb) * 1024) / Math.max(1, r.waiting), 1),
      r.heapBeforeMb === undefined || r.heapWaitingMb === undefined ? '—' : `${fmt(r.heapBeforeMb, 1)} → ${fmt(r.heapWaitingMb, 1)}`,
      fmt(r.hostIdleCpuMs, 0),
      fmt(r.serverIdleCpuMs, 0),
      fmt(r.rssIdleEndMb, 1),
      r.wakeSeconds === undefined ? '—' : fmt(r.wakeSeconds, 1),
      r.rssAfterWakeMb === undefined ? '—' : fmt(r.rssAfterWakeMb, 1),
      r.note,
    ],
  });
  await srv.stop();
});

interface Kind {
  agent: string;
  agents: number;
  goal(i: number): Record<string, unknown>;
  /** Whether the agent's journal shows it waiting for the person. */
  waiting(progress: Progress, agentId: string): boolean;
  /** Wakes every agent (a person answers); undefined: the run does not wake them. */
  wake?(d: Deployment, ids: readonly string[]): Promise<void>;
  note: string;
}

/** Starts the agents through one host, measures it idle, wakes them if the kind can. */
/** The host's V8 heap in use, from its Prometheus endpoint (`errand_process_nodejs_heap_size_used_bytes`). */
async function heapUsedMb(metricsPort: number): Promise<number | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
    const m = /^errand_process_nodejs_heap_size_used_bytes(?:\{[^}]*\})? ([0-9.e+]+)$/m.exec(text);
    return m ? Number(m[1]) / MB : undefined;
  } catch {
    return undefined;
  }
}

/** Starts a host that serves /metrics (for its heap) on a free port. */
async function startHost(d: Deployment): Promise<{ host: TestProcess; metricsPort: number }> {
  const metricsPort = await freePort();
  return { host: await d.start('host', { ERRAND_METRICS_PORT: String(metricsPort) }), metricsPort };
}

async function measure(d: Deployment, host: TestProcess, metricsPort: number, kind: Kind): Promise<void> {
  const progress = await trackProgress(d);
  try {
    await sleep(SETTLE_MS);
    const rssBefore = rssBytes(host.pid);
    const heapBefore = await heapUsedMb(metricsPort);
    const t0 = performance.now();
    const ids = await submitAll(d, kind.agents, kind.goal);
    const count = () => ids.reduce((n, id) => n + (kind.waiting(progress, id) ? 1 : 0), 0);
    await until(() => count() >= kind.agents, TIMEOUT_MS, 250);
    const startSeconds = (performance.now() - t0) / 1000;
    const waiting = count();
    await sleep(SETTLE_MS);
    const rssWaiting = rssBytes(host.pid);
    const heapWaiting = await heapUsedMb(metricsPort);
    const hostCpu0 = cpuMicros(host.pid);
    const serverCpu0 = cpuMicros(srv.server.pid);
    await sleep(WINDOW_MS);
    const hostIdleCpuMs = (cpuMicros(host.pid) - hostCpu0) / 1000;
    const serverIdleCpuMs = (cpuMicros(srv.server.pid) - serverCpu0) / 1000;
    const rssIdleEnd = rssBytes(host.pid);
    let wakeSeconds: number | undefined;
    let rssAfterWake: number | undefined;
    if (kind.wake) {
      const t1 = performance.now();
      await kind.wake(d, ids);
      if (await until(() => progress.finished.size >= ids.length, TIMEOUT_MS, 100)) wakeSeconds = (performance.now() - t1) / 1000;
      await sleep(SETTLE_MS);
      rssAfterWake = rssBytes(host.pid);
    }
    rows.push({
      agent: kind.agent,
      agents: kind.agents,
      waiting,
      startSeconds,
      rssBeforeMb: rssBefore / MB,
      rssWaitingMb: rssWaiting / MB,
      heapBeforeMb: heapBefore,
      heapWaitingMb: heapWaiting,
      rssIdleEndMb: rssIdleEnd / MB,
      hostIdleCpuMs,
      serverIdleCpuMs,
      wakeSeconds,
      woken: progress.finished.size,
      rssAfterWakeMb: rssAfterWake === undefined ? undefined : rssAfterWake / MB,
      note: [kind.note, waiting < kind.agents ? `only ${waiting} waiting within ${TIMEOUT_MS / 1000} s` : '', kind.wake && wakeSeconds === undefined ? `${progress.finished.size} woke and finished within ${TIMEOUT_MS / 1000} s` : '']
        .filter(Boolean)
        .join('; '),
    });
  } finally {
    progress.stop();
  }
}

it(`${AGENTS} tally agents waiting for an input`, async () => {
  const d = await benchDeployment(srv, { modules: '@errand/example-agents' });
  const processes: TestProcess[] = [];
  try {
    const { host, metricsPort } = await startHost(d);
    processes.push(host);
    await measure(d, host, metricsPort, {
      agent: 'tally (example agents)',
      agents: AGENTS,
      goal: (i) => ({ goal: `wait ${i}`, agent: 'tally', input: { expect: 1 } }),
      waiting: (p, id) => (p.last.get(id) ?? 0) >= 1 && !p.finished.has(id),
      wake: (dep, ids) => answerAll(dep, ids, '1'),
      note: 'woken by one input each',
    });
  } finally {
    await stopDeployment(d, processes);
  }
}, 3_600_000);

it.skipIf(BUILTIN_AGENTS <= 0)(`${BUILTIN_AGENTS} built-in agents waiting for an approval`, async () => {
  // Every plan request is answered with a call of `wipe`, an `ask` tool: the agent asks a person.
  const mock: MockLlm = await startMockLlm({ steps: [{ repeat: true, reply: { toolCalls: [{ name: 'wipe', arguments: { path: 'x.txt' } }] } }] });
  const d = await benchDeployment(srv, { modules: '@errand/agent' });
  const processes: TestProcess[] = [];
  let wipe: TestToolRunner | undefined;
  try {
    wipe = await startTestToolRunner(d, 'wipe', (r) => ({ output: { wiped: (r.args as { path: string }).path } }), { policy: 'ask' });
    const [{ host, metricsPort }, planner] = await Promise.all([startHost(d), d.start('planner', { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' })]);
    processes.push(host, planner);
    await measure(d, host, metricsPort, {
      agent: 'assistant (built-in), planner + loopback model',
      agents: BUILTIN_AGENTS,
      goal: (i) => ({ goal: `Tidy ${i}`, agent: 'assistant', tools: ['wipe'] }),
      waiting: (p, id) => p.stateOf.get(id) === 'awaitingApproval',
      note: 'each waits to approve one wipe call; not woken (a decision must name the arguments hash, and this model would only ask again)',
    });
  } finally {
    await wipe?.stop();
    await stopDeployment(d, processes);
    await mock.close();
  }
}, 3_600_000);
