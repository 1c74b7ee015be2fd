import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { createDeployment, startTestServer, type TestServer } from '@errand/testing';
import { startRecordingApi, type RecordingApi } from './recording-api.js';

let srv: TestServer;
let api: RecordingApi;
let apiBase: string;

beforeAll(async () => {
  srv = await startTestServer();
  api = await startRecordingApi();
  apiBase = api.base;
});
afterAll(async () => {
  await api?.close();
  await srv?.stop();
});

const received = () => api.requests;
/** Resolves when a request matching `test` has arrived. */
const arrival = (test: (p: { path: string; body: string }) => boolean) => api.until(() => api.requests.some(test));

describe('approval deadlines and digests', () => {
  it('an approval deadline passes across a notifier restart: it escalates once, then the call is denied once', async () => {
    const mock = await startMockLlm({
      steps: [
        { reply: { toolCalls: [{ name: 'fs_delete', arguments: { path: 'old.txt' } }] } },
        { expect: { contains: ['nobody approved this call in time'] }, reply: { content: 'Nobody answered; I left the file.' } },
      ],
    });
    const d = await createDeployment(srv, {
      env: {
        OPENAI_BASE_URL: mock.url,
        ERRAND_MODEL: 'mock-1',
        ERRAND_NOTIFY_CHANNELS: JSON.stringify({
          ops: { type: 'slack', token: 'x', channel: 'C1', apiBase: `${apiBase}/ops` },
          oncall: { type: 'slack', token: 'y', channel: 'C2', apiBase: `${apiBase}/oncall` },
        }),
      },
    });
    try {
      await writeFile(join(d.workspace, 'old.txt'), 'x');
      const [, , , notifier] = await Promise.all([d.start('host'), d.start('planner'), d.start('tool-runner'), d.start('notifier')]);
      const agentId = await d.submit({
        goal: 'Clean up',
        notify: [{ channel: 'ops', on: ['approval'] }],
        input: { settings: { approvalTimeoutMs: 2000, approvalTimeoutOutcome: 'escalate', escalateTo: ['oncall'] } },
      });
      await arrival((p) => p.path === '/ops/chat.postMessage');
      // The notifier goes away and comes back while the deadline runs (the timer lives in the host).
      notifier.signal('SIGTERM');
      await notifier.exited;
      await d.start('notifier');
      await arrival((p) => p.path === '/oncall/chat.postMessage');
      const done = await d.waitForStatus(agentId, ['done', 'failed']);
      expect(done.output).toMatchObject({ answer: 'Nobody answered; I left the file.' });
      expect(received().filter((p) => p.path === '/oncall/chat.postMessage')).toHaveLength(1);
      expect(received().filter((p) => p.path === '/oncall/chat.postMessage')[0]!.body).toContain('Escalated: your decision is needed');
      expect(mock.failures).toEqual([]);
    } finally {
      await d.stopAll();
      await mock.close();
    }
  }, 60_000);

  it('sends a digest of what agents are doing, computed from their records, once per period however many notifiers run', async () => {
    const d = await createDeployment(srv, {
      env: { ERRAND_NOTIFY_CHANNELS: JSON.stringify({ daily: { type: 'webhook', url: `${apiBase}/daily`, secret: 'digest-secret-0123456789', digest: { everyMs: 300 } } }) },
    });
    try {
      await d.start('host');
      const ids = await Promise.all([1, 2].map(() => d.submit({ goal: 'nap', agent: 'sleeper', input: { delayMs: 600_000 } })));
      await Promise.all(ids.map((id) => d.waitForStatus(id, ['running'])));
      // Two notifier replicas: each period's digest is still sent once.
      await Promise.all([d.start('notifier'), d.start('notifier')]);
      await arrival((p) => p.path === '/daily' && p.body.includes('2 agents running'));
      // Let a few more periods pass: however many replicas, one digest per period.
      const firstAt = received().filter((p) => p.path === '/daily').length;
      await api.until(() => received().filter((p) => p.path === '/daily').length >= firstAt + 3);
      const digests = received().filter((p) => p.path === '/daily').map((p) => JSON.parse(p.body) as { id: string; text: string });
      expect(new Set(digests.map((x) => x.id)).size).toBe(digests.length);
      expect(digests.find((x) => x.text.includes('2 agents running'))!.text).toBe('2 agents running, 0 waiting for you; today: 0 done, 0 failed, $0.00 spent');
    } finally {
      await d.stopAll();
    }
  }, 60_000);
});
