// The API's routes: one table that app.ts registers and openapi.ts documents.
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { ClientError, type ErrandClient } from '@errand/client';
import type { AgentRegistry } from '@errand/core';
import type { ErrandConnection } from '@errand/nats';
import { type AgentRecord, type Logger, type Principal, type Redactor } from '@errand/protocols';
import { describeEvent, ReplayError } from '@errand/replay';
import { z } from 'zod';
import { decodeCursor, page, summaryOf, type ApiAgentSummary } from './agents.js';
import type { Authenticator } from './auth.js';
import { GatewayErrorCode, HttpError } from './errors.js';
import { AgentModulesError } from './registry.js';
import { agentTreeEvents, allAgentsEvents, LOG_LEVELS, logLines, type StreamItem } from './events.js';
import { route, type GatewayEnv, type RouteSpec } from './route.js';
import * as S from './schemas.js';

/** How long a submit waits for the new agent's record before it answers (201 either way). */
const RECORD_WAIT_MS = 5_000;

export interface ApiDeps {
  conn: ErrandConnection;
  client: ErrandClient;
  prefix: string;
  logger: Logger;
  redactor: Redactor;
  auth: Authenticator;
  registry: () => Promise<AgentRegistry>;
  keepAliveMs: number;
}

/** The person on every decision: the signed-in user, through the gateway. */
export const principalOf = (user: string): Principal => ({ id: user, channel: 'gateway', name: user });

const notFound = (agentId: string) => new HttpError(404, GatewayErrorCode.AgentNotFound, `no agent ${agentId}: check the id (GET /api/agents lists them)`, { agentId });

/** The client SDK's and replay's errors as HTTP refusals. */
export function httpErrorOf(err: unknown): HttpError | undefined {
  if (err instanceof HttpError) return err;
  if (err instanceof ClientError) {
    switch (err.code) {
      case 'ERR_AGENT_NOT_FOUND':
        return new HttpError(404, err.code, err.message, { agentId: err.agentId });
      case 'ERR_NOTHING_PENDING':
      case 'ERR_ARGS_CHANGED':
      case 'ERR_AGENT_ENDED':
        return new HttpError(409, err.code, err.message, { agentId: err.agentId });
      case 'ERR_NO_HOST':
        return new HttpError(503, err.code, err.message);
      case 'ERR_REFUSED':
        // ERR_UNAVAILABLE: refused for a passing failure (JetStream restarting), not for the goal: send it again.
        return new HttpError(err.reason === 'ERR_UNAVAILABLE' ? 503 : 422, err.reason ?? err.code, err.message);
    }
  }
  if (err instanceof ReplayError) return new HttpError(422, err.code, err.message, { agentId: err.agentId });
  // The gateway's own setting, not the request: said as it is, so the person can tell whoever runs it.
  if (err instanceof AgentModulesError) return new HttpError(500, err.code, `replay and fork cannot load the agent definitions: ${err.message}`);
  return undefined;
}

/** Where a stream resumes: `Last-Event-ID` (what EventSource sends on reconnecting), else `?after=`. */
function resumePoint(c: Context, after: number | undefined): number | undefined {
  const header = c.req.header('Last-Event-ID');
  if (header !== undefined && header.trim() !== '') {
    if (!/^\d+$/.test(header.trim())) throw new HttpError(400, GatewayErrorCode.Invalid, 'Last-Event-ID must be the id of an event this stream sent (a whole number)');
    return Number(header.trim());
  }
  return after;
}

/** Sends `items` as server-sent events with keep-alive comments, until the client goes away. */
function sse(c: Context, deps: ApiDeps, items: (signal: AbortSignal) => AsyncIterable<StreamItem>): Response {
  return streamSSE(
    c,
    async (stream) => {
      const abort = new AbortController();
      stream.onAbort(() => abort.abort());
      const keepAlive = setInterval(() => void stream.write(': keep-alive\n\n').catch(() => abort.abort()), deps.keepAliveMs);
      try {
        await stream.write(': connected\n\n');
        for await (const item of items(abort.signal)) {
          if (abort.signal.aborted) break;
          await stream.writeSSE({ id: String(item.id), event: item.event, data: JSON.stringify(item.data) });
        }
      } catch (err) {
        if (!abort.signal.aborted) deps.logger.warn({ err }, 'an event stream failed; the client reconnects with Last-Event-ID');
      } finally {
        clearInterval(keepAlive);
        abort.abort();
      }
    },
    async () => {},
  );
}

const accepted = (c: Context, body: unknown = { ok: true }) => c.json(body, 202);

