import type { Logger } from '@errand/protocols';
import { createHmac } from 'node:crypto';
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

export interface Channel {
  readonly name: string;
  /** `log` is bound to the agent and trace of the notification, for channels that log. */
  send(message: Rendered, context: { key: string; signal: AbortSignal; log?: Logger }): Promise<void>;
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

/** Telegram `sendMessage`; approvals carry an inline keyboard; link previews off. */
export function telegramChannel(o: { name?: string; token: string; chatId: string; apiBase?: string }): Channel {
  const base = (o.apiBase ?? 'https://api.telegram.org').replace(/\/$/, '');
  return {
    name: o.name ?? 'telegram',
    async send(m, { signal }) {
      const text = [m.title, m.text, m.link ? `Open in Errand: ${m.link}` : ''].filter(Boolean).join('\n\n');
      // callback_data is limited to 64 bytes: the request and the decision; the args hash is checked on the host.
      const keyboard = m.approval
        ? {
            inline_keyboard: [
              [
                { text: 'Approve', callback_data: `a|${m.approval.requestId}`.slice(0, 64) },
                { text: 'Deny', callback_data: `d|${m.approval.requestId}`.slice(0, 64) },
              ],
            ],
          }
        : undefined;
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
