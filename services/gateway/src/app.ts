// The gateway's HTTP app: auth, limits and JSON errors around the API's route table, the login
// link, the OpenAPI document, the chat callbacks and /api/system (mounted from their modules),
// and the dashboard's files.
import type { IncomingMessage } from 'node:http';
import { Hono, type Context } from 'hono';
import { discardRest, readBody } from '@errand/http-body';
import { bodyLimit } from 'hono/body-limit';
import { setCookie } from 'hono/cookie';
import type { ErrandClient } from '@errand/client';
import type { AgentRegistry } from '@errand/core';
import type { ErrandConnection } from '@errand/nats';
import type { Logger, Redactor } from '@errand/protocols';
import { apiRoutes, httpErrorOf, mountedRoutes } from './api.js';
import { createAuthenticator, requireAuth, SESSION_COOKIE } from './auth.js';
import type { GatewayUser } from './config.js';
import { GatewayErrorCode, HttpError } from './errors.js';
import { openApiDocument } from './openapi.js';
import { registerRoutes, type GatewayEnv, type RouteSpec } from './route.js';
import { PAGE_HEADERS, serveWeb } from './web.js';

/** The body limit of /api requests. */
export const MAX_BODY_BYTES = 256 * 1024;
export const GATEWAY_VERSION = '0.1.0';

export interface GatewayDeps {
  conn: ErrandConnection;
  client: ErrandClient;
  prefix: string;
  logger: Logger;
  /** Applied to journals, events, logs and replays before they leave. */
  redactor: Redactor;
  /** Who may sign in, by their tokens. */
  users: readonly GatewayUser[];
  /** The dashboard's built files (services/gateway/dist/web). */
  webDir: string;
  /** The agent definitions for replay and fork (loaded on first use). */
  registry: () => Promise<AgentRegistry>;
  /** Keep-alive comment interval of event streams (15 s). */
  keepAliveMs?: number;
  /** Served at `/` without the gateway's auth: the chat callbacks (callbacks.ts), which verify Slack's and Telegram's signatures. */
  callbacks?: Hono;
  /** Served at `/` behind the gateway's auth: GET /api/system (system.ts). */
  system?: Hono;
}

export interface GatewayApp {
  app: Hono<GatewayEnv>;
  /** Every route the API serves or documents, for the OpenAPI document. */
  routes: readonly RouteSpec[];
}

const LOGIN_FAILED = `<!doctype html><meta charset="utf-8"><title>Errand: not signed in</title>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>That login link is not valid</h1>
<p>The token in it is not one this gateway knows. Use the link <code>errand up</code> printed (it changes when the data folder is deleted), or a token from ERRAND_GATEWAY_TOKENS.</p>
</body>`;

export function createGatewayApp(deps: GatewayDeps): GatewayApp {
  const auth = createAuthenticator(deps.users);
  const app = new Hono<GatewayEnv>();
  // The mounted modules' routes are documented when they are mounted.
  const mounted = mountedRoutes.filter((r) => (r.path.startsWith('/api/') ? deps.system : deps.callbacks) !== undefined);
  const routes = [...apiRoutes({ ...deps, auth, keepAliveMs: deps.keepAliveMs ?? 15_000 }), ...mounted];

  app.onError((err, c) => {
    const http = httpErrorOf(err);
    if (http) {
      const issues = (http as HttpError & { issues?: unknown }).issues;
      return c.json({ code: http.code, message: http.message, ...(issues ? { issues } : {}) }, http.status);
    }
    deps.logger.error({ err, method: c.req.method, path: c.req.path }, `${c.req.method} ${c.req.path} failed: ${(err as Error).message}`);
    return c.json({ code: GatewayErrorCode.Internal, message: 'the gateway failed to answer; its log says why (errand logs --service gateway)' }, 500);
  });

  // Every page and answer: no sniffing, no framing, no referrer (a login link carries a token).
  app.use('*', async (c, next) => {
    await next();
    for (const [k, v] of Object.entries(PAGE_HEADERS)) if (!c.res.headers.has(k)) c.res.headers.set(k, v);
  });

  // Limits before anything reads a body, the callbacks' included. On Node (the gateway's server)
  // the body is read from the request itself, and the rest of a refused one is read and dropped for
  // a few seconds: a client still sending then reads the 413, not a reset connection.
  const tooLarge = (c: Context, headers: Record<string, string> = {}) =>
    c.json({ code: GatewayErrorCode.TooLarge, message: `the body is over ${MAX_BODY_BYTES / 1024} KiB: send less (a long input belongs in a file a tool reads)` }, 413, headers);
  // Elsewhere (app.request) the rest is not read: the connection closes rather than carry it on.
  const limitInMemory = bodyLimit({ maxSize: MAX_BODY_BYTES, onError: (c) => tooLarge(c, { Connection: 'close' }) });
  app.use('*', async (c, next) => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
    if (!incoming) return limitInMemory(c, next);
    if (incoming.method === 'GET' || incoming.method === 'HEAD') return next();
    if (incoming.headers['content-length'] === undefined && incoming.headers['transfer-encoding'] === undefined) return next();
    const body = await readBody(incoming, MAX_BODY_BYTES);
    if (body === undefined) {
      discardRest(incoming);
      return tooLarge(c);
    }
    c.req.raw = new Request(c.req.raw.url, { method: c.req.raw.method, headers: c.req.raw.headers, body, signal: c.req.raw.signal });
    return next();
  });

  app.get('/login', (c) => {
    const token = c.req.query('token') ?? '';
    const session = auth.sessionFor(token);
    if (!session) return c.html(LOGIN_FAILED, 401);
    setCookie(c, SESSION_COOKIE, session, { httpOnly: true, sameSite: 'Strict', path: '/', maxAge: 30 * 24 * 3600 });
    return c.redirect('/', 303);
  });

  if (deps.callbacks) app.route('/', deps.callbacks);

  app.use('/api/*', requireAuth(auth));
  if (deps.system) app.route('/', deps.system);
  app.get('/api/openapi.json', (c) => c.json(openApiDocument([...routes, openApiRoute], { version: GATEWAY_VERSION })));
  registerRoutes(app, routes);

  app.all('/api/*', () => {
    throw new HttpError(404, GatewayErrorCode.NotFound, 'no such API route: GET /api/openapi.json lists them');
  });
  app.on(['GET', 'HEAD'], '*', (c) => serveWeb(c, deps.webDir));
  app.notFound((c) => c.json({ code: GatewayErrorCode.NotFound, message: `nothing answers ${c.req.method} ${c.req.path}` }, 404));
  return { app, routes: [...routes, openApiRoute] };
}

const openApiRoute: RouteSpec = {
  method: 'get',
  path: '/api/openapi.json',
  tag: 'meta',
  summary: 'This document',
  responses: { 200: { description: 'the OpenAPI 3.1 document of this API' } },
};
