import {
  CodecError,
  decodeMessage,
  decodeRecord,
  encodeMessage,
  ErrandError,
  formatOf,
  Header,
  MESSAGE_VERSION,
  silentLogger,
  type Logger,
  type Message,
  type NotifyRule,
  type Subjects,
  type WireFormat,
} from '@errand/protocols';
import { startSpan, TRACEPARENT, traceIdOf, traceparentFrom } from '@errand/telemetry';
import { deadLetter, headers, type DeadLetterTarget, type JetStreamClient, type KV, type Msg, type NatsConnection, type Subscription } from '@errand/nats';
import type { AgentRegistry } from './agent-definition.js';
import { readCatalog, toolsForGoal, type LiveTool } from './catalog.js';
import { newAgentId } from './ids.js';

/** How stale the tool catalog intake hands to goals may be (runners heartbeat every 5 s). */
const CATALOG_MAX_AGE_MS = 2000;

export interface IntakeOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  agents: KV;
  /** The tool catalog: goals get the live tools they may use (unless they bring their own). */
  tools: KV | undefined;
  /** Notification rules for goals that bring none. */
  defaultNotify: NotifyRule[];
  subjects: Subjects;
  registry: AgentRegistry;
  deadLetter: DeadLetterTarget;
  logger: Logger;
  /** Queue group shared by every host, so each request is answered once. */
  queue: string;
  now: () => number;
}

/**
 * Answers goal submissions on `errand.submit`: validates the goal, assigns an agent id (or takes
 * the caller's, which makes the submit idempotent), writes the goal to the agent's inbox and
 * replies with the id — as JSON when the request was JSON. A request that does not decode is
 * answered with the reason and dead-lettered.
 */
export function startIntake(options: Pick<IntakeOptions, 'nc' | 'js' | 'agents' | 'subjects' | 'registry' | 'deadLetter'> & Partial<IntakeOptions>): Subscription {
  const o = { logger: silentLogger, queue: 'errand-host', now: Date.now, tools: undefined, defaultNotify: [], ...options };
  const log = o.logger.child({ component: 'intake' });

  // The catalog changes at heartbeat pace (seconds); reading every key of it for each submit would
  // put a scan of the bucket on the intake path. Read it at most every CATALOG_MAX_AGE_MS.
  let catalog: { at: number; tools: LiveTool[] } | undefined;
  const liveCatalog = async (kv: KV): Promise<LiveTool[]> => {
    const now = o.now();
    if (!catalog || now - catalog.at > CATALOG_MAX_AGE_MS) catalog = { at: now, tools: await readCatalog(kv, now) };
    return catalog.tools;
  };

  const reply = (msg: Msg, format: WireFormat, body: Message<'submit.reply'>) => {
    if (!msg.reply) return;
    const encoded = encodeMessage(body, { format });
    const h = headers();
    if (encoded.contentType) h.set(Header.ContentType, encoded.contentType);
    msg.respond(encoded.data, { headers: h });
  };

  const handle = async (msg: Msg): Promise<void> => {
    const contentType = msg.headers?.get(Header.ContentType);
    let format: WireFormat = 'json';
    try {
      format = formatOf(contentType, msg.data);
      const request = decodeMessage(msg.data, { contentType, expect: 'submit.request' });
      const agent = request.agent ?? o.registry.defaultAgent;
      if (!o.registry.has(agent)) {
        throw new ErrandError('ERR_UNKNOWN_AGENT', `no agent '${agent}' is registered (known: ${o.registry.list().map((d) => d.id).join(', ')})`);
      }
      const agentId = request.agentId ?? newAgentId(o.now());
      const found = request.agentId === undefined ? null : await o.agents.get(agentId);
      if (found?.operation === 'PUT') {
        let traceId: string | undefined;
        try {
          traceId = traceIdOf(decodeRecord(found.value).trace);
        } catch {
          traceId = undefined; // a record this host cannot read: it exists all the same
        }
        reply(msg, format, { v: MESSAGE_VERSION, kind: 'submit.reply', agentId, existing: true, ...(traceId ? { traceId } : {}) });
        return;
      }
      const { v: _v, kind: _k, agentId: _a, ...goal } = request;
      if (o.tools && goal.input?.toolDefinitions === undefined) {
        const overrides = (goal.input?.toolPolicies ?? {}) as Record<string, 'auto' | 'ask' | 'deny'>;
        const { definitions, policies, timeouts, askIfArgs } = toolsForGoal(await liveCatalog(o.tools), goal.tools, overrides);
        goal.input = { ...goal.input, toolDefinitions: definitions, toolPolicies: policies, toolTimeouts: timeouts, toolAskIfArgs: askIfArgs };
      }
      if (goal.notify === undefined && o.defaultNotify.length) goal.notify = o.defaultNotify;
      const message: Message<'goal'> = { v: MESSAGE_VERSION, kind: 'goal', agentId, ...goal, agent, at: o.now() };
      // The goal's trace starts at the submitter (or here): every step and command of the agent joins it.
      const span = startSpan('errand.submit', traceparentFrom(msg.headers), { 'errand.agent_id': agentId, 'errand.agent': agent });
      const h = headers();
      h.set(TRACEPARENT, span.traceparent);
      try {
        await o.js.publish(o.subjects.agentIn(agentId, 'goal'), encodeMessage(message).data, { msgID: `goal:${agentId}`, headers: h });
      } finally {
        span.end();
      }
      log.info({ agentId, agent, traceId: span.traceId }, 'goal accepted');
      reply(msg, format, { v: MESSAGE_VERSION, kind: 'submit.reply', agentId, traceId: span.traceId });
    } catch (err) {
      const code = err instanceof ErrandError ? err.code : 'ERR_INTERNAL';
      const message = err instanceof Error ? err.message : String(err);
      reply(msg, format, { v: MESSAGE_VERSION, kind: 'submit.reply', error: { code, message } });
      if (err instanceof CodecError) {
        await deadLetter(o.deadLetter, { subject: msg.subject, data: msg.data, headers: msg.headers }, err).catch((e: unknown) =>
          log.error({ err: e }, 'could not dead-letter a bad submit request'),
        );
        log.warn({ code }, `submit refused: ${message}`);
      } else if (!(err instanceof ErrandError)) {
        log.error({ err }, 'submit failed');
      }
    }
  };

  return o.nc.subscribe(o.subjects.submit(), {
    queue: o.queue,
    callback: (err, msg) => {
      if (err) {
        log.error({ err }, 'submit subscription failed');
        return;
      }
      void handle(msg);
    },
  });
}
