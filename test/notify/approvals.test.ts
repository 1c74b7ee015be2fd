import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm } from '@errand/llm';
import { createDeployment, startTestServer, startTestToolRunner, type Deployment, type TestServer, type TestToolRunner } from '@errand/testing';
import { startRecordingApi, type RecordingApi } from './recording-api.js';

let srv: TestServer;
let api: RecordingApi;

beforeAll(async () => {
  srv = await startTestServer();
  // A loopback Slack and Telegram API that records what it is sent, in their real request formats.
  api = await startRecordingApi();
});
afterAll(async () => {
  await api?.close();
  await srv?.stop();
});

/** Parsed bodies of the requests to `path`, in order. */
const bodiesTo = (path: string) => api.requests.filter((r) => r.path === path).map((r) => JSON.parse(r.body || '{}') as Record<string, unknown>);
/** A destructive tool that must be approved: `ask` in the catalog, served in the test. */
const startWipe = (d: Deployment): Promise<TestToolRunner> => startTestToolRunner(d, 'wipe', (r) => ({ output: { wiped: (r.args as { path: string }).path } }), { policy: 'ask' });
/** The approval decisions an agent's journal shows it took, with who decided. */
const decisions = async (d: Deployment, agentId: string) =>
  (await d.journal(agentId)).map((j) => j.event as { type: string; decision?: string; by?: unknown }).filter((e) => e.type === 'approval').map((e) => ({ decision: e.decision, by: e.by }));
/** A body sent in chunks with no Content-Length, so only counting what arrives can catch it. */
const chunked = (bytes: number) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      const piece = new TextEncoder().encode('x'.repeat(16 * 1024));
      for (let sent = 0; sent < bytes; sent += piece.length) c.enqueue(piece);
      c.close();
    },
  });
const callbackPort = (notifierStdout: string) => Number(/"callbackPort":(\d+)/.exec(notifierStdout)![1]);

