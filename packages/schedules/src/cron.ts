import { Cron } from 'croner';
import { ScheduleError, ScheduleErrorCode } from './errors.js';

/** The time zone of a schedule that names none. */
export const DEFAULT_TIMEZONE = 'UTC';

/**
 * Checks an IANA time zone name (`Europe/Paris`, `America/New_York`, `UTC`). Throws
 * {@link ScheduleError} `ERR_INVALID_SCHEDULE` for one this Node's time zone data does not know.
 */
export function assertTimezone(timezone: string): string {
  try {
    if (typeof timezone !== 'string' || timezone.length === 0) throw new RangeError('empty');
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return timezone;
  } catch {
    throw new ScheduleError(
      ScheduleErrorCode.Invalid,
      `unknown time zone ${JSON.stringify(timezone)}: use an IANA name such as UTC, Europe/Paris or America/New_York (see \`timedatectl list-timezones\`)`,
    );
  }
}

const compiled = new Map<string, Cron>();

/**
 * A cron expression in a time zone, ready to say when it fires. Five fields (`minute hour
 * day-of-month month day-of-week`) or six with seconds first; names (`MON-FRI`, `JAN`) and
 * nicknames (`@daily`, `@hourly`) are accepted; day-of-month and day-of-week combine with OR, as in
 * Vixie cron. Throws {@link ScheduleError} `ERR_INVALID_SCHEDULE` saying what is wrong.
 */
export function compileCron(expression: string, timezone: string = DEFAULT_TIMEZONE): Cron {
  assertTimezone(timezone);
  const key = `${expression}\n${timezone}`;
  const hit = compiled.get(key);
  if (hit) return hit;
  let cron: Cron;
  try {
    if (typeof expression !== 'string' || expression.trim().length === 0) throw new Error('it is empty');
    cron = new Cron(expression.trim(), { timezone, paused: true, mode: '5-or-6-parts' });
  } catch (err) {
    throw new ScheduleError(
      ScheduleErrorCode.Invalid,
      `invalid cron expression ${JSON.stringify(expression)}: ${((err as Error).message ?? '').replace(/^CronPattern: /, '').replace(/\.$/, '')}. Use five fields "minute hour day-of-month month day-of-week" (e.g. "0 9 * * 1-5": weekdays at 9:00), or six with seconds first`,
      { cause: err },
    );
  }
  if (compiled.size > 1000) compiled.clear();
  compiled.set(key, cron);
  return cron;
}

/**
 * The first time after `afterMs` (strictly) at which `expression` fires in `timezone`, as epoch
 * milliseconds; undefined when it never fires again. Wall-clock times skipped by a daylight-saving
 * jump forward fire at the first instant after the jump; times repeated by a jump back fire once,
 * at their first occurrence.
 */
export function nextFireAfter(expression: string, timezone: string, afterMs: number): number | undefined {
  const next = compileCron(expression, timezone).nextRun(new Date(afterMs));
  return next ? next.getTime() : undefined;
}

/** The next `count` fire times after `afterMs`, as {@link nextFireAfter} computes them. */
export function nextFires(expression: string, timezone: string, afterMs: number, count: number): number[] {
  const out: number[] = [];
  let at = afterMs;
  for (let i = 0; i < count; i++) {
    const next = nextFireAfter(expression, timezone, at);
    if (next === undefined) break;
    out.push(next);
    at = next;
  }
  return out;
}
