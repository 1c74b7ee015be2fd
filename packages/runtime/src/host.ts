import { traceparentFrom } from '@errand/telemetry';
import {
  CodecError,
  CodecErrorCode,
  createSubjects,
  Header,
  INBOX_KIND_OF,
  INBOX_MESSAGE_KINDS,
  resourceNames,
  silentLogger,
  type CommandSigner,
  type CommandVerifier,
  type InboxMessage,
  type Logger,
  type NotifyRule,
  type Redactor,
  type Subjects,
  type WireFormat,
} from '@errand/protocols';
import { consumeMessages, deadLetter, ensureConsumer, readRecordFromLeader, identityVerifier, isPassingFailure, openBucket, type IdentityVerifier, type DeadLetterTarget, type ErrandConnection, type JsMsg, type MessageConsumer } from '@errand/nats';
import { RuntimeError, RuntimeErrorCode, type AgentRegistry } from '@errand/core';
import { startScheduler } from '@errand/schedules';
import type { CrashHook } from './crash-points.js';
import { attributeInbox } from './attribution.js';
import { refuseChildGoal, type ChildGoalCheck } from './child-goal.js';
import { DEFAULT_SUBMIT_RATE, startIntake, type SubmitRate } from './intake.js';
import { collectGarbage, DEFAULT_GC_INTERVAL_MS, DEFAULT_RETENTION_MS } from './retention.js';
import { StepExecutor } from './step-executor.js';
import { createTimerHandler } from './timers.js';

/**
 * What a host is told: plain data, from the environment (services/host), a file or code. The one
 * description of a host's settings — the service parses into it, `startHost` takes it.
 */
export interface HostSettings {
  /** Subject prefix of the deployment. */
  prefix: string;
  /** Steps in flight at once (for different agents; one agent's steps run one at a time). */
  concurrency: number;
  /** Also fire durable timers from this process. */
  timers: boolean;
  /** Also answer `errand.submit`. */
  intake: boolean;
  /** Also fire the deployment's schedules (`errand schedule`, docs/schedules.md). */
  schedules: boolean;
  /** Notification rules for goals that bring none. */
  defaultNotify: NotifyRule[];
  /**
   * How long a step may stay unacknowledged before JetStream gives its message to another host.
   * It is how long the agents of a host that died wait to be taken over; steps take milliseconds,
   * and a step still running heartbeats every third of it, so a slow one is not taken over.
   */
  ackWaitMs: number;
  /** Finished agents (record and journal) are removed this long after they ended. */
  retentionMs: number;
  /** How often this host sweeps for finished agents past `retentionMs`; 0: never (run `errand gc`). */
  gcIntervalMs: number;
  /** The first retry delay of a message whose step failed; it doubles per delivery, up to 30 s. */
  retryBaseMs: number;
  /** Goals each identity may submit: a minute's worth and a burst (0 per minute: no limit). */
  submitRate: SubmitRate;
  /**
   * How the progress events this host publishes are encoded (`ERRAND_EVENT_FORMAT`): msgpack, or
   * JSON for clients without msgpack. Each event names its format in `Content-Type` either way, and
   * every Errand reader takes both, so hosts of one deployment may differ while it changes.
   */
  eventFormat: WireFormat;
}

export function defaultHostSettings(): HostSettings {
  return {
    prefix: 'errand',
    concurrency: 64,
    timers: true,
    intake: true,
    schedules: true,
    defaultNotify: [],
    ackWaitMs: 3_000,
    retentionMs: DEFAULT_RETENTION_MS,
    gcIntervalMs: DEFAULT_GC_INTERVAL_MS,
    retryBaseMs: 500,
    submitRate: { ...DEFAULT_SUBMIT_RATE },
    eventFormat: 'msgpack',
  };
}

/** What a host runs with: its settings and the live parts a process hands it. */
export interface HostOptions extends HostSettings {
  conn: ErrandConnection;
  registry: AgentRegistry;
  logger: Logger;
  crash: CrashHook;
  now: () => number;
  /** Signs the work commands this host publishes (ERRAND_SIGNING_KEY); workers with the verify key refuse unsigned ones. */
  signer: CommandSigner | undefined;
  /**
   * Verifies the durable timers this host fires (they are commands too); a timer request without a
   * valid signature is dead-lettered. Usually the signer's own public key.
   */
  verifier: CommandVerifier | undefined;
  /** Removes secrets from goals at intake (the process's known secrets and the usual formats). */
  redactor?: Redactor;
  /** Checks who sent a message; default: proofs by identities of this host's own account (none without credentials). */
  identities?: IdentityVerifier;
}

export function defaultHostOptions(): Omit<HostOptions, 'conn' | 'registry'> {
  return { ...defaultHostSettings(), logger: silentLogger, crash: () => {}, now: Date.now, signer: undefined, verifier: undefined };
}

/** A running host. */
export interface Host extends AsyncDisposable {
  /** Stops taking work, finishes the steps in flight, and resolves when all are done. */
  stop(): Promise<void>;
}

