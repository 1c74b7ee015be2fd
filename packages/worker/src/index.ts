import { randomUUID } from 'node:crypto';
import {
  CodecError,
  ErrandError,
  CodecErrorCode,
  createSubjects,
  decodeMessage,
  effectKey,
  encodeMessage,
  Header,
  INBOX_KIND_OF,
  messageIds,
  resourceNames,
  silentLogger,
  type CommandVerifier,
  type InboxMessage,
  type Logger,
  type Message,
  type MessageKind,
} from '@errand/protocols';
import { consumeMessages, ensureConsumer, isRevisionConflict, openBucket, publishMessage, type ErrandConnection, type JsMsg, type KvEntry } from '@errand/nats';
import { metrics, startSpan, traceparentFrom, type ErrandSpan } from '@errand/telemetry';

/**
 * How long after the step that sent it a command's first copy can reach the stream. A copy stored
 * later is taken for one published again (or replayed), whatever its headers say.
 */
const FIRST_COPY_WITHIN_MS = 60_000;

/** The longest pause between attempts to record and answer a result held while NATS is away. */
const HOLD_RETRY_MAX_MS = 2_000;

/**
 * Whether this delivery is the first of the first copy a host published — which cannot have run
 * anywhere, so there is no result to look for: not a redelivery, not marked `Errand-Republished`
 * (a copy published again from a stored outbox), and stored within a minute of the step that sent it.
 */
function isFirstCopy(cmd: { at?: number }, msg: JsMsg): boolean {
  if (msg.info.deliveryCount !== 1 || msg.info.redelivered || msg.headers?.has(Header.Republished)) return false;
  const storedAt = msg.info.timestampNanos / 1e6;
  return typeof cmd.at === 'number' && Math.abs(storedAt - cmd.at) < FIRST_COPY_WITHIN_MS;
}

/** The effects-bucket key for an idempotency key; defined with the wire contract in @errand/protocols. */
export { effectKey };

/**
 * A command's signature must verify over its exact bytes; otherwise it is refused before it runs
 * (the consumer dead-letters the {@link CodecError} with its reason, logs and counts it).
 */
function refuseUnsigned(verifier: CommandVerifier, refused: () => void) {
  return (message: { kind: string; agentId?: string }, msg: JsMsg): void => {
    const check = verifier.check(msg.data, msg.headers?.get(Header.Signature));
    if (check.ok) return;
    refused();
    throw new CodecError(CodecErrorCode.BadSignature, `refused ${message.kind}: ${check.reason}; nothing ran`, { agentId: message.agentId });
  };
}

type CancelHandler = (agentId: string) => void;
/** One subscription to agents' control messages per connection and subject, shared by its workers. */
const cancelListeners = new WeakMap<ErrandConnection, Map<string, { handlers: Set<CancelHandler>; stop(): void }>>();

/**
 * Calls `handler` with the agent id of every cancel published on `subject` (the inbox control
 * subjects: a core subscription sees every publish). Every worker on one connection shares one
 * subscription, so a cancel is decoded once per process rather than once per tool. Returns the
 * function that stops listening; the subscription ends with its last handler.
 */
function listenForCancels(conn: ErrandConnection, subject: string, handler: CancelHandler): () => void {
  let bySubject = cancelListeners.get(conn);
  if (!bySubject) cancelListeners.set(conn, (bySubject = new Map()));
  let listener = bySubject.get(subject);
  if (!listener) {
    const handlers = new Set<CancelHandler>();
    const sub = conn.nc.subscribe(subject);
    void (async () => {
      for await (const m of sub) {
        let agentId: string;
        try {
          const control = decodeMessage(m.data, { contentType: m.headers?.get(Header.ContentType), expect: 'control' });
          if (control.action !== 'cancel') continue;
          agentId = control.agentId;
        } catch {
          continue; // the host dead-letters what does not decode; here it only means nothing to cancel
        }
        for (const h of handlers) h(agentId);
      }
    })();
    listener = { handlers, stop: () => sub.unsubscribe() };
    bySubject.set(subject, listener);
  }
  const own = listener;
  own.handlers.add(handler);
  return () => {
    own.handlers.delete(handler);
    if (own.handlers.size === 0 && bySubject.get(subject) === own) {
      bySubject.delete(subject);
      own.stop();
    }
  };
}

