/**
 * Scale-out: 1, 2 and 4 host processes sharing one deployment (the inbox consumer and the intake
 * queue group), the same workload each time — BENCH_SCALE_AGENTS `bench-relay` agents, each
 * calling a no-op tool BENCH_SCALE_TURNS times (answered by a worker in this process). Steps/s from
 * the first submit until every agent is done, beside the CPU per step of the hosts (summed), the
 * nats-server and this process (submitter, worker, journal tracker). On a machine with fewer cores
 * than processes the hosts share the cores: read the CPU per step beside the steps/s. Each host
 * count runs on its own deployment of one nats-server; waits are bounded, nothing asserts a time.
 *
 * BENCH_SCALE_HOSTS ('1,2,4'), BENCH_SCALE_AGENTS (1000), BENCH_SCALE_TURNS (10),
 * BENCH_SCALE_TIMEOUT_MS (300000).
 */
import { cpus } from 'node:os';
import { afterAll, beforeAll, it } from 'vitest';
import { startTestServer, type TestProcess, type TestServer } from '@errand/testing';
import { writeReport } from './report.js';
import { benchDeployment, fmt, startBenchWorker, startHosts, stopDeployment, submitAll, trackProgress, until } from './ops/harness.js';
import { cpuMicros, cpuMicrosOf, ownCpuMicros } from './ops/proc.js';

const HOSTS = (process.env.BENCH_SCALE_HOSTS ?? '1,2,4').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0);
const AGENTS = Number(process.env.BENCH_SCALE_AGENTS ?? 1000);
const TURNS = Number(process.env.BENCH_SCALE_TURNS ?? 10);
const TIMEOUT_MS = Number(process.env.BENCH_SCALE_TIMEOUT_MS ?? 300_000);

interface Row {
  hosts: number;
  agents: number;
  steps: number;
  seconds: number;
  stepsPerSecond: number;
  hostCpuUsPerStep: number;
  serverCpuUsPerStep: number;
  benchCpuUsPerStep: number;
  hostCpuShare: number;
  note: string;
}

let srv: TestServer;
const rows: Row[] = [];

beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  const conn = await srv.connect();
  const one = rows.find((r) => r.hosts === 1);
  await writeReport('scale-out', `Scale-out: host processes sharing one deployment (${AGENTS} agents × ${TURNS} tool turns, ${cpus().length} cores)`, conn.features.version.text, rows, {
    header: ['hosts', 'steps', 'seconds', 'steps/s', 'vs 1 host', 'host CPU µs/step (all hosts)', 'nats-server CPU µs/step', 'bench process CPU µs/step', 'host CPU, cores busy', 'note'],
    align: ['---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---'],
    cells: (r) => [
      r.hosts,
      r.steps,
      fmt(r.seconds, 2),
      Math.round(r.stepsPerSecond),
      one ? fmt(r.stepsPerSecond / one.stepsPerSecond, 2) : '—',
      Math.round(r.hostCpuUsPerStep),
      Math.round(r.serverCpuUsPerStep),
      Math.round(r.benchCpuUsPerStep),
      fmt(r.hostCpuShare, 2),
      r.note,
    ],
  });
  await srv.stop();
});

for (const n of HOSTS) {
  it(`${n} host process${n === 1 ? '' : 'es'}: ${AGENTS} agents × ${TURNS} tool turns`, async () => {
    const d = await benchDeployment(srv);
    const processes: TestProcess[] = [];
    const progress = await trackProgress(d);
    const worker = await startBenchWorker(d, 128);
    try {
      const hosts = await startHosts(d, n);
      processes.push(...hosts);
      const pids = hosts.map((h) => h.pid);
      const host0 = cpuMicrosOf(pids);
      const server0 = cpuMicros(srv.server.pid);
      const own0 = ownCpuMicros();
      const t0 = performance.now();
      await submitAll(d, AGENTS, (i) => ({ goal: `relay ${i}`, agent: 'bench-relay', input: { turns: TURNS } }));
      const allDone = await until(() => progress.finished.size >= AGENTS, TIMEOUT_MS);
      const seconds = (performance.now() - t0) / 1000;
      const steps = progress.steps();
      const hostCpu = cpuMicrosOf(pids) - host0;
      const failed = [...progress.finished.values()].filter((f) => f.status !== 'done').length;
      rows.push({
        hosts: n,
        agents: AGENTS,
        steps,
        seconds,
        stepsPerSecond: steps / seconds,
        hostCpuUsPerStep: hostCpu / steps,
        serverCpuUsPerStep: (cpuMicros(srv.server.pid) - server0) / steps,
        benchCpuUsPerStep: (ownCpuMicros() - own0) / steps,
        hostCpuShare: hostCpu / 1e6 / seconds,
        note: [allDone ? '' : `only ${progress.finished.size} of ${AGENTS} done within ${TIMEOUT_MS / 1000} s`, failed ? `${failed} failed` : '', `journal events: ${progress.repeated()} repeated, ${progress.outOfOrder()} after a later step of the same agent`].filter(Boolean).join('; '),
      });
    } finally {
      progress.stop();
      await worker.stop();
      await stopDeployment(d, processes);
    }
  }, 900_000);
}
