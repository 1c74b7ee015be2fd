import { KvWatchInclude, openBucket, publishMessage, readRecord, type ErrandConnection, type KV } from '@errand/nats';
import {
  CodecError,
  createSubjects,
  decodeRecord,
  effectKeys,
  MESSAGE_VERSION,
  resourceNames,
  type AgentRecord,
  type ApprovalRecord,
  type Logger,
  type Message,
  type Principal,
} from '@errand/protocols';
import { mayDecide, parseSlackAction, parseTelegramCallback, safeEqual, verifySlackRequest, verifyTelegramCallbackData, type AllowList } from './callbacks.js';
import { slackEphemeral } from './channels.js';
import type { ChannelConfig, SlackChannelConfig, TelegramChannelConfig } from './channel-config.js';

/** The largest callback body read: Slack's and Telegram's are a few KiB. */
export const MAX_CALLBACK_BODY_BYTES = 64 * 1024;

/** How long a decision waits for the agent to take it before answering "sent" (Slack wants an answer within 3 s). */
export const DECISION_WAIT_MS = 2500;

/** What a person who may not decide is told, where they pressed. */
export const refusalText = (who: string) => `${who} may not approve this.`;

/**
 * One HTTP request to a callback endpoint, whatever serves it (node:http in the notifier, hono in
 * the gateway): the handler needs only these.
 */
export interface CallbackRequest {
  method: string;
  /** `/slack/<channel>/actions` or `/telegram/<channel>/webhook`, without the query string. */
  path: string;
  /** A request header by lower-case name. */
  header(name: string): string | undefined;
  /**
   * The body as text; undefined when it is larger than `limit` bytes (counted as it arrives, not
   * trusted from Content-Length). The handler then answers 413 with `tooLarge` set.
   */
  body(limit: number): Promise<string | undefined>;
}

/** The answer to send: `json` as application/json, else `text` (or nothing). */
export interface CallbackResponse {
  status: number;
  json?: unknown;
  text?: string;
  /** 413: the server should drop the rest of the body unread (see `refuseTooLarge` in @errand/http-body). */
  tooLarge?: boolean;
}

/** A Telegram answer to the person who pressed (`answerCallbackQuery`). */
export interface TelegramAnswer {
  callback_query_id: string;
  text: string;
}

/** Turns verified button presses into approvals (see {@link createCallbackHandler}). */
export interface CallbackHandler {
  /** Serves `POST /slack/<channel>/actions` and `POST /telegram/<channel>/webhook`; anything else is 404. Never throws for a bad request. */
  handle(req: CallbackRequest): Promise<CallbackResponse>;
  /** One Telegram update (from the webhook or from long polling): the answer for the presser, or undefined for anything but a button press. */
  telegramUpdate(channel: string, update: unknown): Promise<TelegramAnswer | undefined>;
}

export interface CallbackHandlerOptions {
  /** Publishes the approvals; its identity (notifier or gateway) vouches for the chat user who decided. */
  conn: ErrandConnection;
  prefix: string;
  channels: Record<string, ChannelConfig>;
  logger: Logger;
  /** Default {@link DECISION_WAIT_MS}. */
  decisionWaitMs?: number;
  /** Log who may decide through each channel (default true; false when the caller already did). */
  describeAllowLists?: boolean;
}

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

/** The decision a record's runtime bookkeeping (`record.approvals`) holds on a request, once there is one. */
function settled(record: AgentRecord | undefined, requestId: string, argsHash: string): ApprovalRecord | undefined {
  return record?.approvals?.find((a) => a.requestId === requestId && a.argsHash === argsHash && a.decision !== undefined);
}

const who = (by: Principal | undefined) => (by ? `${by.name ?? by.id} (${by.channel})` : 'someone');

/** What the person who pressed is told about a request already settled. */
function settledText(a: ApprovalRecord): string {
  return a.decision === 'expired' ? 'This request expired before anyone decided.' : `Already decided by ${who(a.by)} (${a.decision}).`;
}

/**
 * Whether a Slack `response_url` may be posted to: Slack's own hooks, or — for a channel pointed at
 * another API (`apiBase`, a test's or a proxy's) — that API's origin. A signed payload is trusted,
 * but the notifier still posts nowhere else.
 */
function responseUrlAllowed(url: string, channel: SlackChannelConfig): boolean {
  try {
    const u = new URL(url);
    if (u.protocol === 'https:' && u.hostname === 'hooks.slack.com') return true;
    return channel.apiBase !== undefined && u.origin === new URL(channel.apiBase).origin;
  } catch {
    return false;
  }
}

