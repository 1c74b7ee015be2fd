import { randomBytes } from 'node:crypto';
import { isAgentId, type Principal } from '@errand/protocols';
import { compileCron, DEFAULT_TIMEZONE, nextFireAfter } from './cron.js';
import { ScheduleError, ScheduleErrorCode } from './errors.js';

/**
 * What a fire does when the schedule's previous run has not ended yet (as Temporal's overlap
 * policies): `skip` it (the default), `allow` both to run, or `cancel-previous` and then start.
 */
export const OVERLAP_POLICIES = ['skip', 'allow', 'cancel-previous'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

export const SCHEDULE_STATES = ['active', 'paused'] as const;
export type ScheduleState = (typeof SCHEDULE_STATES)[number];

/**
 * How a fire ended: an agent `started`; its agent `existing` already (a fire handled twice — by a
 * host that died before recording it — starts its agent once); `skipped-overlap` (the previous run
 * still runs and the policy is skip); `skipped-late` (older than the catch-up window when a host
 * got to it); `refused` (the intake refused the goal: an unknown agent definition, say).
 */
export const FIRE_OUTCOMES = ['started', 'existing', 'skipped-overlap', 'skipped-late', 'refused'] as const;
export type FireOutcome = (typeof FIRE_OUTCOMES)[number];

/** The default catch-up window: a fire missed by up to an hour (all hosts down) still fires, once. */
export const DEFAULT_CATCHUP_WINDOW_MS = 3_600_000;
export const DEFAULT_OVERLAP: OverlapPolicy = 'skip';

/** Schedule ids: KV keys and subject tokens, short enough to leave room for a fire time in agent ids. */
const SCHEDULE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** One fire of a schedule, as its record remembers the last one. */
export interface ScheduleFire {
  /** The fire time (a time the cron expression names; for `trigger`, when it was asked), epoch ms. */
  at: number;
  /** When a host (or `trigger`) handled it, epoch ms. */
  handledAt: number;
  outcome: FireOutcome;
  /** The agent this fire started (or found started): deterministic, see {@link scheduledAgentId}. */
  agentId?: string;
  /** Set for a fire asked for by `trigger`. */
  manual?: true;
  /** Why it was skipped or refused. */
  reason?: string;
}

/** What a user gives to add a schedule. */
export interface ScheduleInput {
  /** The schedule's id: 1-64 letters, digits, '_' or '-'. A new one when absent. */
  id?: string;
  /** Five fields (`0 9 * * 1-5`) or six with seconds first. */
  cron: string;
  /** An IANA time zone; default UTC. */
  timezone?: string;
  /** The goal each fire submits. */
  goal: string;
  /** The agent definition to run; the host's default when absent. */
  agent?: string;
  input?: Record<string, unknown>;
  /** Labels on every agent it starts (beside `schedule` and `scheduled-for`, which it always sets). */
  labels?: Record<string, string>;
  overlap?: OverlapPolicy;
  /** How late a fire may still be handled (all hosts down meanwhile); 0: a fire is never caught up. */
  catchupWindowMs?: number;
}

/** A schedule as its bucket keeps it (JSON, key = id). */
export interface ScheduleRecord {
  v: 1;
  id: string;
  cron: string;
  timezone: string;
  goal: string;
  agent?: string;
  input?: Record<string, unknown>;
  labels?: Record<string, string>;
  overlap: OverlapPolicy;
  catchupWindowMs: number;
  state: ScheduleState;
  /** Bumped by resume: a durable tick armed for an older generation is stale and dropped. */
  generation: number;
  /** The next fire time a tick is armed for; absent while paused or when the expression never fires again. */
  nextFireAt?: number;
  lastFire?: ScheduleFire;
  /** The last fire that started an agent: the run the overlap policy looks at. */
  lastRun?: { agentId: string; at: number; handledAt: number };
  /** Fires that started an agent, that were skipped (overlap or late), that were refused. */
  counts: { started: number; skipped: number; refused: number };
  createdAt: number;
  updatedAt: number;
  createdBy?: Principal;
}

const invalid = (message: string, scheduleId?: string) => new ScheduleError(ScheduleErrorCode.Invalid, message, scheduleId === undefined ? undefined : { scheduleId });

/** Checks a schedule id; throws `ERR_INVALID_SCHEDULE` saying what is allowed. */
export function assertScheduleId(id: string): string {
  if (typeof id !== 'string' || !SCHEDULE_ID.test(id)) {
    throw invalid(`schedule id ${JSON.stringify(id)} is not usable: use 1-64 letters, digits, '_' or '-' (e.g. weekday-digest)`);
  }
  return id;
}

/** A new schedule id: `s-` + milliseconds in base 36 + 6 random hex digits. */
export function newScheduleId(now = Date.now()): string {
  return `s-${now.toString(36)}-${randomBytes(3).toString('hex')}`;
}

/** `2026-12-05T09:00:00.000Z` → `20261205T090000Z` (milliseconds kept when not zero). */
function compactTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  const [date, time] = iso.split('T') as [string, string];
  const [hms, frac = '000Z'] = time.split('.') as [string, string?];
  const msPart = frac.slice(0, 3);
  return `${date.replaceAll('-', '')}T${hms.replaceAll(':', '')}${msPart === '000' ? '' : msPart}Z`;
}

