import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@errand/client';
import { startMockLlm, type MockLlm } from '@errand/llm';
import type { ErrandConnection } from '@errand/nats';
import { patternRedactor, silentLogger } from '@errand/protocols';
import { createDeployment, startTestServer, startTestToolRunner, type Deployment, type TestServer, type TestToolRunner } from '@errand/testing';
import { createGatewayApp } from '../src/app.js';
import { callbackRoutes, parseCallbackChannels } from '../src/callbacks.js';
import { lazyRegistry } from '../src/registry.js';
import { systemRoutes } from '../src/system.js';

/**
 * The notifier's callback refusals, tried against the gateway's door: the gateway app with the
 * callbacks and /api/system mounted as service.ts mounts them, served over real HTTP, in front of
 * a real host, planner and notifier; Slack and Telegram are a loopback API that records requests.
 */
const SIGNING = 'slack-signing-secret';
const TG_SECRET = 'telegram-secret-token-0123';
const TG_TOKEN = '5:tg-bot';
const ALICE = { name: 'alice', token: 'alice-token-0123456789abcdef' };

let srv: TestServer;
let mock: MockLlm;
let d: Deployment;
let wipe: TestToolRunner;
let gatewayConn: ErrandConnection;
let api: { base: string; requests: { path: string; body: string }[]; until(test: () => boolean): Promise<void>; server: Server };
let door: { base: string; close(): Promise<void> };

async function startRecordingApi(): Promise<typeof api> {
  const requests: { path: string; body: string }[] = [];
  const waiters = new Set<() => void>();
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += String(c);
    requests.push({ path: req.url ?? '', body });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, result: true }));
    for (const w of [...waiters]) w();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    server,
    until: (test) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (!test()) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      }),
  };
}
const bodiesTo = (path: string) => api.requests.filter((r) => r.path === path).map((r) => JSON.parse(r.body || '{}') as Record<string, unknown>);

beforeAll(async () => {
  srv = await startTestServer({ auth: true });
  api = await startRecordingApi();
  mock = await startMockLlm({
    steps: [
      { match: 'Tidy S', reply: { toolCalls: [{ name: 'wipe', arguments: { path: 's.txt' } }] } },
      { match: 'Tidy T', reply: { toolCalls: [{ name: 'wipe', arguments: { path: 't.txt' } }] } },
      { match: 'Tidy S', expect: { contains: ['"wiped":"s.txt"'] }, reply: { content: 'Deleted s.txt.' } },
      { match: 'Tidy T', expect: { contains: ['denied'] }, reply: { content: 'Left t.txt.' } },
    ],
  });
  const channels = JSON.stringify({
    ops: { type: 'slack', token: 'xoxb-ops', channel: 'C42', signingSecret: SIGNING, allowUsers: ['U7'], apiBase: `${api.base}/ops` },
    open: { type: 'slack', token: 'xoxb-open', channel: 'C43', signingSecret: SIGNING, apiBase: `${api.base}/open` },
    tg: { type: 'telegram', token: TG_TOKEN, chatId: '-1007', secretToken: TG_SECRET, allowUsers: [1001], apiBase: `${api.base}/tg` },
  });
  // The notifier only delivers here (no ERRAND_NOTIFIER_PORT): the presses come to the gateway.
  d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1', ERRAND_NOTIFY_CHANNELS: channels } });
  wipe = await startTestToolRunner(d, 'wipe', (r) => ({ output: { wiped: (r.args as { path: string }).path } }), { policy: 'ask' });
  await Promise.all([d.start('host'), d.start('planner'), d.start('notifier')]);

  // The gateway as its own identity, reading the same ERRAND_NOTIFY_CHANNELS.
  gatewayConn = await srv.connect({ credsFile: await srv.auth!.credsFile('gateway', d.prefix), timeoutMs: 3000 });
  const deps = { conn: gatewayConn, prefix: d.prefix, logger: silentLogger };
  const { app } = createGatewayApp({
    ...deps,
    client: await createClient(gatewayConn, d.prefix),
    redactor: patternRedactor,
    users: [ALICE],
    webDir: '/nonexistent',
    registry: lazyRegistry([]),
    callbacks: callbackRoutes({ ...deps, channels: parseCallbackChannels({ ERRAND_NOTIFY_CHANNELS: channels }) }),
    system: systemRoutes(deps),
  });
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  door = {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => (server.close(() => resolve()), (server as unknown as { closeAllConnections(): void }).closeAllConnections())),
  };
}, 60_000);
afterAll(async () => {
  await door?.close();
  await wipe?.stop();
  await d?.stopAll();
  await mock?.close();
  await new Promise<void>((r) => (api ? (api.server.closeAllConnections(), api.server.close(() => r())) : r()));
  await srv?.stop();
});

