import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { startTestServer, createDeployment, type TestServer } from '@errand/testing';
import { startRecordingApi, type RecordingApi } from './recording-api.js';

let srv: TestServer;
let api: RecordingApi;
let apiBase: string;

beforeAll(async () => {
  srv = await startTestServer();
  // A loopback Slack and Telegram API that records what it is sent, in their real request formats.
  api = await startRecordingApi();
  apiBase = api.base;
});
afterAll(async () => {
  await api?.close();
  await srv?.stop();
});

/** What was posted, with parsed bodies. */
const posted = () => api.requests.map((r) => ({ path: r.path, body: JSON.parse(r.body || '{}') as Record<string, unknown> }));

/** Resolves with the first request to `path` at or after index `after`. */
async function nextPost(path: string, after = 0): Promise<{ path: string; body: Record<string, unknown>; index: number }> {
  const find = () => posted().findIndex((p, i) => i >= after && p.path === path);
  await api.until(() => find() >= 0);
  const index = find();
  return { ...posted()[index]!, index };
}

const SIGNING = 'slack-signing-secret';
const TG_SECRET = 'telegram-secret-token-0123';
const signed = (body: string, ts = Math.floor(Date.now() / 1000)) => ({
  'content-type': 'application/x-www-form-urlencoded',
  'x-slack-request-timestamp': String(ts),
  'x-slack-signature': `v0=${createHmac('sha256', SIGNING).update(`v0:${ts}:${body}`).digest('hex')}`,
});

describe('the notifier, end to end', () => {
  it('asks on Slack for an `ask` tool with buttons; a signed button press approves it; forged and stale presses are refused', async () => {
    const mock = await startMockLlm({
      steps: [
        { reply: { toolCalls: [{ name: 'fs_delete', arguments: { path: 'old.txt' } }] } },
        { expect: { contains: ['"deleted":true'] }, reply: { content: 'Deleted old.txt, see https://evil.example/x?token=sk-abcdefghijklmnopqrstuvwxyz' } },
      ],
    });
    const d = await createDeployment(srv, {
      env: {
        OPENAI_BASE_URL: mock.url,
        ERRAND_MODEL: 'mock-1',
        ERRAND_NOTIFY_CHANNELS: JSON.stringify({
          ops: { type: 'slack', token: 'xoxb-test', channel: 'C42', signingSecret: SIGNING, allowUsers: ['U7', 'U8'], apiBase: `${apiBase}/slack` },
          tg: { type: 'telegram', token: '1:t', chatId: '7', secretToken: TG_SECRET, allowUsers: [1001], apiBase: `${apiBase}/tg` },
        }),
        ERRAND_NOTIFIER_PORT: '0',
      },
    });
    try {
      const [, , , notifier] = await Promise.all([d.start('host'), d.start('planner'), d.start('tool-runner'), d.start('notifier')]);
      const port = Number(/"callbackPort":(\d+)/.exec(notifier.stdout())![1]);
      await writeFile(join(d.workspace, 'old.txt'), 'stale');
      const agentId = await d.submit({ goal: 'Tidy up', notify: [{ channel: 'ops', on: ['approval', 'done'] }, { channel: 'tg', on: ['approval'] }] });
      const before = posted().length;
      const ask = await nextPost('/slack/chat.postMessage', before);
      expect(ask.body).toMatchObject({ channel: 'C42', unfurl_links: false, unfurl_media: false });
      const blocks = ask.body.blocks as { type: string; elements?: { value: string }[] }[];
      const approve = blocks.find((b) => b.type === 'actions')!.elements![0]!.value;
      const tg = await nextPost('/tg/bot1:t/sendMessage', before);
      expect(tg.body).toMatchObject({ chat_id: '7', link_preview_options: { is_disabled: true } });

      const url = `http://127.0.0.1:${port}/slack/ops/actions`;
      const body = `payload=${encodeURIComponent(JSON.stringify({ user: { id: 'U7', username: 'ana' }, actions: [{ value: approve }] }))}`;
      const forged = await fetch(url, { method: 'POST', headers: { ...signed(body), 'x-slack-signature': `v0=${'1'.repeat(64)}` }, body });
      expect(forged.status).toBe(401);
      const stale = await fetch(url, { method: 'POST', headers: signed(body, Math.floor(Date.now() / 1000) - 600), body });
      expect(stale.status).toBe(401);
      // A Telegram press from someone not on the allow-list changes nothing.
      const tgApprove = (tg.body.reply_markup as { inline_keyboard: { callback_data: string }[][] }).inline_keyboard[0]![0]!.callback_data;
      const stranger = await fetch(`http://127.0.0.1:${port}/telegram/tg/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': TG_SECRET },
        body: JSON.stringify({ callback_query: { id: 'q', from: { id: 666 }, data: tgApprove } }),
      });
      expect(stranger.status).toBe(200);
      expect(await stranger.json()).toEqual({ method: 'answerCallbackQuery', callback_query_id: 'q', text: 'Telegram user 666 may not approve this.' });
      await notifier.waitForLine(/Telegram decision refused: user not on the allow-list/);
      expect((await d.record(agentId))?.snapshot).toMatchObject({ value: 'awaitingApproval' });

      // Two approvers race: one decision is applied, the other is told who decided.
      const otherBody = `payload=${encodeURIComponent(JSON.stringify({ user: { id: 'U8', username: 'bo' }, actions: [{ value: approve }] }))}`;
      const [first, second] = await Promise.all([
        fetch(url, { method: 'POST', headers: signed(body), body }).then((r) => r.json() as Promise<{ text: string }>),
        fetch(url, { method: 'POST', headers: signed(otherBody), body: otherBody }).then((r) => r.json() as Promise<{ text: string }>),
      ]);
      const answers = [first.text, second.text].sort();
      expect(answers[0]).toMatch(/^Already decided by (ana|bo) \(slack:ops\) \(approve\)\.$/);
      expect(answers[1]).toBe('Decision recorded: approve.');
      const done = await d.waitForStatus(agentId, ['done', 'failed']);
      expect(done.status).toBe('done');
      const doneMessage = await nextPost('/slack/chat.postMessage', ask.index + 1);
      const text = JSON.stringify(doneMessage.body);
      expect(text).toContain('Deleted old.txt');
      expect(text).not.toMatch(/evil\.example|sk-abcdefghij/);
      expect(mock.failures).toEqual([]);
    } finally {
      await d.stopAll();
      await mock.close();
    }
  }, 60_000);
});
