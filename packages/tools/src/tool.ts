import type { ErrorInfo, Logger, ToolDefinition } from '@errand/protocols';

export type ToolPolicy = 'auto' | 'ask' | 'deny';

/** A tool a runner can execute. */
export interface Tool {
  readonly definition: ToolDefinition;
  /** Safe to run again after a crash mid-call (the same effect twice is harmless). */
  readonly idempotent: boolean;
  /** Changes or destroys something. */
  readonly destructive: boolean;
  readonly defaultPolicy: ToolPolicy;
  /** Calls whose arguments have all these values need a person's approval even when the policy is `auto`. */
  readonly askIfArgs?: Readonly<Record<string, unknown>>;
  readonly timeoutMs: number;
  /** Runs the call. Throws {@link ToolError} for failures the model should see; honours `signal`. */
  run(args: unknown, context: ToolContext): Promise<unknown>;
}

export interface ToolContext {
  signal: AbortSignal;
  /** The call's idempotency key (for tools that pass it on to what they call). */
  key: string;
  /** Tells the runner the call is still making progress (JetStream's ack wait starts again). Given by a tool-runner. */
  heartbeat?: () => void;
  /** A logger bound to the agent, the call's key and the tool. Given by a tool-runner. */
  log?: Logger;
}

export const ToolErrorCode = {
  InvalidArguments: 'ERR_TOOL_ARGUMENTS',
  OutsideWorkspace: 'ERR_OUTSIDE_WORKSPACE',
  NotFound: 'ERR_NOT_FOUND',
  TooLarge: 'ERR_TOO_LARGE',
  HostNotAllowed: 'ERR_HOST_NOT_ALLOWED',
  HttpStatus: 'ERR_HTTP_STATUS',
  Network: 'ERR_NETWORK',
  Timeout: 'ERR_TOOL_TIMEOUT',
  Cancelled: 'ERR_TOOL_CANCELLED',
  CommandNotAllowed: 'ERR_COMMAND_NOT_ALLOWED',
  CommandFailed: 'ERR_COMMAND_FAILED',
  SandboxUnavailable: 'ERR_SANDBOX_UNAVAILABLE',
} as const;
export type ToolErrorCode = (typeof ToolErrorCode)[keyof typeof ToolErrorCode];

/** A tool failure as the model should read it: what went wrong and whether trying again can help. */
export class ToolError extends Error {
  constructor(
    readonly code: ToolErrorCode | string,
    message: string,
    readonly retryable = false,
  ) {
    super(message);
    this.name = 'ToolError';
  }

  toErrorInfo(): ErrorInfo {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

/** Reads an object argument; throws `ERR_TOOL_ARGUMENTS` naming what is wrong. */
export function objectArgs(args: unknown, tool: string): Record<string, unknown> {
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    throw new ToolError(ToolErrorCode.InvalidArguments, `${tool} takes an object of arguments`);
  }
  return args as Record<string, unknown>;
}

export function stringArg(args: Record<string, unknown>, name: string, tool: string): string {
  const v = args[name];
  if (typeof v !== 'string' || v.length === 0) throw new ToolError(ToolErrorCode.InvalidArguments, `${tool}: '${name}' must be a non-empty string`);
  return v;
}
