import type { Budget, ChatMessage, ErrorInfo, NotifyRule, Task, ToolDefinition, Usage } from '@errand/protocols';
import type { AgentInput } from '@errand/core';
import { BUILT_IN_NAMES } from './built-in-tools.js';
import { DEFAULT_SYSTEM_PROMPT } from './prompts.js';
import { defaultAgentSettings, type AgentSettings } from './settings.js';

/** What the agent remembers: the context of its statechart, persisted in every snapshot. */

export interface CallState {
  id: string;
  tool: string;
  args: unknown;
  argsText: string;
  kind: 'tool' | 'builtin' | 'delegate' | 'human';
  status: 'approval' | 'running' | 'retrying' | 'waiting' | 'ok' | 'error' | 'cancelled';
  attempts: number;
  /** Of the last attempt, as the tool runner measured it. */
  durationMs?: number;
  /** What the model is told. */
  content?: string;
  error?: ErrorInfo;
  /** The approval request a person approved this call in (named on its tool command, so the host attaches the evidence). */
  approval?: string;
  /**
   * While it runs: when the call fails for want of any answer (its tool's timeout plus
   * `toolDeadlineGraceMs` from when it was sent), checked by the agent's one `tool.watchdog` timer.
   * Unset on calls `assistant@1` started: each of those has its own `tool.deadline` timer.
   */
  deadlineAt?: number;
}

export interface AgentContext {
  agentId: string;
  goal: string;
  model: string | undefined;
  labels: Record<string, string>;
  /** A person allowed going on past a label's daily cost cap. */
  overDailyCap: boolean;
  toolDefs: ToolDefinition[];
  /** Tools whose every call a person approves first (`ask`). */
  toolPolicies: Record<string, 'auto' | 'ask' | 'deny'>;
  /** Each tool's own time limit, from the catalog. */
  toolTimeouts: Record<string, number>;
  /** Argument values that make a call of an `auto` tool need approval (fs_write with overwrite: true). */
  toolAskIfArgs: Record<string, Record<string, unknown>>;
  messages: ChatMessage[];
  /** The plan request in flight (echoed in its result). */
  planRef: string;
  planSeq: number;
  modelAttempts: number;
  backoffMs: number;
  calls: CallState[];
  tasks: Task[];
  usage: { inputTokens: number; outputTokens: number; costUsd: number };
  rounds: number;
  budget: Budget;
  startedAt: number;
  now: number;
  failedRounds: number;
  replans: number;
  /** Messages from people, for the next planning step. */
  staged: string[];
  /** Notes for the next planning step (reflection, strategy, replan). */
  notes: string[];
  recent: string[];
  idleRounds: number;
  reflections: number;
  compactions: number;
  question: { requestId: string; callId?: string; text: string; reason: 'ask_human' | 'loop' } | undefined;
  approval: { kind: 'budget' | 'tools'; requestId: string; argsHash: string; what: string; exceeded: (keyof Budget)[]; escalations?: number } | undefined;
  /** Who decided each approval request (the last few), so a late second decision can be told. */
  decided: Record<string, { decision: 'approve' | 'deny' | 'expired'; by: string }>;
  notify: NotifyRule[];
  answer: string | undefined;
  failure: ErrorInfo | undefined;
  settings: AgentSettings;
  /**
   * When the agent's one `tool.watchdog` timer fires, while it is armed (unset: none armed). One
   * timer serves every call: a call sent while it is armed for an earlier time arms nothing.
   */
  watchdogAt?: number | undefined;
}

