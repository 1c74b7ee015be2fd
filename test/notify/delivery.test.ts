import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headers } from '@errand/nats';
import { encodeMessage, Header, MESSAGE_VERSION, type Message } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';
import { startRecordingApi, type RecordingApi } from './recording-api.js';

let srv: TestServer;
let api: RecordingApi;
let apiBase: string;
let failNext = 0;

beforeAll(async () => {
  srv = await startTestServer();
  api = await startRecordingApi(() => {
    if (failNext <= 0) return undefined;
    failNext -= 1;
    return { status: 503, body: 'busy' };
  });
  apiBase = api.base;
});
afterAll(async () => {
  await api?.close();
  await srv?.stop();
});

/** The bodies that were delivered (answered 200). */
const received = () => api.requests.filter((r) => r.status === 200).map((r) => r.body);

/** Publishes a notify command signed with the deployment's key, as a host would (workers refuse unsigned ones). */
/** Publishes a signed notify command; `again`: as a host publishes a stored outbox once more (marked). */
async function publishNotice(d: Deployment, message: Message<'notify.request'>, msgID?: string, again = false): Promise<void> {
  const data = encodeMessage(message).data;
  const h = headers();
  h.set(Header.Signature, d.keys.signer.sign(data));
  if (again) h.set(Header.Republished, '1');
  await d.conn.js.publish(d.subjects.workNotify(message.channel), data, { headers: h, ...(msgID ? { msgID } : {}) });
}

const notice = (key: string, text: string): Message<'notify.request'> => ({
  v: MESSAGE_VERSION, kind: 'notify.request', key, agentId: 'a-9', step: 1, at: Date.now(), channel: 'ops', topic: 'done', title: 'Done', text,
});

describe('delivery', () => {
  it('a notifier SIGKILLed after sending and before recording it does not send again', async () => {
    const d = await createDeployment(srv, { env: { ERRAND_NOTIFY_CHANNELS: JSON.stringify({ ops: { type: 'slack', token: 'x', channel: 'C1', apiBase: `${apiBase}/slack` } }) } });
    try {
      const doomed = await d.start('notifier', { ERRAND_CRASH_AT: 'notifier.after-send', ERRAND_NOTIFY_ACK_WAIT_MS: '1000' });
      await publishNotice(d, notice('a-9:1:0', 'only once please'));
      expect((await doomed.exited).signal).toBe('SIGKILL');
      const next = await d.start('notifier', { ERRAND_NOTIFY_ACK_WAIT_MS: '1000' });
      await next.waitForLine(/may already have been sent is delivered again: not sending it twice/);
      expect(received().filter((r) => r.includes('only once please'))).toHaveLength(1);
    } finally {
      await d.stopAll();
    }
  }, 60_000);

  it('a failed delivery is retried and arrives once', async () => {
    const d = await createDeployment(srv, { env: { ERRAND_NOTIFY_CHANNELS: JSON.stringify({ ops: { type: 'slack', token: 'x', channel: 'C1', apiBase: `${apiBase}/slack` } }) } });
    try {
      const n = await d.start('notifier');
      failNext = 2;
      await publishNotice(d, notice('a-9:2:0', 'after two failures'));
      await n.waitForLine(/"key":"a-9:2:0".*"msg":"command done"/);
      expect(received().filter((r) => r.includes('after two failures'))).toHaveLength(1);
    } finally {
      await d.stopAll();
    }
  }, 60_000);

  it('a notify command that comes again (a host re-publishing an outbox, an agent resumed) is not sent again', async () => {
    const d = await createDeployment(srv, { env: { ERRAND_NOTIFY_CHANNELS: JSON.stringify({ ops: { type: 'slack', token: 'x', channel: 'C1', apiBase: `${apiBase}/slack` } }) } });
    try {
      const n = await d.start('notifier');
      const said = notice('a-9:3:0', 'said once');
      await publishNotice(d, said, 'first-publish');
      await n.waitForLine(/"key":"a-9:3:0".*"msg":"command done"/);
      await publishNotice(d, said, 'republished-later', true);
      await n.waitForLine(/"key":"a-9:3:0".*"msg":"repeat of a completed command: answered from the effects bucket"/);
      expect(received().filter((r) => r.includes('said once'))).toHaveLength(1);
    } finally {
      await d.stopAll();
    }
  }, 60_000);
});
