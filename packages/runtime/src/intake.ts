import {
  CodecError,
  decodeMessage,
  effectKeys,
  encodeMessage,
  ErrandError,
  ErrorCode,
  formatOf,
  Header,
  MAX_GOAL_DEPTH,
  MESSAGE_VERSION,
  messageIds,
  newAgentId,
  patternRedactor,
  silentLogger,
  type Logger,
  type Message,
  type NotifyRule,
  type Redactor,
  type Subjects,
  type WireFormat,
} from '@errand/protocols';
import { startSpan, traceIdOf, traceparentFrom } from '@errand/telemetry';
import { deadLetter, headers, type IdentityProver, type IdentityVerifier, isPassingFailure, isRevisionConflict, publishMessage, readRecord, type DeadLetterTarget, type JetStreamClient, type KV, type Msg, type NatsConnection, type Subscription } from '@errand/nats';
import type { AgentRegistry } from '@errand/core';
import { attribute } from './attribution.js';
import { readCatalog, toolsForGoal, type LiveTool } from './catalog.js';
import type { CrashHook } from './crash-points.js';

/** How stale the tool catalog intake hands to goals may be (runners heartbeat every 5 s). */
const CATALOG_MAX_AGE_MS = 2000;

/**
 * Goal input that says what tools may do. Only the catalog sets these: a submitter's values are
 * replaced (a `toolPolicies` entry may only make a tool stricter), so no goal can switch an
 * approval off.
 */
const CATALOG_INPUT_KEYS = ['toolDefinitions', 'toolPolicies', 'toolTimeouts', 'toolAskIfArgs'] as const;

/**
 * A submit claim older than this whose goal never reached the agents bucket is taken over: the
 * host that claimed it died before publishing (publishing takes milliseconds). The goal's
 * message id still makes a late publish of the first a duplicate.
 */
const CLAIM_STALE_MS = 30_000;

/** The effects-bucket key that claims an agent id for the first submit (two tokens: no command key has so few). */
const claimKey = effectKeys.intakeClaim;

export interface IntakeOptions {
  nc: NatsConnection;
  js: JetStreamClient;
  agents: KV;
  /**
   * The tool catalog: goals get the live tools they may use, with the catalog's policies. Without
   * it, a goal that brings its own tool definitions or policies is refused.
   */
  tools: KV | undefined;
  /**
   * The effects bucket: a submit with a chosen agent id claims it there (an atomic create holding
   * the trace id), so of two simultaneous submits exactly one starts the agent and the other is
   * told it exists. Without it, only the goal's message id de-duplicates.
   */
  effects: KV | undefined;
  /** Notification rules for goals that bring none. */
  defaultNotify: NotifyRule[];
  subjects: Subjects;
  registry: AgentRegistry;
  deadLetter: DeadLetterTarget;
  logger: Logger;
  /** Queue group shared by every host, so each request is answered once. */
  queue: string;
  now: () => number;
  /** Removes secrets from the goal text and input before anything stores or plans with them; patterns only unless given. */
  redactor?: Redactor;
  /** Who submitted, from the proof on the request (see attribution.ts); without it, the claim. */
  identities?: IdentityVerifier;
  /**
   * Proves this host published the goals it takes in, so the host that runs each one keeps the
   * `submittedBy` attributed here (a goal published straight to an inbox is attributed there).
   */
  prover?: Pick<IdentityProver, 'prove'> | undefined;
  /** Goals one identity may submit (per host): refused with `ERR_RATE_LIMITED` beyond it. */
  submitRate: SubmitRate;
  /** Called at `intake.after-claim` (the host SIGKILLs itself there when ERRAND_CRASH_AT says so). */
  crash: CrashHook;
}

/** A per-identity limit on goals: `perMinute` on average, `burst` at once; 0 per minute: no limit. */
export interface SubmitRate {
  perMinute: number;
  burst: number;
}

export const DEFAULT_SUBMIT_RATE: SubmitRate = { perMinute: 6000, burst: 1000 };