export type PlanResultEvent = {
  type: 'plan.result';
  ref?: string;
  result?: { message: ChatMessage; finishReason: string };
  error?: ErrorInfo;
  usage?: Usage;
  at?: number;
};
export type ToolResultEvent = { type: 'tool.result'; callId: string; durationMs?: number; result?: { output?: unknown }; error?: ErrorInfo; at?: number };
export type ChildResultEvent = { type: 'child.result'; ref: string; outcome: 'done' | 'failed' | 'cancelled'; output?: unknown; error?: ErrorInfo; at?: number };
export type InputEvent = { type: 'input'; text: string; requestId?: string; interrupt?: boolean; at?: number };
export type ApprovalEvent = {
  type: 'approval';
  requestId: string;
  decision: 'approve' | 'deny';
  argsHash?: string;
  by?: { id: string; channel: string; name?: string };
  at?: number;
  from?: string;
};
export type BudgetEvent = { type: 'control.budget'; budget?: Budget; at?: number };
/** `at`: when the retry was due (its timer sets it; `assistant@1`'s retries have none). */
export type RetryToolEvent = { type: 'retry.tool'; callId: string; at?: number };
/** One call's own deadline timer, as `assistant@1` armed it (journals and agents it started still deliver it). */
export type ToolDeadlineEvent = { type: 'tool.deadline'; callId: string; attempt: number };
/** The agent's watchdog over its running calls; `at`: the time it was armed for. `from`: sent by another agent (ignored). */
export type ToolWatchdogEvent = { type: 'tool.watchdog'; at?: number; from?: string };
export type ApprovalReminderEvent = { type: 'approval.reminder'; requestId: string };
export type ApprovalDeadlineEvent = { type: 'approval.deadline'; requestId: string };
export type StuckCheckEvent = { type: 'stuck.check'; since: number };

/** Every event the chart handles: results of its commands, people's messages, and its own durable timers. */
export type AgentEvent =
  | PlanResultEvent
  | ToolResultEvent
  | ChildResultEvent
  | InputEvent
  | ApprovalEvent
  | BudgetEvent
  | { type: 'retry.plan' }
  | RetryToolEvent
  | ToolDeadlineEvent
  | ToolWatchdogEvent
  | ApprovalReminderEvent
  | ApprovalDeadlineEvent
  | StuckCheckEvent;

/**
 * The context a goal starts with: its input, the catalog's tools (as intake set them) and the
 * settings. XState may compute a machine's initial snapshot with no input at all (an inert actor
 * that is thrown away): then it gets an empty goal's context rather than a throw, which XState
 * would catch and which costs a stack trace each time.
 */
export function initialContext(input: AgentInput | undefined): AgentContext {
  return input ? contextOf(input) : NO_INPUT;
}

function contextOf(input: AgentInput): AgentContext {
  const i = input.input;
  const settings = { ...defaultAgentSettings(), ...((i.settings as Partial<AgentSettings> | undefined) ?? {}) };
  const all = (Array.isArray(i.toolDefinitions) ? (i.toolDefinitions as ToolDefinition[]) : []).filter((t) => !BUILT_IN_NAMES.has(t.name));
  const allowed = input.tools ? all.filter((t) => input.tools!.includes(t.name)) : all;
  const system = input.system ?? (typeof i.system === 'string' ? i.system : DEFAULT_SYSTEM_PROMPT);
  return {
    agentId: input.agentId,
    goal: input.goal,
    model: input.model,
    labels: { ...input.labels },
    overDailyCap: false,
    toolDefs: allowed,
    toolPolicies: { ...((i.toolPolicies as Record<string, 'auto' | 'ask' | 'deny'> | undefined) ?? {}) },
    toolTimeouts: { ...((i.toolTimeouts as Record<string, number> | undefined) ?? {}) },
    toolAskIfArgs: { ...((i.toolAskIfArgs as Record<string, Record<string, unknown>> | undefined) ?? {}) },
    messages: [
      { role: 'system', content: system },
      { role: 'user', content: input.goal },
    ],
    planRef: '',
    planSeq: 0,
    modelAttempts: 0,
    backoffMs: 0,
    calls: [],
    tasks: [],
    usage: { inputTokens: 0, outputTokens: 0, costUsd: 0 },
    rounds: 0,
    budget: input.budget ?? {},
    startedAt: input.startedAt,
    now: input.startedAt,
    failedRounds: 0,
    replans: 0,
    staged: [],
    notes: [],
    recent: [],
    idleRounds: 0,
    reflections: 0,
    compactions: 0,
    question: undefined,
    approval: undefined,
    decided: {},
    notify: [...(input.notify ?? (Array.isArray(i.notify) ? (i.notify as NotifyRule[]) : []))],
    answer: undefined,
    failure: undefined,
    settings,
  };
}

const NO_INPUT: AgentContext = contextOf({ agentId: '', goal: '', input: {}, labels: {}, startedAt: 0 });
