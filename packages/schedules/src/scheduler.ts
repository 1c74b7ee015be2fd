import { createClient, type ErrandClient } from '@errand/client';
import { consumeMessages, ensureConsumer, isPassingFailure, publishMessage, type ErrandConnection, type JsMsg, type MessageConsumer } from '@errand/nats';
import { createSubjects, decodeMessage, Header, MESSAGE_VERSION, resourceNames, silentLogger, type Logger, type Message } from '@errand/protocols';
import { nextFireAfter } from './cron.js';
import { formatScheduleDuration } from './duration.js';
import { ScheduleError } from './errors.js';
import { fireSchedule } from './fire.js';
import { decodeScheduleRecord, type ScheduleFire, type ScheduleRecord } from './record.js';
import { recordFire, ScheduleStore } from './store.js';

/** The durable consumer every host shares for schedule ticks: each tick goes to one host at a time. */
export const SCHEDULE_CONSUMER = 'schedules';

/**
 * A fire handled this late is still on time, whatever the catch-up window (0 included): a host
 * takes a tick a few milliseconds after its time, and one that died holding it is taken over
 * after the consumer's ack wait.
 */
export const MIN_CATCHUP_WINDOW_MS = 5_000;

/** The longest a tick is held back at once: a far fire's tick is looked at again every so often. */
const MAX_HOLD_MS = 10 * 60_000;

export interface SchedulerOptions {
  conn: ErrandConnection;
  prefix: string;
  logger: Logger;
  now: () => number;
  /** How long a host may hold a tick unacknowledged before another host takes it (a dead host's fires wait this long). */
  ackWaitMs: number;
  /** Ticks handled at once (of different schedules). */
  concurrency: number;
  /** Submits and reads agents; one over `conn` when absent. */
  client?: ErrandClient;
  /**
   * A schedule whose `nextFireAt` is this far past and still not handled gets its tick armed again
   * (a second copy is harmless: the first one handled makes the other stale). It covers a tick
   * JetStream lost — nats-server 2.9 was seen never to redeliver a message held back with a delay
   * across a node restart. Checked every half of it.
   */
  overdueAfterMs: number;
  /** Called at `schedule.after-fire` (the host SIGKILLs itself there when ERRAND_CRASH_AT says so). */
  crash: (point: 'schedule.after-fire') => void;
}

export function defaultSchedulerOptions(): Omit<SchedulerOptions, 'conn'> {
  return { prefix: 'errand', logger: silentLogger, now: Date.now, ackWaitMs: 3_000, concurrency: 16, overdueAfterMs: 60_000, crash: () => {} };
}

/** A running scheduler. */
export interface Scheduler {
  /** Stops taking ticks, lets fires in flight finish, and resolves when they have. */
  stop(): Promise<void>;
}

/** The `Nats-Msg-Id` of a schedule's tick: one per schedule, generation and fire time, so arming it again is dropped. */
export function scheduleTickMessageId(scheduleId: string, generation: number, fireAt: number): string {
  return `schedule:${scheduleId}:${generation}:${fireAt}`;
}

/** The time to arm after handling the fire at `fireAt` at `now`: the next one, or the first still inside the catch-up window. */
export function nextFireAfterHandling(r: Pick<ScheduleRecord, 'cron' | 'timezone' | 'catchupWindowMs'>, fireAt: number, now: number): number | undefined {
  const next = nextFireAfter(r.cron, r.timezone, fireAt);
  if (next === undefined) return undefined;
  const earliest = now - Math.max(r.catchupWindowMs, MIN_CATCHUP_WINDOW_MS);
  return next >= earliest ? next : nextFireAfter(r.cron, r.timezone, earliest - 1);
}

/**
 * Runs the deployment's schedules from this process (every host does; they coordinate only
 * through JetStream). Each active schedule has one durable tick on `<p>.work.schedule.<id>` for its
 * next fire, held back in the work stream (a delayed redelivery) until its time, so it survives
 * restarts of every host and of the server. When due, the host that holds it fires the schedule
 * (see {@link fireSchedule}: a deterministic agent id through the intake), records the fire and the
 * next fire time in the schedule's record with compare-and-set, arms the next tick, and only then
 * acks — a host dying anywhere in between leaves the tick to another host, which finds the agent
 * started (`existing`) or the record advanced. Every host also watches the schedules bucket and
 * arms the tick of any schedule added, resumed or changed.
 */
