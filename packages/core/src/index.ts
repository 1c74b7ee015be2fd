export {
  ErrandAction,
  errandActions,
  FAILURE_OUTPUT_KEY,
  failureOutput,
  type CancelChildParams,
  type EmitParams,
  type EndWaitParams,
  type ErrandActionType,
  type NotifyParams,
  type PlanParams,
  type SendParams,
  type SpawnParams,
  type ToolCallParams,
  type WaitParams,
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
export { decide, machineEventOf, type Decision } from './decide.js';
export { FORK_EVENT } from './fork.js';
export type { MachineEvent, StepContext } from './record.js';
export { replayJournaled, type JournaledStep } from './replay.js';
export { RuntimeError, RuntimeErrorCode } from './errors.js';
// Defined with the wire contract; re-exported for code that took them from the kernel.
export { childAgentId, newAgentId, TERMINAL_STATUSES } from '@errand/protocols';
// For machines that ask for approval: the argsHash a decision names, the built-in agent's way.
export { approvalHash } from '@errand/protocols';