/** The consumers every host shares: each inbox message and each timer goes to exactly one host. */
export const INBOX_CONSUMER = 'host';
export const TIMER_CONSUMER = 'timers';

/**
 * Starts a host: the durable inbox consumer that runs agent steps, the timer consumer, and goal
 * intake. Any number of hosts may run against one deployment; they share the consumers.
 */
export async function startHost(options: Pick<HostOptions, 'conn' | 'registry'> & Partial<HostOptions>): Promise<Host> {
  const o = { ...defaultHostOptions(), ...options };
  const { conn } = o;
  const subjects = createSubjects(o.prefix);
  const names = resourceNames(o.prefix);
  const logger = o.logger.child({ component: 'host' });
  const agents = await openBucket(conn, names.buckets.agents);
  const deadLetterTo = (origin: string): DeadLetterTarget => ({ js: conn.js, subjects, origin, maxPayload: conn.nc.info?.max_payload ?? 1024 * 1024 });

  const inboxSpec = {
    stream: names.streams.inbox,
    name: INBOX_CONSUMER,
    filterSubject: subjects.agentInAll(),
    ackWaitMs: o.ackWaitMs,
    maxAckPending: 10_000,
    description: 'Errand hosts: agent steps',
  };
  await ensureConsumer(conn, inboxSpec);
  // Who decided, answered or cancelled is taken from the proof on the message, checked against the
  // account of this host's own credentials; without credentials (--insecure) only the claim exists.
  const identities = o.identities ?? (conn.identity ? identityVerifier(conn.identity.account) : undefined);
  if (!identities) logger.warn({}, 'no NATS credentials: who decided or submitted is recorded as the messages claim, unverified');
  const executor = new StepExecutor({ js: conn.js, agents, subjects, registry: o.registry, logger, crash: o.crash, now: o.now, signer: o.signer, prover: conn.identity, eventFormat: o.eventFormat });
  if (!o.signer) logger.warn({}, 'no signing key (ERRAND_SIGNING_KEY): work commands go out unsigned, and tool-runners refuse them');
  const childGoals: ChildGoalCheck = { identities, agents, readFromLeader: (agentId) => readRecordFromLeader(conn, names.buckets.agents, agentId) };
  const inbox = await consumeMessages({
    consumer: await conn.js.consumers.get(names.streams.inbox, INBOX_CONSUMER),
    expect: INBOX_MESSAGE_KINDS,
    deadLetter: deadLetterTo('host'),
    concurrency: o.concurrency,
    heartbeatMs: Math.max(100, Math.floor(o.ackWaitMs / 3)),
    recreate: () => ensureConsumer(conn, inboxSpec),
    logger,
    validate: (message, msg) => checkEnvelope(subjects, message, msg),
    // A machine version this host lacks (a rolling upgrade): wait for a host that has it, never dead-letter.
    keepRetrying: (err) => err instanceof RuntimeError && err.code === RuntimeErrorCode.MachineVersion,
    retryDelayMs: (deliveries) => Math.min(30_000, o.retryBaseMs * 2 ** (deliveries - 1)),
    // A step that failed on the way (the record's bucket or a stream without a leader while a node
    // restarts, a timeout) is run again here rather than left to a redelivery: a step is safe to
    // run again (the record's revision decides), and the server may not redeliver (see consume.ts).
    retryInPlace: isPassingFailure,
    handle: async (message, msg) => {
      if (message.kind === 'goal' && message.parent) {
        const refused = await refuseChildGoal(childGoals, message, msg.data, msg.headers);
        if (refused) {
          const target = deadLetterTo('host');
          await deadLetter(target, { subject: msg.subject, data: msg.data, headers: msg.headers, stream: msg.info.stream, seq: msg.seq, deliveries: msg.info.deliveryCount }, { code: RuntimeErrorCode.NotAChild, message: refused, agentId: message.agentId });
          logger.warn({ agentId: message.agentId, parent: message.parent.agentId, code: RuntimeErrorCode.NotAChild }, `goal refused and dead-lettered: ${refused}`);
          return;
        }
      }
      await executor.run(attributeInbox(identities, message, msg.data, msg.headers), inboxIdOf(msg), traceparentFrom(msg.headers));
      o.crash('host.before-ack');
    },
  });

  let timers: MessageConsumer | undefined;
  if (o.timers) {
    const timerSpec = {
      stream: names.streams.work,
      name: TIMER_CONSUMER,
      filterSubject: subjects.workTimer(),
      ackWaitMs: o.ackWaitMs,
      // Every waiting timer is a delayed, unacked message.
      maxAckPending: 1_000_000,
      description: 'Errand hosts: durable timers',
    };
    await ensureConsumer(conn, timerSpec);
    timers = await consumeMessages({
      consumer: await conn.js.consumers.get(names.streams.work, TIMER_CONSUMER),
      expect: 'timer.request',
      deadLetter: deadLetterTo('timers'),
      concurrency: 16,
      // Every wait is a redelivery, so the delivery count says nothing about failure: a timer is
      // never given up on (a failed firing is retried with back-off).
      maxDeliveries: Number.POSITIVE_INFINITY,
      recreate: () => ensureConsumer(conn, timerSpec),
      logger,
      ...(o.verifier ? { validate: verifySignature(o.verifier) } : {}),
      handle: createTimerHandler({ js: conn.js, subjects, logger, now: o.now }),
    });
  }

  const intake = o.intake
    ? startIntake({
        nc: conn.nc,
        js: conn.js,
        agents,
        tools: await openBucket(conn, names.buckets.tools),
        effects: await openBucket(conn, names.buckets.effects),
        subjects,
        registry: o.registry,
        deadLetter: deadLetterTo('intake'),
        logger,
        now: o.now,
        defaultNotify: o.defaultNotify,
        ...(identities ? { identities } : {}),
        prover: conn.identity,
        submitRate: o.submitRate,
        ...(o.redactor ? { redactor: o.redactor } : {}),
        crash: o.crash,
      })
    : undefined;
  // Ready means reachable: the intake subscription must have reached the server.
  await conn.nc.flush();
  const scheduler = o.schedules ? await startScheduler({ conn, prefix: o.prefix, logger, now: o.now, ackWaitMs: o.ackWaitMs, crash: o.crash }) : undefined;
  logger.info({ prefix: o.prefix, concurrency: o.concurrency, agents: o.registry.list().map((d) => `${d.id}@${d.version}`) }, 'host ready');

  const gc = o.gcIntervalMs > 0 ? startGcLoop(o, logger) : undefined;

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info({}, 'host stopping: finishing steps in flight');
      await gc?.stop();
      await scheduler?.stop();
      if (intake) await intake.drain().catch(() => intake.unsubscribe());
      await Promise.all([inbox.stop(), timers?.stop()]);
      logger.info({}, 'host stopped');
    })());
  return { stop, [Symbol.asyncDispose]: stop };
}

