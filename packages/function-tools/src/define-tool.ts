import { z } from 'zod';
import { ErrandError, silentLogger, TOOL_POLICIES, type Logger } from '@errand/protocols';
import { ToolError, ToolErrorCode, type Tool, type ToolContext, type ToolPolicy } from '@errand/tools';

/** Marks a tool made by {@link defineTool}. A registered symbol, so a runner recognises tools made by another copy of this package. */
export const FUNCTION_TOOL = Symbol.for('errand.function-tool');

export const FunctionToolErrorCode = {
  /** A name that is not a tool name: letters, digits, `_` and `-`, at most 64 (what OpenAI accepts as a function name). */
  InvalidName: 'ERR_INVALID_TOOL_NAME',
  /** Another field of the definition is missing or wrong (description, input schema, policy, idempotent, time limits, run). */
  InvalidDefinition: 'ERR_INVALID_TOOL_DEFINITION',
  /** The tool returned something its `output` schema refuses, or that is not JSON: a bug in the tool. */
  InvalidOutput: 'ERR_TOOL_OUTPUT',
  /** A module named to a runner (`--tools`) cannot be found. */
  ModuleNotFound: 'ERR_TOOL_MODULE_NOT_FOUND',
  /** A module named to a runner threw while it was imported. */
  ModuleFailed: 'ERR_TOOL_MODULE_FAILED',
  /** A module named to a runner exports no tool made with defineTool. */
  NoTools: 'ERR_NO_TOOLS',
  /** Two tools with one name (in one module, across modules, or beside a built-in or MCP tool). */
  DuplicateName: 'ERR_DUPLICATE_TOOL',
} as const;
export type FunctionToolErrorCode = (typeof FunctionToolErrorCode)[keyof typeof FunctionToolErrorCode];

/** A tool definition or a tool module that cannot be served; the message says what to change. */
export class FunctionToolError extends ErrandError {
  constructor(code: FunctionToolErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'FunctionToolError';
  }
}

/** What a function tool's `run` gets beside its arguments. */
export interface ToolRunContext {
  /**
   * The call's idempotency key: the same for every delivery of one call, across runner crashes.
   * Pass it on to an API that takes one (`Idempotency-Key`), so a re-run cannot do the work twice.
   */
  readonly key: string;
  /** Aborts at the time limit, when the agent is cancelled, or when the runner stops. Pass it to every I/O call. */
  readonly signal: AbortSignal;
  /**
   * Says the call is still making progress. The runner tells JetStream at once; with
   * `heartbeatTimeoutMs`, a call silent longer than that is aborted as stuck.
   */
  heartbeat(): void;
  /** Bound to the agent, the key and the tool; goes where the runner's logs go, redacted. */
  readonly log: Logger;
}

/** What {@link defineTool} takes. */
export interface ToolSpec<I extends z.ZodType, O extends z.ZodType> {
  /** The name the model calls it by: letters, digits, `_` and `-`, at most 64. */
  name: string;
  /** What it does, for the model: when to use it and what it returns. */
  description: string;
  /** The arguments. Must be an object schema; it becomes the catalog's JSON Schema (`z.toJSONSchema`), and every call is checked against it before `run`. */
  input: I;
  /** What `run` returns; checked after every call when given (a mismatch is `ERR_TOOL_OUTPUT`). */
  output?: O;
  /** `auto` runs; `ask` runs each call only once a person approved its exact arguments; `deny` is never offered. A runner's settings can override it. */
  policy: ToolPolicy;
  /**
   * Safe to run twice with one key. A runner killed mid-call re-runs an idempotent tool; a
   * non-idempotent one is not re-run: the agent is told the effect is uncertain and asks a person.
   */
  idempotent: boolean;
  /** Changes or destroys something (shown in the catalog). Default false. */
  destructive?: boolean;
  /** The time limit of one call; the call is aborted past it and the model told (`ERR_TOOL_TIMEOUT`, retryable). Default 60 s. */
  timeoutMs?: number;
  /** When set, a call that does not call `ctx.heartbeat()` for this long is aborted as stuck (`ERR_TOOL_TIMEOUT`, retryable). */
  heartbeatTimeoutMs?: number;
  /** Does the work. Throw {@link ToolError} for a failure the model should read; any other error reaches it as an internal failure. */
  run(args: z.output<I>, ctx: ToolRunContext): Promise<z.input<O>> | z.input<O>;
}

