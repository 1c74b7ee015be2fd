import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { resourceNames } from '@errand/protocols';
import { createDeployment, startTestServer, type TestServer } from '@errand/testing';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

describe('a durable consumer deleted under running services (as a lost store or an operator might)', () => {
  it('the host and the planner create theirs again and go on, without crashing', async () => {
    const mock = await startMockLlm({ steps: [{ match: 'gone goal', reply: { content: 'gone done' } }] });
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
    try {
      const host = await d.start('host');
      const planner = await d.start('planner');
      const names = resourceNames(d.prefix);
      const jsm = await d.conn.jsm();
      const inboxConsumers = (await jsm.consumers.list(names.streams.inbox).next()).map((c) => c.name);
      expect(inboxConsumers.length).toBeGreaterThan(0);
      for (const name of inboxConsumers) await jsm.consumers.delete(names.streams.inbox, name);
      await jsm.consumers.delete(names.streams.work, 'planner');
      await host.waitForLine(/consumer created again/, 30_000);
      await planner.waitForLine(/consumer created again/, 30_000);
      const id = await d.submit({ agentId: 'gone-1', goal: 'gone goal' });
      const done = await d.waitForStatus(id, ['done', 'failed'], 30_000);
      expect(done.status).toBe('done');
      expect(mock.requests).toHaveLength(1);
    } finally {
      await d.stopAll();
      await mock.close();
    }
  }, 90_000);
});
