import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedactor, MESSAGE_VERSION, type Message } from '@errand/protocols';
import {
  mayDecide,
  newCallbackId,
  parseSlackAction,
  parseTelegramCallback,
  render,
  safeEqual,
  sanitize,
  signTelegramCallbackData,
  slackChannel,
  slackEphemeral,
  telegramChannel,
  verifySlackRequest,
  verifyTelegramCallbackData,
  verifyWebhookSignature,
  webhookChannel,
  WEBHOOK_SIGNATURE_HEADER,
} from '@errand/notify';

const command = (extra: Partial<Message<'notify.request'>> = {}): Message<'notify.request'> => ({
  v: MESSAGE_VERSION,
  kind: 'notify.request',
  key: 'a-1:4:0',
  agentId: 'a-1',
  step: 4,
  at: Date.now(),
  channel: 'slack',
  topic: 'approval',
  title: 'Your agent asks to run a tool',
  text: 'fs_delete({"path":"old.txt"}) — found key sk-abcdefghijklmnopqrstuvwx at https://evil.example/steal?d=1',
  approval: { requestId: 'tools-3', argsHash: 'h123', tool: 'fs_delete', summary: 'delete old.txt' },
  ...extra,
});

describe('what a notification says', () => {
  it('redacts secrets and removes every URL an agent wrote, keeping the dashboard link', () => {
    expect(sanitize('token: abc123 and ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaa and http://x.io/a')).toBe('token: [redacted] and [redacted] and [link removed]');
    // The process's own secrets, whatever they look like, with its redactor.
    const redactor = createRedactor({ secrets: ['plain-secret-value-123456'] });
    expect(render(command({ title: 'done', text: 'printenv: X=1 plain-secret-value-123456' }), undefined, redactor).text).toBe('printenv: X=1 [redacted]');
    const r = render(command(), 'https://errand.internal');
    expect(r.text).not.toMatch(/sk-|evil\.example/);
    expect(r.text).toContain('[redacted]');
    expect(r.link).toBe('https://errand.internal/agents/a-1');
    expect(r.approval).toEqual({ agentId: 'a-1', requestId: 'tools-3', argsHash: 'h123' });
  });
});

describe('callbacks', () => {
  const secret = 'slack-signing-secret';
  const body = `payload=${encodeURIComponent(JSON.stringify({ user: { id: 'U1', username: 'ana' }, actions: [{ value: JSON.stringify({ agentId: 'a-1', requestId: 'tools-3', argsHash: 'h123', decision: 'approve' }) }] }))}`;
  const sign = (ts: number) => `v0=${createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`;

  it("accept Slack's v0 signature and reject a bad one or a stale timestamp", () => {
    const now = Date.now();
    const ts = Math.floor(now / 1000);
    expect(verifySlackRequest(secret, String(ts), sign(ts), body, now)).toEqual({ ok: true });
    expect(verifySlackRequest(secret, String(ts), `v0=${'0'.repeat(64)}`, body, now)).toEqual({ ok: false, reason: 'bad signature' });
    const old = ts - 600;
    expect(verifySlackRequest(secret, String(old), sign(old), body, now)).toEqual({ ok: false, reason: 'stale or invalid timestamp' });
    expect(parseSlackAction(body)).toEqual({ agentId: 'a-1', requestId: 'tools-3', argsHash: 'h123', decision: 'approve', by: { id: 'U1', name: 'ana' }, channelId: undefined, messageTs: undefined });
  });

  it('read a Telegram callback query', () => {
    expect(parseTelegramCallback({ callback_query: { id: 'q1', from: { id: 42, username: 'bo' }, data: 'd.x.y', message: { chat: { id: -100 } } } })).toEqual({
      fromId: 42,
      fromName: 'bo',
      chatId: '-100',
      data: 'd.x.y',
      callbackId: 'q1',
    });
    expect(parseTelegramCallback({ message: {} })).toBeUndefined();
  });

  it('sign Telegram buttons within 64 bytes, and refuse a forged, edited or misplaced one', () => {
    const id = newCallbackId();
    expect(id).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(newCallbackId()).not.toBe(id);
    const approve = signTelegramCallbackData('bot-token', 'tg', 'approve', id);
    const deny = signTelegramCallbackData('bot-token', 'tg', 'deny', id);
    expect(Buffer.byteLength(approve)).toBeLessThanOrEqual(64);
    expect(verifyTelegramCallbackData('bot-token', 'tg', approve)).toEqual({ ok: true, decision: 'approve', id });
    expect(verifyTelegramCallbackData('bot-token', 'tg', deny)).toEqual({ ok: true, decision: 'deny', id });
    // The decision letter changed, the id changed, another channel, another secret, the old format.
    expect(verifyTelegramCallbackData('bot-token', 'tg', `d${approve.slice(1)}`)).toEqual({ ok: false, reason: 'bad callback_data signature' });
    const otherId = `${id.slice(0, -1)}${id.endsWith('A') ? 'B' : 'A'}`;
    expect(verifyTelegramCallbackData('bot-token', 'tg', approve.replace(id, otherId))).toEqual({ ok: false, reason: 'bad callback_data signature' });
    expect(verifyTelegramCallbackData('bot-token', 'other', approve)).toMatchObject({ ok: false });
    expect(verifyTelegramCallbackData('another-token', 'tg', approve)).toMatchObject({ ok: false });
    expect(verifyTelegramCallbackData('bot-token', 'tg', 'a|tools-1')).toEqual({ ok: false, reason: 'malformed callback_data' });
  });

  it('allow-lists: listed ids, "*" for anyone, nobody without a list', () => {
    expect(mayDecide(['U1', 'U2'], 'U2')).toBe(true);
    expect(mayDecide(['U1'], 'U3')).toBe(false);
    expect(mayDecide([111], 111)).toBe(true);
    expect(mayDecide([111], '111')).toBe(true);
    expect(mayDecide('*', 'anyone')).toBe(true);
    expect(mayDecide(undefined, 'U1')).toBe(false);
    expect(mayDecide([], 'U1')).toBe(false);
  });

  it('compare secrets in constant time, whatever their lengths', () => {
    expect(safeEqual('secret-token-123', 'secret-token-123')).toBe(true);
    expect(safeEqual('secret-token-123', 'secret-token-124')).toBe(false);
    expect(safeEqual('secret-token-123', 'short')).toBe(false);
    expect(safeEqual('', 'x')).toBe(false);
  });
});