/** The approval decisions an agent's journal shows it took, with who decided. */
const decisions = async (agentId: string) =>
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

describe("the gateway serves the chat callbacks, with the notifier's refusals", () => {
  const signed = (body: string, ts = Math.floor(Date.now() / 1000)) => ({
    'content-type': 'application/x-www-form-urlencoded',
    'x-slack-request-timestamp': String(ts),
    'x-slack-signature': `v0=${createHmac('sha256', SIGNING).update(`v0:${ts}:${body}`).digest('hex')}`,
  });
  /** A block_actions payload as Slack posts it to the Interactivity Request URL. */
  const blockActions = (user: { id: string; username: string }, value: string, responseUrl = `${api.base}/ops/response/1`) =>
    `payload=${encodeURIComponent(
      JSON.stringify({
        type: 'block_actions',
        user: { ...user, name: user.username, team_id: 'T1' },
        container: { type: 'message', message_ts: '1700000000.000100', channel_id: 'C42', is_ephemeral: false },
        channel: { id: 'C42', name: 'ops' },
        message: { ts: '1700000000.000100', type: 'message' },
        response_url: responseUrl,
        actions: [{ action_id: 'errand_approve', block_id: 'errand-approval-tools-1', type: 'button', value, action_ts: '1700000001.0' }],
      }),
    )}`;

  it('Slack: a forged or stale signature is 401, an unlisted presser is refused in the thread, a listed one approves (told on response_url) and the agent goes on; a second press is told who decided', async () => {
    const agentId = await d.submit({ goal: 'Tidy S', notify: [{ channel: 'ops', on: ['approval'] }] });
    await api.until(() => bodiesTo('/ops/chat.postMessage').length > 0);
    const blocks = bodiesTo('/ops/chat.postMessage')[0]!.blocks as { type: string; elements?: { value: string }[] }[];
    const approve = blocks.find((b) => b.type === 'actions')!.elements![0]!.value;
    const post = (channel: string, body: string, headers = signed(body)) => fetch(`${door.base}/slack/${channel}/actions`, { method: 'POST', headers, body });

    // No bearer token needed (Slack has none), but the signature must verify.
    const anaBody = blockActions({ id: 'U7', username: 'ana' }, approve);
    const forged = await post('ops', anaBody, { ...signed(anaBody), 'x-slack-signature': `v0=${'1'.repeat(64)}` });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toEqual({ code: 'ERR_UNAUTHENTICATED', message: 'bad signature' });
    expect((await post('ops', anaBody, signed(anaBody, Math.floor(Date.now() / 1000) - 600))).status).toBe(401);
    expect((await post('ops', anaBody, { 'content-type': 'application/x-www-form-urlencoded' } as ReturnType<typeof signed>)).status).toBe(401);
    // A channel that is not configured is not served.
    expect((await post('nope', anaBody)).status).toBe(404);

    // Someone not on the list: refused, shown to them in the approval's thread.
    const eve = await post('ops', blockActions({ id: 'U9', username: 'eve' }, approve));
    expect(eve.status).toBe(200);
    expect(await eve.json()).toEqual({ text: '@eve may not approve this.' });
    expect(bodiesTo('/ops/chat.postEphemeral')).toEqual([{ channel: 'C42', user: 'U9', text: '@eve may not approve this.', thread_ts: '1700000000.000100' }]);
    // A channel without allowUsers refuses even a properly signed press by a user listed elsewhere.
    expect(await (await post('open', blockActions({ id: 'U7', username: 'ana' }, approve))).json()).toEqual({ text: '@ana may not approve this.' });
    // Bodies over 64 KiB, declared or chunked: 413, and the door keeps answering.
    const big = await fetch(`${door.base}/slack/ops/actions`, { method: 'POST', headers: signed('x'), body: `payload=${'x'.repeat(100 * 1024)}` });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ code: 'ERR_TOO_LARGE' });
    const streamed = await fetch(`${door.base}/slack/ops/actions`, { method: 'POST', headers: signed('x'), body: chunked(1024 * 1024), duplex: 'half' } as RequestInit);
    expect(streamed.status).toBe(413);
    expect((await d.record(agentId))?.status).toBe('waiting');
    expect(wipe.requests).toHaveLength(0);

    // A listed user: approved, recorded as the user Slack's signed payload named, and told so on
    // the response_url (Slack ignores the body of the answer).
    const ana = await post('ops', anaBody);
    expect(await ana.json()).toEqual({ text: 'Decision recorded: approve.' });
    expect(bodiesTo('/ops/response/1')).toEqual([{ response_type: 'ephemeral', replace_original: false, text: 'Decision recorded: approve.' }]);
    expect((await d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Deleted s.txt.' });
    expect(await decisions(agentId)).toEqual([{ decision: 'approve', by: { id: 'U7', name: 'ana', channel: 'slack:ops' } }]);
    expect(wipe.requests.map((r) => r.args)).toEqual([{ path: 's.txt' }]);
    // Pressed again: who decided comes from the runtime's record.approvals.
    const again = await post('ops', blockActions({ id: 'U7', username: 'ana' }, approve, `${api.base}/ops/response/2`));
    expect(await again.json()).toEqual({ text: 'Already decided by ana (slack:ops) (approve).' });
    expect(bodiesTo('/ops/response/2')).toEqual([{ response_type: 'ephemeral', replace_original: false, text: 'Already decided by ana (slack:ops) (approve).' }]);
    // A response_url that is neither Slack nor the channel's API (another origin, the same server) is not posted to.
    const elsewhere = await post('ops', blockActions({ id: 'U7', username: 'ana' }, approve, `${api.base.replace('127.0.0.1', 'localhost')}/steal`));
    expect(await elsewhere.json()).toEqual({ text: 'Already decided by ana (slack:ops) (approve).' });
    expect(api.requests.filter((r) => r.path === '/steal')).toEqual([]);
  }, 60_000);

  it('Telegram: a missing or wrong secret token is 401, a stranger is refused, an allowed press decides and the agent goes on', async () => {
    const agentId = await d.submit({ goal: 'Tidy T', notify: [{ channel: 'tg', on: ['approval'] }] });
    const sent = `/tg/bot${TG_TOKEN}/sendMessage`;
    await api.until(() => bodiesTo(sent).length > 0);
    const [, deny] = (bodiesTo(sent)[0]!.reply_markup as { inline_keyboard: { callback_data: string }[][] }).inline_keyboard[0]!;
    let seq = 0;
    const press = (data: string, o: { from?: number; secret?: string } = {}) =>
      fetch(`${door.base}/telegram/tg/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(o.secret === undefined ? {} : { 'x-telegram-bot-api-secret-token': o.secret }) },
        body: JSON.stringify({
          update_id: ++seq,
          callback_query: { id: `cb-${seq}`, from: { id: o.from ?? 1001, is_bot: false, username: 'ana' }, message: { message_id: 10, chat: { id: -1007, type: 'group' } }, chat_instance: '1', data },
        }),
      });

    expect((await press(deny!.callback_data)).status).toBe(401);
    expect((await press(deny!.callback_data, { secret: 'telegram-secret-token-0124' })).status).toBe(401);
    const stranger = await press(deny!.callback_data, { secret: TG_SECRET, from: 666 });
    expect(await stranger.json()).toEqual({ method: 'answerCallbackQuery', callback_query_id: `cb-${seq}`, text: '@ana may not approve this.' });
    const flipped = await press(`a${deny!.callback_data.slice(1)}`, { secret: TG_SECRET });
    expect(((await flipped.json()) as { text: string }).text).toBe('This button is not valid.');
    expect((await d.record(agentId))?.status).toBe('waiting');

    const ana = await press(deny!.callback_data, { secret: TG_SECRET });
    expect(((await ana.json()) as { text: string }).text).toBe('Decision recorded: deny.');
    expect((await d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Left t.txt.' });
    expect(await decisions(agentId)).toEqual([{ decision: 'deny', by: { id: '1001', name: 'ana', channel: 'telegram:tg' } }]);
    expect(mock.failures).toEqual([]);
  }, 60_000);

  it('/api/system is behind the gateway auth while the callbacks are not', async () => {
    expect((await fetch(`${door.base}/api/system`)).status).toBe(401);
    const res = await fetch(`${door.base}/api/system`, { headers: { authorization: `Bearer ${ALICE.token}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ replicas: { 'errand-host': 1, 'errand-planner': 1, 'errand-notifier': 1 } });
  });
});