export function apiRoutes(deps: ApiDeps): RouteSpec[] {
  const { client } = deps;
  const mustRecord = async (agentId: string): Promise<AgentRecord> => {
    const r = await client.record(agentId);
    if (!r) throw notFound(agentId);
    return r;
  };
  const decide = (decision: 'approve' | 'deny') =>
    route({
      method: 'post',
      path: `/api/agents/:id/${decision}`,
      tag: 'decisions',
      summary: decision === 'approve' ? 'Approve the exact tool calls (or budget) the agent waits on' : 'Deny the request the agent waits on',
      description: 'requestId and argsHash are those of `waiting`: if the agent now waits on something else, or the arguments changed, nothing is decided (409).',
      params: S.AgentIdParams,
      body: S.DecisionBody,
      responses: {
        202: { description: 'the decision was sent to the agent', schema: S.DecisionResponse },
        404: { description: 'no such agent (ERR_AGENT_NOT_FOUND)' },
        409: { description: 'ERR_NOTHING_PENDING (no open request with that id) or ERR_ARGS_CHANGED (argsHash differs)' },
      },
      handler: async ({ c, params, body, user }) => {
        // The client checks the request is the open one and its arguments the ones the person saw.
        const out = await client.decide(params.id, decision, principalOf(user), body.requestId, body.argsHash);
        return accepted(c, { requestId: out.requestId });
      },
    });
  const control = (action: 'cancel' | 'pause' | 'resume') =>
    route({
      method: 'post',
      path: `/api/agents/:id/${action}`,
      tag: 'control',
      summary: action === 'cancel' ? 'Cancel the agent (and its children)' : action === 'pause' ? 'Pause the agent: events wait until it resumes' : 'Resume a paused agent',
      params: S.AgentIdParams,
      body: action === 'cancel' ? S.CancelBody : S.EmptyBody,
      responses: {
        202: { description: 'sent', schema: S.Accepted },
        404: { description: 'no such agent' },
        409: { description: 'the agent has ended (ERR_AGENT_ENDED)' },
      },
      handler: async ({ c, params, body, user }) => {
        await client.control(params.id, action, principalOf(user), (body as { reason?: string }).reason);
        return accepted(c);
      },
    });

  return [
    route({
      method: 'get',
      path: '/api/session',
      tag: 'session',
      summary: 'Who is signed in, and the CSRF value for cookie-authenticated POSTs',
      responses: { 200: { description: 'the session', schema: S.SessionResponse } },
      handler: ({ c, user }) => {
        const identity = c.get('identity');
        return c.json({ user, csrf: identity.session ? deps.auth.csrf(identity.session) : '' });
      },
    }),
    route({
      method: 'post',
      path: '/api/agents',
      tag: 'agents',
      summary: 'Submit a goal',
      body: S.SubmitBody,
      responses: {
        201: { description: 'a host took the goal (existing: the agentId given already existed)', schema: S.SubmitResponse },
        422: { description: 'the host refused the goal (its code)' },
        503: { description: 'no host answered (ERR_NO_HOST)' },
      },
      handler: async ({ c, body, user }) => {
        const { goal, ...options } = body;
        const out = await client.submit(goal, { ...options, submittedBy: principalOf(user) });
        // A host answers once the goal is published, before its first step has written the
        // record: wait (briefly) for it, so that every route asked about the agent next finds it
        // (the dashboard opens the agent's page at once; its events stream said 404 meanwhile).
        for (let waited = 0; waited < RECORD_WAIT_MS && !(await client.record(out.agentId)); waited += 50) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        return c.json(out, 201);
      },
    }),
    route({
      method: 'get',
      path: '/api/agents',
      tag: 'agents',
      summary: 'List agents, most recently updated first, a page at a time',
      query: S.ListQuery,
      responses: { 200: { description: 'a page; nextCursor when there are more', schema: S.ListResponse } },
      handler: async ({ c, query }) => {
        const split = (v: string | string[] | undefined) => (v === undefined ? [] : (Array.isArray(v) ? v : [v]).flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean));
        const labels = split(query.label).map((l): [string, string] => {
          const i = l.indexOf(':');
          if (i <= 0) throw new HttpError(400, GatewayErrorCode.Invalid, `label '${l}' must be key:value`);
          return [l.slice(0, i), l.slice(i + 1)];
        });
        const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
        if (query.cursor !== undefined && !after) throw new HttpError(400, GatewayErrorCode.Invalid, 'cursor is not one this API gave: use nextCursor of the previous page, or leave it out for the first');
        const all: ApiAgentSummary[] = await client.list({ limit: Number.MAX_SAFE_INTEGER });
        return c.json(page(all, { statuses: split(query.status), labels, agent: query.agent, q: query.q, limit: query.limit, after }));
      },
    }),
    route({
      method: 'get',
      path: '/api/agents/events',
      tag: 'events',
      summary: "Every agent's state, done and failed events (server-sent events)",
      description: 'Each message: `id` = the ERRAND_EVENTS sequence, `event` = the kind, `data` = the event with agentId. Resume with Last-Event-ID or ?after=; without either, from now on.',
      query: S.EventsQuery,
      responses: { 200: { description: 'an event stream', sse: true } },
      handler: ({ c, query }) => {
        const after = resumePoint(c, query.after);
        return sse(c, deps, (signal) => allAgentsEvents({ conn: deps.conn, prefix: deps.prefix, after, redactor: deps.redactor, signal }));
      },
    }),
    route({
      method: 'get',
      path: '/api/agents/:id',
      tag: 'agents',
      summary: 'One agent: its summary (with waiting) and its record\'s timers, pending commands and approvals',
      params: S.AgentIdParams,
      responses: { 200: { description: 'the agent', schema: S.AgentResponse }, 404: { description: 'no such agent (ERR_AGENT_NOT_FOUND)' } },
      handler: async ({ c, params }) => {
        const r = await mustRecord(params.id);
        return c.json({
          agent: summaryOf(r),
          record: deps.redactor.redactDeep({
            timers: r.timers,
            pending: r.pending,
            approvals: r.approvals ?? [],
            ...(r.origin ? { origin: r.origin } : {}),
            ...(r.parent ? { parent: r.parent } : {}),
            ...(r.trace ? { trace: r.trace } : {}),
          }),
        });
      },
    }),
    route({
      method: 'get',
      path: '/api/agents/:id/journal',
      tag: 'agents',
      summary: 'The agent\'s journal, each step once, secrets redacted as `errand export` does',
      params: S.AgentIdParams,
      responses: { 200: { description: 'the journal', schema: S.JournalResponse }, 404: { description: 'no such agent' } },
      handler: async ({ c, params }) => {
        const entries = await client.journal(params.id);
        return c.json({ entries: entries.map((e) => deps.redactor.redactDeep(e)) });
      },
    }),
    route({
      method: 'get',
      path: '/api/agents/:id/events',
      tag: 'events',
      summary: 'The agent\'s and its descendants\' progress events, stored then live (server-sent events)',
      description: 'Each message: `id` = the ERRAND_EVENTS sequence, `event` = the kind (event.plan…), `data` = the event with agentId. Resume with Last-Event-ID or ?after=: no gap, no repeat, across gateway restarts. Stays open after the agent ends.',
      params: S.AgentIdParams,
      query: S.EventsQuery,
      responses: { 200: { description: 'an event stream', sse: true }, 404: { description: 'no such agent' } },
      handler: async ({ c, params, query }) => {
        const after = resumePoint(c, query.after);
        await mustRecord(params.id);
        return sse(c, deps, (signal) =>
          agentTreeEvents({ conn: deps.conn, prefix: deps.prefix, rootId: params.id, after, record: (id) => client.record(id), redactor: deps.redactor, signal }),
        );
      },
    }),
    decide('approve'),
    decide('deny'),
    route({
      method: 'post',
      path: '/api/agents/:id/answer',
      tag: 'decisions',
      summary: 'Answer the agent\'s question',
      params: S.AgentIdParams,
      body: S.AnswerBody,
      responses: {
        202: { description: 'sent', schema: S.Accepted },
        404: { description: 'no such agent' },
        409: { description: 'ERR_NOTHING_PENDING (requestId is not the open question) or ERR_AGENT_ENDED' },
      },
      handler: async ({ c, params, body, user }) => {
        await client.answer(params.id, body.text, principalOf(user), body.requestId !== undefined ? { requestId: body.requestId } : {});
        return accepted(c);
      },
    }),
    route({
      method: 'post',
      path: '/api/agents/:id/tell',
      tag: 'decisions',
      summary: 'Tell a working agent something (interrupt: stop the step in flight)',
      params: S.AgentIdParams,
      body: S.TellBody,
      responses: { 202: { description: 'sent', schema: S.Accepted }, 404: { description: 'no such agent' }, 409: { description: 'the agent has ended (ERR_AGENT_ENDED)' } },
      handler: async ({ c, params, body, user }) => {
        await client.answer(params.id, body.text, principalOf(user), body.interrupt ? { interrupt: true } : {});
        return accepted(c);
      },
    }),
    control('cancel'),
    control('pause'),
    control('resume'),
    route({
      method: 'get',
      path: '/api/agents/:id/replay',
      tag: 'replay',
      summary: 'Replay the agent\'s journal (as `errand replay [--step N]`), verified when run to the end',
      params: S.AgentIdParams,
      query: S.ReplayQuery,
      responses: {
        200: { description: 'the replayed steps', schema: S.ReplayResponse },
        404: { description: 'no such agent' },
        422: { description: 'the journal cannot be replayed (its code: ERR_NO_SUCH_STEP, ERR_MACHINE_VERSION…)' },
        500: { description: "ERR_AGENT_MODULES: the gateway's ERRAND_AGENT_MODULES cannot be loaded" },
      },
      handler: async ({ c, params, query }) => {
        await mustRecord(params.id);
        const registry = await deps.registry();
        const { result, verification } = await client.replay(params.id, { registry, ...(query.step !== undefined ? { stopAt: query.step } : {}) });
        return c.json(
          deps.redactor.redactDeep({
            agentId: result.agentId,
            steps: result.steps.map((s) => ({ step: s.step, event: s.event, summary: describeEvent(s.event), state: s.state, status: s.status, commands: s.commands, matches: s.matches })),
            ...(verification ? { verification } : {}),
            ...(result.firstDivergence ? { firstDivergentStep: result.firstDivergence.step } : {}),
          }),
        );
      },
    }),
    route({
      method: 'post',
      path: '/api/agents/:id/fork',
      tag: 'replay',
      summary: 'Start a new agent from this one\'s state after step `at` (as `errand fork`)',
      params: S.AgentIdParams,
      body: S.ForkBody,
      responses: {
        201: { description: 'the fork was started', schema: S.ForkResponse },
        404: { description: 'no such agent' },
        422: { description: 'cannot fork there (ERR_NO_SUCH_STEP, ERR_CANNOT_FORK…)' },
        500: { description: "ERR_AGENT_MODULES: the gateway's ERRAND_AGENT_MODULES cannot be loaded" },
      },
      handler: async ({ c, params, body, user }) => {
        await mustRecord(params.id);
        const registry = await deps.registry();
        const { at, ...overrides } = body;
        const out = await client.fork(params.id, { registry, at, ...overrides, submittedBy: principalOf(user) });
        return c.json(out, 201);
      },
    }),
    route({
      method: 'get',
      path: '/api/diff',
      tag: 'replay',
      summary: 'Two runs side by side from where they diverge (as `errand diff`)',
      query: S.DiffQuery,
      responses: { 200: { description: 'the diff', schema: S.DiffResponse }, 404: { description: 'no such agent' } },
      handler: async ({ c, query }) => c.json(deps.redactor.redactDeep(await client.diff(query.a, query.b))),
    }),
    route({
      method: 'get',
      path: '/api/logs',
      tag: 'events',
      summary: 'The services\' shipped log lines (ERRAND_LOGS), stored then live (server-sent events, `event: log`)',
      query: S.LogsQuery,
      responses: { 200: { description: 'an event stream', sse: true } },
      handler: ({ c, query }) => {
        const after = resumePoint(c, query.after);
        const filter = { ...(query.service ? { service: query.service } : {}), ...(query.agent ? { agent: query.agent } : {}), ...(query.level ? { level: LOG_LEVELS[query.level]! } : {}) };
        return sse(c, deps, (signal) => logLines({ conn: deps.conn, prefix: deps.prefix, after, tail: query.tail, filter, redactor: deps.redactor, signal }));
      },
    }),
  ];
}

