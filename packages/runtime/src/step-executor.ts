import {
  contentTypeOf,
  encodeRecord,
  Header,
  isEndingEvent,
  silentLogger,
  TERMINAL_STATUSES,
  WORK_MESSAGE_KINDS,
  type AgentRecord,
  type CommandSigner,
  type InboxMessage,
  type Logger,
  type MessageInput,
  type Subjects,
  type WireFormat,
} from '@errand/protocols';
import { isRevisionConflict, publishMessage, readStoredRecord, type IdentityProver, type JetStreamClient, type KV } from '@errand/nats';
import { metrics, startSpan, type ErrandSpan } from '@errand/telemetry';
import { decide, RuntimeError, RuntimeErrorCode, type AgentRegistry, type Decision } from '@errand/core';
import type { CrashHook } from './crash-points.js';

export interface StepExecutorOptions {
  js: JetStreamClient;
  /** The `errand_agents` bucket. */
  agents: KV;
  subjects: Subjects;
  registry: AgentRegistry;
  logger: Logger;
  crash: CrashHook;
  now: () => number;
  /**
   * Records kept in memory, of agents about to step again (a command or a timer due soon); the KV
   * revision fences a stale one. An agent that waits for a person or a far timer is read from KV
   * when it moves, so thousands of waiting agents cost a host no memory to speak of.
   */
  cacheSize: number;
  /** A timer due within this many ms keeps its agent's record in memory. */
  cacheTimersWithinMs: number;
  /** Compare-and-set attempts before giving the message back for redelivery. */
  maxAttempts: number;
  /**
   * Signs every work command (plan, tool, notify, timer) as it is published, so workers can refuse
   * commands no host issued. Without it commands go unsigned (and a tool-runner refuses them).
   */
  signer?: CommandSigner | undefined;
  /**
   * Proves this host sent the goals and control messages its steps send (a parent agent starting
   * and cancelling its children): the child's host believes them only from a host. Without
   * credentials, none.
   */
  prover?: Pick<IdentityProver, 'prove'> | undefined;
  /**
   * How progress events (`<prefix>.agent.<id>.ev.*`) are written: msgpack (default) or JSON, for
   * readers that have no msgpack. Either way each event says which in its `Content-Type` header.
   */
  eventFormat: WireFormat;
}

const WORK_KINDS: ReadonlySet<string> = new Set(WORK_MESSAGE_KINDS);
const REPUBLISHED: Readonly<Record<string, string>> = { [Header.Republished]: '1' };
const NO_HEADERS: Readonly<Record<string, string>> = {};

interface Loaded {
  record: AgentRecord;
  revision: number;
  /** From this host's cache: its outbox is known to be published. */
  cached: boolean;
}

/** What one step did, for logs and metrics. */
export type StepOutcome = Decision['type'];

/**
 * Runs steps: load → decide (pure) → commit with compare-and-set → publish the outbox. Steps for one
 * agent are serialized within this process; across processes the KV revision decides, and the loser
 * reloads and decides again. The caller acks the inbox message after `run` returns.
 */
export class StepExecutor {
  private readonly o: StepExecutorOptions;
  private readonly cache = new Map<string, { record: AgentRecord; revision: number }>();
  /**
   * The revision whose outbox this process published, by agent (kept after the record leaves the
   * cache; about 100 bytes each): a record read back at that revision needs no re-publishing.
   */
  private readonly published = new Map<string, number>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly eventHeaders: Readonly<Record<string, string>>;

  constructor(options: Pick<StepExecutorOptions, 'js' | 'agents' | 'subjects' | 'registry'> & Partial<StepExecutorOptions>) {
    this.o = { logger: silentLogger, crash: () => {}, now: Date.now, cacheSize: 10_000, cacheTimersWithinMs: 60_000, maxAttempts: 20, eventFormat: 'msgpack', ...options };
    this.eventHeaders = { [Header.ContentType]: contentTypeOf(this.o.eventFormat) };
  }

