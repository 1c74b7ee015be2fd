import { ErrandError } from '@errand/protocols';

export const ScheduleErrorCode = {
  /** A cron expression, time zone, duration, id, policy or goal that cannot be used: the message says which and what to do. */
  Invalid: 'ERR_INVALID_SCHEDULE',
  /** `add` with an id that is taken. */
  Exists: 'ERR_SCHEDULE_EXISTS',
  /** No schedule has that id. */
  NotFound: 'ERR_SCHEDULE_NOT_FOUND',
  /** A stored schedule this build cannot read (written by a newer one, or not by Errand). */
  Unreadable: 'ERR_SCHEDULE_UNREADABLE',
  /** The schedule kept changing under a compare-and-set (someone else writes it in a loop). */
  Conflict: 'ERR_SCHEDULE_CONFLICT',
} as const;
export type ScheduleErrorCode = (typeof ScheduleErrorCode)[keyof typeof ScheduleErrorCode];

/** A schedule operation refused or failed; `code` says which, `scheduleId` which schedule. */
export class ScheduleError extends ErrandError {
  readonly scheduleId: string | undefined;

  constructor(code: ScheduleErrorCode, message: string, options?: { scheduleId?: string; cause?: unknown }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ScheduleError';
    this.scheduleId = options?.scheduleId;
  }
}