/** Routes other modules serve, documented in the same table. */
export const mountedRoutes: RouteSpec[] = [
  route({
    method: 'get',
    path: '/api/system',
    tag: 'system',
    summary: 'Services alive with versions and replicas, consumer backlogs, dead letters, the server and its durability',
    responses: { 200: { description: 'the system (see docs/gateway.md)', schema: z.looseObject({ server: z.unknown(), services: z.array(z.unknown()), replicas: z.record(z.string(), z.number()), consumers: z.array(z.unknown()), dlq: z.array(z.unknown()) }) } },
  }),
  route({
    method: 'post',
    path: '/slack/:channel/actions',
    tag: 'callbacks',
    auth: 'none',
    summary: "Slack's interactivity requests (button presses), verified with the channel's signing secret",
    params: z.object({ channel: z.string() }),
    responses: { 200: { description: 'taken' }, 401: { description: 'the Slack signature does not verify' } },
  }),
  route({
    method: 'post',
    path: '/telegram/:channel/webhook',
    tag: 'callbacks',
    auth: 'none',
    summary: "Telegram's webhook updates, verified with the channel's secret token",
    params: z.object({ channel: z.string() }),
    responses: { 200: { description: 'taken' }, 401: { description: 'the secret token does not match' } },
  }),
];

export type { GatewayEnv };
