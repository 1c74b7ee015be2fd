import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { createDeployment, startTestServer, type TestServer } from '@errand/testing';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

describe('SIGTERM drains a worker', () => {
  it('a model call in flight finishes within the grace period, its answer is delivered, and the planner exits 0', async () => {
    const mock = await startMockLlm({ steps: [{ match: 'drain goal one', delayMs: 3_000, reply: { content: 'one done' } }] });
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
    try {
      await d.start('host');
      const planner = await d.start('planner', { ERRAND_STOP_GRACE_MS: '30000' });
      const id = await d.submit({ agentId: 'drain-one', goal: 'drain goal one' });
      await mock.until((m) => m.requests.length === 1, 20_000);
      planner.signal('SIGTERM');
      const exit = await planner.exited;
      expect(exit.code).toBe(0);
      // No other planner ever ran: the draining one delivered the answer before it exited.
      const done = await d.waitForStatus(id, ['done', 'failed'], 30_000);
      expect(done.status).toBe('done');
      expect(mock.requests).toHaveLength(1);
      expect(mock.aborted()).toBe(0);
      expect(mock.failures).toEqual([]);
    } finally {
      await d.stopAll();
      await mock.close();
    }
  }, 60_000);

  it('a call longer than the grace period is handed back at once (not after the ack wait) and another planner answers it; the planner exits 0', async () => {
    const mock = await startMockLlm({
      steps: [
        { match: 'drain goal two', delayMs: 600_000, reply: { content: 'never sent' } },
        { match: 'drain goal two', reply: { content: 'two done' } },
      ],
    });
    // An ack wait of ten minutes: only a hand-back (nak) lets the second planner have the command within the test.
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1', ERRAND_PLANNER_ACK_WAIT_MS: '600000' } });
    try {
      await d.start('host');
      const first = await d.start('planner', { ERRAND_STOP_GRACE_MS: '200' });
      const id = await d.submit({ agentId: 'drain-two', goal: 'drain goal two' });
      await mock.until((m) => m.requests.length === 1, 20_000);
      first.signal('SIGTERM');
      const exit = await first.exited;
      expect(exit.code).toBe(0);
      expect(first.stdout()).toMatch(/command interrupted by shutdown: handed back/);
      await d.start('planner');
      const done = await d.waitForStatus(id, ['done', 'failed'], 45_000);
      expect(done.status).toBe('done');
      expect(done.output).toMatchObject({ answer: 'two done' });
      // The first call was abandoned (its client went away, nothing billed for an answer); one answer served.
      await mock.until((m) => m.aborted() === 1, 10_000);
      expect(mock.requests).toHaveLength(2);
      expect(mock.failures).toEqual([]);
    } finally {
      await d.stopAll();
      await mock.close();
    }
  }, 90_000);
});
