import type { Logger } from '@errand/protocols';
import { createHmac } from 'node:crypto';
import { signTelegramCallbackData } from './callbacks.js';
import type { Rendered } from './render.js';

/** Delivery failed; `retryable` says whether trying again later can help. */
export class DeliveryError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

export interface SendContext {
  /** The notification's idempotency key. */
  key: string;
  signal: AbortSignal;
  /** Bound to the agent and trace of the notification, for channels that log. */
  log?: Logger;
  /**
   * For an approval on a channel whose buttons cannot carry the whole approval (Telegram): the id
   * under which the caller stored it, which the buttons carry instead (see `newCallbackId`).
   */
  callbackId?: string;
}

export interface Channel {
  readonly name: string;
  send(message: Rendered, context: SendContext): Promise<void>;
}

async function post(url: string, init: RequestInit, what: string): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (err) {
    throw new DeliveryError('ERR_DELIVERY_NETWORK', `${what}: ${(err as Error).message}`, true);
  }
  if (!res.ok) {
    const body = await res.text().catch(() => '');
    throw new DeliveryError('ERR_DELIVERY_STATUS', `${what} answered ${res.status}: ${body.slice(0, 300)}`, res.status >= 500 || res.status === 429);
  }
  return res;
}

const decisionValue = (a: NonNullable<Rendered['approval']>, decision: 'approve' | 'deny') => JSON.stringify({ ...a, decision });

/** Slack `chat.postMessage` with Block Kit; approvals carry Approve / Deny buttons; unfurling off. */
export function slackChannel(o: { name?: string; token: string; channel: string; apiBase?: string }): Channel {
  const base = (o.apiBase ?? 'https://slack.com/api').replace(/\/$/, '');
  return {
    name: o.name ?? 'slack',
    async send(m, { signal }) {
      const blocks: unknown[] = [
        { type: 'header', text: { type: 'plain_text', text: m.title.slice(0, 150) } },
        { type: 'section', text: { type: 'plain_text', text: m.text || ' ' } },
      ];
      if (m.link) blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `<${m.link}|Open in Errand>` }] });
      if (m.approval) {
        blocks.push({
          type: 'actions',
          block_id: `errand-approval-${m.approval.requestId}`.slice(0, 255),
          elements: [
            { type: 'button', style: 'primary', text: { type: 'plain_text', text: 'Approve' }, action_id: 'errand_approve', value: decisionValue(m.approval, 'approve') },
            { type: 'button', style: 'danger', text: { type: 'plain_text', text: 'Deny' }, action_id: 'errand_deny', value: decisionValue(m.approval, 'deny') },
          ],
        });
      }
      const res = await post(
        `${base}/chat.postMessage`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json; charset=utf-8', authorization: `Bearer ${o.token}` },
          body: JSON.stringify({ channel: o.channel, text: `${m.title}: ${m.text}`, blocks, unfurl_links: false, unfurl_media: false }),
          signal,
        },
        'Slack chat.postMessage',
      );
      const body = (await res.json().catch(() => ({}))) as { ok?: boolean; error?: string };
      if (body.ok !== true) throw new DeliveryError('ERR_DELIVERY_SLACK', `Slack refused the message: ${body.error ?? 'unknown error'}`, body.error === 'ratelimited');
    },
  };
}

/**
 * Telegram `sendMessage`; approvals carry an inline keyboard; link previews off. A button's
 * `callback_data` is `signTelegramCallbackData(callbackSecret, name, …, context.callbackId)`: the
 * approval itself does not fit Telegram's 64 bytes, so the caller stores it under `callbackId`.
 */
export function telegramChannel(o: { name?: string; token: string; chatId: string; apiBase?: string; callbackSecret?: string }): Channel {
  const base = (o.apiBase ?? 'https://api.telegram.org').replace(/\/$/, '');
  const name = o.name ?? 'telegram';
  return {
    name,
    async send(m, { signal, callbackId }) {
      const text = [m.title, m.text, m.link ? `Open in Errand: ${m.link}` : ''].filter(Boolean).join('\n\n');
      let keyboard: unknown;
      if (m.approval) {
        if (!callbackId || !o.callbackSecret) throw new DeliveryError('ERR_DELIVERY_TELEGRAM', 'an approval on Telegram needs a callbackId and a callbackSecret for its buttons', false);
        const secret = o.callbackSecret;
        keyboard = {
          inline_keyboard: [
            [
              { text: 'Approve', callback_data: signTelegramCallbackData(secret, name, 'approve', callbackId) },
              { text: 'Deny', callback_data: signTelegramCallbackData(secret, name, 'deny', callbackId) },
            ],
          ],
        };
      }
      const res = await post(
        `${base}/bot${o.token}/sendMessage`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ chat_id: o.chatId, text, link_preview_options: { is_disabled: true }, ...(keyboard ? { reply_markup: keyboard } : {}) }),
          signal,
        },
        'Telegram sendMessage',
      );
      const body = (await res.json().catch(() => ({}))) as { ok?: boolean; description?: string };
      if (body.ok !== true) throw new DeliveryError('ERR_DELIVERY_TELEGRAM', `Telegram refused the message: ${body.description ?? 'unknown error'}`, false);
    },
  };
}

/**
 * Slack `chat.postEphemeral`: a message only `user` sees, in `channel` (in the thread of
 * `threadTs` when given) — how a refused button press is answered where it was pressed.
 */
export async function slackEphemeral(o: { token: string; apiBase?: string }, m: { channel: string; user: string; text: string; threadTs?: string | undefined }, signal: AbortSignal): Promise<void> {
  const base = (o.apiBase ?? 'https://slack.com/api').replace(/\/$/, '');
  const res = await post(
    `${base}/chat.postEphemeral`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8', authorization: `Bearer ${o.token}` },
      body: JSON.stringify({ channel: m.channel, user: m.user, text: m.text, ...(m.threadTs ? { thread_ts: m.threadTs } : {}) }),
      signal,
    },
    'Slack chat.postEphemeral',
  );
  const body = (await res.json().catch(() => ({}))) as { ok?: boolean; error?: string };
  if (body.ok !== true) throw new DeliveryError('ERR_DELIVERY_SLACK', `Slack refused the message: ${body.error ?? 'unknown error'}`, body.error === 'ratelimited');
}

/** The signature header of a webhook: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const WEBHOOK_SIGNATURE_HEADER = 'x-errand-signature';

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** A JSON POST signed with HMAC-SHA256 over timestamp and body (see docs/notifications.md). */
export function webhookChannel(o: { name?: string; url: string; secret: string; now?: () => number }): Channel {
  return {
    name: o.name ?? 'webhook',
    async send(m, { key, signal }) {
      const body = JSON.stringify({ id: key, title: m.title, text: m.text, link: m.link ?? null, approval: m.approval ?? null });
      const t = Math.floor((o.now ?? Date.now)() / 1000);
      await post(
        o.url,
        { method: 'POST', headers: { 'content-type': 'application/json', [WEBHOOK_SIGNATURE_HEADER]: signWebhook(o.secret, t, body), 'idempotency-key': key }, body, signal },
        `webhook ${new URL(o.url).host}`,
      );
    },
  };
}
