import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** How old a signed callback may be: Slack's own limit. */
export const MAX_CALLBACK_AGE_SECONDS = 300;

/** Equal strings, compared in time that does not depend on where they differ. */
export function safeEqual(a: string, b: string): boolean {
  // Digests first: equal-length buffers for timingSafeEqual, and not even the length leaks.
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return timingSafeEqual(x, y) && a === b;
}

export type Verdict = { ok: true } | { ok: false; reason: string };

/**
 * Slack's v0 signature: `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<raw body>` with the signing
 * secret, and a timestamp no older than five minutes (replays are refused).
 */
export function verifySlackRequest(signingSecret: string, timestamp: string | undefined, signature: string | undefined, rawBody: string, nowMs = Date.now()): Verdict {
  if (!timestamp || !signature) return { ok: false, reason: 'missing X-Slack-Request-Timestamp or X-Slack-Signature' };
  const ts = Number(timestamp);
  if (!Number.isFinite(ts) || Math.abs(nowMs / 1000 - ts) > MAX_CALLBACK_AGE_SECONDS) return { ok: false, reason: 'stale or invalid timestamp' };
  const expected = `v0=${createHmac('sha256', signingSecret).update(`v0:${timestamp}:${rawBody}`).digest('hex')}`;
  return safeEqual(expected, signature) ? { ok: true } : { ok: false, reason: 'bad signature' };
}

/** For webhook receivers: checks `X-Errand-Signature` (`t=…,v1=…`) over `<t>.<body>`. */
export function verifyWebhookSignature(secret: string, header: string | undefined, rawBody: string, nowMs = Date.now()): Verdict {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=') as [string, string]));
  const t = Number(parts.t);
  if (!parts.t || !parts.v1 || !Number.isFinite(t)) return { ok: false, reason: 'missing or malformed signature' };
  if (Math.abs(nowMs / 1000 - t) > MAX_CALLBACK_AGE_SECONDS) return { ok: false, reason: 'stale timestamp' };
  const expected = createHmac('sha256', secret).update(`${parts.t}.${rawBody}`).digest('hex');
  return safeEqual(expected, parts.v1) ? { ok: true } : { ok: false, reason: 'bad signature' };
}

export interface Decision {
  agentId: string;
  requestId: string;
  argsHash: string;
  decision: 'approve' | 'deny';
  /** Who pressed, as Slack's signed payload says — never a value the button carried. */
  by: { id: string; name?: string };
}

/** A Slack button press: the decision and where it was pressed (to answer in the same place). */
export interface SlackAction extends Decision {
  /** The conversation and the message the button was on, when the payload names them. */
  channelId: string | undefined;
  messageTs: string | undefined;
  /** Where Slack takes a reply to this press (`response_url`): the answer's body itself is ignored. */
  responseUrl: string | undefined;
}

/** The decision in a Slack block-actions payload (`payload=<json>`, form-encoded). */
export function parseSlackAction(rawBody: string): SlackAction | undefined {
  const payload = new URLSearchParams(rawBody).get('payload');
  if (!payload) return undefined;
  try {
    const p = JSON.parse(payload) as {
      user?: { id?: string; username?: string; name?: string };
      actions?: { value?: string }[];
      channel?: { id?: string };
      container?: { channel_id?: string; message_ts?: string };
      message?: { ts?: string };
      response_url?: unknown;
    };
    const value = JSON.parse(p.actions?.[0]?.value ?? '{}') as Partial<Decision>;
    if (!p.user?.id || !str(value.agentId) || !str(value.requestId) || !str(value.argsHash) || (value.decision !== 'approve' && value.decision !== 'deny')) return undefined;
    const name = p.user.username ?? p.user.name;
    return {
      agentId: value.agentId,
      requestId: value.requestId,
      argsHash: value.argsHash,
      decision: value.decision,
      by: { id: p.user.id, ...(name ? { name } : {}) },
      channelId: p.channel?.id ?? p.container?.channel_id,
      messageTs: p.container?.message_ts ?? p.message?.ts,
      responseUrl: typeof p.response_url === 'string' && p.response_url ? p.response_url : undefined,
    };
  } catch {
    return undefined;
  }
}

const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** Who may decide through a channel: listed user ids, or `'*'` for anyone who can press the button. */
export type AllowList = '*' | readonly (string | number)[] | undefined;

/** Whether `userId` is on the allow-list. No list (or an empty one) allows nobody. */
export function mayDecide(allow: AllowList, userId: string | number): boolean {
  if (allow === '*') return true;
  return (allow ?? []).some((u) => String(u) === String(userId));
}

/** A Telegram callback query: who pressed which button, in which chat. `data` is unverified. */
export interface TelegramPress {
  fromId: number;
  fromName: string | undefined;
  /** The chat of the message the button was on, when Telegram says. */
  chatId: string | undefined;
  data: string;
  callbackId: string;
}

/** Reads a Telegram update; undefined for anything but a callback query. Check `data` with {@link verifyTelegramCallbackData}. */
export function parseTelegramCallback(update: unknown): TelegramPress | undefined {
  const q = (update as { callback_query?: { id?: string; from?: { id?: number; username?: string }; data?: string; message?: { chat?: { id?: number | string } } } } | null)
    ?.callback_query;
  if (!q?.id || typeof q.from?.id !== 'number' || typeof q.data !== 'string') return undefined;
  const chat = q.message?.chat?.id;
  return { fromId: q.from.id, fromName: q.from.username, chatId: chat === undefined ? undefined : String(chat), data: q.data, callbackId: q.id };
}

/**
 * Telegram gives a button 64 bytes of `callback_data`: too few for an agent id, a request id and
 * an args hash. So a button carries `<a|d>.<id>.<mac>` (41 bytes): a random id under which the
 * notifier stored the whole approval, and an HMAC over the channel, the decision and the id, so
 * a forged or edited button is refused before anything is looked up.
 */
export function newCallbackId(): string {
  return randomBytes(12).toString('base64url');
}

function callbackMac(secret: string, channel: string, d: string, id: string): string {
  return createHmac('sha256', secret).update(`errand.telegram.v1|${channel}|${d}|${id}`).digest().subarray(0, 16).toString('base64url');
}

/** The `callback_data` of one button (at most 64 bytes). `secret` is the notifier's (the bot token). */
export function signTelegramCallbackData(secret: string, channel: string, decision: 'approve' | 'deny', id: string): string {
  const d = decision === 'approve' ? 'a' : 'd';
  return `${d}.${id}.${callbackMac(secret, channel, d, id)}`;
}

/** Checks a button's `callback_data` made by {@link signTelegramCallbackData} for this channel. */
export function verifyTelegramCallbackData(secret: string, channel: string, data: string): { ok: true; decision: 'approve' | 'deny'; id: string } | { ok: false; reason: string } {
  const [d, id, mac, ...rest] = data.split('.');
  if ((d !== 'a' && d !== 'd') || !id || !mac || rest.length || !/^[A-Za-z0-9_-]{16}$/.test(id)) return { ok: false, reason: 'malformed callback_data' };
  if (!safeEqual(callbackMac(secret, channel, d, id), mac)) return { ok: false, reason: 'bad callback_data signature' };
  return { ok: true, decision: d === 'a' ? 'approve' : 'deny', id };
}