/**
 * The agent a fire starts: `<scheduleId>-<fire time, UTC>` (`weekday-digest-20261207T080000Z`);
 * `<scheduleId>-now-<time>` for a `trigger`. Deterministic, so a fire handled twice (by a host that
 * died before recording it, or by two hosts) submits the same id, and the intake starts it once.
 */
export function scheduledAgentId(scheduleId: string, fireAt: number, manual = false): string {
  const id = `${scheduleId}-${manual ? 'now-' : ''}${compactTime(fireAt)}`;
  if (!isAgentId(id)) throw invalid(`schedule id ${JSON.stringify(scheduleId)} gives an unusable agent id`, scheduleId);
  return id;
}

/**
 * Checks what a user gave and builds the new schedule's record, its first fire computed from
 * `now`. Throws {@link ScheduleError} `ERR_INVALID_SCHEDULE` for the first thing wrong, saying what
 * to do instead.
 */
export function newScheduleRecord(input: ScheduleInput, options: { now: number; createdBy?: Principal }): ScheduleRecord {
  const id = input.id === undefined ? newScheduleId(options.now) : assertScheduleId(input.id);
  const timezone = input.timezone ?? DEFAULT_TIMEZONE;
  compileCron(input.cron, timezone);
  if (typeof input.goal !== 'string' || input.goal.trim().length === 0) throw invalid('a schedule needs a goal: the words each fire hands to an agent', id);
  if (input.goal.length > 100_000) throw invalid(`the goal is ${input.goal.length} characters long; at most 100000 are allowed`, id);
  if (input.agent !== undefined && !/^[A-Za-z0-9_-]{1,128}$/.test(input.agent)) {
    throw invalid(`agent ${JSON.stringify(input.agent)} is not an agent definition id: use letters, digits, '_' and '-'`, id);
  }
  const overlap = input.overlap ?? DEFAULT_OVERLAP;
  if (!OVERLAP_POLICIES.includes(overlap)) throw invalid(`overlap policy ${JSON.stringify(overlap)} is unknown: use one of ${OVERLAP_POLICIES.join(', ')}`, id);
  const catchupWindowMs = input.catchupWindowMs ?? DEFAULT_CATCHUP_WINDOW_MS;
  if (!Number.isInteger(catchupWindowMs) || catchupWindowMs < 0) throw invalid(`the catch-up window must be a whole number of milliseconds, 0 or more; got ${catchupWindowMs}`, id);
  const nextFireAt = nextFireAfter(input.cron, timezone, options.now);
  if (nextFireAt === undefined) throw invalid(`cron expression ${JSON.stringify(input.cron)} never fires after ${new Date(options.now).toISOString()}`, id);
  return {
    v: 1,
    id,
    cron: input.cron.trim(),
    timezone,
    goal: input.goal,
    ...(input.agent !== undefined ? { agent: input.agent } : {}),
    ...(input.input !== undefined ? { input: input.input } : {}),
    ...(input.labels !== undefined ? { labels: input.labels } : {}),
    overlap,
    catchupWindowMs,
    state: 'active',
    generation: 0,
    nextFireAt,
    counts: { started: 0, skipped: 0, refused: 0 },
    createdAt: options.now,
    updatedAt: options.now,
    ...(options.createdBy ? { createdBy: options.createdBy } : {}),
  };
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isTime = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/** Reads a stored schedule; throws `ERR_SCHEDULE_UNREADABLE` for anything this build did not write. */
export function decodeScheduleRecord(data: Uint8Array | string, key?: string): ScheduleRecord {
  const unreadable = (why: string) =>
    new ScheduleError(ScheduleErrorCode.Unreadable, `schedule ${key ?? '?'} cannot be read: ${why} (written by a newer Errand, or not by Errand)`, key === undefined ? undefined : { scheduleId: key });
  let r: unknown;
  try {
    r = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data));
  } catch {
    throw unreadable('not JSON');
  }
  if (!isObject(r)) throw unreadable('not an object');
  if (r.v !== 1) throw unreadable(`version ${JSON.stringify(r.v)}`);
  const ok =
    typeof r.id === 'string' &&
    SCHEDULE_ID.test(r.id) &&
    typeof r.cron === 'string' &&
    typeof r.timezone === 'string' &&
    typeof r.goal === 'string' &&
    (r.agent === undefined || typeof r.agent === 'string') &&
    (r.input === undefined || isObject(r.input)) &&
    (r.labels === undefined || isObject(r.labels)) &&
    OVERLAP_POLICIES.includes(r.overlap as OverlapPolicy) &&
    isTime(r.catchupWindowMs) &&
    SCHEDULE_STATES.includes(r.state as ScheduleState) &&
    isTime(r.generation) &&
    (r.nextFireAt === undefined || isTime(r.nextFireAt)) &&
    (r.lastFire === undefined || (isObject(r.lastFire) && isTime(r.lastFire.at) && FIRE_OUTCOMES.includes(r.lastFire.outcome as FireOutcome))) &&
    (r.lastRun === undefined || (isObject(r.lastRun) && typeof r.lastRun.agentId === 'string' && isTime(r.lastRun.handledAt))) &&
    isObject(r.counts) &&
    isTime(r.createdAt) &&
    isTime(r.updatedAt);
  if (!ok) throw unreadable('fields missing or of the wrong type');
  return r as unknown as ScheduleRecord;
}

export function encodeScheduleRecord(record: ScheduleRecord): string {
  return JSON.stringify(record);
}
