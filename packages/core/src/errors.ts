import { ErrandError } from '@errand/protocols';

export const RuntimeErrorCode = {
  /** No agent definition with that id is registered on this host. */
  UnknownAgent: 'ERR_UNKNOWN_AGENT',
  /** The record was written by another machine version and no migration is registered. */
  MachineVersion: 'ERR_MACHINE_VERSION',
  /** A message arrived for an agent that does not exist (yet, or any more). */
  AgentNotFound: 'ERR_AGENT_NOT_FOUND',
  /** A guard, action or assignment of the machine threw. */
  MachineError: 'ERR_MACHINE',
  /** The compare-and-set kept losing to other hosts. */
  Contention: 'ERR_CONTENTION',
  /** An agent definition is not usable. */
  InvalidDefinition: 'ERR_INVALID_DEFINITION',
  /** A goal names a parent agent that did not start it (only an agent's own step starts its children). */
  NotAChild: 'ERR_NOT_A_CHILD',
} as const;
export type RuntimeErrorCode = (typeof RuntimeErrorCode)[keyof typeof RuntimeErrorCode];

export class RuntimeError extends ErrandError {
  declare readonly code: RuntimeErrorCode;

  constructor(code: RuntimeErrorCode, message: string, options?: { cause?: unknown; agentId?: string | undefined }) {
    super(code, message, options);
    this.name = 'RuntimeError';
  }
}
