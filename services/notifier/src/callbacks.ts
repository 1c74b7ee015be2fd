import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ErrandConnection } from '@errand/nats';
import { createCallbackHandler, type CallbackHandler, type CallbackResponse, type ChannelConfig } from '@errand/notify';
import type { Logger } from '@errand/protocols';
import { readBody, refuseTooLarge } from '@errand/http-body';

export interface CallbackServer {
  /** The listener's port; undefined when only Telegram polling runs. */
  readonly port: number | undefined;
  close(): Promise<void>;
}

/**
 * The notifier's side of the Slack and Telegram callbacks: the decisions themselves are made by
 * @errand/notify's {@link createCallbackHandler} (the gateway serves the very same at its door).
 * With a `port`, `POST /slack/<channel>/actions` and `POST /telegram/<channel>/webhook` are served
 * on 127.0.0.1; Telegram channels with `poll` read their button presses by long polling.
 */
export async function startCallbackServer(o: {
  /** Undefined: no listener, polling only. */
  port: number | undefined;
  conn: ErrandConnection;
  prefix: string;
  channels: Record<string, ChannelConfig>;
  logger: Logger;
}): Promise<CallbackServer> {
  const log = o.logger.child({ component: 'callbacks' });
  const handler = await createCallbackHandler({ conn: o.conn, prefix: o.prefix, channels: o.channels, logger: o.logger });
  const polling = new AbortController();
  for (const [name, channel] of Object.entries(o.channels)) {
    if (channel.type === 'telegram' && channel.poll) void pollTelegram(name, channel, handler, polling.signal, log);
  }
  if (o.port === undefined) return { port: undefined, close: async () => polling.abort() };

  const server: Server = createServer(async (req, res) => {
    try {
      const answer = await handler.handle({
        method: req.method ?? 'GET',
        path: (req.url ?? '').split('?')[0]!,
        header: (name) => header(req, name),
        body: async (limit) => (await readBody(req, limit))?.toString('utf8'),
      });
      send(req, res, answer);
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

function send(req: IncomingMessage, res: Parameters<typeof refuseTooLarge>[1], answer: CallbackResponse): void {
  if (answer.tooLarge) return refuseTooLarge(req, res, answer.json);
  if (answer.json !== undefined) return void res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.json));
  res.writeHead(answer.status).end(answer.text ?? '');
}

/** Long polling (getUpdates) for a Telegram channel without a public URL; each press is answered with answerCallbackQuery. */
async function pollTelegram(name: string, channel: Extract<ChannelConfig, { type: 'telegram' }>, handler: CallbackHandler, signal: AbortSignal, log: Logger): Promise<void> {
  const base = `${(channel.apiBase ?? 'https://api.telegram.org').replace(/\/$/, '')}/bot${channel.token}`;
  let offset = 0;
  while (!signal.aborted) {
    try {
      const res = await fetch(`${base}/getUpdates?timeout=25&offset=${offset}&allowed_updates=%5B%22callback_query%22%5D`, { signal });
      const body = (await res.json()) as { ok?: boolean; result?: { update_id: number }[] };
      for (const update of body.result ?? []) {
        offset = update.update_id + 1;
        const answer = await handler.telegramUpdate(name, update);
        if (answer) {
          await fetch(`${base}/answerCallbackQuery`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(answer), signal }).catch(() => {});
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      log.warn({ err, channel: name }, 'Telegram polling failed; trying again');
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}