/** A redelivered copy of a command whose first delivery, in this process, was handed back or failed: the copy goes back too. */
class WorkerCopyError extends ErrandError {
  constructor(key: string) {
    super('ERR_COPY_HANDED_BACK', `command ${key} was handed back or failed in this worker while a copy waited for it; the copy is retried`);
  }
}

export type CommandKind = 'plan.request' | 'tool.request' | 'notify.request';
type ResultOf<K extends CommandKind> = K extends 'plan.request' ? Message<'plan.result'> : K extends 'tool.request' ? Message<'tool.result'> : undefined;

export interface CommandWorkerOptions<K extends CommandKind> {
  conn: ErrandConnection;
  prefix: string;
  /** The durable consumer name: every replica of the service shares it. */
  name: string;
  /** The subject this worker serves (`errand.work.plan`, `errand.work.tool.fs_read`…). */
  filterSubject: string;
  expect: K;
  /**
   * Runs the command and returns the message to send back to the agent (or undefined when there
   * is none). `signal` aborts when the agent is cancelled or the worker stops; `log` is bound to
   * the agent, the command's key and its trace.
   */
  execute(command: Message<K>, context: { signal: AbortSignal; msg: JsMsg; log: Logger }): Promise<ResultOf<K> | undefined>;
  concurrency: number;
  /** How long a command may run between heartbeats before JetStream redelivers it. */
  ackWaitMs: number;
  /** On stop, how long commands in flight may finish before they are aborted and handed back. */
  stopGraceMs: number;
  /**
   * Claim each command with a "running" mark (one KV create before it runs), so that a copy
   * delivered to another worker (the first one's heartbeats lost in an outage, or a restarted
   * server that lost its consumer state and delivers it as new) first waits up to `takeoverWaitMs`
   * for the first one's result instead of running it again. It also stands in for looking the
   * result up: a copy whose claim fails finds the result, so a second copy of a finished command
   * is answered from the effects bucket even when it looks like a first copy (nats-server 2.9's
   * duplicate window missed a re-published tool command across a node restart, and the second
   * copy ran the tool again). Default: every kind (a second model call is a second bill, a second
   * tool run or notification a second effect); a non-idempotent tool also keeps its "started" mark.
   */
  markRunning: boolean;
  /**
   * How long such a copy waits for the other worker's result after that worker last renewed its
   * mark (a worker renews the marks of the commands it runs or holds every third of the ack wait):
   * a worker still alive keeps its claim however long it runs or holds; a dead one's is taken over
   * this long after its last renewal. Default half the ack wait plus half a renewal, at least 1 s.
   */
  takeoverWaitMs: number;
  logger: Logger;
  /**
   * The deployment's verify key(s) (ERRAND_VERIFY_KEY). When given, a command without a valid
   * host signature over its exact bytes is refused before anything runs: dead-lettered with the
   * reason (`ERR_BAD_SIGNATURE`), logged and counted. When absent, commands are not checked.
   */
  verify: CommandVerifier | undefined;
}

export interface CommandWorker extends AsyncDisposable {
  stop(): Promise<void>;
}

/**
 * Serves one kind of command, exactly once per idempotency key: a key whose result is in the
 * effects bucket is answered with that result again (re-sent under the same message id) without
 * running; otherwise the command runs, its result is stored, then sent to the agent's inbox, then
 * the command is acked. A long run heartbeats so JetStream does not hand it to another replica; a
 * cancel of the agent aborts it.
 */
