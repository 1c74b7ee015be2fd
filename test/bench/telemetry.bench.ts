/**
 * What observability adds to a step, in CPU time: the step span (no exporter, the default), the
 * logger bound to the agent and its trace, and the step's metrics — beside the raw NATS floor of a
 * step (KV update with revision + JetStream publish with ack) measured in the same run. Run on
 * demand with `pnpm bench`; results go to test/bench/results/telemetry.{json,md}. No time is asserted.
 */
import { afterAll, beforeAll, it } from 'vitest';
import { openBucket, provision, type ErrandConnection } from '@errand/nats';
import { resourceSpecs } from '@errand/protocols';
import { createServiceLogger } from '@errand/service';
import { metrics, newTraceparent, startSpan } from '@errand/telemetry';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';
import { writeReport } from './report.js';

const N = Number(process.env.BENCH_TELEMETRY_N ?? 50_000);
const FLOOR_STEPS = Number(process.env.BENCH_STEPS ?? 2000);

let srv: TestServer;
let conn: ErrandConnection;
const rows: { name: string; iterations: number; microsEach: number; note: string }[] = [];

beforeAll(async () => {
  srv = await startTestServer();
  conn = await srv.connect({ asyncTraces: false });
});
afterAll(async () => {
  await writeReport('telemetry', 'Telemetry cost per step', conn.features.version.text, rows, {
    header: ['what', 'iterations', 'µs each', ''],
    align: ['---', '---:', '---:', '---'],
    cells: (r) => [r.name, r.iterations, r.microsEach.toFixed(2), r.note],
  });
  await srv.stop();
});

async function measure(name: string, iterations: number, note: string, run: (i: number) => unknown): Promise<void> {
  for (let i = 0; i < Math.min(1000, iterations); i++) await run(i); // warm up
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) await run(i);
  rows.push({ name, iterations, microsEach: ((performance.now() - t0) * 1000) / iterations, note });
}

it('raw NATS floor of one step, then what tracing, logging and metrics add to it', async () => {
  const prefix = uniquePrefix();
  const specs = resourceSpecs({ prefix });
  await provision(conn, { specs });
  const kv = await openBucket(conn, specs.names.buckets.agents);
  const payload = new Uint8Array(512);
  let revision = await kv.put('floor', payload);
  await measure('NATS floor: KV update with revision + JetStream publish with ack', FLOOR_STEPS, 'the round trips a step cannot avoid', async () => {
    revision = await kv.update('floor', payload, revision);
    await conn.js.publish(`${prefix}.agent.floor.ev.step`, payload);
  });

  const parent = newTraceparent();
  await measure('step span (no exporter)', N, 'startSpan under the message\'s traceparent, attributes, end', () => {
    const span = startSpan('errand.step', parent, { 'errand.agent_id': 'a-bench', 'errand.event': 'input' });
    span.setAttributes({ 'errand.step': 1, 'errand.machine': 'bench' });
    span.end();
  });

  const { logger } = createServiceLogger('host', 'info', { stdout: false, shipLevel: 'silent' });
  await measure('logger bound to agent and trace', N, 'one pino child per step, one debug line (off)', () => {
    logger.child({ agentId: 'a-bench', traceId: 'abc' }).debug({}, 'step committed');
  });

  await measure('step metrics', N, 'steps counter, step histogram, one commands counter', () => {
    metrics.steps.inc({ agent: 'bench', outcome: 'commit' });
    metrics.stepSeconds.observe({ outcome: 'commit' }, 0.001);
    metrics.commandsPublished.inc({ kind: 'event.step' });
  });
});
