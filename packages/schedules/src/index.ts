// @errand/schedules: cron schedules kept in JetStream that start agents at their times — never
// twice and never skipped across restarts and many hosts. See docs/schedules.md.
export { assertTimezone, compileCron, DEFAULT_TIMEZONE, nextFireAfter, nextFires } from './cron.js';
export { formatScheduleDuration, parseScheduleDuration, SCHEDULE_DURATION_FORMAT } from './duration.js';
export { ScheduleError, ScheduleErrorCode } from './errors.js';
export { fireSchedule, schedulePrincipal, type FireOptions } from './fire.js';
export {
  assertScheduleId,
  decodeScheduleRecord,
  DEFAULT_CATCHUP_WINDOW_MS,
  DEFAULT_OVERLAP,
  FIRE_OUTCOMES,
  newScheduleRecord,
  OVERLAP_POLICIES,
  scheduledAgentId,
  SCHEDULE_STATES,
  type FireOutcome,
  type OverlapPolicy,
  type ScheduleFire,
  type ScheduleInput,
  type ScheduleRecord,
  type ScheduleState,
} from './record.js';
export { recordFire, ScheduleStore, type StoredSchedule } from './store.js';
export {
  defaultSchedulerOptions,
  MIN_CATCHUP_WINDOW_MS,
  nextFireAfterHandling,
  SCHEDULE_CONSUMER,
  scheduleTickMessageId,
  startScheduler,
  type Scheduler,
  type SchedulerOptions,
} from './scheduler.js';