  /**
   * Applies one inbox message to its agent. `traceparent` is the message's trace context (the
   * agent's own trace is used when it has none). Throws {@link RuntimeError} when it cannot be
   * applied here.
   */
  async run(message: InboxMessage, inboxId: string, traceparent?: string): Promise<StepOutcome> {
    const agentId = message.agentId;
    const started = performance.now();
    const seen: { machine?: string; span?: ErrandSpan } = {};
    try {
      const outcome = await this.serialized(agentId, () => this.step(message, inboxId, traceparent, seen));
      metrics.steps.inc({ agent: seen.machine ?? 'unknown', outcome });
      metrics.stepSeconds.observe({ outcome }, (performance.now() - started) / 1000);
      seen.span?.end();
      return outcome;
    } catch (err) {
      metrics.steps.inc({ agent: seen.machine ?? 'unknown', outcome: 'error' });
      seen.span?.end(err);
      throw err;
    }
  }

  private async step(message: InboxMessage, inboxId: string, traceparent: string | undefined, seen: { machine?: string; span?: ErrandSpan }): Promise<StepOutcome> {
    const { agentId } = message;
    let log = this.o.logger;
    for (let attempt = 1; ; attempt++) {
      const loaded = await this.load(agentId, attempt > 1);
      this.o.crash('host.after-load');
      if (!seen.span) {
        seen.span = startSpan('errand.step', traceparent ?? loaded?.record.trace, { 'errand.agent_id': agentId, 'errand.event': message.kind });
        log = this.o.logger.child({ agentId, traceId: seen.span.traceId });
      }
      const span = seen.span;
      seen.machine = loaded?.record.machine.id ?? seen.machine;
      // A record read from KV may carry an outbox whose publishing a crash interrupted. It is
      // published (again: consumers de-duplicate) before a new step can replace it.
      if (loaded && !loaded.cached && this.published.get(agentId) !== loaded.revision) await this.publish(loaded.record, true);

      const decision = decide(loaded?.record, message, { agentId, inboxId, now: this.o.now(), subjects: this.o.subjects, registry: this.o.registry });
      this.o.crash('host.after-transition');
      if (decision.type !== 'commit') {
        // Dropping a message on the word of a cached record is not safe: another host may have
        // moved the agent on (started the timer that is firing, say). Decide again on a fresh read.
        if (loaded?.cached) continue;
        if (decision.type === 'ignore' && decision.refused) log.warn({ inboxId, kind: message.kind, reason: decision.reason }, `message refused: ${decision.reason}`);
        else if (decision.type === 'ignore') log.debug({ inboxId, kind: message.kind, reason: decision.reason }, 'message ignored');
        else log.debug({ inboxId, kind: message.kind }, 'message already applied');
        return decision.type;
      }

      // The step's trace context goes on the record (for a new agent) and on every command it sends.
      if (decision.created) decision.record.trace = traceparent ?? span.traceparent;
      for (const entry of decision.record.outbox) entry.traceparent ??= span.traceparent;
      seen.machine = decision.record.machine.id;
      span.setAttributes({ 'errand.step': decision.record.step, 'errand.machine': decision.record.machine.id });

      let revision: number;
      try {
        const data = encodeRecord(decision.record);
        revision = decision.created ? await this.o.agents.create(agentId, data) : await this.o.agents.update(agentId, data, loaded!.revision);
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
        this.cache.delete(agentId);
        if (attempt >= this.o.maxAttempts) {
          throw new RuntimeError(RuntimeErrorCode.Contention, `lost the compare-and-set ${attempt} times in a row`, { agentId, cause: err });
        }
        log.debug({ inboxId, attempt }, 'another host wrote first; reloading');
        continue;
      }
      this.o.crash('host.after-commit');
      try {
        await this.publish(decision.record);
        for (const entry of decision.record.outbox) metrics.commandsPublished.inc({ kind: entry.message.kind });
      } catch (err) {
        this.cache.delete(agentId);
        throw err;
      }
      this.o.crash('host.after-publish');
      this.remember(agentId, decision.record, revision);
      const r = decision.record;
      log.debug({ step: r.step, kind: message.kind, status: r.status, commands: r.outbox.length }, 'step committed');
      if (r.status === 'failed' && r.error) log.warn({ step: r.step, code: r.error.code }, `agent failed: ${r.error.message}`);
      return 'commit';
    }
  }

