import { resourceNames, type Principal } from '@errand/protocols';
import { isRevisionConflict, openBucket, type ErrandConnection, type KV } from '@errand/nats';
import type { ErrandClient } from '@errand/client';
import { nextFireAfter } from './cron.js';
import { ScheduleError, ScheduleErrorCode } from './errors.js';
import { fireSchedule } from './fire.js';
import { assertScheduleId, decodeScheduleRecord, encodeScheduleRecord, newScheduleRecord, type ScheduleFire, type ScheduleInput, type ScheduleRecord } from './record.js';

/** Compare-and-set tries before giving up with `ERR_SCHEDULE_CONFLICT`. */
const MAX_CAS_TRIES = 20;

/** A stored schedule and the KV revision it was read at. */
export interface StoredSchedule {
  record: ScheduleRecord;
  revision: number;
}

/**
 * The schedules of a deployment, in its schedules bucket: add, read, pause, resume, remove and
 * trigger them. Every change is a compare-and-set on the schedule's key, so a change never
 * overwrites a fire a host recorded meanwhile. Hosts arm and fire what this writes (see
 * {@link startScheduler}); nothing here needs a host but `trigger`, which submits a goal.
 */
export class ScheduleStore {
  constructor(readonly kv: KV) {}

  /** Opens the schedules bucket of the deployment under `prefix` (it is provisioned with the others). */
  static async open(conn: ErrandConnection, prefix: string): Promise<ScheduleStore> {
    return new ScheduleStore(await openBucket(conn, resourceNames(prefix).buckets.schedules));
  }

  /**
   * Adds a schedule; its first fire is the first time after `now` its expression names. Throws
   * `ERR_INVALID_SCHEDULE` (what is wrong and what to do) and `ERR_SCHEDULE_EXISTS`.
   */
  async add(input: ScheduleInput, options: { now: number; createdBy?: Principal }): Promise<ScheduleRecord> {
    const record = newScheduleRecord(input, options);
    try {
      await this.kv.create(record.id, encodeScheduleRecord(record));
    } catch (err) {
      if (!isRevisionConflict(err)) throw err;
      throw new ScheduleError(
        ScheduleErrorCode.Exists,
        `a schedule named ${record.id} exists already: choose another --id, or remove it first (errand schedule rm ${record.id})`,
        { scheduleId: record.id },
      );
    }
    return record;
  }

  /** The schedule and its revision, or undefined when there is none. Throws `ERR_SCHEDULE_UNREADABLE`. */
  async read(id: string): Promise<StoredSchedule | undefined> {
    const entry = await this.kv.get(assertScheduleId(id));
    if (!entry || entry.operation !== 'PUT') return undefined;
    return { record: decodeScheduleRecord(entry.value, id), revision: entry.revision };
  }

  /** The schedule; throws `ERR_SCHEDULE_NOT_FOUND`. */
  async get(id: string): Promise<ScheduleRecord> {
    const found = await this.read(id);
    if (!found) throw notFound(id);
    return found.record;
  }

  /** Every schedule, by id; `unreadable` names those this build cannot read. */
  async list(): Promise<{ schedules: ScheduleRecord[]; unreadable: string[] }> {
    const schedules: ScheduleRecord[] = [];
    const unreadable: string[] = [];
    const keys: string[] = [];
    for await (const key of await this.kv.keys()) keys.push(key);
    for (const key of keys.sort()) {
      try {
        const found = await this.read(key);
        if (found) schedules.push(found.record);
      } catch (err) {
        if (!(err instanceof ScheduleError)) throw err;
        unreadable.push(key);
      }
    }
    return { schedules, unreadable };
  }

  /**
   * Changes the schedule with compare-and-set: `change` gets the current record and returns the new
   * one (or undefined to leave it); a conflict reads again and calls it again.
   */
  async update(id: string, change: (current: ScheduleRecord) => ScheduleRecord | undefined): Promise<ScheduleRecord> {
    for (let tries = 1; ; tries++) {
      const found = await this.read(id);
      if (!found) throw notFound(id);
      const next = change(found.record);
      if (next === undefined) return found.record;
      try {
        await this.kv.update(id, encodeScheduleRecord(next), found.revision);
        return next;
      } catch (err) {
        if (!isRevisionConflict(err)) throw err;
        if (tries >= MAX_CAS_TRIES) throw new ScheduleError(ScheduleErrorCode.Conflict, `schedule ${id} kept changing while it was being written; try again`, { scheduleId: id, cause: err });
      }
    }
  }

  /** Stops firing: the armed tick is dropped when it comes. Pausing a paused schedule changes nothing. */
  pause(id: string, options: { now: number }): Promise<ScheduleRecord> {
    return this.update(id, (r) => {
      if (r.state === 'paused') return undefined;
      const { nextFireAt: _dropped, ...rest } = r;
      return { ...rest, state: 'paused', generation: r.generation + 1, updatedAt: options.now };
    });
  }

  /**
   * Fires again from the first time after `now` (fires missed while paused are not caught up).
   * Resuming an active schedule changes nothing.
   */
  resume(id: string, options: { now: number }): Promise<ScheduleRecord> {
    return this.update(id, (r) => {
      if (r.state === 'active') return undefined;
      const nextFireAt = nextFireAfter(r.cron, r.timezone, options.now);
      const { nextFireAt: _old, ...rest } = r;
      return { ...rest, state: 'active', generation: r.generation + 1, ...(nextFireAt !== undefined ? { nextFireAt } : {}), updatedAt: options.now };
    });
  }

  /** Removes the schedule; its armed tick is dropped when it comes. Runs it started go on. Throws `ERR_SCHEDULE_NOT_FOUND`. */
  async remove(id: string): Promise<void> {
    const found = await this.read(id);
    if (!found) throw notFound(id);
    await this.kv.purge(id);
  }

  /**
   * Fires the schedule now, whatever its state (a paused one too), with its overlap policy: starts
   * `<id>-now-<time>` unless skipped. Records the fire as the schedule's last. Needs a host to
   * answer the submit.
   */
  async trigger(id: string, client: ErrandClient, options: { now: () => number }): Promise<ScheduleFire> {
    const { record } = (await this.read(id)) ?? { record: undefined };
    if (!record) throw notFound(id);
    const fire = await fireSchedule(client, record, options.now(), { now: options.now, manual: true });
    await this.update(id, (r) => recordFire(r, fire, r.nextFireAt, options.now()));
    return fire;
  }
}

/** The record after `fire`, with `nextFireAt` as given (absent: the expression never fires again). */
export function recordFire(r: ScheduleRecord, fire: ScheduleFire, nextFireAt: number | undefined, now: number): ScheduleRecord {
  const { nextFireAt: _old, ...rest } = r;
  const counts = { ...r.counts };
  const ran = (fire.outcome === 'started' || fire.outcome === 'existing') && fire.agentId !== undefined;
  // 'existing': a fire handled twice (the first handler died before recording it) started one agent.
  if (ran) counts.started += 1;
  else if (fire.outcome === 'skipped-overlap' || fire.outcome === 'skipped-late') counts.skipped += 1;
  else if (fire.outcome === 'refused') counts.refused += 1;
  const lastRun = ran ? { lastRun: { agentId: fire.agentId!, at: fire.at, handledAt: fire.handledAt } } : {};
  return { ...rest, ...(nextFireAt !== undefined ? { nextFireAt } : {}), lastFire: fire, ...lastRun, counts, updatedAt: now };
}

function notFound(id: string): ScheduleError {
  return new ScheduleError(ScheduleErrorCode.NotFound, `no schedule named ${id} (errand schedule ls lists them)`, { scheduleId: id });
}
