import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CRASH_POINTS } from '@errand/runtime';
import { startTestServer, type TestServer } from '@errand/testing';
import { deploy, echoToolRunner, type Deployment } from './helpers.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

describe('a host killed at a crash point', () => {
  // Each point is reached once per step; crashing the second time it is reached kills the host in
  // the middle of the run (the goal is step 1, the first tool result step 2).
  // (The intake's own point, intake.after-claim, is reached by a submit, not a step: see
  // packages/runtime/test/intake-resend.test.ts.)
  it.each(CRASH_POINTS.filter((p) => p.startsWith('host.')))('%s: a second host takes over, every effect happens once, every step is journaled once', async (point) => {
    const d: Deployment = await deploy(srv);
    const tools = await echoToolRunner(d);
    try {
      const doomed = d.spawnHost({ ERRAND_CRASH_AT: `${point}:2` });
      await doomed.waitForLine(/"msg":"host ready"/);
      const agentId = await d.submit({ goal: 'three tool calls', agent: 'pipeline', input: { steps: 3 } });
      const exit = await doomed.exited;
      expect(exit.signal).toBe('SIGKILL');
      expect(doomed.stderr()).toContain(`crash point ${point} reached`);

      await d.startHost();
      const done = await d.waitForStatus(agentId, ['done', 'failed']);
      expect(done.status).toBe('done');
      expect((done.output as { outputs: unknown[] }).outputs).toHaveLength(3);

      // Each tool call's effect ran once, under its own key.
      expect(tools.effects.size).toBe(3);
      expect([...tools.effects.values()]).toEqual([1, 1, 1]);
      // The journal has each step once: goal + three results.
      const journal = await d.journal(agentId);
      expect(journal.map((j) => j.step)).toEqual([1, 2, 3, 4]);
      expect(journal.at(-1)?.status).toBe('done');
    } finally {
      await tools.stop();
      await d.stopHosts();
    }
  }, 60_000);
});
