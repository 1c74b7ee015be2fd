import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { createDeployment, inputMessage, startTestServer, startTestToolRunner, type TestServer } from '@errand/testing';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

const echo = { name: 'echo', description: 'the echo tool', parameters: { type: 'object', properties: {}, additionalProperties: true } };

describe('a worker SIGKILLed mid-call', () => {
  it('a planner killed during a model call: another planner takes the command over after the ack wait and the agent finishes, its tool effect once', async () => {
    const mock = await startMockLlm({
      steps: [
        // The first call never gets its answer: its planner dies first.
        { match: 'kill goal planner', delayMs: 600_000, reply: { content: 'never sent' } },
        { match: 'kill goal planner', expect: { notContains: ['planner echoed'] }, reply: { toolCalls: [{ name: 'echo', arguments: { said: 'planner echoed' } }] } },
        { match: 'planner echoed', reply: { content: 'planner done' } },
      ],
    });
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
    const tools = await startTestToolRunner(d, 'echo');
    try {
      await d.start('host');
      const doomed = await d.start('planner');
      const id = await d.submit({ agentId: 'kill-planner', goal: 'kill goal planner', input: { toolDefinitions: [echo] } });
      await mock.until((m) => m.requests.length === 1, 20_000);
      doomed.signal('SIGKILL');
      expect((await doomed.exited).signal).toBe('SIGKILL');
      const heir = await d.start('planner');
      const done = await d.waitForStatus(id, ['done', 'failed'], 45_000);
      expect(done.status).toBe('done');
      expect(done.output).toMatchObject({ answer: 'planner done' });
      // The heir ran the command the doomed planner had started (a redelivery, or a copy it found
      // claimed by the dead planner and took over once nobody renewed the claim).
      await heir.waitForLine(/"key":"kill-planner:1:0".*"msg":"command started"/, 5_000);
      expect(mock.failures).toEqual([]);
      expect(mock.requests).toHaveLength(3);
      expect([...tools.effects.values()]).toEqual([1]);
    } finally {
      await tools.stop();
      await d.stopAll();
      await mock.close();
    }
  }, 90_000);

  it('a tool-runner killed during a non-idempotent call: the call is not run again, the agent asks whether it took effect, and finishes on the answer', async () => {
    // The side effect: a request to this server. The first one hangs: its runner dies during it.
    const hits: string[] = [];
    const held: ServerResponse[] = [];
    const http = createServer((req: IncomingMessage, res: ServerResponse) => {
      hits.push(req.url ?? '');
      held.push(res);
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/charge`;
    const mock = await startMockLlm({
      steps: [
        { match: 'kill goal runner', expect: { notContains: ['charged once'] }, reply: { toolCalls: [{ name: 'http_fetch', arguments: { url } }] } },
        { match: 'charged once', reply: { content: 'runner done' } },
      ],
    });
    const runnerEnv = { ERRAND_TOOLS: 'http_fetch', ERRAND_HTTP_ALLOW: '127.0.0.1' };
    const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
    try {
      await d.start('host');
      await d.start('planner');
      const doomed = await d.start('tool-runner', runnerEnv);
      const id = await d.submit({ agentId: 'kill-runner', goal: 'kill goal runner' });
      const deadline = Date.now() + 20_000;
      while (hits.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50)); // poll: the call reached the server
      expect(hits).toHaveLength(1);
      doomed.signal('SIGKILL');
      expect((await doomed.exited).signal).toBe('SIGKILL');
      await d.start('tool-runner', runnerEnv);
      // The new runner finds the first one's "started" mark: not run again, the agent asks a person.
      const waiting = await d.waitForRecord(id, (r) => r.status === 'waiting' || r.status === 'done' || r.status === 'failed', 45_000);
      expect(waiting.status).toBe('waiting');
      expect(JSON.stringify(waiting.waiting)).toContain('take effect');
      await d.send(inputMessage(id, 'yes, charged once'));
      const done = await d.waitForStatus(id, ['done', 'failed'], 30_000);
      expect(done.status).toBe('done');
      expect(hits).toHaveLength(1);
      expect(mock.failures).toEqual([]);
    } finally {
      for (const res of held) res.destroy();
      http.close();
      await d.stopAll();
      await mock.close();
    }
  }, 90_000);
});
