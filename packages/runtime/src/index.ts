export {
  ErrandAction,
  errandActions,
  FAILURE_OUTPUT_KEY,
  failureOutput,
  type CancelChildParams,
  type EmitParams,
  type ErrandActionType,
  type NotifyParams,
  type PlanParams,
  type SendParams,
  type SpawnParams,
  type ToolCallParams,
} from './actions.js';
export {
  createRegistry,
  defineAgent,
  type AgentDefinition,
  type AgentDefinitionOptions,
  type AgentInput,
  type AgentRegistry,
  type SnapshotMigration,
} from './agent-definition.js';
export { decide, FORK_EVENT, machineEventOf, replayJournaled, TERMINAL_STATUSES, type Decision, type JournaledStep, type StepContext } from './apply.js';
export { CRASH_POINTS, isCrashPoint, type CrashHook, type CrashPoint } from './crash-points.js';
export { RuntimeError, RuntimeErrorCode } from './errors.js';
export { defaultHostOptions, INBOX_CONSUMER, inboxIdOf, startHost, TIMER_CONSUMER, type Host, type HostOptions } from './host.js';
export { childAgentId, newAgentId } from './ids.js';
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
