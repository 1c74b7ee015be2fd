// One table both registers the API's routes and documents them (openapi.ts): a route's zod schemas
// validate its path parameters, query and body before its handler runs, and are what the OpenAPI
// document says about it.
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import type { AuthVariables } from './auth.js';
import { GatewayErrorCode, HttpError } from './errors.js';

export type GatewayEnv = { Variables: AuthVariables };

export interface ResponseDoc {
  description: string;
  schema?: z.ZodType;
  /** A stream of server-sent events (text/event-stream) rather than JSON. */
  sse?: boolean;
}

export interface RouteInput<P, Q, B> {
  c: Context<GatewayEnv>;
  params: P;
  query: Q;
  body: B;
  /** The signed-in person (the bearer token's or the session cookie's), never anything the request body says. */
  user: string;
}

export interface RouteSpec {
  method: 'get' | 'post';
  /** Hono's form: `/api/agents/:id`. */
  path: string;
  summary: string;
  description?: string;
  tag: string;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  responses: Record<number, ResponseDoc>;
  /** `none`: served without the gateway's auth (the chat callbacks verify their own signatures). */
  auth?: 'token' | 'none';
  /** Absent for a route a mounted sub-app serves (documented here all the same). */
  handler?: (input: RouteInput<unknown, unknown, unknown>) => Response | Promise<Response>;
}

/** A route whose handler gets the parsed types of its schemas. */
export function route<P extends z.ZodObject = z.ZodObject<{}>, Q extends z.ZodObject = z.ZodObject<{}>, B extends z.ZodType = z.ZodUndefined>(spec: {
  method: 'get' | 'post';
  path: string;
  summary: string;
  description?: string;
  tag: string;
  params?: P;
  query?: Q;
  body?: B;
  responses: Record<number, ResponseDoc>;
  auth?: 'token' | 'none';
  handler?: (input: RouteInput<z.output<P>, z.output<Q>, z.output<B>>) => Response | Promise<Response>;
}): RouteSpec {
  return spec as RouteSpec;
}

/** The error body every refusal has. */
export const ErrorSchema = z
  .object({
    code: z.string().describe('stable, e.g. ERR_AGENT_NOT_FOUND'),
    message: z.string().describe('what was wrong, and what to do'),
    issues: z.array(z.object({ path: z.array(z.union([z.string(), z.number()])), message: z.string() })).optional().describe('ERR_INVALID: each problem zod found'),
  })
  .meta({ id: 'Error' });

function invalid(where: string, error: z.ZodError): HttpError {
  const issues = error.issues.map((i) => ({ path: i.path.filter((p): p is string | number => typeof p !== 'symbol'), message: i.message }));
  const text = issues.map((i) => `${i.path.length ? i.path.join('.') : where}: ${i.message}`).join('; ');
  const e = new HttpError(400, GatewayErrorCode.Invalid, `the ${where} is not valid: ${text}`);
  (e as HttpError & { issues?: unknown }).issues = issues;
  return e;
}

async function readBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, GatewayErrorCode.Invalid, 'the body is not JSON: send a JSON object (Content-Type: application/json)');
  }
}

/** Query values as zod reads them: a repeated parameter is an array, a single one a string. */
function queryOf(c: Context): Record<string, string | string[]> {
  const all = c.req.queries();
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.length === 1 ? v[0]! : v]));
}

/** Registers each route that has a handler on `app`. */
export function registerRoutes(app: Hono<GatewayEnv>, routes: readonly RouteSpec[]): void {
  for (const r of routes) {
    const handler = r.handler;
    if (!handler) continue;
    app.on(r.method.toUpperCase(), r.path, async (c) => {
      const params = r.params ? r.params.safeParse(c.req.param()) : undefined;
      if (params && !params.success) throw invalid('path', params.error);
      const query = r.query ? r.query.safeParse(queryOf(c)) : undefined;
      if (query && !query.success) throw invalid('query', query.error);
      let body: unknown;
      if (r.body) {
        const raw = await readBody(c);
        const parsed = r.body.safeParse(raw ?? {});
        if (!parsed.success) throw invalid('body', parsed.error);
        body = parsed.data;
      }
      return handler({ c, params: params?.data ?? c.req.param(), query: query?.data ?? {}, body, user: c.get('identity')?.user ?? '' });
    });
  }
}
