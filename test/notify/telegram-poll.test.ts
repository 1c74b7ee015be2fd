import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { createDeployment, startTestServer, type TestServer } from '@errand/testing';

let srv: TestServer;
let api: Server;
let apiBase: string;
const sent: Record<string, unknown>[] = [];
const answered: Record<string, unknown>[] = [];
let pending: unknown[] = [];
let wake: () => void = () => {};

beforeAll(async () => {
  srv = await startTestServer();
  // A loopback Telegram Bot API: sendMessage, getUpdates (long polling) and answerCallbackQuery.
  api = createServer(async (req, res) => {
    let raw = '';
    for await (const c of req) raw += String(c);
    const path = (req.url ?? '').split('?')[0]!;
    if (path.endsWith('/sendMessage')) {
      sent.push(JSON.parse(raw) as Record<string, unknown>);
      wake();
      return void res.end(JSON.stringify({ ok: true, result: {} }));
    }
    if (path.endsWith('/answerCallbackQuery')) {
      answered.push(JSON.parse(raw) as Record<string, unknown>);
      wake();
      return void res.end(JSON.stringify({ ok: true, result: true }));
    }
    if (path.endsWith('/getUpdates')) {
      // Hold the poll briefly when there is nothing, as Telegram does.
      if (!pending.length) await new Promise((r) => setTimeout(r, 200));
      const result = pending;
      pending = [];
      return void res.end(JSON.stringify({ ok: true, result }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  apiBase = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
});
afterAll(async () => {
  api?.closeAllConnections();
  await new Promise<void>((r) => (api ? api.close(() => r()) : r()));
  await srv?.stop();
});

const until = (test: () => boolean) =>
  new Promise<void>((resolve) => {
    const check = () => (test() ? resolve() : (wake = check));
    check();
  });

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
      await until(() => sent.length > 0);
      const keyboard = (sent[0]!.reply_markup as { inline_keyboard: { callback_data: string }[][] }).inline_keyboard[0]!;
      pending = [{ update_id: 1, callback_query: { id: 'cb-1', from: { id: 77, username: 'ana' }, data: keyboard[0]!.callback_data } }];
      await until(() => answered.length > 0);
      expect(answered[0]).toMatchObject({ callback_query_id: 'cb-1', text: 'Decision recorded: approve.' });
      expect((await d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Deleted.' });
    } finally {
      await d.stopAll();
      await mock.close();
    }
  }, 60_000);
});
