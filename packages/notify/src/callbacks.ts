import { createHmac, timingSafeEqual } from 'node:crypto';

/** How old a signed callback may be: Slack's own limit. */
export const MAX_CALLBACK_AGE_SECONDS = 300;

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
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
  by: { id: string; name?: string };
}

/** The decision in a Slack block-actions payload (`payload=<json>`, form-encoded). */
export function parseSlackAction(rawBody: string): Decision | undefined {
  const payload = new URLSearchParams(rawBody).get('payload');
  if (!payload) return undefined;
  try {
    const p = JSON.parse(payload) as { user?: { id?: string; username?: string; name?: string }; actions?: { value?: string }[] };
    const value = JSON.parse(p.actions?.[0]?.value ?? '{}') as Partial<Decision>;
    if (!p.user?.id || !value.agentId || !value.requestId || !value.argsHash || (value.decision !== 'approve' && value.decision !== 'deny')) return undefined;
    return { agentId: value.agentId, requestId: value.requestId, argsHash: value.argsHash, decision: value.decision, by: { id: p.user.id, ...(p.user.username ?? p.user.name ? { name: p.user.username ?? p.user.name } : {}) } };
  } catch {
    return undefined;
  }
}

/** A Telegram callback query: who pressed which button. */
export function parseTelegramCallback(update: unknown): { fromId: number; fromName: string | undefined; decision: 'approve' | 'deny'; requestId: string; callbackId: string } | undefined {
  const q = (update as { callback_query?: { id?: string; from?: { id?: number; username?: string }; data?: string } })?.callback_query;
  if (!q?.id || typeof q.from?.id !== 'number' || typeof q.data !== 'string') return undefined;
  const [d, requestId] = q.data.split('|');
  if ((d !== 'a' && d !== 'd') || !requestId) return undefined;
  return { fromId: q.from.id, fromName: q.from.username, decision: d === 'a' ? 'approve' : 'deny', requestId, callbackId: q.id };
}