/** setTimeout's limit (about 24.8 days); a longer delay would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Sweeps for finished agents past the retention every `gcIntervalMs` (jittered, so hosts started
 * together do not sweep together; the first sweep comes within one interval of the start). Sweeps
 * never overlap; a failed one is logged and the next goes ahead.
 */
function startGcLoop(o: HostOptions, logger: Logger): { stop(): Promise<void> } {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> = Promise.resolve();
  const sweep = async () => {
    const started = o.now();
    try {
      const r = await collectGarbage({ conn: o.conn, prefix: o.prefix, olderThanMs: o.retentionMs, now: started, logger, signal: abort.signal });
      if (r.removed.length > 0) {
        logger.info({ removed: r.removed.length, scanned: r.scanned, kept: r.kept, retentionMs: o.retentionMs, ms: o.now() - started }, `removed ${r.removed.length} finished agents past retention`);
      }
    } catch (err) {
      if (!abort.signal.aborted) logger.warn({ err: (err as Error).message }, 'retention sweep failed; trying again next interval');
    }
  };
  const schedule = (delayMs: number) => {
    if (abort.signal.aborted) return;
    timer = setTimeout(() => {
      sweeping = sweep().then(() => schedule(o.gcIntervalMs * (0.8 + 0.4 * Math.random())));
    }, Math.min(delayMs, MAX_TIMER_MS));
    // The sweep alone does not keep a process alive.
    timer.unref();
  };
  schedule(o.gcIntervalMs * Math.random());
  return {
    async stop() {
      abort.abort();
      clearTimeout(timer);
      await sweeping;
    },
  };
}

/** The id a step remembers a message by: its Nats-Msg-Id, or where it sits in the stream. */
export function inboxIdOf(msg: JsMsg): string {
  return msg.headers?.get(Header.MsgId) || `${msg.info.stream}:${msg.seq}`;
}

/** A command without a valid signature is dead-lettered with the reason. */
function verifySignature(verifier: CommandVerifier) {
  return (message: { agentId: string; kind: string }, msg: JsMsg): void => {
    const check = verifier.check(msg.data, msg.headers?.get(Header.Signature));
    if (!check.ok) throw new CodecError(CodecErrorCode.BadSignature, `refused ${message.kind}: ${check.reason}`, { agentId: message.agentId });
  };
}

/** The subject and the body must name the same agent and kind; anything else is dead-lettered. */
function checkEnvelope(subjects: Subjects, message: InboxMessage, msg: JsMsg): void {
  let parsed;
  try {
    parsed = subjects.parse(msg.subject);
  } catch (cause) {
    throw new CodecError(CodecErrorCode.Invalid, (cause as Error).message, { agentId: message.agentId, cause });
  }
  const expectedKind = INBOX_KIND_OF[message.kind];
  if (parsed.type !== 'agent.in' || parsed.agentId !== message.agentId || parsed.kind !== expectedKind) {
    throw new CodecError(
      CodecErrorCode.Invalid,
      `subject ${msg.subject} does not match the body: a ${message.kind} message for agent ${message.agentId} belongs on ${subjects.agentIn(message.agentId, expectedKind)}`,
      { agentId: message.agentId },
    );
  }
}