/** Token buckets by key, refilled continuously; the least recently used are forgotten past 10,000 keys. */
function rateLimiter(rate: SubmitRate, now: () => number): (key: string) => { ok: true } | { ok: false; retryAfterMs: number } {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const perMs = rate.perMinute / 60_000;
  return (key) => {
    if (rate.perMinute <= 0) return { ok: true };
    const t = now();
    const b = buckets.get(key) ?? { tokens: rate.burst, at: t };
    b.tokens = Math.min(rate.burst, b.tokens + (t - b.at) * perMs);
    b.at = t;
    buckets.delete(key);
    buckets.set(key, b);
    if (buckets.size > 10_000) buckets.delete(buckets.keys().next().value!);
    if (b.tokens < 1) return { ok: false, retryAfterMs: Math.ceil((1 - b.tokens) / perMs) };
    b.tokens -= 1;
    return { ok: true };
  };
}

/**
 * Answers goal submissions on `errand.submit`: validates the goal, assigns an agent id (or takes
 * the caller's, which makes the submit idempotent), writes the goal to the agent's inbox and
 * replies with the id — as JSON when the request was JSON. A request that does not decode is
 * answered with the reason and dead-lettered.
 */
export function startIntake(options: Pick<IntakeOptions, 'nc' | 'js' | 'agents' | 'subjects' | 'registry' | 'deadLetter'> & Partial<IntakeOptions>): Subscription {
  const o = { logger: silentLogger, queue: 'errand-host', now: Date.now, tools: undefined, effects: undefined, defaultNotify: [], submitRate: DEFAULT_SUBMIT_RATE, crash: () => {}, ...options };
  const log = o.logger.child({ component: 'intake' });
  const admit = rateLimiter(o.submitRate, o.now);

  // The catalog changes at heartbeat pace (seconds); reading every key of it for each submit would
  // put a scan of the bucket on the intake path. Read it at most every CATALOG_MAX_AGE_MS.
  let catalog: { at: number; tools: LiveTool[] } | undefined;
  const liveCatalog = async (kv: KV): Promise<LiveTool[]> => {
    if (!catalog || o.now() - catalog.at > CATALOG_MAX_AGE_MS) return freshCatalog(kv);
    return catalog.tools;
  };
  // The catalog is read through the stream leader: replicated buckets allow direct gets, which a
  // replica that lags may answer — the first goals of a new cluster got no tools that way. A goal
  // naming a tool the cached copy lacks (a runner that just started) reads it afresh too.
  // Submits that read at the same time share one read.
  let fresh: Promise<LiveTool[]> | undefined;
  let leader: ReturnType<JetStreamClient['jetstreamManager']> | undefined;
  const freshCatalog = (kv: KV): Promise<LiveTool[]> => {
    fresh ??= (async () => {
      leader ??= o.js.jetstreamManager(false);
      const now = o.now();
      const tools = await readCatalog(kv, now, await leader);
      catalog = { at: now, tools };
      return tools;
    })().finally(() => {
      fresh = undefined;
    });
    return fresh;
  };

  const reply = (msg: Msg, format: WireFormat, body: Message<'submit.reply'>) => {
    if (!msg.reply) return;
    const encoded = encodeMessage(body, { format });
    const h = headers();
    if (encoded.contentType) h.set(Header.ContentType, encoded.contentType);
    msg.respond(encoded.data, { headers: h });
  };

  const existingReply = (agentId: string, traceId: string | undefined): Message<'submit.reply'> => ({
    v: MESSAGE_VERSION,
    kind: 'submit.reply',
    agentId,
    existing: true,
    ...(traceId ? { traceId } : {}),
  });

  /** The trace of the agent's record, '' for a record this host cannot read, undefined when there is none. */
  const existingTrace = async (agentId: string): Promise<string | undefined> => {
    try {
      const found = await readRecord(o.agents, agentId);
      return found === undefined ? undefined : (traceIdOf(found.trace) ?? '');
    } catch (err) {
      if (err instanceof CodecError) return ''; // a record this host cannot read: it exists all the same
      throw err;
    }
  };

  /**
   * Claims `agentId` for this submit with an atomic create in the effects bucket. Not ours: the
   * first submit's trace. A stale claim whose goal never arrived is taken over by compare-and-set
   * (`earlier` then names the trace it held, in case its goal was published after all).
   */
  const claim = async (agentId: string, traceId: string): Promise<{ ours: true; earlier?: string } | { ours: false; traceId: string | undefined }> => {
    if (!o.effects) return { ours: true };
    const key = claimKey(agentId);
    const value = JSON.stringify({ traceId, at: o.now() });
    try {
      await o.effects.create(key, value);
      return { ours: true };
    } catch (err) {
      if (!isRevisionConflict(err)) throw err;
    }
    const held = await o.effects.get(key);
    if (held?.operation !== 'PUT') return { ours: false, traceId: undefined }; // removed meanwhile: the record is there or coming
    let first: { traceId?: unknown; at?: unknown } = {};
    try {
      first = held.json<typeof first>();
    } catch {
      // not ours to read: it is a claim all the same
    }
    const firstTrace = typeof first.traceId === 'string' ? first.traceId : undefined;
    const stale = typeof first.at === 'number' && o.now() - first.at > CLAIM_STALE_MS && (await existingTrace(agentId)) === undefined;
    if (stale) {
      try {
        await o.effects.update(key, value, held.revision);
        return { ours: true, ...(firstTrace ? { earlier: firstTrace } : {}) };
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
        const taken = await o.effects.get(key);
        try {
          const t = taken?.operation === 'PUT' ? taken.json<{ traceId?: unknown }>().traceId : undefined;
          return { ours: false, traceId: typeof t === 'string' ? t : firstTrace };
        } catch {
          return { ours: false, traceId: firstTrace };
        }
      }
    }
    return { ours: false, traceId: (await existingTrace(agentId)) || firstTrace };
  };

  /**
   * The goal's input with the tool keys set from the live catalog: definitions, timeouts and
   * askIfArgs exactly as the catalog says; policies as the catalog says unless the goal's
   * `toolPolicies` asks for stricter. Without a catalog a goal that brings any of them is refused.
   */
  const withCatalogTools = async (input: Record<string, unknown> | undefined, allowed: readonly string[] | undefined): Promise<Record<string, unknown> | undefined> => {
    const brought = CATALOG_INPUT_KEYS.filter((k) => input?.[k] !== undefined);
    if (!o.tools) {
      if (!brought.length) return input;
      throw new ErrandError(
        'ERR_NO_CATALOG',
        `this host has no tool catalog to check ${brought.map((k) => `input.${k}`).join(', ')} against, and tools and their policies come only from the catalog: leave them out, or submit to a host that reads the catalog`,
      );
    }
    const { toolDefinitions, toolPolicies, toolTimeouts: _t, toolAskIfArgs: _a, ...rest } = input ?? {};
    const stricter: Record<string, 'ask' | 'deny'> = {};
    if (toolPolicies !== null && typeof toolPolicies === 'object' && !Array.isArray(toolPolicies)) {
      for (const [name, policy] of Object.entries(toolPolicies)) {
        if (policy === 'ask' || policy === 'deny') stricter[name] = policy;
        else if (policy !== 'auto') throw new ErrandError('ERR_INVALID', `input.toolPolicies.${name} is ${JSON.stringify(policy)}; a goal may ask for 'ask' or 'deny' (a tool can be made stricter than the catalog, never looser)`);
      }
    }
    if (brought.some((k) => k !== 'toolPolicies')) log.info({ ignored: brought }, "a goal's own tool definitions/timeouts/askIfArgs were replaced by the catalog's");
    // A goal that names a tool the cached catalog lacks reads it afresh (see freshCatalog). A tool
    // the goal lists in `tools` that no live runner serves even then refuses the submit: an agent
    // silently given fewer tools fails later, told only that the tool does not exist.
    const named = [...(allowed ?? []), ...(Array.isArray(toolDefinitions) ? toolDefinitions.map((t) => (t as { name?: unknown })?.name) : [])];
    const lacks = (tools: LiveTool[], n: unknown) => typeof n === 'string' && !tools.some((t) => t.definition.name === n && t.runners.length > 0);
    let live = await liveCatalog(o.tools);
    // So does one with a tool no runner seems to serve: a replica that lags may hold old heartbeats.
    if (named.some((n) => lacks(live, n)) || live.some((t) => t.runners.length === 0)) live = await freshCatalog(o.tools);
    const missing = [...new Set((allowed ?? []).filter((n) => lacks(live, n)))];
    if (missing.length) {
      const silent = missing.filter((n) => live.some((t) => t.definition.name === n));
      const unknown = missing.filter((n) => !silent.includes(n));
      const why = [
        ...(unknown.length ? [`${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} not in the tool catalog`] : []),
        ...(silent.length ? [`${silent.join(', ')} ${silent.length === 1 ? 'has' : 'have'} no live tool-runner (none heartbeating)`] : []),
      ].join('; ');
      log.warn({ missing, unknown, silent }, 'submit refused: the goal names tools no live runner serves');
      throw new ErrandError(
        'ERR_UNKNOWN_TOOL',
        `the goal names tools no live tool-runner serves: ${why}. Start a tool-runner that serves ${missing.join(', ')} (\`errand status\` lists the live services), or leave ${missing.length === 1 ? 'it' : 'them'} out of the goal's tools`,
      );
    }
    const { definitions, policies, timeouts, askIfArgs } = toolsForGoal(live, allowed, stricter);
    return { ...rest, toolDefinitions: definitions, toolPolicies: policies, toolTimeouts: timeouts, toolAskIfArgs: askIfArgs };
  };

  const handle = async (msg: Msg): Promise<void> => {
    const contentType = msg.headers?.get(Header.ContentType);
    let format: WireFormat = 'json';
    try {
      format = formatOf(contentType, msg.data);
      const request = decodeMessage(msg.data, { contentType, expect: 'submit.request', maxDepth: MAX_GOAL_DEPTH });
      const who = attribute(o.identities, msg.data, msg.headers, request.submittedBy);
      const admitted = admit(who.key);
      if (!admitted.ok) {
        throw new ErrandError(
          'ERR_RATE_LIMITED',
          `too many goals from ${who.key}: at most ${o.submitRate.perMinute} a minute (bursts of ${o.submitRate.burst}); try again in ${Math.ceil(admitted.retryAfterMs / 1000)} s`,
        );
      }
      if (who.principal) request.submittedBy = who.principal;
      const agent = request.agent ?? o.registry.defaultAgent;
      if (!o.registry.has(agent)) {
        throw new ErrandError('ERR_UNKNOWN_AGENT', `no agent '${agent}' is registered (known: ${o.registry.list().map((d) => d.id).join(', ')})`);
      }
      const agentId = request.agentId ?? newAgentId(o.now());
      if (request.agentId !== undefined) {
        const traceId = await existingTrace(agentId);
        if (traceId !== undefined) return reply(msg, format, existingReply(agentId, traceId));
      }
      const { v: _v, kind: _k, agentId: _a, ...goal } = request;
      // A secret pasted into a goal reaches neither the model nor the record, journal or events.
      const redactor = o.redactor ?? patternRedactor;
      goal.goal = redactor.redact(goal.goal);
      if (goal.input !== undefined) goal.input = redactor.redactDeep(goal.input);
      goal.input = await withCatalogTools(goal.input, goal.tools);
      if (goal.notify === undefined && o.defaultNotify.length) goal.notify = o.defaultNotify;
      const message: Message<'goal'> = { v: MESSAGE_VERSION, kind: 'goal', agentId, ...goal, agent, at: o.now() };
      // The goal's trace starts at the submitter (or here): every step and command of the agent joins it.
      const span = startSpan('errand.submit', traceparentFrom(msg.headers), { 'errand.agent_id': agentId, 'errand.agent': agent });
      try {
        let earlier: string | undefined;
        if (request.agentId !== undefined) {
          const claimed = await claim(agentId, span.traceId);
          if (!claimed.ours) {
            // Claimed by an earlier submit, but is its goal published? Its host may have died
            // between claim and publish, or its publish failed and the claim could not be given
            // back: then no goal would ever come, though every resend is told the agent exists.
            // So publish the goal again under the same message id: JetStream drops it if the first
            // got through (within its duplicate window), and a host acks a goal for an agent whose
            // record exists without applying it (decide: 'a goal for an agent that already exists').
            // It joins the first submit's trace, so every answer names the trace the agent has.
            if ((await existingTrace(agentId)) === undefined) {
              const first = claimed.traceId && /^[0-9a-f]{32}$/.test(claimed.traceId) ? claimed.traceId : undefined;
              const traceparent = first ? `00-${first}-${span.traceparent.split('-')[2]}-01` : span.traceparent;
              const ack = await publishMessage(o.js, o.subjects.agentIn(agentId, 'goal'), message, { msgId: messageIds.goal(agentId), traceparent, prover: o.prover });
              if (!ack.duplicate) log.warn({ agentId, traceId: first ?? span.traceId }, 'a claimed submit had not published its goal (its host died or its publish failed): published it now');
              if (!first) return reply(msg, format, existingReply(agentId, span.traceId));
            }
            return reply(msg, format, existingReply(agentId, claimed.traceId));
          }
          earlier = claimed.earlier;
          o.crash('intake.after-claim');
        }
        let ack;
        try {
          ack = await publishMessage(o.js, o.subjects.agentIn(agentId, 'goal'), message, { msgId: messageIds.goal(agentId), traceparent: span.traceparent, prover: o.prover });
        } catch (err) {
          // Give the id back, so the caller's retry is not told the agent exists when it may not.
          if (request.agentId !== undefined) await o.effects?.delete(claimKey(agentId)).catch(() => {});
          throw err;
        }
        if (ack.duplicate) {
          // The goal was published before (by a submit whose claim has expired or died, or a
          // parent's delegation): this one was dropped, so say so, with the first trace if known.
          log.info({ agentId }, 'submit of an agent whose goal was already published');
          return reply(msg, format, existingReply(agentId, (await existingTrace(agentId)) ?? earlier));
        }
      } finally {
        span.end();
      }
      log.info({ agentId, agent, traceId: span.traceId }, 'goal accepted');
      reply(msg, format, { v: MESSAGE_VERSION, kind: 'submit.reply', agentId, traceId: span.traceId });
    } catch (err) {
      // What is not a refusal of the goal itself failed on the way (JetStream not enabled or
      // without a leader while a node restarts, a consumer offline, a timeout): labelled passing,
      // so a client sends the same submit (same agent id) again. A bug in this code is not.
      const passing = isPassingFailure(err);
      const code = err instanceof ErrandError ? err.code : passing ? ErrorCode.Unavailable : 'ERR_INTERNAL';
      const cause = err instanceof Error ? err.message : String(err);
      const message = passing ? `${cause} (a passing failure of the submit path: send the same submit, with the same agentId, again shortly)` : cause;
      reply(msg, format, { v: MESSAGE_VERSION, kind: 'submit.reply', error: { code, message } });
      if (err instanceof CodecError) {
        await deadLetter(o.deadLetter, { subject: msg.subject, data: msg.data, headers: msg.headers }, err).catch((e: unknown) =>
          log.error({ err: e }, 'could not dead-letter a bad submit request'),
        );
        log.warn({ code }, `submit refused: ${message}`);
      } else if (passing) {
        log.warn({ err, code }, `submit refused for a passing failure: ${cause}`);
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
