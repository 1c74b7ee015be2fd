/**
 * What the host-process benchmarks share: a deployment with the bench agents, hosts as real
 * processes, an in-process worker for the bench tool, a tracker of every agent's journal events,
 * and bounded waits. Every wait here ends: by its condition or by its deadline.
 */
import { fileURLToPath } from 'node:url';
import { consumeMessages, ensureConsumer, publishMessage, type MessageConsumer } from '@errand/nats';
import { decodeMessage, MESSAGE_VERSION, messageIds, resourceNames, type Message } from '@errand/protocols';
import { createDeployment, type Deployment, type TestProcess, type TestServer } from '@errand/testing';

/** The bench agents' module, loaded by each host through ERRAND_AGENT_MODULES. */
export const BENCH_AGENTS_MODULE = fileURLToPath(new URL('./agents.mjs', import.meta.url));
/** The tool `bench-relay` calls (agents.mjs BENCH_TOOL). */
export const BENCH_TOOL = 'bench-noop';

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `done` every `everyMs` until it holds (true) or `timeoutMs` has passed (false). */
export async function until(done: () => boolean, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() >= deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

/** Runs `task(0..n-1)` with at most `concurrency` at once. */
export async function pool(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/**
 * A deployment whose hosts load the bench agents (and the examples), take goals without a rate
 * limit and log at info as a deployment does. `ackWaitMs: undefined` leaves the host's own default
 * (the test harness would otherwise set 2 s).
 */
export async function benchDeployment(srv: TestServer, options: { ackWaitMs?: number | undefined; modules?: string } = {}): Promise<Deployment> {
  return createDeployment(srv, {
    env: {
      ERRAND_AGENT_MODULES: options.modules ?? `${BENCH_AGENTS_MODULE},@errand/example-agents`,
      ERRAND_SUBMIT_RATE: '0',
      ERRAND_HOST_ACK_WAIT_MS: options.ackWaitMs === undefined ? '' : String(options.ackWaitMs),
      LOG_LEVEL: 'info',
    },
  });
}

/** Starts `n` host processes and waits until each is ready. */
export async function startHosts(d: Deployment, n: number, env: Record<string, string> = {}): Promise<TestProcess[]> {
  return Promise.all(Array.from({ length: n }, () => d.start('host', env)));
}

/** SIGKILLs a process and waits until it has gone (bounded: a process that ignores SIGKILL is a bug worth a throw). */
export async function kill(p: TestProcess, timeoutMs = 10_000): Promise<void> {
  p.signal('SIGKILL');
  const gone = await Promise.race([p.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  if (!gone) throw new Error(`process ${p.pid} still running ${timeoutMs} ms after SIGKILL`);
}

/** SIGTERMs every process of the deployment, then SIGKILLs whatever has not exited within `graceMs`. */
export async function stopDeployment(d: Deployment, processes: readonly TestProcess[], graceMs = 15_000): Promise<void> {
  const stopped = d.stopAll();
  const inTime = await Promise.race([stopped.then(() => true), sleep(graceMs).then(() => false)]);
  if (!inTime) {
    for (const p of processes) p.signal('SIGKILL');
    await Promise.race([stopped, sleep(5_000)]);
  }
}

/** Submits `n` goals through the host's intake (`<prefix>.submit`), `concurrency` at a time; returns the agent ids. */
export async function submitAll(d: Deployment, n: number, goal: (i: number) => Record<string, unknown>, concurrency = 64): Promise<string[]> {
  const ids: string[] = new Array<string>(n);
  await pool(n, concurrency, async (i) => {
    ids[i] = await d.submit(goal(i));
  });
  return ids;
}

/** Answers `n` agents' inputs (a person replying), `concurrency` at a time. */
export async function answerAll(d: Deployment, ids: readonly string[], text: string, concurrency = 64): Promise<void> {
  await pool(ids.length, concurrency, async (i) => {
    const input: Message<'input'> = { v: MESSAGE_VERSION, kind: 'input', agentId: ids[i]!, text, by: { id: 'bench', channel: 'bench' }, at: Date.now() };
    await d.send(input);
  });
}

export interface BenchWorker {
  readonly calls: () => number;
  stop(): Promise<void>;
}

/**
 * The bench tool's worker, in this process: takes each `bench-noop` command from the work stream
 * and answers it into the agent's inbox at once (no catalog entry: a custom machine's tool call
 * goes to whoever serves the subject). It is not killed by the benches, so after a host dies the
 * commands already published are still answered.
 */
export async function startBenchWorker(d: Deployment, concurrency = 64): Promise<BenchWorker> {
  const names = resourceNames(d.prefix);
  const name = 'bench-worker';
  await ensureConsumer(d.conn, { stream: names.streams.work, name, filterSubject: d.subjects.workTool(BENCH_TOOL), ackWaitMs: 30_000, maxAckPending: 10_000, description: 'bench tool worker' });
  let calls = 0;
  const consumer: MessageConsumer = await consumeMessages({
    consumer: await d.conn.js.consumers.get(names.streams.work, name),
    expect: 'tool.request',
    concurrency,
    deadLetter: { js: d.conn.js, subjects: d.subjects, origin: 'bench-worker', maxPayload: 1024 * 1024 },
    handle: async (req) => {
      calls++;
      const result: Message<'tool.result'> = {
        v: MESSAGE_VERSION,
        kind: 'tool.result',
        agentId: req.agentId,
        key: req.key,
        callId: req.callId,
        tool: req.tool,
        attempt: req.attempt,
        durationMs: 0,
        result: { output: { n: (req.args as { n?: unknown } | undefined)?.n ?? null } },
        at: Date.now(),
      };
      await publishMessage(d.conn, d.subjects.agentIn(req.agentId, 'tool'), result, { msgId: messageIds.result(req.key) });
    },
  });
  return { calls: () => calls, stop: () => consumer.stop() };
}

const FINAL = new Set(['done', 'failed', 'cancelled']);

/** Every agent's journal as this process sees it: a core subscription on `<prefix>.agent.*.ev.step`. */
export interface Progress {
  /** Journal events seen, re-publications included. */
  readonly events: () => number;
  /** Journal events of a step already seen (an outbox published again). */
  readonly repeated: () => number;
  /** Journal events that arrived after an event of a later step of the same agent. */
  readonly outOfOrder: () => number;
  /** Distinct steps seen (the sum of each agent's highest step). */
  readonly steps: () => number;
  /** The highest step seen per agent. */
  readonly last: ReadonlyMap<string, number>;
  /** When (performance.now()) each agent's journal first showed a final status, and which. */
  readonly finished: ReadonlyMap<string, { at: number; status: string }>;
  /** The agents whose journal shows `status` (e.g. 'running' for agents that wait) at their latest step. */
  readonly statusOf: ReadonlyMap<string, string>;
  /** The state value at each agent's latest step (a string for a flat state, else JSON). */
  readonly stateOf: ReadonlyMap<string, string>;
  /**
   * From now on, records when each agent of `baseline` first shows a step above the one given
   * (its next step): the map fills as events arrive.
   */
  watchProgress(baseline: ReadonlyMap<string, number>): ReadonlyMap<string, number>;
  stop(): void;
}

export async function trackProgress(d: Deployment): Promise<Progress> {
  let events = 0;
  let steps = 0;
  let repeated = 0;
  let outOfOrder = 0;
  const seen = new Map<string, Set<number>>();
  const last = new Map<string, number>();
  const finished = new Map<string, { at: number; status: string }>();
  const statusOf = new Map<string, string>();
  const stateOf = new Map<string, string>();
  let watch: { baseline: ReadonlyMap<string, number>; progressed: Map<string, number> } | undefined;
  const sub = d.conn.nc.subscribe(d.subjects.agentEventAll(undefined, 'step'), {
    callback: (err, m) => {
      if (err) return;
      const at = performance.now();
      let e: Message<'event.step'>;
      try {
        e = decodeMessage(m.data, { expect: 'event.step' });
      } catch {
        return;
      }
      events++;
      let stepsOfAgent = seen.get(e.agentId);
      if (!stepsOfAgent) seen.set(e.agentId, (stepsOfAgent = new Set()));
      if (stepsOfAgent.has(e.step)) repeated++;
      stepsOfAgent.add(e.step);
      const before = last.get(e.agentId) ?? 0;
      if (e.step < before) outOfOrder++;
      if (e.step > before) {
        steps += e.step - before;
        last.set(e.agentId, e.step);
        statusOf.set(e.agentId, e.status);
        stateOf.set(e.agentId, typeof e.state === 'string' ? e.state : JSON.stringify(e.state));
      }
      if (FINAL.has(e.status) && !finished.has(e.agentId)) finished.set(e.agentId, { at, status: e.status });
      if (watch) {
        const base = watch.baseline.get(e.agentId);
        if (base !== undefined && e.step > base && !watch.progressed.has(e.agentId)) watch.progressed.set(e.agentId, at);
      }
    },
  });
  await d.conn.nc.flush();
  return {
    events: () => events,
    steps: () => steps,
    repeated: () => repeated,
    outOfOrder: () => outOfOrder,
    last,
    finished,
    statusOf,
    stateOf,
    watchProgress(baseline) {
      const progressed = new Map<string, number>();
      watch = { baseline, progressed };
      return progressed;
    },
    stop: () => sub.unsubscribe(),
  };
}

/** The q-quantile (0..1) of `values` (nearest rank); NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** A number for a table cell: fixed decimals, or '—' when there is none. */
export function fmt(n: number | undefined, digits = 1): string {
  return n === undefined || !Number.isFinite(n) ? '—' : n.toFixed(digits);
}