/** A tool made by {@link defineTool}: a tool-runner serves it like a built-in. */
export interface FunctionTool extends Tool {
  readonly [FUNCTION_TOOL]: 1;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** The built-in agent's own tools (@errand/agent): it never offers a catalog tool of these names, so one would never be called. */
const AGENT_TOOLS: ReadonlySet<string> = new Set(['update_plan', 'ask_human', 'delegate']);

function invalid(name: string, what: string): never {
  throw new FunctionToolError(FunctionToolErrorCode.InvalidDefinition, `defineTool(${JSON.stringify(name)}): ${what}`);
}

/** Checks a tool name; throws {@link FunctionToolError} `ERR_INVALID_TOOL_NAME` saying what is wrong. */
export function checkToolName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) throw new FunctionToolError(FunctionToolErrorCode.InvalidName, 'defineTool: a tool needs a name (letters, digits, _ and -)');
  if (!NAME.test(name)) {
    const bad = [...name].find((c) => !/[A-Za-z0-9_-]/.test(c));
    const why = bad === undefined ? `is ${name.length} characters long; at most 64 are allowed` : `contains ${/\s/.test(bad) ? 'whitespace' : `'${bad}'`}; use only letters, digits, '_' and '-'`;
    throw new FunctionToolError(FunctionToolErrorCode.InvalidName, `tool name ${JSON.stringify(name)} ${why}`);
  }
  if (AGENT_TOOLS.has(name)) throw new FunctionToolError(FunctionToolErrorCode.InvalidName, `tool name ${JSON.stringify(name)} is one of the built-in agent's own tools (${[...AGENT_TOOLS].join(', ')}); pick another`);
  return name;
}

const isSchema = (v: unknown): v is z.ZodType => typeof v === 'object' && v !== null && '_zod' in v && typeof (v as { safeParseAsync?: unknown }).safeParseAsync === 'function';

/** The issues of a failed parse, one line: `days: Too big: expected number to be <=7; city: Required`. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 8)
    .map((i) => `${i.path.length ? i.path.join('.') : '(arguments)'}: ${i.message}`)
    .join('; ');
}

/**
 * Makes a tool from a function. Checks the definition at once (throws {@link FunctionToolError}:
 * `ERR_INVALID_TOOL_NAME`, `ERR_INVALID_TOOL_DEFINITION`). The tool it returns, on every call:
 * checks the arguments against `input` (a mismatch is a `ToolError` `ERR_TOOL_ARGUMENTS` the model
 * reads, naming each field, and `run` is not called); runs `run` with the parsed arguments and a
 * {@link ToolRunContext}; checks the result against `output` when given (`ERR_TOOL_OUTPUT`); and
 * returns it as JSON. Serve it with `errand worker tool-runner --tools <module>`; call
 * `tool.run(args, { signal, key })` to try it in a test.
 */