describe('delivery, checked by loopback servers speaking each API', () => {
  let server: Server;
  let base: string;
  const got: { path: string; headers: IncomingMessage['headers']; body: string }[] = [];
  beforeAll(async () => {
    server = createServer(async (req, res) => {
      let body = '';
      for await (const c of req) body += String(c);
      got.push({ path: req.url ?? '', headers: req.headers, body });
      if (req.url?.startsWith('/slack/')) return res.end(JSON.stringify({ ok: true, ts: '1.2' }));
      if (req.url?.startsWith('/telegram/')) return res.end(JSON.stringify({ ok: true, result: {} }));
      if (req.url === '/hook-down') return res.writeHead(503).end('down');
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));
  const ctx = { key: 'a-1:4:0', signal: new AbortController().signal };

  it('Slack: chat.postMessage with Block Kit, approval buttons, unfurling off', async () => {
    await slackChannel({ token: 'xoxb-test', channel: 'C1', apiBase: `${base}/slack` }).send(render(command(), 'https://errand.internal'), ctx);
    const req = got.find((g) => g.path === '/slack/chat.postMessage')!;
    expect(req.headers.authorization).toBe('Bearer xoxb-test');
    const body = JSON.parse(req.body) as { channel: string; unfurl_links: boolean; unfurl_media: boolean; blocks: { type: string; elements?: { action_id?: string; value?: string }[] }[] };
    expect(body).toMatchObject({ channel: 'C1', unfurl_links: false, unfurl_media: false });
    const actions = body.blocks.find((b) => b.type === 'actions')!;
    expect(actions.elements!.map((e) => e.action_id)).toEqual(['errand_approve', 'errand_deny']);
    expect(JSON.parse(actions.elements![0]!.value!)).toEqual({ agentId: 'a-1', requestId: 'tools-3', argsHash: 'h123', decision: 'approve' });
    expect(req.body).not.toMatch(/evil\.example|sk-abc/);
  });

  it('Telegram: sendMessage with an inline keyboard and link previews disabled', async () => {
    const tg = telegramChannel({ name: 'phone', token: '123:abc', chatId: '99', apiBase: `${base}/telegram`, callbackSecret: 'mac-key' });
    // An approval cannot be sent without the id its buttons carry.
    await expect(tg.send(render(command(), undefined), ctx)).rejects.toMatchObject({ code: 'ERR_DELIVERY_TELEGRAM', retryable: false });
    const id = newCallbackId();
    await tg.send(render(command(), undefined), { ...ctx, callbackId: id });
    const req = got.find((g) => g.path === '/telegram/bot123:abc/sendMessage')!;
    const body = JSON.parse(req.body) as { chat_id: string; link_preview_options: { is_disabled: boolean }; reply_markup: { inline_keyboard: { callback_data: string }[][] } };
    expect(body.link_preview_options).toEqual({ is_disabled: true });
    const data = body.reply_markup.inline_keyboard[0]!.map((b) => b.callback_data);
    expect(data).toEqual([signTelegramCallbackData('mac-key', 'phone', 'approve', id), signTelegramCallbackData('mac-key', 'phone', 'deny', id)]);
    expect(data.every((d) => Buffer.byteLength(d) <= 64)).toBe(true);
  });

  it('Slack: chat.postEphemeral shows a message to one user, in the thread of the approval', async () => {
    await slackEphemeral({ token: 'xoxb-test', apiBase: `${base}/slack` }, { channel: 'C1', user: 'U9', text: '@eve may not approve this.', threadTs: '1.2' }, ctx.signal);
    const req = got.find((g) => g.path === '/slack/chat.postEphemeral')!;
    expect(req.headers.authorization).toBe('Bearer xoxb-test');
    expect(JSON.parse(req.body)).toEqual({ channel: 'C1', user: 'U9', text: '@eve may not approve this.', thread_ts: '1.2' });
  });

  it('webhook: a JSON POST a receiver can verify; a failing receiver is a retryable error', async () => {
    await webhookChannel({ url: `${base}/hook`, secret: 'hook-secret' }).send(render(command({ approval: undefined, topic: 'done' }), undefined), ctx);
    const req = got.find((g) => g.path === '/hook')!;
    expect(verifyWebhookSignature('hook-secret', req.headers[WEBHOOK_SIGNATURE_HEADER] as string, req.body)).toEqual({ ok: true });
    expect(verifyWebhookSignature('other-secret', req.headers[WEBHOOK_SIGNATURE_HEADER] as string, req.body)).toEqual({ ok: false, reason: 'bad signature' });
    expect(req.headers['idempotency-key']).toBe('a-1:4:0');
    await expect(webhookChannel({ url: `${base}/hook-down`, secret: 's' }).send(render(command(), undefined), ctx)).rejects.toMatchObject({ retryable: true });
  });
});