/**
 * The Slack and Telegram callbacks, framework-free: a verified button press from a person on the
 * channel's allow-list becomes an `approval` message in the agent's inbox, carrying who decided (as
 * Slack or Telegram says) and through which channel; the handler then waits briefly for the agent
 * to take it and tells the presser ("Decision recorded", or who decided first — read from the
 * runtime's `record.approvals`, never a machine's context). A request that is not verified is
 * refused (401); a press by anyone else, or of a forged button, is refused, told so where it was
 * pressed, and logged; a body over {@link MAX_CALLBACK_BODY_BYTES} is refused (413) unread. A
 * channel that cannot be verified (Slack without `signingSecret`, Telegram without `secretToken`)
 * is not served (404). Opens the agents and effects buckets; throws what opening them throws.
 */
export async function createCallbackHandler(o: CallbackHandlerOptions): Promise<CallbackHandler> {
  const log = o.logger.child({ component: 'callbacks' });
  const subjects = createSubjects(o.prefix);
  const names = resourceNames(o.prefix);
  const [effects, agents]: [KV, KV] = await Promise.all([openBucket(o.conn, names.buckets.effects), openBucket(o.conn, names.buckets.agents)]);
  const waitMs = o.decisionWaitMs ?? DECISION_WAIT_MS;

  // An unreachable bucket is no answer; an unreadable record is an error.
  const record = (agentId: string) =>
    readRecord(agents, agentId).catch((err: unknown) => {
      if (err instanceof CodecError) throw err;
      return undefined;
    });

  /**
   * Sends the decision, then waits (briefly) for the agent to take one: the first decision wins,
   * and whoever came second is told who decided.
   */
  const decide = async (d: { agentId: string; requestId: string; argsHash: string; decision: 'approve' | 'deny' }, by: Principal): Promise<string> => {
    const earlier = settled(await record(d.agentId), d.requestId, d.argsHash);
    if (earlier) return settledText(earlier);
    // Watching before sending: a host quicker than the watch cannot slip the answer past it.
    const watch = await agents.watch({ key: d.agentId, include: KvWatchInclude.UpdatesOnly });
    const timer = setTimeout(() => watch.stop(), waitMs);
    try {
      const message: Message<'approval'> = { v: MESSAGE_VERSION, kind: 'approval', ...d, by, at: Date.now() };
      // The relay proves it sent this decision; `by` is the chat user the chat service vouched for.
      await publishMessage(o.conn, subjects.agentIn(d.agentId, 'approval'), message, { prover: o.conn.identity });
      log.info({ agentId: d.agentId, requestId: d.requestId, decision: d.decision, by }, 'decision received');
      for await (const e of watch) {
        if (e.operation !== 'PUT') continue;
        const decided = settled(decodeRecord(e.value), d.requestId, d.argsHash);
        if (!decided) continue;
        const mine = decided.decision === d.decision && decided.by?.id === by.id && decided.by.channel === by.channel;
        return mine ? `Decision recorded: ${d.decision}.` : settledText(decided);
      }
    } finally {
      clearTimeout(timer);
      watch.stop();
    }
    return `Decision sent: ${d.decision}.`;
  };

  const telegramUpdate = async (name: string, update: unknown): Promise<TelegramAnswer | undefined> => {
    const channel = o.channels[name];
    if (channel?.type !== 'telegram') return undefined;
    const q = parseTelegramCallback(update);
    if (!q) return undefined;
    const answer = (text: string) => ({ callback_query_id: q.callbackId, text });
    const presser = q.fromName ? `@${q.fromName}` : `Telegram user ${q.fromId}`;
    if (!mayDecide(channel.allowUsers, q.fromId)) {
      log.warn({ channel: name, userId: q.fromId }, 'Telegram decision refused: user not on the allow-list');
      return answer(refusalText(presser));
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
    const target = await effects.get(effectKeys.telegramApproval(name, data.id));
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

  /** Slack ignores the body of a block_actions answer: the outcome goes to the payload's response_url, seen only by the presser. */
  const tellOnSlack = async (name: string, channel: SlackChannelConfig, responseUrl: string | undefined, text: string): Promise<void> => {
    if (!responseUrl) return;
    if (!responseUrlAllowed(responseUrl, channel)) {
      log.warn({ channel: name }, 'Slack response_url is neither Slack nor the channel apiBase: the presser is not told the outcome');
      return;
    }
    const res = await fetch(responseUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ response_type: 'ephemeral', replace_original: false, text }),
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) throw new Error(`Slack answered ${res.status}`);
    await res.body?.cancel();
  };

  /** A Slack button press, signature already checked: a decision, if the presser may decide. */
  const slackAction = async (name: string, channel: SlackChannelConfig, raw: string): Promise<CallbackResponse> => {
    const d = parseSlackAction(raw);
    if (!d) return { status: 400, text: 'not an Errand decision' };
    if (!mayDecide(channel.allowUsers, d.by.id)) {
      const text = refusalText(d.by.name ? `@${d.by.name}` : `<@${d.by.id}>`);
      log.warn({ channel: name, userId: d.by.id, agentId: d.agentId, requestId: d.requestId }, 'Slack decision refused: user not on the allow-list');
      // Shown where the button was, to the presser only.
      await slackEphemeral(
        { token: channel.token, ...(channel.apiBase ? { apiBase: channel.apiBase } : {}) },
        { channel: d.channelId ?? channel.channel, user: d.by.id, text, threadTs: d.messageTs },
        AbortSignal.timeout(5000),
      ).catch((err: unknown) => log.warn({ err, channel: name }, 'could not show the refusal in Slack'));
      return { status: 200, json: { text } };
    }
    const text = await decide(
      { agentId: d.agentId, requestId: d.requestId, argsHash: d.argsHash, decision: d.decision },
      { id: d.by.id, channel: `slack:${name}`, ...(d.by.name ? { name: d.by.name } : {}) },
    );
    await tellOnSlack(name, channel, d.responseUrl, text).catch((err: unknown) => log.warn({ err, channel: name }, 'could not tell the presser the outcome in Slack'));
    return { status: 200, json: { text } };
  };

  const tooLarge = (name: string | undefined): CallbackResponse => {
    log.warn({ channel: name, limit: MAX_CALLBACK_BODY_BYTES }, 'callback refused: body too large');
    return { status: 413, tooLarge: true, json: { code: 'ERR_TOO_LARGE', message: `the request body is larger than ${MAX_CALLBACK_BODY_BYTES} bytes: send less` } };
  };

  const serve = async (req: CallbackRequest): Promise<CallbackResponse> => {
    const [, kind, name, action, ...rest] = req.path.split('/');
    const channel = name !== undefined && Object.hasOwn(o.channels, name) ? o.channels[name] : undefined;
    if (req.method !== 'POST' || rest.length || !name || !channel) return { status: 404 };
    if (kind === 'slack' && action === 'actions' && channel.type === 'slack') {
      if (!channel.signingSecret) return { status: 404 };
      const raw = await req.body(MAX_CALLBACK_BODY_BYTES);
      if (raw === undefined) return tooLarge(name);
      const verdict = verifySlackRequest(channel.signingSecret, req.header('x-slack-request-timestamp'), req.header('x-slack-signature'), raw);
      if (!verdict.ok) {
        log.warn({ channel: name, reason: verdict.reason }, 'Slack callback refused');
        return { status: 401, text: verdict.reason };
      }
      return slackAction(name, channel, raw);
    }
    if (kind === 'telegram' && action === 'webhook' && channel.type === 'telegram') {
      return telegramWebhook(name, channel, req);
    }
    return { status: 404 };
  };

  const telegramWebhook = async (name: string, channel: TelegramChannelConfig, req: CallbackRequest): Promise<CallbackResponse> => {
    // Only Telegram knows the secret given to setWebhook; without one configured, nothing is served.
    if (!channel.secretToken) return { status: 404 };
    const given = req.header('x-telegram-bot-api-secret-token');
    if (given === undefined || !safeEqual(given, channel.secretToken)) {
      log.warn({ channel: name }, 'Telegram update refused: missing or wrong secret token');
      return { status: 401, text: 'missing or wrong X-Telegram-Bot-Api-Secret-Token' };
    }
    const raw = await req.body(MAX_CALLBACK_BODY_BYTES);
    if (raw === undefined) return tooLarge(name);
    let update: unknown;
    try {
      update = JSON.parse(raw || '{}');
    } catch {
      return { status: 400, text: 'the body is not JSON' };
    }
    const answer = await telegramUpdate(name, update);
    // Telegram shows the answer to the person who pressed the button.
    return answer ? { status: 200, json: { method: 'answerCallbackQuery', ...answer } } : { status: 200, text: '' };
  };

  if (o.describeAllowLists !== false) describeAllowLists(o.channels, log);
  return {
    telegramUpdate,
    async handle(req) {
      try {
        return await serve(req);
      } catch (err) {
        log.error({ err }, 'callback failed');
        return { status: 500 };
      }
    },
  };
}
