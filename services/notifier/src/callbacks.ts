import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KvWatchInclude, publishMessage, readRecord, type ErrandConnection, type KV } from '@errand/nats';
import { mayDecide, parseSlackAction, parseTelegramCallback, safeEqual, slackEphemeral, verifySlackRequest, verifyTelegramCallbackData, type AllowList } from '@errand/notify';
import { CodecError, decodeRecord, effectKeys, MESSAGE_VERSION, type Logger, type Message, type Subjects } from '@errand/protocols';
import type { ChannelConfig } from './config.js';
import { readBody, refuseTooLarge } from '@errand/http-body';

/** The largest callback body read: Slack's and Telegram's are a few KiB. */
export const MAX_CALLBACK_BODY_BYTES = 64 * 1024;

/** Who decided `requestId` according to a record's snapshot (the built-in agent keeps `decided`), if anyone has. */
function decidedIn(snapshot: unknown, requestId: string): { decision: string; by: string } | undefined {
  return (snapshot as { context?: { decided?: Record<string, { decision: string; by: string }> } } | undefined)?.context?.decided?.[requestId];
}

/** What a person who may not decide is told, where they pressed. */
export const refusalText = (who: string) => `${who} may not approve this.`;

/** Logs, for each channel that takes decisions, who may decide through it. */
export function describeAllowLists(channels: Record<string, ChannelConfig>, logger: Logger): void {
  for (const [name, c] of Object.entries(channels)) {
    if (c.type !== 'telegram' && !(c.type === 'slack' && c.signingSecret)) continue;
    const allow: AllowList = c.allowUsers;
    if (allow === '*') logger.info({ channel: name }, `anyone who can press a button in channel ${name} may decide approvals (allowUsers: "*")`);
    else if (!allow?.length) {
      logger.warn(
        { channel: name },
        `channel ${name} has no allowUsers: every approval decision made through it is refused. List the ${c.type === 'slack' ? 'Slack' : 'Telegram'} user ids who may decide, or "*" to let anyone in the chat decide`,
      );
    }
  }
}

