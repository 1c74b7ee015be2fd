/**
 * The agent-loop ("turn") benchmark's shared vocabulary, used by `turn.bench.ts` and the peers
 * bench alike (issue 14; the interface is fixed by the working agreement — change it only by
 * saying so).
 *
 * Stable exports:
 * - `LoopOptions`, `LoopResult`, `LoopSystem`: one system under test, run as `setup()` once,
 *   `run(options)` any number of times, `teardown()` once.
 * - `measureLoop(...)`: times a run and takes the client's and the server's CPU around it, and
 *   turns per-turn durations into p50/p99 — what every system's `run` returns through.
 * - `pool(...)`: `n` tasks, at most `concurrency` at once.
 * - `withTimeout(...)`: every wait of a bench bounded, with what it was waiting for in the error.
 * - `runTimeoutMs(options)`: the bound of one run, generous for this 2-core machine.
 *
 * Vocabulary: a **turn** is one model call + one tool call, each durably recorded and its result
 * applied to the agent's state; a **step** is one of those two (so `steps = agents × turns × 2`,
 * whatever a system does besides — an Errand agent's goal and final answer are extra work inside
 * the measured time, not extra steps).
 */
import { clientCpuUs, serverCpuUs } from './cpu.js';
import { percentile } from './stats.js';

export interface LoopOptions {
  /** Agents run, each `turns` turns from goal to done. */
  agents: number;
  turns: number;
  /**
   * Steps in flight at each stage (the floor's pool, the host's and the workers' concurrency).
   * 1 also means the agents run one after another, each started when the previous is done: the
   * latency of a lone agent, over enough turns to measure.
   */
  concurrency: number;
}

export interface LoopResult {
  system: string;
  agents: number;
  steps: number;
  seconds: number;
  stepsPerSecond: number;
  turnP50Ms?: number;
  turnP99Ms?: number;
  /** CPU of this process and of the child processes it started and waited for, per step. */
  clientCpuUsPerStep: number;
  /** CPU of the broker/database process(es), per step. */
  serverCpuUsPerStep: number;
  note?: string;
}

export interface LoopSystem {
  name: string;
  setup(): Promise<void>;
  run(o: LoopOptions): Promise<LoopResult>;
  teardown(): Promise<void>;
}

/**
 * Runs `body` (the measured part of one run: from the first agent's start until every agent is
 * done) and returns its {@link LoopResult}. `body` resolves with the duration of every turn (ms),
 * which may be empty when the system cannot tell turns apart. `serverPids` are read from
 * /proc/<pid>/stat before and after.
 */
export async function measureLoop(
  system: string,
  o: LoopOptions,
  serverPids: readonly number[],
  body: () => Promise<number[]>,
  note?: string,
): Promise<LoopResult> {
  const steps = o.agents * o.turns * 2;
  const server0 = serverCpuUs(serverPids);
  const client0 = clientCpuUs();
  const t0 = performance.now();
  const turns = await body();
  const seconds = (performance.now() - t0) / 1000;
  const client = clientCpuUs() - client0;
  const server = serverCpuUs(serverPids) - server0;
  turns.sort((a, b) => a - b);
  return {
    system,
    agents: o.agents,
    steps,
    seconds,
    stepsPerSecond: steps / seconds,
    ...(turns.length ? { turnP50Ms: percentile(turns, 50), turnP99Ms: percentile(turns, 99) } : {}),
    clientCpuUsPerStep: client / steps,
    serverCpuUsPerStep: server / steps,
    ...(note ? { note } : {}),
  };
}

/** Runs `task(0 … n-1)`, at most `concurrency` at once; rejects with the first failure. */
export async function pool(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/** `promise`, or a rejection naming `what` after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`bench: ${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long one run may take before it is given up: 2 minutes plus 10 ms per step. */
export function runTimeoutMs(o: LoopOptions): number {
  return 120_000 + o.agents * o.turns * 2 * 10;
}