export async function startCommandWorker<K extends CommandKind>(
  options: Pick<CommandWorkerOptions<K>, 'conn' | 'prefix' | 'name' | 'filterSubject' | 'expect' | 'execute'> & Partial<CommandWorkerOptions<K>>,
): Promise<CommandWorker> {
  const ackWaitMs = options.ackWaitMs ?? 3_000;
  const o = {
    concurrency: 16,
    ackWaitMs,
    stopGraceMs: 10_000,
    markRunning: true,
    takeoverWaitMs: Math.max(1_000, Math.floor(ackWaitMs / 2 + ackWaitMs / 6)),
    logger: silentLogger,
    verify: undefined,
    ...options,
  };
  const { conn } = o;
  const subjects = createSubjects(o.prefix);
  const names = resourceNames(o.prefix);
  const log = o.logger.child({ component: 'worker', worker: o.name });
  const effects = await openBucket(conn, names.buckets.effects);
  const consumerSpec = {
    stream: names.streams.work,
    name: o.name,
    filterSubject: o.filterSubject,
    ackWaitMs: o.ackWaitMs,
    maxAckPending: Math.max(100, o.concurrency * 4),
    description: `Errand ${o.name}`,
  };
  await ensureConsumer(conn, consumerSpec);

  // Commands in flight by agent, so that a cancel of the agent, or the worker stopping, reaches them.
  const running = new Map<string, Set<AbortController>>();
  const stopAll = new AbortController();
  const stopListening = listenForCancels(conn, subjects.agentInAll(undefined, 'control'), (agentId) => {
    for (const c of running.get(agentId) ?? []) c.abort(new Error(`agent ${agentId} was cancelled`));
  });

  const send = async (result: InboxMessage, key: string, traceparent: string | undefined) => {
    const token = INBOX_KIND_OF[result.kind as keyof typeof INBOX_KIND_OF];
    await publishMessage(conn, subjects.agentIn(result.agentId, token), result, { msgId: messageIds.result(key), traceparent });
  };
  const count = (outcome: string) => metrics.commands.inc({ worker: o.name, outcome });
  // Results held while NATS is away, by command: on reconnect each is heartbeated and retried at once
  // (not after its back-off), so its message is not handed to another worker meanwhile.
  const held = new Map<JsMsg, () => void>();
  let statusDone = false;
  void (async () => {
    for await (const s of conn.nc.status()) {
      if (statusDone) break;
      if (s.type !== 'reconnect') continue;
      for (const [m, wake] of held) {
        try {
          m.working();
        } catch {
          // closed: the retry says so
        }
        wake();
      }
    }
  })().catch(() => {});
  /** The effects-bucket key of the mark a worker leaves when it starts a command (see `markRunning`). */
  const runningKey = (key: string) => `running.${effectKey(key)}`;
  const instanceId = `${o.name}-${randomUUID()}`;
  /** How often a worker renews the running marks of the commands it runs or holds. */
  const renewMs = Math.max(250, Math.floor(o.ackWaitMs / 3));
  /**
   * Keeps this worker's claims alive while it runs or holds their commands: one ticker writes the
   * mark again, every `renewMs`, of each command claimed at least that long ago (a quick command
   * is never renewed), so a copy delivered elsewhere (heartbeats lost in an outage) waits for this
   * worker instead of running the command a second time. `renewMark` returns the stop.
   */
  const claims = new Map<string, { since: number; log: Logger }>();
  const renewer = setInterval(() => {
    const due = Date.now() - renewMs;
    for (const [key, claim] of claims) {
      if (claim.since > due) continue;
      effects.put(runningKey(key), instanceId).catch((err: unknown) => claim.log.debug({ err: (err as Error).message }, 'could not renew the running mark'));
    }
  }, renewMs);
  renewer.unref();
  const renewMark = (key: string, log: Logger): (() => void) => {
    claims.set(key, { since: Date.now(), log });
    return () => claims.delete(key);
  };
  /**
   * Waits for the result of a command another worker claimed (polls the effects bucket). Resolves
   * the result once it is recorded, or undefined when it is this worker's to run: the mark was
   * removed (handed back), or not renewed for `takeoverWaitMs` while the bucket answered — its
   * worker died. Time the bucket could not be read does not count (the other worker could not
   * renew either).
   */
  const awaitOtherWorker = async (key: string, mark: KvEntry): Promise<KvEntry | undefined> => {
    let revision = mark.revision;
    // The mark's own age (server time of its last write) counts, so a dead worker's command is not
    // held up a second wait; at least a quarter of the wait is observed here (clock skew).
    let since = Date.now() - Math.min(Math.max(0, Date.now() - mark.created.getTime()), Math.floor((o.takeoverWaitMs * 3) / 4));
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(200, renewMs)));
      if (stopAll.signal.aborted) throw new WorkerCopyError(key);
      let result: KvEntry | null;
      let current: KvEntry | null;
      try {
        [result, current] = await Promise.all([effects.get(effectKey(key)), effects.get(runningKey(key))]);
      } catch {
        since = Date.now();
        continue;
      }
      if (result?.operation === 'PUT') return result;
      if (current?.operation !== 'PUT') return undefined;
      if (current.revision !== revision) {
        revision = current.revision;
        since = Date.now();
      } else if (Date.now() - since >= o.takeoverWaitMs) return undefined;
    }
  };
  /** Commands this process runs or holds a result of, by key: whether each ended answered (not handed back). */
  const inFlight = new Map<string, Promise<boolean>>();

  /** Runs one command exactly once per key, and sends its result under the command's trace. */
  const run = async (cmd: Message<K> & { key: string; agentId: string }, msg: JsMsg, span: ErrandSpan, log: Logger): Promise<boolean> => {
    const { traceparent } = span;
    const firstRun = isFirstCopy(cmd, msg);
    let stored: Awaited<ReturnType<typeof effects.get>> | undefined = firstRun ? undefined : await effects.get(effectKey(cmd.key));
    if (o.markRunning && stored?.operation !== 'PUT') {
      // Claim the command with a "running" mark. Found one: another worker started it and may hold
      // its result (its heartbeats lost in an outage, or the server lost its consumer state and
      // delivers it as new): give that worker a moment to deliver before running it again.
      const claimed = await effects.create(runningKey(cmd.key), instanceId).then(
        () => true,
        (err: unknown) => {
          if (!isRevisionConflict(err)) throw err;
          return false;
        },
      );
      if (!claimed) {
        stored ??= await effects.get(effectKey(cmd.key));
        const mark = stored?.operation === 'PUT' ? undefined : await effects.get(runningKey(cmd.key));
        if (mark?.operation === 'PUT' && mark.string() !== instanceId) {
          log.info({ waitMs: o.takeoverWaitMs }, 'a copy of a command another worker started: waiting for its result while that worker renews its claim');
          stored = (await awaitOtherWorker(cmd.key, mark)) ?? undefined;
          if (stored?.operation !== 'PUT') {
            log.info({}, 'the worker that started it no longer renews its claim, and left no result: running it here');
            await effects.put(runningKey(cmd.key), instanceId).catch((err: unknown) => log.debug({ err }, 'could not mark the command as running'));
          }
        }
      }
    }
    if (stored?.operation === 'PUT') {
      if (stored.length > 0) await send(decodeMessage(stored.value) as InboxMessage, cmd.key, traceparent);
      log.info({}, 'repeat of a completed command: answered from the effects bucket');
      count('repeat');
      return false;
    }
    const stopRenewing = o.markRunning ? renewMark(cmd.key, log) : () => {};
    const controller = new AbortController();
    const mine = running.get(cmd.agentId) ?? new Set();
    mine.add(controller);
    running.set(cmd.agentId, mine);
    log.info({ deliveries: msg.info.deliveryCount }, 'command started');
    const started = Date.now();
    try {
      let result: ResultOf<K> | undefined;
      try {
        result = await o.execute(cmd, { signal: controller.signal, msg, log });
      } catch (err) {
        // An abort surfaces as whatever the command threw; what matters is why it was aborted.
        if (!controller.signal.aborted) throw err;
      }
      // Aborted before it returned: what it returned (an error, most likely) is not its result.
      // Once it has returned, a result in hand is never handed back: see `deliver`.
      if (controller.signal.aborted) {
        if (stopAll.signal.aborted) {
          // Not finished because this worker stops: another replica runs it at once (without
          // waiting for a result from here: the mark goes first).
          stopRenewing();
          if (o.markRunning) await effects.delete(runningKey(cmd.key)).catch(() => {});
          msg.nak();
          log.info({}, 'command interrupted by shutdown: handed back');
          count('aborted');
          return true;
        }
        log.info({}, 'command aborted (agent cancelled): no result sent');
        count('aborted');
        return false;
      }
      // Recorded and answered at once: both complete before the ack, so a crash in between leaves
      // the command unacked and it is redelivered — as a crash before either would. The agent
      // takes a command's first result only (by its key), and the inbox drops a repeat by its id.
      // A first copy ran without looking, so it records only where nothing is recorded yet: an
      // unmarked copy of a command that already ran (replayed) leaves the first result standing.
      const value = result ? encodeMessage(result as InboxMessage).data : new Uint8Array();
      const recorded = await deliver(msg, cmd.key, value, firstRun, result as InboxMessage | undefined, traceparent, log);
      if (!recorded) {
        // The agent took the first result already (it applies one per key); this one changes nothing.
        log.warn({}, 'an unmarked copy of a command that had already run: ran again, the first result stands');
        count('repeat');
        return false;
      }
      const ms = Date.now() - started;
      record(result as InboxMessage | undefined, ms, span);
      log.info({ ms }, 'command done');
      return false;
    } finally {
      stopRenewing();
      mine.delete(controller);
      if (mine.size === 0) running.delete(cmd.agentId);
    }
  };

  /**
   * Records a finished command's result in the effects ledger and answers the agent, retrying
   * with bounded back-off until both succeed: a result computed while NATS is away (a model's
   * answer that arrived during an outage) is held and delivered once NATS is back, never thrown
   * away to be computed again. The consumer keeps heartbeating the command meanwhile. Resolves
   * false when another copy's result was recorded first.
   */
  const deliver = async (msg: JsMsg, key: string, value: Uint8Array, firstRun: boolean, result: InboxMessage | undefined, traceparent: string | undefined, log: Logger): Promise<boolean> => {
    let attempt = 0;
    let holdingSince: number | undefined;
    for (;;) {
      try {
        const recording = firstRun
          ? effects.create(effectKey(key), value).then(
              () => true,
              async (err: unknown) => {
                if (!isRevisionConflict(err)) throw err;
                // After a failed attempt the value there may be this very one (the write landed, its reply did not).
                if (attempt === 0) return false;
                const there = await effects.get(effectKey(key));
                return there?.operation === 'PUT' && Buffer.from(there.value).equals(Buffer.from(value));
              },
            )
          : effects.put(effectKey(key), value).then(() => true);
        const [recorded] = await Promise.all([recording, result ? send(result, key, traceparent) : undefined]);
        held.delete(msg);
        if (holdingSince !== undefined) {
          log.info({ heldMs: Date.now() - holdingSince, attempts: attempt + 1 }, 'held result delivered: recorded and answered after NATS came back');
          count('held');
        }
        return recorded;
      } catch (err) {
        if (conn.nc.isClosed()) {
          // Closed for good (not an outage): nothing can be delivered from this process any more.
          log.error({ err: (err as Error).message }, 'the connection is closed: a finished result could not be delivered; the command is redelivered elsewhere');
          throw err;
        }
        if (holdingSince === undefined) {
          holdingSince = Date.now();
          log.warn({ err: (err as Error).message }, 'holding a finished result: could not record or answer it (NATS unreachable?); retrying until it is delivered, it is not run again');
        }
        attempt += 1;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(HOLD_RETRY_MAX_MS, 100 * 2 ** Math.min(attempt, 6)));
          held.set(msg, () => (clearTimeout(timer), resolve()));
        });
      }
    }
  };

  /** Metrics of a finished command, and what its span should say (OpenTelemetry GenAI names for model calls). */
  const record = (result: InboxMessage | undefined, ms: number, span: ErrandSpan) => {
    const failed = result !== undefined && 'error' in result && result.error !== undefined;
    count(failed ? 'error' : 'ok');
    if (failed) span.setAttributes({ 'errand.outcome': 'error', 'error.type': String((result as { error?: { code?: string } }).error?.code ?? 'error') });
    metrics.commandSeconds.observe({ worker: o.name }, ms / 1000);
    if (result?.kind === 'tool.result') {
      metrics.toolCalls.inc({ tool: result.tool, outcome: failed ? 'error' : 'ok' });
      metrics.toolSeconds.observe({ tool: result.tool }, (result.durationMs ?? ms) / 1000);
      span.setAttributes({ 'errand.tool': result.tool, 'errand.tool.attempt': result.attempt });
    }
    if (result?.kind === 'plan.result' && result.usage) {
      const { model, inputTokens, outputTokens, costUsd } = result.usage;
      metrics.modelTokens.inc({ model, type: 'input' }, inputTokens);
      metrics.modelTokens.inc({ model, type: 'output' }, outputTokens);
      if (costUsd) metrics.modelCost.inc({ model }, costUsd);
      span.setAttributes({ 'gen_ai.request.model': model, 'gen_ai.usage.input_tokens': inputTokens, 'gen_ai.usage.output_tokens': outputTokens, ...(costUsd ? { 'errand.cost_usd': costUsd } : {}) });
    }
  };

  const consumer = await consumeMessages({
    consumer: await conn.js.consumers.get(names.streams.work, o.name),
    expect: o.expect as MessageKind as K,
    deadLetter: { js: conn.js, subjects, origin: o.name, maxPayload: conn.nc.info?.max_payload ?? 1024 * 1024 },
    concurrency: o.concurrency,
    // A long command tells JetStream it is still running, so no other replica gets it meanwhile.
    heartbeatMs: Math.max(100, Math.floor(o.ackWaitMs / 3)),
    recreate: () => ensureConsumer(conn, consumerSpec),
    logger: log,
    ...(o.verify ? { validate: refuseUnsigned(o.verify, () => count('refused')) } : {}),
    handle: async (command, msg) => {
      const cmd = command as Message<K> & { key: string; agentId: string };
      const span = startSpan(`errand.${o.expect}`, traceparentFrom(msg.headers), { 'errand.agent_id': cmd.agentId, 'errand.key': cmd.key, 'errand.worker': o.name });
      // Keys are `<agentId>:<step>:<n>`: the step that sent the command.
      const step = Number(cmd.key.split(':').at(-2));
      const callLog = log.child({ agentId: cmd.agentId, ...(Number.isInteger(step) ? { step } : {}), key: cmd.key, traceId: span.traceId });
      try {
        const same = inFlight.get(cmd.key);
        if (same) {
          // Redelivered while this process still runs it or holds its result (its heartbeats could
          // not reach the server during an outage): wait for that one instead of running it again.
          callLog.info({ deliveries: msg.info.deliveryCount }, 'a copy of a command this worker is running or holding: waiting for it, not running it again');
          if (!(await same)) throw new WorkerCopyError(cmd.key);
          span.end();
          return;
        }
        const work = run(cmd, msg, span, callLog);
        const ran = work.then(
          (handedBack) => !handedBack,
          () => false,
        );
        inFlight.set(cmd.key, ran);
        try {
          await work;
        } finally {
          if (inFlight.get(cmd.key) === ran) inFlight.delete(cmd.key);
        }
        span.end();
      } catch (err) {
        span.end(err);
        count('failed');
        throw err;
      }
    },
  });
  await conn.nc.flush();
  log.info({ subject: o.filterSubject, concurrency: o.concurrency }, 'worker ready');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      stopListening();
      const drained = consumer.stop().finally(() => {
        statusDone = true;
        clearInterval(renewer);
      });
      const grace = new Promise<void>((resolve) => setTimeout(resolve, o.stopGraceMs).unref());
      await Promise.race([drained, grace]);
      stopAll.abort();
      // Every command still running (each is in `running`, under its agent) is handed back.
      for (const mine of running.values()) for (const c of mine) c.abort(new Error('the worker is stopping'));
      await drained;
    })());
  return { stop, [Symbol.asyncDispose]: stop };
}
