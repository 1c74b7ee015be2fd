export { CRASH_POINTS, isCrashPoint, type CrashHook, type CrashPoint } from './crash-points.js';
export { defaultHostOptions, defaultHostSettings, INBOX_CONSUMER, inboxIdOf, startHost, TIMER_CONSUMER, type Host, type HostOptions, type HostSettings } from './host.js';
export { startIntake, type IntakeOptions } from './intake.js';
export { StepExecutor, type StepExecutorOptions, type StepOutcome } from './step-executor.js';
export { createTimerHandler, type TimerFiringOptions } from './timers.js';
export { readCatalog, toolsForGoal, type LiveTool } from './catalog.js';
export {
  collectGarbage,
  DEFAULT_GC_INTERVAL_MS,
  DEFAULT_RETENTION_MS,
  defaultGcOptions,
  DURATION_FORMAT,
  parseDuration,
  type GcOptions,
  type GcProgress,
  type GcResult,
} from './retention.js';
