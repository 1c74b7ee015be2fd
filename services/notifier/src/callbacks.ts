import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash } from 'node:crypto';
import { KvWatchInclude, type ErrandConnection, type KV } from '@errand/nats';
import { parseSlackAction, parseTelegramCallback, verifySlackRequest } from '@errand/notify';
import { decodeRecord, encodeMessage, MESSAGE_VERSION, type Logger, type Message, type Subjects } from '@errand/protocols';
import type { ChannelConfig } from './config.js';

/** Where a Telegram button's request id leads (callback_data has room for nothing else). */
export function telegramRequestKey(requestId: string): string {
  return `tg.${createHash('sha256').update(requestId).digest('hex').slice(0, 40)}`;
}

export interface CallbackServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `POST /slack/<channel>/actions` and `POST /telegram/<channel>/webhook`: a verified button
 * press from an allowed person becomes an `approval` message in the agent's inbox, carrying who
 * decided and through which channel. Anything unverified is refused (401) and logged.
 */
export async function startCallbackServer(o: {
  port: number;
  conn: ErrandConnection;
  subjects: Subjects;
  channels: Record<string, ChannelConfig>;
  effects: KV;
  /** The agents bucket: to tell a late approver who decided first. */
  agents: KV;
  logger: Logger;
}): Promise<CallbackServer> {
  const log = o.logger.child({ component: 'callbacks' });
  /** Who decided `requestId` according to the agent's record, if anyone has. */
  const decidedBy = async (agentId: string, requestId: string): Promise<{ decision: string; by: string } | undefined> => {
    const e = await o.agents.get(agentId).catch(() => null);
    if (!e || e.operation !== 'PUT') return undefined;
    return (decodeRecord(e.value).snapshot as { context?: { decided?: Record<string, { decision: string; by: string }> } }).context?.decided?.[requestId];
  };

  /**
   * Sends the decision, then waits (briefly) for the agent to take one: the first decision wins,
   * and whoever came second is told who decided.
   */
  const decide = async (d: { agentId: string; requestId: string; argsHash: string; decision: 'approve' | 'deny' }, by: Message<'approval'>['by']): Promise<string> => {
    const earlier = await decidedBy(d.agentId, d.requestId);
    if (earlier) return `Already decided by ${earlier.by} (${earlier.decision}).`;
    const message: Message<'approval'> = { v: MESSAGE_VERSION, kind: 'approval', ...d, by, at: Date.now() };
    await o.conn.js.publish(o.subjects.agentIn(d.agentId, 'approval'), encodeMessage(message).data);
    log.info({ agentId: d.agentId, requestId: d.requestId, decision: d.decision, by }, 'decision received');
    const mine = `${by.name ?? by.id} (${by.channel})`;
    const watch = await o.agents.watch({ key: d.agentId, include: KvWatchInclude.UpdatesOnly });
    const timer = setTimeout(() => watch.stop(), 2500);
    try {
      for await (const e of watch) {
        if (e.operation !== 'PUT') continue;
        const decided = (decodeRecord(e.value).snapshot as { context?: { decided?: Record<string, { decision: string; by: string }> } }).context?.decided?.[d.requestId];
        if (decided) return decided.by === mine ? `Decision recorded: ${d.decision}.` : `Already decided by ${decided.by} (${decided.decision}).`;
      }
    } finally {
      clearTimeout(timer);
      watch.stop();
    }
    return `Decision sent: ${d.decision}.`;
  };

  /** One Telegram update (from the webhook or from polling): a decision, if allowed and known. */
  const telegramUpdate = async (name: string, channel: Extract<ChannelConfig, { type: 'telegram' }>, update: unknown): Promise<{ callback_query_id: string; text: string } | undefined> => {
    const q = parseTelegramCallback(update);
    if (!q) return undefined;
    if (!channel.allowUsers.includes(q.fromId)) {
      log.warn({ channel: name, userId: q.fromId, requestId: q.requestId }, 'Telegram decision ignored: user not on the allow-list');
      return { callback_query_id: q.callbackId, text: 'You may not decide this.' };
    }
    const target = await o.effects.get(telegramRequestKey(q.requestId));
    if (!target || target.operation !== 'PUT') {
      log.warn({ channel: name, requestId: q.requestId }, 'Telegram decision for an unknown request');
      return { callback_query_id: q.callbackId, text: 'Unknown request.' };
    }
    const t = target.json<{ agentId: string; requestId: string; argsHash: string }>();
    const text = await decide({ ...t, decision: q.decision }, { id: String(q.fromId), channel: `telegram:${name}`, ...(q.fromName ? { name: q.fromName } : {}) });
    return { callback_query_id: q.callbackId, text };
  };

  // Long polling for Telegram channels without a public URL.
  const polling = new AbortController();
  for (const [name, channel] of Object.entries(o.channels)) {
    if (channel.type !== 'telegram' || !channel.poll) continue;
    const base = `${(channel.apiBase ?? 'https://api.telegram.org').replace(/\/$/, '')}/bot${channel.token}`;
    void (async () => {
      let offset = 0;
      while (!polling.signal.aborted) {
        try {
          const res = await fetch(`${base}/getUpdates?timeout=25&offset=${offset}&allowed_updates=%5B%22callback_query%22%5D`, { signal: polling.signal });
          const body = (await res.json()) as { ok?: boolean; result?: { update_id: number }[] };
          for (const update of body.result ?? []) {
            offset = update.update_id + 1;
            const answer = await telegramUpdate(name, channel, update);
            if (answer) {
              await fetch(`${base}/answerCallbackQuery`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(answer), signal: polling.signal }).catch(() => {});
            }
          }
        } catch (err) {
          if (polling.signal.aborted) return;
          log.warn({ err, channel: name }, 'Telegram polling failed; trying again');
          await new Promise((r) => setTimeout(r, 2000));
        }
      }
    })();
  }

  const server: Server = createServer(async (req, res) => {
    let raw = '';
    for await (const c of req) raw += String(c);
    const [, kind, name, action] = (req.url ?? '').split('?')[0]!.split('/');
    const channel = name ? o.channels[name] : undefined;
    try {
      if (req.method === 'POST' && kind === 'slack' && action === 'actions' && channel?.type === 'slack') {
        if (!channel.signingSecret) return void res.writeHead(404).end();
        const verdict = verifySlackRequest(channel.signingSecret, header(req.headers['x-slack-request-timestamp']), header(req.headers['x-slack-signature']), raw);
        if (!verdict.ok) {
          log.warn({ channel: name, reason: verdict.reason }, 'Slack callback refused');
          return void res.writeHead(401).end(verdict.reason);
        }
        const d = parseSlackAction(raw);
        if (!d) return void res.writeHead(400).end('not an Errand decision');
        const text = await decide(d, { id: d.by.id, channel: `slack:${name}`, ...(d.by.name ? { name: d.by.name } : {}) });
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text }));
      }
      if (req.method === 'POST' && kind === 'telegram' && action === 'webhook' && channel?.type === 'telegram') {
        if (channel.secretToken && header(req.headers['x-telegram-bot-api-secret-token']) !== channel.secretToken) {
          log.warn({ channel: name }, 'Telegram update refused: wrong secret token');
          return void res.writeHead(401).end('bad secret token');
        }
        const answer = await telegramUpdate(name!, channel, JSON.parse(raw || '{}'));
        // Telegram shows the answer to the person who pressed the button.
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(answer ? JSON.stringify({ method: 'answerCallbackQuery', ...answer }) : '');
      }
      res.writeHead(404).end();
    } catch (err) {
      log.error({ err }, 'callback failed');
      if (!res.headersSent) res.writeHead(500).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(o.port, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      polling.abort();
      return new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve())));
    },
  };
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