export async function startScheduler(options: Pick<SchedulerOptions, 'conn'> & Partial<SchedulerOptions>): Promise<Scheduler> {
  const o = { ...defaultSchedulerOptions(), ...options };
  const { conn } = o;
  const logger = o.logger.child({ component: 'schedules' });
  const names = resourceNames(o.prefix);
  const subjects = createSubjects(o.prefix);
  const jsm = await conn.jsm();
  let store: ScheduleStore;
  try {
    // Opening a bucket does not check that it exists: ask for its stream.
    await jsm.streams.info(`KV_${names.buckets.schedules}`);
    store = await ScheduleStore.open(conn, o.prefix);
  } catch (err) {
    if (!isMissingStream(err)) throw err;
    logger.warn({ bucket: names.buckets.schedules }, `no schedules bucket ${names.buckets.schedules}: schedules are off on this host; run \`errand provision\` to create it`);
    return { stop: async () => {} };
  }
  const client = o.client ?? (await createClient(conn, o.prefix));

  /** Makes sure the tick for the schedule's next fire waits in the work stream. */
  const arm = async (r: ScheduleRecord): Promise<void> => {
    if (r.state !== 'active' || r.nextFireAt === undefined) return;
    const subject = subjects.workSchedule(r.id);
    // The work stream removes a tick once acked, so the last one on the subject is the one waiting.
    const waiting = await jsm.streams.getMessage(names.streams.work, { last_by_subj: subject }).catch(() => null);
    if (waiting) {
      try {
        const t = decodeMessage<'schedule.tick'>(waiting.data, { contentType: waiting.header?.get(Header.ContentType), expect: 'schedule.tick' });
        if (t.generation === r.generation && t.fireAt === r.nextFireAt) return;
      } catch {
        // Not a tick we can read: arm ours beside it; the consumer dead-letters the other.
      }
    }
    const tick: Message<'schedule.tick'> = { v: MESSAGE_VERSION, kind: 'schedule.tick', scheduleId: r.id, generation: r.generation, fireAt: r.nextFireAt, at: o.now() };
    const ack = await publishMessage<'schedule.tick'>(conn.js, subject, tick, { msgId: scheduleTickMessageId(r.id, r.generation, r.nextFireAt) });
    if (!ack.duplicate) logger.debug({ scheduleId: r.id, fireAt: new Date(r.nextFireAt).toISOString(), generation: r.generation }, 'armed the next fire');
  };

  // Fires this host made whose record update has not landed yet: a retry after a conflict (a
  // trigger or a pause wrote meanwhile) records the same fire instead of judging it again — the
  // overlap policy would now see the agent it started as a previous run still running.
  const unrecorded = new Map<string, ScheduleFire>();
  const handle = async (tick: Message<'schedule.tick'>, msg: JsMsg): Promise<void> => {
    const fireKey = scheduleTickMessageId(tick.scheduleId, tick.generation, tick.fireAt);
    // Whatever else happens to this tick now, this fire is settled (recorded, or stale).
    const settled = () => unrecorded.delete(fireKey);
    let found;
    try {
      found = await store.read(tick.scheduleId);
    } catch (err) {
      if (!(err instanceof ScheduleError)) throw err;
      logger.error({ scheduleId: tick.scheduleId, code: err.code }, `${err.message}; its tick is dropped`);
      return;
    }
    // Removed, paused, resumed since (another generation), or no further fire: the tick is stale.
    if (!found) return void settled();
    const r = found.record;
    if (r.state !== 'active' || r.generation !== tick.generation || r.nextFireAt === undefined) return void settled();
    if (tick.fireAt !== r.nextFireAt) {
      settled();
      // A fire handled already (by a host that died before acking its tick): make sure the next is armed.
      if (tick.fireAt < r.nextFireAt) await arm(r);
      return;
    }
    const wait = tick.fireAt - o.now();
    if (wait > 0) {
      msg.nak(Math.min(wait, MAX_HOLD_MS));
      return;
    }
    const late = -wait;
    const window = Math.max(r.catchupWindowMs, MIN_CATCHUP_WINDOW_MS);
    const fire: ScheduleFire =
      unrecorded.get(fireKey) ??
      (late > window
        ? {
            at: tick.fireAt,
            handledAt: o.now(),
            outcome: 'skipped-late',
            reason: `handled ${formatScheduleDuration(late)} late (no host ran meanwhile), beyond the catch-up window of ${formatScheduleDuration(r.catchupWindowMs)}`,
          }
        : await fireSchedule(client, r, tick.fireAt, { now: o.now, logger }));
    unrecorded.set(fireKey, fire);
    o.crash('schedule.after-fire');
    const next = nextFireAfterHandling(r, tick.fireAt, o.now());
    const updated = recordFire(r, fire, next, o.now());
    // A conflict (a pause, a trigger, another host) throws: the consumer tries again at once, and
    // the retry reads the record afresh (a fire already started is found `existing`).
    await store.kv.update(r.id, JSON.stringify(updated), found.revision);
    settled();
    const fields = { scheduleId: r.id, fireAt: new Date(tick.fireAt).toISOString(), outcome: fire.outcome, agentId: fire.agentId, lateMs: late, next: next === undefined ? null : new Date(next).toISOString() };
    if (fire.outcome === 'refused') logger.error({ ...fields, reason: fire.reason }, 'schedule fire refused by the intake');
    else if (fire.outcome === 'skipped-late' || fire.outcome === 'skipped-overlap') logger.warn({ ...fields, reason: fire.reason }, 'schedule fire skipped');
    else logger.info(fields, 'schedule fired');
    await arm(updated);
  };

  const spec = {
    stream: names.streams.work,
    name: SCHEDULE_CONSUMER,
    filterSubject: subjects.workSchedule(),
    ackWaitMs: o.ackWaitMs,
    // Every schedule's tick is a delayed, unacked message.
    maxAckPending: 1_000_000,
    description: 'Errand hosts: schedule ticks (one per schedule, for its next fire)',
  };
  await ensureConsumer(conn, spec);
  const consumer: MessageConsumer = await consumeMessages({
    consumer: await conn.js.consumers.get(names.streams.work, SCHEDULE_CONSUMER),
    expect: 'schedule.tick',
    deadLetter: { js: conn.js, subjects, origin: 'schedules', maxPayload: conn.nc.info?.max_payload ?? 1024 * 1024 },
    concurrency: o.concurrency,
    // Every hold is a redelivery: the delivery count says nothing about failure, so a tick is never given up on.
    maxDeliveries: Number.POSITIVE_INFINITY,
    retryDelayMs: (deliveries) => Math.min(30_000, 500 * 2 ** Math.min(deliveries - 1, 6)),
    retryInPlace: isPassingFailure,
    heartbeatMs: Math.max(100, Math.floor(o.ackWaitMs / 3)),
    recreate: () => ensureConsumer(conn, spec),
    logger,
    handle,
  });

  // Every schedule as it is now, then each change: arm what is active. Every host does it; the
  // tick's message id (and the check for the one waiting) keeps it one tick per fire.
  // What the watch last saw of each schedule, and when, for the overdue check.
  const known = new Map<string, { record: ScheduleRecord; seenAt: number }>();
  const watcher = await store.kv.watch();
  const watching = (async () => {
    for await (const entry of watcher) {
      if (entry.operation !== 'PUT') {
        known.delete(entry.key);
        continue;
      }
      try {
        const r = decodeScheduleRecord(entry.value, entry.key);
        known.set(r.id, { record: r, seenAt: o.now() });
        await arm(r);
      } catch (err) {
        logger.warn({ scheduleId: entry.key, err: (err as Error).message }, 'could not arm the schedule; its next change (or a host restart) tries again');
      }
    }
  })();
  // A schedule still not handled long after its time: its tick was lost. Arm another copy, under
  // an id per overdue period so every host's copy in one period is one message.
  let checking = false;
  const checkOverdue = async () => {
    if (checking) return;
    checking = true;
    try {
      const now = o.now();
      for (const { record: seen, seenAt } of known.values()) {
        // Overdue, and seen so long ago that its tick had a whole period to be handled (a schedule
        // found overdue at start, after downtime, is being caught up by the tick just armed).
        if (seen.state !== 'active' || seen.nextFireAt === undefined || now - seen.nextFireAt <= o.overdueAfterMs || now - seenAt <= o.overdueAfterMs) continue;
        const found = await store.read(seen.id).catch(() => undefined);
        const r = found?.record;
        if (!r || r.state !== 'active' || r.nextFireAt !== seen.nextFireAt || r.generation !== seen.generation) continue;
        const tick: Message<'schedule.tick'> = { v: MESSAGE_VERSION, kind: 'schedule.tick', scheduleId: r.id, generation: r.generation, fireAt: r.nextFireAt, at: now };
        const period = Math.floor(now / o.overdueAfterMs);
        const ack = await publishMessage<'schedule.tick'>(conn.js, subjects.workSchedule(r.id), tick, { msgId: `${scheduleTickMessageId(r.id, r.generation, r.nextFireAt)}:overdue-${period}` });
        if (!ack.duplicate) logger.warn({ scheduleId: r.id, fireAt: new Date(r.nextFireAt).toISOString(), overdueMs: now - r.nextFireAt }, 'schedule overdue (its tick was lost?): armed it again');
      }
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'overdue check failed; trying again later');
    } finally {
      checking = false;
    }
  };
  const overdueTimer = setInterval(() => void checkOverdue(), Math.max(50, Math.floor(o.overdueAfterMs / 2)));
  // The check alone does not keep a process alive.
  overdueTimer.unref();
  logger.info({ bucket: names.buckets.schedules }, 'schedules running');

  let stopping: Promise<void> | undefined;
  return {
    stop: () =>
      (stopping ??= (async () => {
        clearInterval(overdueTimer);
        watcher.stop();
        await watching.catch(() => {});
        await consumer.stop();
      })()),
  };
}

/** The bucket's stream is not there (a deployment provisioned before schedules existed). */
function isMissingStream(err: unknown): boolean {
  const e = err as { name?: string; code?: unknown; api_error?: { err_code?: number } } | undefined;
  return e?.name === 'StreamNotFoundError' || e?.api_error?.err_code === 10059 || e?.code === 10059;
}