  /**
   * Publishes a record's outbox, each command under its idempotency key, work commands signed,
   * events in the deployment's event format with their `Content-Type`. The event that ends the
   * agent goes out only once the rest of the step is stored, so it is the agent's last event: a
   * follower that stops there has missed nothing (a step's other messages go out together, and a
   * retried publish could land after a later one).
   * `again`: the outbox of a stored record, which may have gone out before — its commands say so
   * (a worker then looks for their recorded result before running them).
   */
  private async publish(record: AgentRecord, again = false): Promise<void> {
    const ending = record.outbox.filter((entry) => isEndingEvent(entry.message));
    const rest = ending.length === 0 ? record.outbox : record.outbox.filter((entry) => !isEndingEvent(entry.message));
    await Promise.all(rest.map((entry) => this.send(entry, again)));
    if (ending.length > 0) await Promise.all(ending.map((entry) => this.send(entry, again)));
  }

  private send(entry: AgentRecord['outbox'][number], again: boolean): Promise<unknown> {
    const kind = entry.message.kind;
    if (kind.startsWith('event.')) {
      return publishMessage(this.o.js, entry.subject, entry.message as MessageInput, {
        msgId: entry.msgId,
        traceparent: entry.traceparent,
        format: this.o.eventFormat,
        headers: this.eventHeaders,
      });
    }
    const work = WORK_KINDS.has(kind);
    // The exact bytes published are what is signed and proved: a re-published outbox is signed again.
    return publishMessage(this.o.js, entry.subject, entry.message as MessageInput, {
      msgId: entry.msgId,
      traceparent: entry.traceparent,
      signer: work ? this.o.signer : undefined,
      prover: kind === 'control' || kind === 'goal' ? this.o.prover : undefined,
      headers: again && work ? REPUBLISHED : NO_HEADERS,
    });
  }

  private async load(agentId: string, fresh: boolean): Promise<Loaded | undefined> {
    const hit = fresh ? undefined : this.cache.get(agentId);
    if (hit) return { ...hit, cached: true };
    const stored = await readStoredRecord(this.o.agents, agentId);
    return stored && { ...stored, cached: false };
  }

  private remember(agentId: string, record: AgentRecord, revision: number): void {
    this.cache.delete(agentId);
    if (this.soonActive(record)) {
      this.cache.set(agentId, { record, revision });
      trim(this.cache, this.o.cacheSize);
    }
    this.published.delete(agentId);
    this.published.set(agentId, revision);
    trim(this.published, this.o.cacheSize * 10);
  }

  /** Will the agent step again soon, on its own: a command's result or a timer due shortly? */
  private soonActive(record: AgentRecord): boolean {
    if (TERMINAL_STATUSES.has(record.status) || record.status === 'paused') return false;
    for (const _ in record.pending) return true;
    const soon = this.o.now() + this.o.cacheTimersWithinMs;
    for (const t of Object.values(record.timers)) if (t.dueAt <= soon) return true;
    return false;
  }

  /** Runs `fn` after every earlier call for the same agent in this process has finished. */
  private async serialized<T>(agentId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(agentId) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.catch(() => {});
    this.locks.set(agentId, settled);
    try {
      return await run;
    } finally {
      if (this.locks.get(agentId) === settled) this.locks.delete(agentId);
    }
  }
}

/** Drops the oldest entries of a map kept in insertion order until it holds at most `max`. */
function trim(map: Map<string, unknown>, max: number): void {
  while (map.size > max) {
    const oldest = map.keys().next().value;
    if (oldest === undefined) return;
    map.delete(oldest);
  }
}