describe('Telegram approvals land on the agent they were meant for', () => {
  const SECRET = 'telegram-secret-token-0123';
  const TOKEN = '5:tg-bot';

  it('two agents wait on tools-1: X\'s button approves X only; a forged update, a tampered button, a stranger and an oversized body change nothing', async () => {
    const mock = await startMockLlm({
      steps: [
        { match: 'Tidy X', reply: { toolCalls: [{ name: 'wipe', arguments: { path: 'x.txt' } }] } },
        { match: 'Tidy Y', reply: { toolCalls: [{ name: 'wipe', arguments: { path: 'y.txt' } }] } },
        { match: 'Tidy X', expect: { contains: ['"wiped":"x.txt"'] }, reply: { content: 'Deleted x.txt.' } },
        { match: 'Tidy Y', expect: { contains: ['denied'] }, reply: { content: 'Left y.txt.' } },
      ],
    });
    const d = await createDeployment(srv, {
      env: {
        OPENAI_BASE_URL: mock.url,
        ERRAND_MODEL: 'mock-1',
        ERRAND_NOTIFY_CHANNELS: JSON.stringify({ tg: { type: 'telegram', token: TOKEN, chatId: '-1007', secretToken: SECRET, allowUsers: [1001], apiBase: `${api.base}/tg` } }),
        ERRAND_NOTIFIER_PORT: '0',
      },
    });
    const wipe = await startWipe(d);
    try {
      const [, , notifier] = await Promise.all([d.start('host'), d.start('planner'), d.start('notifier')]);
      const webhook = `http://127.0.0.1:${callbackPort(notifier.stdout())}/telegram/tg/webhook`;
      const notify = [{ channel: 'tg', on: ['approval'] }];
      const x = await d.submit({ goal: 'Tidy X', notify });
      const y = await d.submit({ goal: 'Tidy Y', notify });
      const sent = `/tg/bot${TOKEN}/sendMessage`;
      await api.until(() => bodiesTo(sent).length >= 2);
      // Both agents wait on the same request id.
      const [rx, ry] = await Promise.all([x, y].map((id) => d.waitForRecord(id, (r) => (r.snapshot as { value?: unknown }).value === 'awaitingApproval')));
      const approvalOf = (r: typeof rx) => r?.waiting?.requestId;
      expect([approvalOf(rx), approvalOf(ry)]).toEqual(['tools-1', 'tools-1']);

      type Keyboard = { inline_keyboard: { text: string; callback_data: string }[][] };
      const buttonsFor = (file: string) => {
        const m = bodiesTo(sent).find((b) => String(b.text).includes(file))!;
        expect(m.chat_id).toBe('-1007');
        const [approve, deny] = (m.reply_markup as Keyboard).inline_keyboard[0]!;
        return { approve: approve!.callback_data, deny: deny!.callback_data };
      };
      const bx = buttonsFor('x.txt');
      const by = buttonsFor('y.txt');
      for (const data of [bx.approve, bx.deny, by.approve, by.deny]) expect(Buffer.byteLength(data)).toBeLessThanOrEqual(64);
      expect(new Set([bx.approve, by.approve]).size).toBe(2);

      let seq = 0;
      const press = (data: string, o: { from?: number; secret?: string | undefined; chat?: number } = {}) =>
        fetch(webhook, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(o.secret === undefined ? {} : { 'x-telegram-bot-api-secret-token': o.secret }) },
          body: JSON.stringify({
            update_id: ++seq,
            callback_query: { id: `cb-${seq}`, from: { id: o.from ?? 1001, is_bot: false, first_name: 'Ana', username: 'ana' }, message: { message_id: 10, chat: { id: o.chat ?? -1007, type: 'group' } }, chat_instance: '1', data },
          }),
        });
      const answerOf = async (r: Response) => ((await r.json()) as { method: string; text: string }).text;

      // Forged updates: no secret token, a wrong one (even X's real button from an allowed user) → 401.
      expect((await press(bx.approve)).status).toBe(401);
      expect((await press(bx.approve, { secret: 'telegram-secret-token-0124' })).status).toBe(401);
      // Tampered buttons: the decision letter flipped, another id, a request id in the old format.
      const flipped = await press(`d${bx.approve.slice(1)}`, { secret: SECRET });
      expect(flipped.status).toBe(200);
      expect(await answerOf(flipped)).toBe('This button is not valid.');
      const [, , mac] = bx.approve.split('.');
      expect(await answerOf(await press(`a.${by.approve.split('.')[1]}.${mac}`, { secret: SECRET }))).toBe('This button is not valid.');
      expect(await answerOf(await press('a|tools-1', { secret: SECRET }))).toBe('This button is not valid.');
      // Someone not on the allow-list, and a button pressed in another chat.
      expect(await answerOf(await press(bx.approve, { secret: SECRET, from: 666 }))).toBe('@ana may not approve this.');
      expect(await answerOf(await press(bx.approve, { secret: SECRET, chat: -1009 }))).toBe('This button does not belong to this chat.');
      // An oversized body, declared or chunked: 413, unread.
      const big = await fetch(webhook, { method: 'POST', headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': SECRET }, body: JSON.stringify({ pad: 'x'.repeat(1024 * 1024) }) });
      expect(big.status).toBe(413);
      const streamed = await fetch(webhook, { method: 'POST', headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': SECRET }, body: chunked(1024 * 1024), duplex: 'half' } as RequestInit);
      expect(streamed.status).toBe(413);
      await notifier.waitForLine(/callback refused: body too large/);
      // None of it reached either agent.
      for (const id of [x, y]) expect((await d.record(id))?.snapshot).toMatchObject({ value: 'awaitingApproval' });

      // X's own button, pressed by an allowed user: X is approved, and X only.
      expect(await answerOf(await press(bx.approve, { secret: SECRET }))).toBe('Decision recorded: approve.');
      expect((await d.waitForStatus(x, ['done', 'failed'])).output).toMatchObject({ answer: 'Deleted x.txt.' });
      expect(wipe.requests.map((r) => [r.agentId, r.args])).toEqual([[x, { path: 'x.txt' }]]);
      // Y still waits; its own button decides it, and Y's journal shows that one decision only.
      expect((await d.record(y))?.snapshot).toMatchObject({ value: 'awaitingApproval' });
      expect(await answerOf(await press(by.deny, { secret: SECRET }))).toBe('Decision recorded: deny.');
      expect((await d.waitForStatus(y, ['done', 'failed'])).output).toMatchObject({ answer: 'Left y.txt.' });
      expect(wipe.requests.map((r) => r.agentId)).toEqual([x]);
      const telegramAna = { id: '1001', name: 'ana', channel: 'telegram:tg' };
      expect(await decisions(d, x)).toEqual([{ decision: 'approve', by: telegramAna }]);
      expect(await decisions(d, y)).toEqual([{ decision: 'deny', by: telegramAna }]);
      expect(mock.failures).toEqual([]);
    } finally {
      await wipe.stop();
      await d.stopAll();
      await mock.close();
    }
  }, 90_000);

  it('webhook mode without a secret token: the notifier refuses to start', async () => {
    const d = await createDeployment(srv, {
      env: {
        ERRAND_NOTIFY_CHANNELS: JSON.stringify({ tg: { type: 'telegram', token: TOKEN, chatId: '7', allowUsers: [1001], apiBase: `${api.base}/tg` } }),
        ERRAND_NOTIFIER_PORT: '0',
      },
    });
    try {
      const p = d.spawn('notifier');
      expect((await p.exited).code).not.toBe(0);
      expect(p.stdout() + p.stderr()).toMatch(/tg: a Telegram channel served by the callback listener \(ERRAND_NOTIFIER_PORT\) needs "secretToken"/);
      expect(p.stdout() + p.stderr()).not.toContain(TOKEN);
    } finally {
      await d.stopAll();
    }
  }, 30_000);
});

describe('Slack approvals: only the allow-listed decide', () => {
  const SIGNING = 'slack-signing-secret';
  const signed = (body: string, ts = Math.floor(Date.now() / 1000)) => ({
    'content-type': 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(ts),
    'x-slack-signature': `v0=${createHmac('sha256', SIGNING).update(`v0:${ts}:${body}`).digest('hex')}`,
  });
  /** A block_actions payload as Slack posts it to the Interactivity Request URL. */
  const blockActions = (user: { id: string; username: string }, value: string) =>
    `payload=${encodeURIComponent(
      JSON.stringify({
        type: 'block_actions',
        user: { ...user, name: user.username, team_id: 'T1' },
        container: { type: 'message', message_ts: '1700000000.000100', channel_id: 'C42', is_ephemeral: false },
        channel: { id: 'C42', name: 'ops' },
        message: { ts: '1700000000.000100', type: 'message' },
        response_url: 'https://hooks.slack.invalid/actions/T1/1/x',
        actions: [{ action_id: 'errand_approve', block_id: 'errand-approval-tools-1', type: 'button', value, action_ts: '1700000001.0' }],
      }),
    )}`;

  it('an unlisted user is refused and told so in the thread; a channel with no list refuses everyone; a listed user approves, recorded as that user; oversized bodies get 413', async () => {
    const mock = await startMockLlm({
      steps: [
        { reply: { toolCalls: [{ name: 'wipe', arguments: { path: 'old.txt' } }] } },
        { expect: { contains: ['"wiped":"old.txt"'] }, reply: { content: 'Deleted old.txt.' } },
      ],
    });
    const d = await createDeployment(srv, {
      env: {
        OPENAI_BASE_URL: mock.url,
        ERRAND_MODEL: 'mock-1',
        ERRAND_NOTIFY_CHANNELS: JSON.stringify({
          ops: { type: 'slack', token: 'xoxb-ops', channel: 'C42', signingSecret: SIGNING, allowUsers: ['U7'], apiBase: `${api.base}/ops` },
          open: { type: 'slack', token: 'xoxb-open', channel: 'C43', signingSecret: SIGNING, apiBase: `${api.base}/open` },
        }),
        ERRAND_NOTIFIER_PORT: '0',
      },
    });
    const wipe = await startWipe(d);
    try {
      const [, , notifier] = await Promise.all([d.start('host'), d.start('planner'), d.start('notifier')]);
      expect(notifier.stdout()).toMatch(/channel open has no allowUsers: every approval decision made through it is refused/);
      const base = `http://127.0.0.1:${callbackPort(notifier.stdout())}`;
      const agentId = await d.submit({ goal: 'Tidy up', notify: [{ channel: 'ops', on: ['approval'] }] });
      await api.until(() => bodiesTo('/ops/chat.postMessage').length > 0);
      const blocks = bodiesTo('/ops/chat.postMessage')[0]!.blocks as { type: string; elements?: { value: string }[] }[];
      const approve = blocks.find((b) => b.type === 'actions')!.elements![0]!.value;
      expect(JSON.parse(approve)).toMatchObject({ agentId, requestId: 'tools-1', decision: 'approve' });
      const post = (channel: string, body: string) => fetch(`${base}/slack/${channel}/actions`, { method: 'POST', headers: signed(body), body });

      // Someone not on the list: refused, shown to them in the approval's thread, nothing sent to the agent.
      const eve = await post('ops', blockActions({ id: 'U9', username: 'eve' }, approve));
      expect(eve.status).toBe(200);
      expect(await eve.json()).toEqual({ text: '@eve may not approve this.' });
      expect(bodiesTo('/ops/chat.postEphemeral')).toEqual([{ channel: 'C42', user: 'U9', text: '@eve may not approve this.', thread_ts: '1700000000.000100' }]);
      expect(api.requests.find((r) => r.path === '/ops/chat.postEphemeral')).toBeDefined();
      await notifier.waitForLine(/Slack decision refused: user not on the allow-list/);
      // A channel without allowUsers refuses even a properly signed press.
      const open = await post('open', blockActions({ id: 'U7', username: 'ana' }, approve));
      expect(await open.json()).toEqual({ text: '@ana may not approve this.' });
      expect(bodiesTo('/open/chat.postEphemeral')).toHaveLength(1);
      // Oversized bodies, declared or chunked: 413, and the listener keeps answering.
      const big = await fetch(`${base}/slack/ops/actions`, { method: 'POST', headers: signed('x'), body: `payload=${'x'.repeat(1024 * 1024)}` });
      expect(big.status).toBe(413);
      expect(await big.json()).toMatchObject({ code: 'ERR_TOO_LARGE' });
      const streamed = await fetch(`${base}/slack/ops/actions`, { method: 'POST', headers: signed('x'), body: chunked(1024 * 1024), duplex: 'half' } as RequestInit);
      expect(streamed.status).toBe(413);
      expect((await d.record(agentId))?.snapshot).toMatchObject({ value: 'awaitingApproval' });
      expect(wipe.requests).toHaveLength(0);

      // A listed user: approved, and the decision names the user Slack's signed payload named.
      const ana = await post('ops', blockActions({ id: 'U7', username: 'ana' }, approve));
      expect(await ana.json()).toEqual({ text: 'Decision recorded: approve.' });
      expect((await d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Deleted old.txt.' });
      expect(await decisions(d, agentId)).toEqual([{ decision: 'approve', by: { id: 'U7', name: 'ana', channel: 'slack:ops' } }]);
      expect(wipe.requests).toHaveLength(1);
      expect(mock.failures).toEqual([]);
    } finally {
      await wipe.stop();
      await d.stopAll();
      await mock.close();
    }
  }, 90_000);
});
