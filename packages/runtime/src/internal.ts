// Everything @errand/runtime is built from, for its own tests and for benchmarks. Not a stable
// API: other packages use the public door (index.ts).
export * from './index.js';
export { defaultHostOptions, INBOX_CONSUMER, inboxIdOf, TIMER_CONSUMER } from './host.js';
export { DEFAULT_SUBMIT_RATE, startIntake, type IntakeOptions, type SubmitRate } from './intake.js';
export { StepExecutor, type StepExecutorOptions, type StepOutcome } from './step-executor.js';
export { createTimerHandler, type TimerFiringOptions } from './timers.js';
export { toolsForGoal } from './catalog.js';
export { DEFAULT_GC_INTERVAL_MS, defaultGcOptions } from './retention.js';
export { attribute, attributeInbox, type Attribution } from './attribution.js';
