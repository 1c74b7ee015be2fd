import { ScheduleError, ScheduleErrorCode } from './errors.js';

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** What {@link parseScheduleDuration} reads, for help texts and error messages. */
export const SCHEDULE_DURATION_FORMAT = 'a number with a unit: ms, s, m, h or d (e.g. 90s, 30m, 1h30m, 2d), or 0';

/**
 * Reads a duration such as `90s`, `30m`, `1h30m`, `2d` or `0` into milliseconds. Throws
 * {@link ScheduleError} `ERR_INVALID_SCHEDULE` naming `what` and the accepted format.
 */
export function parseScheduleDuration(value: string, what = 'duration'): number {
  const text = String(value).trim();
  if (text === '0') return 0;
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = part.exec(text)) !== null) {
    total += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
    matched = part.lastIndex;
  }
  if (text.length === 0 || matched !== text.length || !Number.isFinite(total)) {
    throw new ScheduleError(ScheduleErrorCode.Invalid, `${what} ${JSON.stringify(value)} is not a duration: use ${SCHEDULE_DURATION_FORMAT}`);
  }
  return Math.round(total);
}

/** `3600000` → `1h`, `90000` → `1m30s`: the shortest form {@link parseScheduleDuration} reads back. */
export function formatScheduleDuration(ms: number): string {
  if (ms === 0) return '0';
  let rest = ms;
  let out = '';
  for (const [unit, size] of [['d', UNIT_MS.d], ['h', UNIT_MS.h], ['m', UNIT_MS.m], ['s', UNIT_MS.s], ['ms', UNIT_MS.ms]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}