export function defineTool<I extends z.ZodType, O extends z.ZodType = z.ZodType<unknown>>(spec: ToolSpec<I, O>): FunctionTool {
  const name = checkToolName((spec as { name?: unknown } | undefined)?.name);
  if (typeof spec.description !== 'string' || !spec.description.trim()) invalid(name, 'a description is required: it is how the model knows when to use the tool');
  if (!isSchema(spec.input)) invalid(name, '`input` must be a zod schema of the arguments, such as z.object({ city: z.string() })');
  if (spec.output !== undefined && !isSchema(spec.output)) invalid(name, '`output`, when given, must be a zod schema');
  if (!(TOOL_POLICIES as readonly string[]).includes(spec.policy)) invalid(name, `\`policy\` must be one of ${TOOL_POLICIES.join(', ')} (got ${JSON.stringify(spec.policy)})`);
  if (typeof spec.idempotent !== 'boolean') invalid(name, '`idempotent` must be true (safe to run again after a crash) or false (the agent asks a person instead)');
  if (spec.destructive !== undefined && typeof spec.destructive !== 'boolean') invalid(name, '`destructive`, when given, must be true or false');
  for (const field of ['timeoutMs', 'heartbeatTimeoutMs'] as const) {
    const v = spec[field];
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) invalid(name, `\`${field}\` must be a whole number of milliseconds above 0 (got ${JSON.stringify(v)})`);
  }
  if (typeof spec.run !== 'function') invalid(name, '`run(args, ctx)` must be a function');

  let parameters: Record<string, unknown>;
  try {
    // The schema's own zod copy writes it (a module may bring another copy of zod 4); `input`
    // mode: what the model may send (fields with defaults are optional).
    // (`schema.toJSONSchema()` came in a later zod 4 minor than z.toJSONSchema.)
    const own = (spec.input as { toJSONSchema?: (params: { io: 'input' }) => unknown }).toJSONSchema;
    const json = typeof own === 'function' ? own.call(spec.input, { io: 'input' }) : z.toJSONSchema(spec.input, { io: 'input' });
    const { $schema: _drop, ...rest } = json as Record<string, unknown>;
    parameters = rest;
  } catch (err) {
    invalid(name, `the input schema cannot be written as JSON Schema for the model: ${(err as Error).message}`);
  }
  if (parameters.type !== 'object') invalid(name, '`input` must be an object schema (z.object({...})): a tool takes named arguments');

  const timeoutMs = spec.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { input, output, heartbeatTimeoutMs } = spec;
  const run = async (args: unknown, context: ToolContext): Promise<unknown> => {
    const parsed = await input.safeParseAsync(args ?? {});
    if (!parsed.success) throw new ToolError(ToolErrorCode.InvalidArguments, `${name}: invalid arguments: ${describeIssues(parsed.error)}`);
    // A heartbeat watchdog of our own: aborts a call that stopped saying it is alive.
    const stuck = new AbortController();
    let watchdog: NodeJS.Timeout | undefined;
    const arm = () => {
      if (heartbeatTimeoutMs === undefined) return;
      clearTimeout(watchdog);
      watchdog = setTimeout(() => stuck.abort(new ToolError(ToolErrorCode.Timeout, `${name} sent no heartbeat for ${heartbeatTimeoutMs} ms and was aborted as stuck`, true)), heartbeatTimeoutMs);
    };
    arm();
    const signal = heartbeatTimeoutMs === undefined ? context.signal : AbortSignal.any([context.signal, stuck.signal]);
    const ctx: ToolRunContext = {
      key: context.key,
      signal,
      heartbeat: () => {
        arm();
        context.heartbeat?.();
      },
      log: context.log ?? silentLogger,
    };
    let result: unknown;
    try {
      const running = Promise.resolve(spec.run(parsed.data, ctx));
      result = await (heartbeatTimeoutMs === undefined
        ? running
        : Promise.race([running, new Promise<never>((_, reject) => stuck.signal.addEventListener('abort', () => reject(stuck.signal.reason as Error), { once: true }))]));
    } catch (err) {
      // Past the heartbeat limit, whatever the tool threw on the abort, the model is told why.
      if (stuck.signal.aborted && !context.signal.aborted) throw stuck.signal.reason;
      throw err;
    } finally {
      clearTimeout(watchdog);
    }
    if (output) {
      const checked = await output.safeParseAsync(result);
      if (!checked.success) throw new ToolError(FunctionToolErrorCode.InvalidOutput, `${name} returned a result its output schema refuses (a bug in the tool, not in the call): ${describeIssues(checked.error)}`);
      result = checked.data;
    }
    return toJson(name, result);
  };
  const tool: FunctionTool = {
    [FUNCTION_TOOL]: 1,
    definition: { name, description: spec.description, parameters },
    idempotent: spec.idempotent,
    destructive: spec.destructive ?? false,
    defaultPolicy: spec.policy,
    timeoutMs,
    run,
  };
  return Object.freeze(tool);
}

/** The result as the model will read it: JSON (dates become strings, `undefined` fields go); what JSON cannot hold is `ERR_TOOL_OUTPUT`. */
function toJson(name: string, value: unknown): unknown {
  if (value === undefined) return null;
  try {
    return JSON.parse(JSON.stringify(value)) as unknown;
  } catch (err) {
    throw new ToolError(FunctionToolErrorCode.InvalidOutput, `${name} returned a result that is not JSON (${(err as Error).message}); return plain objects, arrays, strings, numbers, booleans or null`);
  }
}

/** Whether `value` is a tool made by {@link defineTool} (by this or another copy of the package). */
export function isFunctionTool(value: unknown): value is FunctionTool {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[FUNCTION_TOOL] === 1;
}
