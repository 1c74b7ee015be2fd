/**
 * Recovery: a host process with many agents in flight is SIGKILLed mid-run and a new one started
 * (or a second host already running takes over); how long until every agent that was in flight has
 * taken its next step, and until all are done. The agents are `bench-relay` (test/bench/ops/agents.mjs):
 * each calls a no-op tool `turns` times, answered by a worker in this process that is not killed.
 * Each variant runs on its own deployment of one nats-server. Waits are bounded: what did not
 * happen in time is reported as such, never waited for. Nothing here asserts a time.
 *
 * BENCH_RECOVERY_AGENTS (1000), BENCH_RECOVERY_TURNS (10), BENCH_RECOVERY_TIMEOUT_MS (120000, per
 * wait), BENCH_RECOVERY_SHORT_ACK_WAIT_MS (2000), BENCH_RECOVERY_KILL_AT (0.3 of all steps).
 */
import { afterAll, beforeAll, it } from 'vitest';
import { resourceNames } from '@errand/protocols';
import { startTestServer, type TestProcess, type TestServer } from '@errand/testing';
import { writeReport } from './report.js';
import { benchDeployment, BENCH_TOOL, fmt, kill, quantile, startBenchWorker, startHosts, stopDeployment, submitAll, trackProgress, until } from './ops/harness.js';

const AGENTS = Number(process.env.BENCH_RECOVERY_AGENTS ?? 1000);
const TURNS = Number(process.env.BENCH_RECOVERY_TURNS ?? 10);
const TIMEOUT_MS = Number(process.env.BENCH_RECOVERY_TIMEOUT_MS ?? 120_000);
const SHORT_ACK_WAIT_MS = Number(process.env.BENCH_RECOVERY_SHORT_ACK_WAIT_MS ?? 2000);
const KILL_AT = Number(process.env.BENCH_RECOVERY_KILL_AT ?? 0.3);

interface Row {
  variant: string;
  ackWaitS: number;
  agents: number;
  turns: number;
  stepsPerSecondBefore: number;
  stepsAtKill: number;
  inFlight: number;
  hostReadyS: number | undefined;
  progressed: number;
  progressP50S: number;
  progressP99S: number;
  waitedForRedelivery: number;
  progressAllS: number | undefined;
  done: number;
  doneAllS: number | undefined;
  stepsPerSecondAfter: number | undefined;
  republished: number;
  note: string;
}

let srv: TestServer;
const rows: Row[] = [];

beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  const conn = await srv.connect();
  await writeReport('recovery', `Recovery after a host SIGKILL (${AGENTS} agents in flight, ${TURNS} tool turns each)`, conn.features.version.text, rows, {
    header: ['variant', 'ack wait s', 'steps/s before', 'in flight at kill', 'new host ready s', 'progressed', 'next step p50 s', 'p99 s', 'waited ≥ ack wait', 'all progressed s', 'done', 'all done s', 'steps/s kill→done (waits incl.)', 'journal events repeated', 'note'],
    align: ['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---'],
    cells: (r) => [
      r.variant,
      fmt(r.ackWaitS, 1),
      Math.round(r.stepsPerSecondBefore),
      r.inFlight,
      fmt(r.hostReadyS, 2),
      `${r.progressed}/${r.inFlight}`,
      fmt(r.progressP50S, 2),
      fmt(r.progressP99S, 2),
      r.waitedForRedelivery,
      r.progressAllS === undefined ? `> ${TIMEOUT_MS / 1000}` : fmt(r.progressAllS, 2),
      `${r.done}/${r.agents}`,
      r.doneAllS === undefined ? `> ${(2 * TIMEOUT_MS) / 1000}` : fmt(r.doneAllS, 2),
      r.stepsPerSecondAfter === undefined ? '—' : Math.round(r.stepsPerSecondAfter),
      r.republished,
      r.note,
    ],
  });
  await srv.stop();
});

/**
 * One run: start, let the agents get going, SIGKILL a host at KILL_AT of all steps, then either
 * start a new host (`restart`) or leave it to a second host that ran all along (`survivor`).
 */
