import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { createDeployment, startTestServer, startTestToolRunner, type TestServer } from '@errand/testing';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

const echo = { name: 'echo', description: 'the echo tool', parameters: { type: 'object', properties: {}, additionalProperties: true } };
const OUTAGE_MS = 10_000;

/** The test's own JetStream calls right after the restart may time out while the server recovers its store: try again (bounded). */
async function afterRestart<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 5 || (err as Error).name !== 'TimeoutError') throw err;
    }
  }
}

describe('the nats-server stopped for 10 s under running workers', () => {
  // With two planners the server, its ack wait run out during the outage, may hand a held command to
  // the other planner after reconnect: that one finds the first one's "running" mark and waits for its result.
  it.each([1, 2])('%i planner(s): a model answer that arrives during the outage is held and delivered after reconnect: each step served once, each effect once', async (planners) => {
    // Each agent's first model call is answered 2 s after it arrives: the server is gone by then.
    const agents = ['alpha', 'beta'];
    const mock = await startMockLlm({
      steps: agents.flatMap((a) => [
        { match: `outage goal ${a}`, expect: { notContains: [`${a} echoed`] }, delayMs: 2_000, reply: { toolCalls: [{ name: 'echo', arguments: { said: `${a} echoed` } }] } },
        { match: `${a} echoed`, reply: { content: `${a} done` } },
      ]),
    });
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
    const tools = await startTestToolRunner(d, 'echo');
    try {
      const all = await Promise.all(Array.from({ length: planners }, () => d.start('planner')));
      await d.start('host');
      const ids = await Promise.all(agents.map((a) => d.submit({ agentId: `outage-${a}`, goal: `outage goal ${a}`, input: { toolDefinitions: [echo] } })));
      // Both first calls are at the model: stop the server before either is answered.
      await mock.until((m) => m.requests.length >= agents.length, 20_000);
      await srv.kill();
      // The answers come while NATS is away: the planner holds them (and says so).
      await Promise.any(all.map((p) => p.waitForLine(/holding a finished result/, 20_000)));
      await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS)); // the outage itself, not a synchronisation
      await srv.restart();

      for (const id of ids) {
        const done = await afterRestart(() => d.waitForStatus(id, ['done', 'failed'], 60_000));
        expect(done.status).toBe('done');
      }
      await Promise.any(all.map((p) => p.waitForLine(/held result delivered/, 20_000)));
      // The scripted model served each step's call exactly once: every step used, none asked for twice.
      expect(mock.failures).toEqual([]);
      expect(mock.remaining()).toBe(0);
      expect(mock.requests).toHaveLength(agents.length * 2);
      // Each tool call's effect happened once, by its idempotency key.
      expect(tools.effects.size).toBe(agents.length);
      expect([...tools.effects.values()]).toEqual(agents.map(() => 1));
    } finally {
      await tools.stop();
      await d.stopAll();
      await mock.close();
    }
  }, 120_000);
});
