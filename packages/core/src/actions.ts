import type { Budget, ChatMessage, NotifyRule, Task, ToolDefinition, Usage, ErrorInfo, Principal, WaitKind } from '@errand/protocols';

/**
 * The command conventions. A machine asks for effects with actions of these types; the host never
 * executes them — it turns each into a durable command, published only after the step that
 * decided it is committed. Declare them in `setup({ actions: { ...errandActions } })` and use them
 * as `{ type: 'errand.tool', params: ({ context }) => ({ … }) }`.
 *
 * Delayed events (`after`, `raise(…, { delay })`) and `cancel(id)` need nothing: they become
 * durable timers. A final state finishes the agent with the machine's `output`.
 */
export const ErrandAction = {
  /** Ask the planner (an LLM) for the next move: answered by a `plan.result` event. */
  Plan: 'errand.plan',
  /** Call a tool: answered by a `tool.result` event. */
  Tool: 'errand.tool',
  /** Notify people on a channel. */
  Notify: 'errand.notify',
  /** Publish a progress event (`plan`, `tool`, `approval`, `usage`). */
  Emit: 'errand.emit',
  /** Start a child agent: its outcome arrives as a `child.result` event. */
  Spawn: 'errand.spawn',
  /** Cancel a child agent by its ref. */
  CancelChild: 'errand.cancelChild',
  /** Send an event to another agent (it arrives as that event). */
  Send: 'errand.send',
  /**
   * Say what the agent now waits for a person to do: the runtime sets `record.waiting` (status
   * `waiting`) and, for an approval or budget wait, keeps the approval request a decision must
   * name. See {@link WaitParams} and docs/agents.md for when the runtime clears it.
   */
  Wait: 'errand.wait',
  /** Stop waiting for a person without the event that answers it (the agent gave up or moved on). */
  EndWait: 'errand.endWait',
} as const;
export type ErrandActionType = (typeof ErrandAction)[keyof typeof ErrandAction];

export interface PlanParams {
  /** Echoed in the `plan.result`, so the machine can tell the answer it waits for from a stale one. */
  ref?: string;
  messages: ChatMessage[];
  tools: ToolDefinition[];
  model?: string;
  labels?: Record<string, string>;
  overDailyCap?: boolean;
  temperature?: number;
  maxOutputTokens?: number;
}

export interface ToolCallParams {
  /** Unique within the agent: the result carries it back. */
  callId: string;
  tool: string;
  args: unknown;
  attempt?: number;
  timeoutMs?: number;
  /**
   * The approval request (its `requestId`) a person decided for this call. The host attaches
   * approval evidence to the command only when that request was approved and names exactly this
   * tool and these arguments; a tool-runner runs an `ask` tool only with that evidence.
   */
  approval?: string;
}

export interface NotifyParams {
  channel: string;
  topic: NotifyRule['on'][number];
  title: string;
  text: string;
  link?: string;
  approval?: { requestId: string; argsHash: string; tool: string; summary: string; deadlineAt?: number };
}

export type EmitParams =
  | { kind: 'plan'; tasks: Task[] }
  | {
      kind: 'tool';
      callId: string;
      tool: string;
      status: 'requested' | 'ok' | 'error' | 'retrying' | 'cancelled';
      attempt: number;
      durationMs?: number;
      error?: ErrorInfo;
    }
  | {
      kind: 'approval';
      requestId: string;
      status: 'requested' | 'approved' | 'denied' | 'expired' | 'refused';
      argsHash: string;
      /**
       * Required with `status: 'requested'`: the calls the request asks about (`[]` for a question
       * that is not about tool calls, such as a budget). The host keeps the request in the record;
       * an `approval` message is applied only when it names an open request and its `argsHash`.
       * Not published with the event.
       */
      calls?: { tool: string; args: unknown }[];
      tool?: string;
      by?: Principal;
      reason?: string;
    }
  | { kind: 'usage'; usage: Usage; total: { inputTokens: number; outputTokens: number; costUsd: number } };

export interface SpawnParams {
  /** The parent's name for the child, unique within the parent; the child's id derives from it. */
  ref: string;
  goal: string;
  /** The child's agent definition (the host's default when absent). */
  agent?: string;
  input?: Record<string, unknown>;
  labels?: Record<string, string>;
  budget?: Budget;
  model?: string;
  tools?: string[];
}

export interface CancelChildParams {
  ref: string;
  reason?: string;
}

export interface SendParams {
  /** The recipient agent's id. */
  to: string;
  event: { type: string; [key: string]: unknown };
}

/**
 * The params of `errand.wait`. The runtime keeps them as `record.waiting` (with `since`, and
 * `deadlineAt` as `deadline`) until one of these clears it, whichever comes first:
 * - the event that answers it is applied: an `approval` decision naming `requestId` (approval and
 *   budget waits), an `input` naming `requestId` or none (input waits), a `control.budget` (budget waits);
 * - the machine emits an `approval` event other than `requested` for `requestId` (`expired`,
 *   `approved`, `denied`, `refused`), asks for another `errand.wait`, or `errand.endWait`;
 * - the agent ends (done, failed, cancelled).
 * An event that clears it reaches the machine in the same step, so a machine that still waits
 * after it (an answer it does not accept) says so with `errand.wait` again.
 */
export interface WaitParams {
  kind: WaitKind;
  /** The id a person's `approval` or `input` message names; unique per question within the agent. */
  requestId: string;
  /** What the person is asked (input and budget waits). */
  question?: string;
  /**
   * Approval waits: the exact calls asked about, arguments as the tool would get them. The runtime
   * keeps the approval request (as `errand.emit` of an approval `requested` does), so a decision
   * applies only to it and an approved call carries evidence. Budget waits ask about no call.
   */
  calls?: { tool: string; args: unknown }[];
  /** Approval and budget waits: the hash a decision must name (the built-in agent's is `approvalHash(calls)`). */
  argsHash?: string;
  summary?: string;
  /** When the machine will stop waiting (its own timer), for people to see. */
  deadlineAt?: number;
  /**
   * The same as a delay from this step, on the runtime's clock (as a delayed event's is): a
   * machine has no clock of its own. Ignored when `deadlineAt` is given.
   */
  deadlineInMs?: number;
}

/** The params of `errand.endWait`: with `requestId`, only that wait ends. */
export interface EndWaitParams {
  requestId?: string;
}

/** Where a machine's output carries this key, the agent ends `failed` with that error. */
export const FAILURE_OUTPUT_KEY = 'errand.failure';

/** The output of a final state that means failure: the agent ends `failed` with `error`. */
export function failureOutput(error: ErrorInfo): { [FAILURE_OUTPUT_KEY]: ErrorInfo } {
  return { [FAILURE_OUTPUT_KEY]: error };
}

// The host interprets these actions; their implementations never run.
const declared = <P>() => (_args: unknown, _params: P): void => {};

/** Spread into `setup({ actions })` so typed machines may use the Errand action types. */
export const errandActions = {
  [ErrandAction.Plan]: declared<PlanParams>(),
  [ErrandAction.Tool]: declared<ToolCallParams>(),
  [ErrandAction.Notify]: declared<NotifyParams>(),
  [ErrandAction.Emit]: declared<EmitParams>(),
  [ErrandAction.Spawn]: declared<SpawnParams>(),
  [ErrandAction.CancelChild]: declared<CancelChildParams>(),
  [ErrandAction.Send]: declared<SendParams>(),
  [ErrandAction.Wait]: declared<WaitParams>(),
  [ErrandAction.EndWait]: declared<EndWaitParams>(),
};
