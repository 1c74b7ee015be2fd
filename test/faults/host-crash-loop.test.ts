import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeployment, startTestServer, startTestToolRunner, type TestProcess, type TestServer } from '@errand/testing';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

describe('a host that SIGKILLs itself after every commit, beside a healthy host', () => {
  it('6 agents with tool calls all finish, every step journaled once, every effect once', async () => {
    const d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
    const tools = await startTestToolRunner(d, 'echo');
    let current: TestProcess | undefined;
    let stopping = false;
    let crashes = 0;
    // The doomed host dies at its first commit each time it starts, and the test starts it again.
    const doomed = (async () => {
      while (!stopping) {
        current = d.spawn('host', { ERRAND_CRASH_AT: 'host.after-commit' });
        const exit = await current.exited;
        if (exit.signal === 'SIGKILL') crashes += 1;
        else if (!stopping) throw new Error(`the doomed host exited without its crash (${JSON.stringify(exit)}): ${current.stderr()}`);
      }
    })();
    try {
      // The doomed host is up before the healthy one, so that it takes its share of the work.
      await current!.waitForLine(/host ready/, 30_000);
      await d.start('host');
      // A submit the doomed host took and died with gets no answer: resent under its id, as a client does.
      const submit = async (i: number): Promise<string> => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await d.submit({ agentId: `crashloop-${i}`, goal: 'three tool calls', agent: 'pipeline', input: { steps: 3 } });
          } catch (err) {
            if (attempt >= 5 || (err as Error).name !== 'TimeoutError') throw err;
          }
        }
      };
      const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => submit(i)));
      for (const id of ids) {
        const done = await d.waitForStatus(id, ['done', 'failed'], 60_000);
        expect(done.status).toBe('done');
        expect((done.output as { outputs: unknown[] }).outputs).toHaveLength(3);
      }
      expect(crashes).toBeGreaterThan(0);
      // Every tool call's effect happened once, under its own key.
      expect(tools.effects.size).toBe(18);
      expect([...tools.effects.values()].every((n) => n === 1)).toBe(true);
      // Each agent's journal has each step once: the goal and three results.
      for (const id of ids) expect((await d.journal(id)).map((j) => j.step)).toEqual([1, 2, 3, 4]);
    } finally {
      stopping = true;
      current?.signal('SIGTERM');
      await doomed.catch(() => {});
      await tools.stop();
      await d.stopAll();
    }
  }, 60_000);
});
