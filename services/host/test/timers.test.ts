import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMessage } from '@errand/protocols';
import { startTestServer, type TestServer } from '@errand/testing';
import { deploy, inputMessage } from './helpers.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

const AFTER_SLEEP = 'xstate.after.sleep.sleeper.sleeping';

describe('durable timers', () => {
  it('a 3-second timer survives a restart of the host and of nats-server, and fires once', async () => {
    const d = await deploy(srv);
    try {
      const first = await d.startHost();
      const agentId = await d.submit({ goal: 'sleep 3 s', agent: 'sleeper', input: { delayMs: 3000 } });
      const started = await d.waitForStatus(agentId, ['running']);
      expect(Object.values(started.timers)).toHaveLength(1);

      first.signal('SIGTERM');
      expect((await first.exited).code).toBe(0);
      await srv.restart();
      await d.startHost();

      const done = await d.waitForStatus(agentId, ['done'], 30_000);
      const dueAt = Object.values(started.timers)[0]!.dueAt;
      expect(done.updatedAt).toBeGreaterThanOrEqual(dueAt);
      const journal = await d.journal(agentId);
      expect(journal.map((j) => j.event.type)).toEqual(['xstate.init', AFTER_SLEEP]);
    } finally {
      await d.stopHosts();
    }
  }, 60_000);

  it('a cancelled timer fires late into the inbox and is ignored, never reaching the machine', async () => {
    const d = await deploy(srv);
    try {
      const host = await d.startHost({ LOG_LEVEL: 'debug' });
      const agentId = await d.submit({ goal: 'sleep, no reminder', agent: 'sleeper', input: { delayMs: 4500, reminderMs: 3000 } });
      await d.waitForStatus(agentId, ['running']);
      await d.conn.js.publish(d.subjects.agentIn(agentId, 'input'), encodeMessage(inputMessage(agentId, 'cancel-reminder')).data);

      await host.waitForLine(/"reason":"the timer was cancelled or superseded"/, 20_000);
      const done = await d.waitForStatus(agentId, ['done'], 20_000);
      expect(done.output).toEqual({ reminders: 0, sleptMs: 4500 });
      const journal = await d.journal(agentId);
      expect(journal.map((j) => j.event.type)).toEqual(['xstate.init', 'input', AFTER_SLEEP]);
    } finally {
      await d.stopHosts();
    }
  }, 60_000);
});
