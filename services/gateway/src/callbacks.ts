// The chat callbacks at the gateway's door: `POST /slack/:channel/actions` (Slack interactivity)
// and `POST /telegram/:channel/webhook` (Telegram's webhook), decided by the same code the
// notifier serves them with (@errand/notify createCallbackHandler). Mounted WITHOUT the gateway's
// auth: Slack's signature and Telegram's secret token are the proof.
import { Hono, type Context } from 'hono';
import type { ErrandConnection } from '@errand/nats';
import { createCallbackHandler, describeAllowLists, parseChannels, type CallbackHandler, type CallbackResponse, type ChannelConfig } from '@errand/notify';
import type { Logger } from '@errand/protocols';
import { ConfigError } from '@errand/service';

export interface CallbackRoutesDeps {
  /** The gateway's connection (the `gateway` identity, which hosts trust to name the chat user who decided). */
  conn: ErrandConnection;
  prefix: string;
  logger: Logger;
  /** The channels of `ERRAND_NOTIFY_CHANNELS` ({@link parseCallbackChannels}); none: every callback is 404. */
  channels: Record<string, ChannelConfig>;
  /** How long a press waits for the agent to take the decision before answering "sent" (2.5 s). */
  decisionWaitMs?: number;
}

/**
 * `ERRAND_NOTIFY_CHANNELS`, the notifier's setting, read by the gateway too: the Slack channels with
 * a `signingSecret` and the Telegram channels with a `secretToken` are served at its door. Unset:
 * no channels. Throws {@link ConfigError} naming the channel and field that is wrong.
 */
export function parseCallbackChannels(env: Readonly<Record<string, string | undefined>>): Record<string, ChannelConfig> {
  const raw = env.ERRAND_NOTIFY_CHANNELS;
  if (!raw) return {};
  try {
    return parseChannels(raw);
  } catch (err) {
    throw new ConfigError(`ERRAND_NOTIFY_CHANNELS: ${(err as Error).message}`);
  }
}

const DISCARD_GRACE_MS = 5000;

/**
 * The body of `req` as text when it is at most `limit` bytes, counted as it arrives (a
 * Content-Length is not trusted to be honest, a chunked body has none); undefined when larger.
 * The unread rest of a refused body is read and dropped for a few seconds, never kept, so the
 * sender sees the 413 rather than a reset connection.
 */
async function readLimited(req: Request, limit: number): Promise<string | undefined> {
  const body = req.body;
  if (!body) return '';
  const reader = body.getReader();
  const declared = Number(req.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > limit) return void discard(reader), undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) return void discard(reader), undefined;
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function discard(reader: ReadableStreamDefaultReader<Uint8Array>): void {
  const cut = setTimeout(() => void reader.cancel().catch(() => {}), DISCARD_GRACE_MS);
  cut.unref();
  void (async () => {
    try {
      for (;;) if ((await reader.read()).done) break;
    } catch {
      // The sender went away: nothing left to drop.
    } finally {
      clearTimeout(cut);
    }
  })();
}

const ERROR_CODES: Record<number, string> = { 400: 'ERR_INVALID', 401: 'ERR_UNAUTHENTICATED', 404: 'ERR_NOT_FOUND', 413: 'ERR_TOO_LARGE', 500: 'ERR_INTERNAL', 503: 'ERR_UNAVAILABLE' };

/** The handler's answer as hono's; refusals as the gateway's `{ code, message }`. */
function respond(c: Context, answer: CallbackResponse, what: string): Response {
  const status = answer.status as 200;
  if (answer.json !== undefined) return c.json(answer.json, status);
  if (answer.status >= 400) {
    const message =
      answer.text ||
      (answer.status === 404
        ? `no ${what} here: ERRAND_NOTIFY_CHANNELS has no such channel, or not one that can be verified (a Slack channel needs signingSecret, a Telegram one secretToken)`
        : 'the callback failed; the gateway log says why');
    return c.json({ code: ERROR_CODES[answer.status] ?? 'ERR_INTERNAL', message }, status);
  }
  return answer.text ? c.text(answer.text, status) : c.body(null, status);
}

/**
 * Serves `POST /slack/:channel/actions` and `POST /telegram/:channel/webhook` with @errand/notify's
 * callback handler: a forged Slack signature or a wrong Telegram secret token is 401, a presser not
 * on the channel's allow-list is refused (told so where they pressed), a body over 64 KiB is 413,
 * and a valid press becomes the approval, recorded as the chat user who pressed. The handler (and
 * the buckets it reads) is made on the first request, so a gateway without channels opens nothing.
 */
export function callbackRoutes(deps: CallbackRoutesDeps): Hono {
  const log = deps.logger.child({ component: 'callbacks' });
  describeAllowLists(deps.channels, log);
  for (const [name, c] of Object.entries(deps.channels)) {
    if (c.type === 'telegram' && !c.poll && !c.secretToken) log.warn({ channel: name }, `Telegram channel ${name} has no secretToken: its webhook is not served`);
  }
  let handler: Promise<CallbackHandler> | undefined;
  const ready = () =>
    (handler ??= createCallbackHandler({
      conn: deps.conn,
      prefix: deps.prefix,
      channels: deps.channels,
      logger: deps.logger,
      describeAllowLists: false,
      ...(deps.decisionWaitMs !== undefined ? { decisionWaitMs: deps.decisionWaitMs } : {}),
    }).catch((err: unknown) => {
      handler = undefined; // tried again on the next request
      throw err;
    }));

  const serve = async (c: Context, path: string, what: string): Promise<Response> => {
    let h: CallbackHandler;
    try {
      h = await ready();
    } catch (err) {
      log.warn({ err }, `callbacks cannot be served: ${(err as Error).message}`);
      return c.json({ code: 'ERR_UNAVAILABLE', message: 'the gateway cannot reach the agents now (NATS); the chat service will retry' }, 503);
    }
    const answer = await h.handle({ method: c.req.method, path, header: (name) => c.req.header(name), body: (limit) => readLimited(c.req.raw, limit) });
    return respond(c, answer, what);
  };

  const app = new Hono();
  app.post('/slack/:channel/actions', (c) => serve(c, `/slack/${c.req.param('channel')}/actions`, 'Slack channel'));
  app.post('/telegram/:channel/webhook', (c) => serve(c, `/telegram/${c.req.param('channel')}/webhook`, 'Telegram channel'));
  return app;
}