async function run(variant: string, ackWaitMs: number | undefined, mode: 'restart' | 'survivor'): Promise<void> {
  const d = await benchDeployment(srv, { ackWaitMs });
  const processes: TestProcess[] = [];
  const progress = await trackProgress(d);
  const worker = await startBenchWorker(d, 64);
  try {
    const hosts = await startHosts(d, mode === 'survivor' ? 2 : 1);
    processes.push(...hosts);
    const info = await (await d.conn.jsm()).consumers.info(resourceNames(d.prefix).streams.inbox, 'host');
    const ackWaitS = (info.config.ack_wait ?? Number.NaN) / 1e9;
    const total = AGENTS * (TURNS + 1);
    const t0 = performance.now();
    const submitted = submitAll(d, AGENTS, (i) => ({ goal: `relay ${i}`, agent: 'bench-relay', input: { turns: TURNS } }));
    const reached = await until(() => progress.steps() >= total * KILL_AT, TIMEOUT_MS);
    await submitted;

    const victim = hosts[0]!;
    const tKill = performance.now();
    const stepsAtKill = progress.steps();
    const stepsPerSecondBefore = stepsAtKill / ((tKill - t0) / 1000);
    await kill(victim);
    // What the dead host published before it died reaches this process before the flush's answer:
    // the baseline is each agent's step as it stood when the host was gone.
    await d.conn.nc.flush();
    const baseline = new Map([...progress.last].filter(([id]) => !progress.finished.has(id)));
    const progressed = progress.watchProgress(baseline);
    let hostReadyS: number | undefined;
    if (mode === 'restart') {
      processes.push(await d.start('host'));
      hostReadyS = (performance.now() - tKill) / 1000;
    }
    const tReady = performance.now();
    const stepsAtReady = progress.steps();

    const allProgressed = await until(() => progressed.size >= baseline.size, TIMEOUT_MS);
    const waits = [...progressed.values()].map((at) => (at - tKill) / 1000);
    const allDone = await until(() => progress.finished.size >= AGENTS, TIMEOUT_MS);
    const doneAt = Math.max(...[...progress.finished.values()].map((f) => f.at));
    const failed = [...progress.finished.values()].filter((f) => f.status !== 'done').length;
    const notes = [
      reached ? '' : `kill point not reached within ${TIMEOUT_MS / 1000} s`,
      mode === 'survivor' ? 'a second host ran all along; no restart' : 'a new host started after the kill',
      failed ? `${failed} agents failed` : '',
      `${progress.outOfOrder()} journal events arrived after a later step of the same agent`,
      `worker answered ${worker.calls()} calls for ${BENCH_TOOL}`,
    ].filter(Boolean);
    rows.push({
      variant,
      ackWaitS,
      agents: AGENTS,
      turns: TURNS,
      stepsPerSecondBefore,
      stepsAtKill,
      inFlight: baseline.size,
      hostReadyS,
      progressed: progressed.size,
      progressP50S: quantile(waits, 0.5),
      progressP99S: quantile(waits, 0.99),
      waitedForRedelivery: waits.filter((w) => w >= 0.9 * ackWaitS).length,
      progressAllS: allProgressed ? Math.max(0, ...waits) : undefined,
      done: progress.finished.size,
      doneAllS: allDone ? (doneAt - tKill) / 1000 : undefined,
      stepsPerSecondAfter: allDone ? (progress.steps() - stepsAtReady) / ((doneAt - tReady) / 1000) : undefined,
      republished: progress.repeated(),
      note: notes.join('; '),
    });
  } finally {
    progress.stop();
    await worker.stop();
    await stopDeployment(d, processes);
  }
}

it('SIGKILL the host, start a new one: the host default ack wait', () => run('restart, default ack wait', undefined, 'restart'), 600_000);
it(`SIGKILL the host, start a new one: ack wait ${SHORT_ACK_WAIT_MS} ms`, () => run(`restart, ack wait ${SHORT_ACK_WAIT_MS} ms`, SHORT_ACK_WAIT_MS, 'restart'), 600_000);
it('SIGKILL one of two hosts: the other carries on (default ack wait)', () => run('one of two hosts killed, default ack wait', undefined, 'survivor'), 600_000);