export interface CallbackServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `POST /slack/<channel>/actions` and `POST /telegram/<channel>/webhook`: a verified button
 * press from a person on the channel's allow-list becomes an `approval` message in the agent's
 * inbox, carrying who decided (as Slack or Telegram says) and through which channel. A request
 * that is not verified is refused (401); a press by anyone else, or of a forged button, is refused,
 * told so where it was pressed, and logged; a body over 64 KiB is refused (413) unread.
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
  describeAllowLists(o.channels, log);
  /** Who decided `requestId` according to the agent's record, if anyone has. */
  const decidedBy = async (agentId: string, requestId: string): Promise<{ decision: string; by: string } | undefined> => {
    // An unreachable bucket is no answer; an unreadable record is an error, as before.
    const r = await readRecord(o.agents, agentId).catch((err: unknown) => {
      if (err instanceof CodecError) throw err;
      return undefined;
    });
    return decidedIn(r?.snapshot, requestId);
  };

  /**
   * Sends the decision, then waits (briefly) for the agent to take one: the first decision wins,
   * and whoever came second is told who decided.
   */
  const decide = async (d: { agentId: string; requestId: string; argsHash: string; decision: 'approve' | 'deny' }, by: Message<'approval'>['by']): Promise<string> => {
    const earlier = await decidedBy(d.agentId, d.requestId);
    if (earlier) return `Already decided by ${earlier.by} (${earlier.decision}).`;
    const message: Message<'approval'> = { v: MESSAGE_VERSION, kind: 'approval', ...d, by, at: Date.now() };
    // The notifier proves it relays this decision; `by` is the chat user the chat service vouched for.
    await publishMessage(o.conn, o.subjects.agentIn(d.agentId, 'approval'), message, { prover: o.conn.identity });
    log.info({ agentId: d.agentId, requestId: d.requestId, decision: d.decision, by }, 'decision received');
    const mine = `${by.name ?? by.id} (${by.channel})`;
    const watch = await o.agents.watch({ key: d.agentId, include: KvWatchInclude.UpdatesOnly });
    const timer = setTimeout(() => watch.stop(), 2500);
    try {
      for await (const e of watch) {
        if (e.operation !== 'PUT') continue;
        const decided = decidedIn(decodeRecord(e.value).snapshot, d.requestId);
        if (decided) return decided.by === mine ? `Decision recorded: ${d.decision}.` : `Already decided by ${decided.by} (${decided.decision}).`;
      }
    } finally {
      clearTimeout(timer);
      watch.stop();
    }
    return `Decision sent: ${d.decision}.`;
  };

  /** One Telegram update (from the webhook or from polling): a decision, if allowed and genuine. */
  const telegramUpdate = async (name: string, channel: Extract<ChannelConfig, { type: 'telegram' }>, update: unknown): Promise<{ callback_query_id: string; text: string } | undefined> => {
    const q = parseTelegramCallback(update);
    if (!q) return undefined;
    const answer = (text: string) => ({ callback_query_id: q.callbackId, text });
    const who = q.fromName ? `@${q.fromName}` : `Telegram user ${q.fromId}`;
    if (!mayDecide(channel.allowUsers, q.fromId)) {
      log.warn({ channel: name, userId: q.fromId }, 'Telegram decision refused: user not on the allow-list');
      return answer(refusalText(who));
    }
    // A numeric chat id can be checked: a button pressed anywhere else (a forwarded message) is refused.
    if (q.chatId !== undefined && /^-?\d+$/.test(channel.chatId) && q.chatId !== channel.chatId) {
      log.warn({ channel: name, userId: q.fromId }, 'Telegram decision refused: pressed in another chat');
      return answer('This button does not belong to this chat.');
    }
    const data = verifyTelegramCallbackData(channel.token, name, q.data);
    if (!data.ok) {
      log.warn({ channel: name, userId: q.fromId, reason: data.reason }, 'Telegram decision refused: forged or altered button');
      return answer('This button is not valid.');
    }
    const target = await o.effects.get(effectKeys.telegramApproval(name, data.id));
    if (!target || target.operation !== 'PUT') {
      log.warn({ channel: name, userId: q.fromId }, 'Telegram decision for an unknown or expired request');
      return answer('Unknown or expired request.');
    }
    const t = target.json<{ agentId: string; requestId: string; argsHash: string }>();
    const text = await decide(
      { agentId: t.agentId, requestId: t.requestId, argsHash: t.argsHash, decision: data.decision },
      { id: String(q.fromId), channel: `telegram:${name}`, ...(q.fromName ? { name: q.fromName } : {}) },
    );
    return answer(text);
  };

  /** A Slack button press, signature already checked: a decision, if the presser may decide. */
  const slackAction = async (name: string, channel: Extract<ChannelConfig, { type: 'slack' }>, raw: string): Promise<{ status: number; text: string }> => {
    const d = parseSlackAction(raw);
    if (!d) return { status: 400, text: 'not an Errand decision' };
    if (!mayDecide(channel.allowUsers, d.by.id)) {
      const text = refusalText(d.by.name ? `@${d.by.name}` : `<@${d.by.id}>`);
      log.warn({ channel: name, userId: d.by.id, agentId: d.agentId, requestId: d.requestId }, 'Slack decision refused: user not on the allow-list');
      // Slack ignores the body of a block_actions answer: the refusal is shown where the button was.
      await slackEphemeral(
        { token: channel.token, ...(channel.apiBase ? { apiBase: channel.apiBase } : {}) },
        { channel: d.channelId ?? channel.channel, user: d.by.id, text, threadTs: d.messageTs },
        AbortSignal.timeout(5000),
      ).catch((err: unknown) => log.warn({ err, channel: name }, 'could not show the refusal in Slack'));
      return { status: 200, text };
    }
    const text = await decide(
      { agentId: d.agentId, requestId: d.requestId, argsHash: d.argsHash, decision: d.decision },
      { id: d.by.id, channel: `slack:${name}`, ...(d.by.name ? { name: d.by.name } : {}) },
    );
    return { status: 200, text };
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
    const [, kind, name, action] = (req.url ?? '').split('?')[0]!.split('/');
    const channel = name ? o.channels[name] : undefined;
    /** The body as text; a larger one is answered 413 here and the handler stops (undefined). */
    const body = async (): Promise<string | undefined> => {
      const raw = await readBody(req, MAX_CALLBACK_BODY_BYTES);
      if (raw) return raw.toString('utf8');
      log.warn({ channel: name, limit: MAX_CALLBACK_BODY_BYTES }, 'callback refused: body too large');
      refuseTooLarge(req, res, { error: `the request body is larger than ${MAX_CALLBACK_BODY_BYTES} bytes: send less`, code: 'ERR_TOO_LARGE' });
      return undefined;
    };
    try {
      if (req.method === 'POST' && kind === 'slack' && action === 'actions' && channel?.type === 'slack') {
        if (!channel.signingSecret) return void res.writeHead(404).end();
        const raw = await body();
        if (raw === undefined) return;
        const verdict = verifySlackRequest(channel.signingSecret, header(req.headers['x-slack-request-timestamp']), header(req.headers['x-slack-signature']), raw);
        if (!verdict.ok) {
          log.warn({ channel: name, reason: verdict.reason }, 'Slack callback refused');
          return void res.writeHead(401).end(verdict.reason);
        }
        const r = await slackAction(name!, channel, raw);
        if (r.status !== 200) return void res.writeHead(r.status).end(r.text);
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ text: r.text }));
      }
      if (req.method === 'POST' && kind === 'telegram' && action === 'webhook' && channel?.type === 'telegram') {
        // Only Telegram knows the secret given to setWebhook; without one configured, nothing is served.
        if (!channel.secretToken) return void res.writeHead(404).end();
        const given = header(req.headers['x-telegram-bot-api-secret-token']);
        if (given === undefined || !safeEqual(given, channel.secretToken)) {
          log.warn({ channel: name }, 'Telegram update refused: missing or wrong secret token');
          return void res.writeHead(401).end('missing or wrong X-Telegram-Bot-Api-Secret-Token');
        }
        const raw = await body();
        if (raw === undefined) return;
        let update: unknown;
        try {
          update = JSON.parse(raw || '{}');
        } catch {
          return void res.writeHead(400).end('the body is not JSON');
        }
        const answer = await telegramUpdate(name!, channel, update);
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
