/**
 * BullMQ on its own redis-server with AOF `appendfsync always` (every write fsynced before Redis
 * answers). Each step is a job; the processor does the step and adds the next step's job (with
 * the agent's state, under a deterministic job id so a retried step adds nothing twice) before
 * its own job completes. One Worker, concurrency like Errand's workers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { runTimeoutMs, withTimeout, type LoopOptions, type LoopResult, type LoopSystem } from '../lib/loop.js';
import { model, runAgents, tool, type AgentState, type TurnClock } from './measure.js';
import { freePort, startServer, waitUntil, type ServerProcess } from './proc.js';

const REDIS_SERVER = process.env.BENCH_REDIS_SERVER ?? '/usr/bin/redis-server';

export function bullmqSystem(): LoopSystem & { version(): string } {
  let redis: ServerProcess | undefined;
  let dir = '';
  let port = 0;
  let version = '';
  let runs = 0;

  return {
    name: 'bullmq-redis-aof-always',
    version: () => `redis-server ${version}`,
    async setup() {
      dir = await mkdtemp(join(tmpdir(), 'bench-redis-'));
      port = await freePort();
      redis = startServer(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', '--loglevel', 'warning']);
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await waitUntil('redis-server', async () => {
          if (probe.status !== 'ready') await probe.connect();
          return (await probe.ping()) === 'PONG';
        }, 10_000, redis);
        const info = await probe.info('server');
        version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
        const fsync = (await probe.config('GET', 'appendfsync')) as string[];
        if (fsync[1] !== 'always') throw new Error(`redis-server: appendfsync is ${fsync[1]}`);
      } finally {
        probe.disconnect();
      }
    },
    async run(o: LoopOptions): Promise<LoopResult> {
      const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
      const queue = new Queue<AgentState>(`loop${++runs}`, { connection, defaultJobOptions: { removeOnComplete: true, removeOnFail: false } });
      let clock: TurnClock | undefined;
      const waiting = new Map<string, () => void>();
      let failure: Error | undefined;
      const fail = new Set<(e: Error) => void>();

      const worker = new Worker<AgentState>(
        queue.name,
        async (job: Job<AgentState>) => {
          const s = job.data;
          if (job.name === 'model') {
            clock?.modelStep(s.agent, s.turn);
            const next = model(s);
            await queue.add('tool', next, { jobId: `${s.agent}-${s.turn}-tool` });
          } else {
            const next = tool(s);
            if (next.turn < o.turns) await queue.add('model', next, { jobId: `${s.agent}-${next.turn}-model` });
          }
        },
        { connection, concurrency: o.concurrency, autorun: true },
      );
      // The agent is done once its last tool job is recorded as completed.
      worker.on('completed', (job: Job<AgentState>) => {
        if (job.name === 'tool' && job.data.turn + 1 >= o.turns) waiting.get(job.data.agent)?.();
      });
      worker.on('failed', (job, err) => {
        failure = new Error(`BullMQ job ${job?.id} failed: ${err.message}`);
        for (const f of fail) f(failure);
      });
      await worker.waitUntilReady();
      try {
        return await runAgents(this.name, o, redis ? [redis.pid] : [], async (c, agents) => {
          clock = c;
          const done = agents.map(
            (agent) =>
              new Promise<void>((resolve, reject) => {
                waiting.set(agent, () => {
                  waiting.delete(agent);
                  c.done(agent);
                  resolve();
                });
                fail.add(reject);
              }),
          );
          for (const agent of agents) c.start(agent);
          await queue.addBulk(agents.map((agent) => ({ name: 'model', data: { agent, turn: 0, last: 'goal' }, opts: { jobId: `${agent}-0-model` } })));
          await withTimeout(Promise.all(done), runTimeoutMs(o), 'BullMQ agents');
          if (failure) throw failure;
        }, `a job per step whose processor adds the next step's job; one Worker, concurrency ${o.concurrency}; redis-server started for the bench, appendfsync always; removeOnComplete`);
      } finally {
        await worker.close();
        await queue.obliterate({ force: true }).catch(() => undefined);
        await queue.close();
      }
    },
    async teardown() {
      await redis?.stop();
      redis = undefined;
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}
