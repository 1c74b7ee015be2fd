import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { createDeployment, startTestServer, type TestServer } from '@errand/testing';
import { startRecordingApi, type RecordingApi } from './recording-api.js';

let srv: TestServer;
let api: RecordingApi;
let apiBase: string;
let pending: unknown[] = [];

beforeAll(async () => {
  srv = await startTestServer();
  // A loopback Telegram Bot API: sendMessage, getUpdates (long polling) and answerCallbackQuery.
  api = await startRecordingApi(async ({ path }) => {
    if (path.split('?')[0]!.endsWith('/getUpdates')) {
      // Hold the poll briefly when there is nothing, as Telegram does.
      if (!pending.length) await new Promise((r) => setTimeout(r, 200));
      const result = pending;
      pending = [];
      return { body: JSON.stringify({ ok: true, result }) };
    }
    return { body: JSON.stringify({ ok: true, result: true }) };
  });
  apiBase = api.base;
});
afterAll(async () => {
  await api?.close();
  await srv?.stop();
});

const bodiesTo = (method: string) => api.requests.filter((r) => r.path.endsWith(`/${method}`)).map((r) => JSON.parse(r.body) as Record<string, unknown>);

describe('Telegram by long polling (no public URL)', () => {
  it('a button press read by getUpdates approves the call, and the presser is answered', async () => {
    const mock = await startMockLlm({
      steps: [
        { reply: { toolCalls: [{ name: 'fs_delete', arguments: { path: 'old.txt' } }] } },
        { expect: { contains: ['"deleted":true'] }, reply: { content: 'Deleted.' } },
      ],
    });
    const d = await createDeployment(srv, {
      env: {
        OPENAI_BASE_URL: mock.url,
        ERRAND_MODEL: 'mock-1',
        ERRAND_NOTIFY_CHANNELS: JSON.stringify({ tg: { type: 'telegram', token: '9:x', chatId: '5', allowUsers: [77], poll: true, apiBase } }),
      },
    });
    try {
      await writeFile(join(d.workspace, 'old.txt'), 'x');
      await Promise.all([d.start('host'), d.start('planner'), d.start('tool-runner'), d.start('notifier')]);
      const agentId = await d.submit({ goal: 'Tidy', notify: [{ channel: 'tg', on: ['approval'] }] });
      await api.until(() => bodiesTo('sendMessage').length > 0);
      const keyboard = (bodiesTo('sendMessage')[0]!.reply_markup as { inline_keyboard: { callback_data: string }[][] }).inline_keyboard[0]!;
      pending = [{ update_id: 1, callback_query: { id: 'cb-1', from: { id: 77, username: 'ana' }, data: keyboard[0]!.callback_data } }];
      await api.until(() => bodiesTo('answerCallbackQuery').length > 0);
      expect(bodiesTo('answerCallbackQuery')[0]).toMatchObject({ callback_query_id: 'cb-1', text: 'Decision recorded: approve.' });
      expect((await d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Deleted.' });
    } finally {
      await d.stopAll();
      await mock.close();
    }
  }, 60_000);
});
