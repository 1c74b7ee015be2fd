import { createHash } from 'node:crypto';
import { enqueueActions, setup } from 'xstate';
import { approvalHash, canonicalJson, MAX_GOAL_DEPTH, valueNestsDeeper, type Budget, type ChatMessage, type ErrorInfo, type NotifyRule, type Task, type ToolCall, type ToolDefinition, type Usage } from '@errand/protocols';
import { errandActions, failureOutput, type AgentInput } from '@errand/core';
import { BUILT_IN_NAMES, BUILT_IN_TOOLS, BuiltInTool } from './built-in-tools.js';
import { budgetQuestion, DEFAULT_SYSTEM_PROMPT, reflectionPrompt, replanPrompt, strategyPrompt, toldPrompt } from './prompts.js';

/** Knobs of the loop; every one can be set per goal under `input.settings`. */
export interface AgentSettings {
  /** Retries of a failed model call that is worth retrying (5xx, 429, timeouts). */
  maxModelRetries: number;
  /** Attempts of a tool call that failed transiently, before the failure goes to the model. */
  maxToolAttempts: number;
  /** Consecutive failed rounds after which the model is asked for a different strategy. */
  strategyAfterFailures: number;
  /** How often the model may revise its plan after a step failed for good, before the run fails. */
  maxReplans: number;
  /** The same call (tool and arguments) this many times is a loop. */
  loopRepeats: number;
  /** Planning rounds in a row without a new successful result before the model is asked to reflect. */
  idleRoundsLimit: number;
  /** History size (characters) above which older messages are compacted. */
  compactAtChars: number;
  /** Messages kept verbatim at the end when compacting. */
  keepRecent: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Characters of a tool result given to the model. */
  maxResultChars: number;
  /** Added to a tool's timeout before a call with no answer at all counts as failed (no live runner?). */
  toolDeadlineGraceMs: number;
  /** How long a person has to decide an approval; a reminder goes out halfway. */
  approvalTimeoutMs: number;
  /** What happens when nobody decided in time: deny, or ask the next channel of `escalateTo`. */
  approvalTimeoutOutcome: 'deny' | 'escalate';
  /** Notify `stuck` when no planning step has happened for this long (0: never). */
  stuckAfterMs: number;
  /** Channels to escalate to, in order (for example telegram, then slack, then a webhook). */
  escalateTo: string[];
}

export function defaultAgentSettings(): AgentSettings {
  return {
    maxModelRetries: 6,
    maxToolAttempts: 3,
    strategyAfterFailures: 3,
    maxReplans: 3,
    loopRepeats: 3,
    idleRoundsLimit: 6,
    compactAtChars: 60_000,
    keepRecent: 12,
    backoffBaseMs: 1000,
    backoffMaxMs: 5 * 60_000,
    maxResultChars: 8000,
    toolDeadlineGraceMs: 30_000,
    approvalTimeoutMs: 24 * 3600_000,
    approvalTimeoutOutcome: 'deny',
    stuckAfterMs: 0,
    escalateTo: [],
  };
}

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
}

type PlanResultEvent = {
  type: 'plan.result';
  ref?: string;
  result?: { message: ChatMessage; finishReason: string };
  error?: ErrorInfo;
  usage?: Usage;
  at?: number;
};
type ToolResultEvent = { type: 'tool.result'; callId: string; durationMs?: number; result?: { output?: unknown }; error?: ErrorInfo; at?: number };
type ChildResultEvent = { type: 'child.result'; ref: string; outcome: 'done' | 'failed' | 'cancelled'; output?: unknown; error?: ErrorInfo; at?: number };
type InputEvent = { type: 'input'; text: string; requestId?: string; interrupt?: boolean; at?: number };
type ApprovalEvent = { type: 'approval'; requestId: string; decision: 'approve' | 'deny'; argsHash?: string; by?: { id: string; channel: string; name?: string }; at?: number; from?: string };
type BudgetEvent = { type: 'control.budget'; budget?: Budget; at?: number };
type AgentEvent =
  | PlanResultEvent
  | ToolResultEvent
  | ChildResultEvent
  | InputEvent
  | ApprovalEvent
  | BudgetEvent
  | { type: 'retry.plan' }
  | { type: 'retry.tool'; callId: string }
  | { type: 'tool.deadline'; callId: string; attempt: number }
  | { type: 'approval.reminder'; requestId: string }
  | { type: 'stuck.check'; since: number }
  | { type: 'approval.deadline'; requestId: string }
  | { type: 'go'; to: 'planning' | 'acting' | 'backingOff' | 'awaitingInput' | 'awaitingApproval' | 'done' | 'failed' };

/** What the handlers need of XState's action enqueuer. */
interface Enqueue {
  (action: { type: string; params?: unknown }): void;
  assign(patch: Partial<AgentContext>): void;
  raise(event: AgentEvent, options?: { id?: string; delay?: number }): void;
  cancel(id: string): void;
}

/**
 * An `enqueueActions` block that runs `fn(context, event, enqueue)`. Typed loosely on purpose:
 * XState's per-transition action types do not survive being built outside the machine config, and
 * the handlers are checked against `AgentContext` and their own event type instead.
 */
function handler<E extends AgentEvent>(fn: (context: AgentContext, event: E, enqueue: Enqueue) => void): never {
  return enqueueActions(({ context, event, enqueue }: { context: AgentContext; event: AgentEvent; enqueue: unknown }) =>
    fn(context, event as E, enqueue as Enqueue),
  ) as never;
}

// --- pure helpers ------------------------------------------------------------------------------

/** A deterministic number in [0, 1) from text: jitter that replays the same. */
function unit(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0) / 2 ** 32;
}

export function backoffDelay(s: AgentSettings, attempt: number, seed: string, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(s.backoffMaxMs, retryAfterMs);
  const exp = Math.min(s.backoffMaxMs, s.backoffBaseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + unit(seed) / 2));
}

const canonical = canonicalJson;

function parseArgs(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  let value: unknown;
  try {
    value = text.trim() === '' ? {} : JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `arguments are not valid JSON: ${(err as Error).message}` };
  }
  // Arguments travel inside messages and are hashed and shown: keep them within the wire's nesting limit.
  if (valueNestsDeeper(value, MAX_GOAL_DEPTH)) return { ok: false, error: `arguments nest deeper than ${MAX_GOAL_DEPTH} levels; flatten them` };
  return { ok: true, value };
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more characters cut]`;
}

function size(messages: readonly ChatMessage[]): number {
  return messages.reduce((n, m) => n + (m.content?.length ?? 0) + (m.toolCalls ? JSON.stringify(m.toolCalls).length : 0), 0);
}

/**
 * Keeps the system prompt, the goal and the newest messages; the middle becomes one note. The kept
 * tail never starts with a tool result, so every tool call keeps its answer.
 */
export function compact(messages: readonly ChatMessage[], keepRecent: number): ChatMessage[] {
  const head = messages.slice(0, 2);
  let start = Math.max(2, messages.length - keepRecent);
  while (start < messages.length && messages[start]!.role === 'tool') start++;
  if (start <= 2) return [...messages];
  return [...head, { role: 'user', content: `[${start - 2} earlier messages were compacted to save context.]` }, ...messages.slice(start)];
}

function overBudget(c: AgentContext): { what: string; exceeded: (keyof Budget)[] } | undefined {
  const b = c.budget;
  const parts: string[] = [];
  const exceeded: (keyof Budget)[] = [];
  if (b.maxSteps !== undefined && c.rounds >= b.maxSteps) (parts.push(`${c.rounds} of ${b.maxSteps} steps`), exceeded.push('maxSteps'));
  const tokens = c.usage.inputTokens + c.usage.outputTokens;
  if (b.maxTokens !== undefined && tokens >= b.maxTokens) (parts.push(`${tokens} of ${b.maxTokens} tokens`), exceeded.push('maxTokens'));
  if (b.maxCostUsd !== undefined && c.usage.costUsd >= b.maxCostUsd) {
    parts.push(`spent $${c.usage.costUsd.toFixed(2)} of $${b.maxCostUsd.toFixed(2)}`);
    exceeded.push('maxCostUsd');
  }
  const wall = c.now - c.startedAt;
  if (b.maxWallMs !== undefined && wall >= b.maxWallMs) (parts.push(`ran ${Math.round(wall / 1000)} s of ${Math.round(b.maxWallMs / 1000)} s`), exceeded.push('maxWallMs'));
  return parts.length ? { what: parts.join(', '), exceeded } : undefined;
}

function notifyActions(
  c: AgentContext,
  topic: NotifyRule['on'][number],
  title: string,
  text: string,
  approval?: { requestId: string; argsHash: string; tool: string; summary: string },
) {
  // Every message says what the goal is and what it has cost so far.
  const full = `${text}\n\nGoal: ${clip(c.goal, 200)} · spent $${c.usage.costUsd.toFixed(2)} so far`;
  return c.notify
    .filter((r) => r.on.includes(topic))
    .map((r) => ({ type: 'errand.notify' as const, params: { channel: r.channel, topic, title, text: full, ...(approval ? { approval } : {}) } }));
}

function tellTime(c: AgentContext, e: { at?: number }): number {
  return typeof e.at === 'number' && e.at > c.now ? e.at : c.now;
}

// --- the machine -------------------------------------------------------------------------------

/** The machine's own `go` events are raised by its handlers; one sent by another agent (it carries `from`) moves nothing. */
function raised(event: object): boolean {
  return (event as { from?: unknown }).from === undefined;
}

/**
 * The planner loop: planning → acting → (awaitingApproval | awaitingInput | backingOff) → planning
 * … → done | failed. Transitions between states go through one `go` event that the handlers raise,
 * so each handler is a plain function of (context, event) that the journal replays exactly.
 */
export const agentMachine = setup({
  types: {} as { input: AgentInput; context: AgentContext; events: AgentEvent },
  actions: errandActions,
}).createMachine({
  id: 'agent',
  context: ({ input }) => {
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
  },
  initial: 'planning',
  on: {
    go: [
      { guard: ({ event }) => raised(event) && event.to === 'planning', target: '.planning', reenter: true },
      { guard: ({ event }) => raised(event) && event.to === 'acting', target: '.acting', reenter: true },
      { guard: ({ event }) => raised(event) && event.to === 'backingOff', target: '.backingOff', reenter: true },
      { guard: ({ event }) => raised(event) && event.to === 'awaitingInput', target: '.awaitingInput' },
      { guard: ({ event }) => raised(event) && event.to === 'awaitingApproval', target: '.awaitingApproval' },
      { guard: ({ event }) => raised(event) && event.to === 'done', target: '.done' },
      { guard: ({ event }) => raised(event) && event.to === 'failed', target: '.failed' },
    ],
    'stuck.check': {
      actions: handler<{ type: 'stuck.check'; since: number }>((context, event, enqueue) => {
        const minutes = Math.round(context.settings.stuckAfterMs / 60_000);
        const text = `No progress on "${clip(context.goal, 80)}" for ${minutes >= 1 ? `${minutes} min` : `${Math.round(context.settings.stuckAfterMs / 1000)} s`} (step ${event.since}).`;
        for (const n of notifyActions(context, 'stuck', 'Your agent seems stuck', text)) enqueue(n);
      }),
    },
    'control.budget': {
      actions: handler<BudgetEvent>((context, event, enqueue) => {
        enqueue.assign({ budget: { ...context.budget, ...(event.budget ?? {}) }, now: tellTime(context, event) });
        if (context.approval) {
          enqueue.assign({ approval: undefined });
          enqueue.raise({ type: 'go', to: 'planning' });
        }
      }),
    },
  },
  states: {
    planning: {
      entry: handler((context, _e, enqueue) => plan(context, enqueue)),
      on: {
        'plan.result': { actions: handler<PlanResultEvent>(onPlanResult) },
        input: { actions: handler<InputEvent>((context, event, enqueue) => onTold(context, event, enqueue, 'planning')) },
      },
    },
    backingOff: {
      entry: handler((context, _e, enqueue) => enqueue.raise({ type: 'retry.plan' }, { id: 'retry-plan', delay: context.backoffMs })),
      on: {
        'retry.plan': { target: 'planning' },
        input: { actions: handler<InputEvent>((context, event, enqueue) => onTold(context, event, enqueue, 'backingOff')) },
      },
    },
    acting: {
      entry: handler((context, _e, enqueue) => startCalls(context, enqueue)),
      on: {
        'tool.result': { actions: handler<ToolResultEvent>(onToolResult) },
        'child.result': { actions: handler<ChildResultEvent>(onChildResult) },
        'retry.tool': { actions: handler<{ type: 'retry.tool'; callId: string }>((context, event, enqueue) => retryTool(context, event.callId, enqueue)) },
        'tool.deadline': { actions: handler<{ type: 'tool.deadline'; callId: string; attempt: number }>(onDeadline) },
        input: { actions: handler<InputEvent>((context, event, enqueue) => onTold(context, event, enqueue, 'acting')) },
      },
    },
    awaitingInput: {
      entry: handler((context, _e, enqueue) => {
        const q = context.question!;
        for (const a of notifyActions(context, 'input', 'A question from your agent', q.text)) enqueue(a);
      }),
      on: {
        input: {
          guard: ({ context, event }) => event.requestId === undefined || event.requestId === context.question?.requestId,
          actions: handler<InputEvent>((context, event, enqueue) => {
            const q = context.question!;
            const now = tellTime(context, event);
            if (q.callId) {
              const calls = context.calls.map((c) => (c.id === q.callId ? { ...c, status: 'ok' as const, content: `The person answered: ${event.text}` } : c));
              enqueue.assign({ messages: [...context.messages, ...toolMessages(calls)], calls: [], question: undefined, now, idleRounds: 0 });
            } else {
              enqueue.assign({ question: undefined, now, idleRounds: 0, reflections: 0, notes: [...context.notes, `The person said: ${event.text}`] });
            }
            enqueue.raise({ type: 'go', to: 'planning' });
          }),
        },
      },
    },
    awaitingApproval: {
      entry: handler((context, _e, enqueue) => {
        const a = context.approval!;
        const tool = a.kind === 'budget' ? 'budget' : context.calls.filter((c) => c.status === 'approval').map((c) => c.tool).join(', ');
        const calls = a.kind === 'budget' ? [] : context.calls.filter((c) => c.status === 'approval').map((c) => ({ tool: c.tool, args: c.args }));
        enqueue({ type: 'errand.emit', params: { kind: 'approval', requestId: a.requestId, status: 'requested', argsHash: a.argsHash, calls, tool, reason: a.what } });
        const approval = { requestId: a.requestId, argsHash: a.argsHash, tool, summary: a.what, deadlineAt: context.now + context.settings.approvalTimeoutMs };
        enqueue.raise({ type: 'approval.reminder', requestId: a.requestId }, { id: 'approval-reminder', delay: Math.floor(context.settings.approvalTimeoutMs / 2) });
        enqueue.raise({ type: 'approval.deadline', requestId: a.requestId }, { id: 'approval-deadline', delay: context.settings.approvalTimeoutMs });
        if (a.kind === 'budget') for (const n of notifyActions(context, 'budget', 'Your agent reached its budget', budgetQuestion(a.what), approval)) enqueue(n);
        else for (const n of notifyActions(context, 'approval', 'Your agent asks to run a tool', a.what, approval)) enqueue(n);
      }),
      on: {
        'approval.reminder': {
          actions: handler<{ type: 'approval.reminder'; requestId: string }>((context, event, enqueue) => {
            const a = context.approval;
            if (!a || a.requestId !== event.requestId) return;
            for (const n of notifyActions(context, 'reminder', 'Still waiting for your decision', a.what, { requestId: a.requestId, argsHash: a.argsHash, tool: a.kind, summary: a.what })) enqueue(n);
          }),
        },
        'approval.deadline': {
          actions: handler<{ type: 'approval.deadline'; requestId: string }>((context, event, enqueue) => onApprovalDeadline(context, event.requestId, enqueue)),
        },
        approval: {
          // A decision binds to the request and to the exact arguments the person was shown.
          // No hash, no decision: a missing argsHash never matches. Another agent (`from`) never decides.
          guard: ({ context, event }) =>
            context.approval !== undefined && event.from === undefined && event.requestId === context.approval.requestId && event.argsHash === context.approval.argsHash,
          actions: handler<ApprovalEvent>((context, event, enqueue) => {
            const a = context.approval!;
            const status = event.decision === 'approve' ? 'approved' : 'denied';
            const who = event.by ? `${event.by.name ?? event.by.id} (${event.by.channel})` : 'someone';
            enqueue({ type: 'errand.emit', params: { kind: 'approval', requestId: a.requestId, status, argsHash: a.argsHash, tool: a.kind === 'budget' ? 'budget' : 'tools', ...(event.by ? { by: event.by } : {}) } });
            enqueue.assign({ decided: keepLast({ ...context.decided, [a.requestId]: { decision: event.decision, by: who } }, 20) });
            enqueue.cancel('approval-reminder');
            enqueue.cancel('approval-deadline');
            if (a.kind === 'tools') {
              const calls = context.calls.map((c): CallState =>
                c.status !== 'approval' ? c : event.decision === 'approve' ? { ...c, status: 'running', approval: a.requestId } : { ...c, status: 'error', content: 'ERROR: a person denied this call.' },
              );
              enqueue.assign({ approval: undefined, calls, now: tellTime(context, event) });
              enqueue.raise({ type: 'go', to: 'acting' });
              return;
            }
            if (event.decision === 'deny') {
              enqueue.assign({ approval: undefined, failure: { code: 'ERR_BUDGET', message: `stopped at the budget: ${a.what}`, retryable: false } });
              enqueue.raise({ type: 'go', to: 'failed' });
              return;
            }
            // Continue: each limit that was reached is doubled from where usage stands.
            const b = { ...context.budget };
            const tokens = context.usage.inputTokens + context.usage.outputTokens;
            if (a.exceeded.includes('maxSteps')) b.maxSteps = Math.max(context.rounds + 1, (b.maxSteps ?? 0) * 2);
            if (a.exceeded.includes('maxTokens')) b.maxTokens = Math.max(tokens + 1, (b.maxTokens ?? 0) * 2);
            if (a.exceeded.includes('maxCostUsd')) b.maxCostUsd = Math.max(context.usage.costUsd + 0.01, (b.maxCostUsd ?? 0) * 2);
            if (a.exceeded.includes('maxWallMs')) b.maxWallMs = Math.max(context.now - context.startedAt + 1, (b.maxWallMs ?? 0) * 2);
            enqueue.assign({ approval: undefined, budget: b, now: tellTime(context, event), overDailyCap: context.overDailyCap || a.exceeded.length === 0 });
            enqueue.raise({ type: 'go', to: 'planning' });
          }),
        },
      },
    },
    done: { type: 'final' },
    failed: {
      type: 'final',
      entry: handler((context, _e, enqueue) => {
        const why = context.failure?.message ?? 'unknown error';
        for (const n of notifyActions(context, 'failed', `Failed: ${clip(context.goal, 80)}`, clip(why, 1000))) enqueue(n);
      }),
    },
  },
  output: ({ context }) =>
    context.failure
      ? failureOutput(context.failure)
      : { answer: context.answer ?? '', tasks: context.tasks, usage: context.usage, rounds: context.rounds },
});

// --- handlers: each a function of (context, event) --------------------------------------------

function keepLast<T>(record: Record<string, T>, n: number): Record<string, T> {
  return Object.fromEntries(Object.entries(record).slice(-n));
}

/** Nobody decided in time: deny, or ask on the next escalation channel and wait again. */
function onApprovalDeadline(c: AgentContext, requestId: string, enqueue: Enqueue): void {
  const a = c.approval;
  if (!a || a.requestId !== requestId) return;
  const escalations = a.escalations ?? 0;
  const next = c.settings.escalateTo[escalations];
  if (c.settings.approvalTimeoutOutcome === 'escalate' && next) {
    enqueue({
      type: 'errand.notify',
      params: { channel: next, topic: 'approval', title: 'Escalated: your decision is needed', text: a.what, approval: { requestId: a.requestId, argsHash: a.argsHash, tool: a.kind, summary: a.what } },
    });
    enqueue.assign({ approval: { ...a, escalations: escalations + 1 } });
    enqueue.raise({ type: 'approval.deadline', requestId }, { id: 'approval-deadline', delay: c.settings.approvalTimeoutMs });
    return;
  }
  enqueue({ type: 'errand.emit', params: { kind: 'approval', requestId, status: 'expired', argsHash: a.argsHash, tool: a.kind === 'budget' ? 'budget' : 'tools' } });
  enqueue.assign({ decided: keepLast({ ...c.decided, [requestId]: { decision: 'expired', by: 'the deadline' } }, 20) });
  if (a.kind === 'tools') {
    const calls = c.calls.map((x): CallState => (x.status === 'approval' ? { ...x, status: 'error', content: 'ERROR: nobody approved this call in time; it was not run.' } : x));
    enqueue.assign({ approval: undefined, calls });
    enqueue.raise({ type: 'go', to: 'acting' });
    return;
  }
  enqueue.assign({ approval: undefined, failure: { code: 'ERR_BUDGET', message: `stopped at the budget: nobody decided in time (${a.what})`, retryable: false } });
  enqueue.raise({ type: 'go', to: 'failed' });
}

function plan(c: AgentContext, enqueue: Enqueue): void {
  // Each planning step is progress: re-arming the watch (same id) supersedes the previous one.
  if (c.settings.stuckAfterMs > 0) enqueue.raise({ type: 'stuck.check', since: c.rounds }, { id: 'stuck-watch', delay: c.settings.stuckAfterMs });
  const over = overBudget(c);
  if (over) {
    const requestId = `budget-${c.rounds}-${c.usage.inputTokens + c.usage.outputTokens}`;
    enqueue.assign({ approval: { kind: 'budget', requestId, argsHash: requestId, what: over.what, exceeded: over.exceeded } });
    enqueue.raise({ type: 'go', to: 'awaitingApproval' });
    return;
  }
  let messages = c.messages;
  const extra: ChatMessage[] = [];
  if (c.staged.length) extra.push({ role: 'user', content: toldPrompt(c.staged) });
  for (const note of c.notes) extra.push({ role: 'user', content: note });
  messages = [...messages, ...extra];
  let compactions = c.compactions;
  if (size(messages) > c.settings.compactAtChars) {
    messages = compact(messages, c.settings.keepRecent);
    compactions += 1;
  }
  const planSeq = c.planSeq + 1;
  const planRef = `plan-${planSeq}`;
  enqueue.assign({ messages, staged: [], notes: [], planSeq, planRef, compactions });
  enqueue({
    type: 'errand.plan',
    params: {
      ref: planRef,
      messages,
      tools: [...BUILT_IN_TOOLS, ...c.toolDefs],
      ...(c.model ? { model: c.model } : {}),
      ...(Object.keys(c.labels).length ? { labels: c.labels } : {}),
      ...(c.overDailyCap ? { overDailyCap: true } : {}),
    },
  });
}

function onPlanResult(c: AgentContext, e: PlanResultEvent, enqueue: Enqueue): void {
  if (e.ref !== undefined && e.ref !== c.planRef) return; // an answer to a request that was interrupted
  const now = tellTime(c, e);
  const usage = e.usage
    ? { inputTokens: c.usage.inputTokens + e.usage.inputTokens, outputTokens: c.usage.outputTokens + e.usage.outputTokens, costUsd: c.usage.costUsd + (e.usage.costUsd ?? 0) }
    : c.usage;
  if (e.usage) enqueue({ type: 'errand.emit', params: { kind: 'usage', usage: e.usage, total: usage } });
  enqueue.assign({ usage, now });

  if (e.error?.code === 'ERR_DAILY_BUDGET') {
    // A label's daily cap, enforced by the planner across every host: a person decides.
    enqueue.assign({ approval: { kind: 'budget', requestId: `daily-${c.planSeq}`, argsHash: `daily-${c.planSeq}`, what: e.error.message, exceeded: [] } });
    enqueue.raise({ type: 'go', to: 'awaitingApproval' });
    return;
  }
  if (e.error) {
    const attempts = c.modelAttempts + 1;
    if (e.error.retryable && attempts <= c.settings.maxModelRetries) {
      enqueue.assign({ modelAttempts: attempts, backoffMs: backoffDelay(c.settings, attempts, `${c.agentId}:${c.planRef}`, e.error.retryAfterMs) });
      enqueue.raise({ type: 'go', to: 'backingOff' });
      return;
    }
    if (e.error.code === 'ERR_LLM_CONTEXT_LENGTH' && c.compactions < 3) {
      enqueue.assign({ messages: compact(c.messages, Math.max(4, Math.floor(c.settings.keepRecent / 2))), compactions: c.compactions + 1, modelAttempts: 0 });
      enqueue.raise({ type: 'go', to: 'planning' });
      return;
    }
    const why = e.error.retryable ? `the model kept failing (${attempts} attempts): ${e.error.message}` : `the model call failed: ${e.error.message}`;
    enqueue.assign({ failure: { ...e.error, message: why, retryable: false } });
    enqueue.raise({ type: 'go', to: 'failed' });
    return;
  }

  const message = e.result!.message;
  const rounds = c.rounds + 1;
  const toolCalls: ToolCall[] = message.toolCalls ?? [];
  enqueue.assign({ messages: [...c.messages, message], modelAttempts: 0, rounds });
  if (toolCalls.length === 0) {
    enqueue.assign({ answer: message.content ?? '' });
    for (const a of notifyActions(c, 'done', `Done: ${clip(c.goal, 80)}`, clip(message.content ?? '', 1000))) enqueue(a);
    enqueue.raise({ type: 'go', to: 'done' });
    return;
  }

  // Loop detection: the same call again and again.
  const signatures = toolCalls.map((t) => `${t.name}:${canonical(parseArgs(t.arguments).ok ? (parseArgs(t.arguments) as { value: unknown }).value : t.arguments)}`);
  const repeated = signatures.find((sig) => c.recent.filter((r) => r === sig).length + 1 >= c.settings.loopRepeats);
  const recent = [...c.recent, ...signatures].slice(-20);
  if (repeated) {
    const tool = repeated.slice(0, repeated.indexOf(':'));
    const calls: CallState[] = toolCalls.map((t) => ({
      id: t.id, tool: t.name, args: null, argsText: t.arguments, kind: 'builtin', status: 'cancelled', attempts: 0,
      content: 'Not executed: this exact call was already made several times.',
    }));
    const base = { recent, calls: [] as CallState[], messages: [...c.messages, message, ...toolMessages(calls)] };
    if (c.reflections < 1) {
      enqueue.assign({ ...base, reflections: c.reflections + 1, notes: [...c.notes, reflectionPrompt(`you called ${tool} with the same arguments ${c.settings.loopRepeats} times`)] });
      enqueue.raise({ type: 'go', to: 'planning' });
    } else {
      const text = `I seem to be stuck: I keep calling ${tool} with the same arguments. How should I proceed?`;
      enqueue.assign({ ...base, question: { requestId: `loop-${rounds}`, text, reason: 'loop' } });
      enqueue.raise({ type: 'go', to: 'awaitingInput' });
    }
    return;
  }
  const calls: CallState[] = toolCalls.map((t) => {
    const parsed = parseArgs(t.arguments);
    const kind: CallState['kind'] =
      t.name === BuiltInTool.Delegate ? 'delegate' : t.name === BuiltInTool.AskHuman ? 'human' : BUILT_IN_NAMES.has(t.name) ? 'builtin' : 'tool';
    if (!parsed.ok) return { id: t.id, tool: t.name, args: null, argsText: t.arguments, kind, status: 'error', attempts: 0, content: `ERROR: ${parsed.error}` };
    if (kind === 'tool' && !c.toolDefs.some((d) => d.name === t.name)) {
      return { id: t.id, tool: t.name, args: parsed.value, argsText: t.arguments, kind, status: 'error', attempts: 0, content: `ERROR: there is no tool named ${t.name}` };
    }
    const askIf = c.toolAskIfArgs[t.name];
    const argsAsk =
      askIf !== undefined && typeof parsed.value === 'object' && parsed.value !== null && Object.entries(askIf).every(([k, v]) => (parsed.value as Record<string, unknown>)[k] === v);
    const ask = kind === 'tool' && (c.toolPolicies[t.name] === 'ask' || argsAsk);
    return { id: t.id, tool: t.name, args: parsed.value, argsText: t.arguments, kind, status: ask ? 'approval' : 'running', attempts: 1 };
  });
  enqueue.assign({ calls, recent });
  const asking = calls.filter((x) => x.status === 'approval');
  if (asking.length) {
    // Nothing of this round starts before a person has decided.
    const shown = asking.map((x) => ({ tool: x.tool, args: x.args }));
    const what = asking.map((x) => `${x.tool}(${canonical(x.args)})`).join('; ');
    enqueue.assign({ approval: { kind: 'tools', requestId: `tools-${c.planSeq}`, argsHash: approvalHash(shown), what, exceeded: [] } });
    enqueue.raise({ type: 'go', to: 'awaitingApproval' });
    return;
  }
  enqueue.raise({ type: 'go', to: 'acting' });
}

function startCalls(c: AgentContext, enqueue: Enqueue): void {
  const calls = c.calls.map((call): CallState => {
    if (call.status !== 'running') return call;
    const args = (call.args ?? {}) as Record<string, unknown>;
    switch (call.kind) {
      case 'builtin': {
        if (call.tool === BuiltInTool.UpdatePlan) {
          const tasks = Array.isArray(args.tasks) ? (args.tasks as Task[]) : [];
          enqueue.assign({ tasks });
          enqueue({ type: 'errand.emit', params: { kind: 'plan', tasks: normalizeTasks(tasks) } });
          return { ...call, status: 'ok', content: 'Plan updated.' };
        }
        return { ...call, status: 'error', content: `ERROR: ${call.tool} cannot be used here` };
      }
      case 'human': {
        const question = typeof args.question === 'string' ? args.question : String(call.argsText);
        enqueue.assign({ question: { requestId: call.id, callId: call.id, text: question, reason: 'ask_human' } });
        return { ...call, status: 'waiting' };
      }
      case 'delegate': {
        const goal = typeof args.goal === 'string' ? args.goal : '';
        if (!goal) return { ...call, status: 'error', content: 'ERROR: delegate needs a goal' };
        enqueue({
          type: 'errand.spawn',
          params: {
            ref: call.id,
            goal,
            ...(typeof args.agent === 'string' ? { agent: args.agent } : {}),
            // The child works under the same rules: the same tools, and the same approvals.
            input: { toolDefinitions: c.toolDefs, toolPolicies: c.toolPolicies, toolTimeouts: c.toolTimeouts, toolAskIfArgs: c.toolAskIfArgs, notify: [] },
          },
        });
        return call;
      }
      case 'tool':
        enqueue({ type: 'errand.tool', params: { callId: call.id, tool: call.tool, args: call.args, attempt: call.attempts, ...(call.approval ? { approval: call.approval } : {}) } });
        armDeadline(c, call, call.attempts, enqueue);
        enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'requested', attempt: call.attempts } });
        return call;
    }
  });
  enqueue.assign({ calls });
  settle({ ...c, calls }, enqueue);
}

function onToolResult(c: AgentContext, e: ToolResultEvent, enqueue: Enqueue): void {
  const call = c.calls.find((x) => x.id === e.callId && x.kind === 'tool');
  if (!call || call.status !== 'running') return;
  enqueue.cancel(`deadline-${call.id}`);
  let next: AgentContext = { ...c, now: tellTime(c, e) };
  let updated: CallState;
  if (e.error?.code === 'ERR_EFFECT_UNCERTAIN') {
    // Not safe to run again, not known to have happened: only a person can tell.
    enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'error', attempt: call.attempts, error: e.error, ...duration(e) } });
    const text = `${e.error.message}. Did ${call.tool}(${clip(call.argsText, 500)}) take effect? Answer, and I will go on from there.`;
    next = { ...next, question: { requestId: call.id, callId: call.id, text, reason: 'ask_human' } };
    updated = { ...call, status: 'waiting', error: e.error };
    next = { ...next, calls: c.calls.map((x) => (x.id === call.id ? updated : x)) };
    enqueue.assign({ calls: next.calls, now: next.now, question: next.question });
    settle(next, enqueue);
    return;
  }
  if (e.error) {
    if (e.error.retryable && call.attempts < c.settings.maxToolAttempts) {
      const delay = backoffDelay(c.settings, call.attempts, `${c.agentId}:${call.id}:${call.attempts}`, e.error.retryAfterMs);
      enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'retrying', attempt: call.attempts, error: e.error } });
      enqueue.raise({ type: 'retry.tool', callId: call.id }, { id: `retry-${call.id}`, delay });
      updated = { ...call, status: 'retrying', error: e.error };
    } else {
      enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'error', attempt: call.attempts, error: e.error, ...duration(e) } });
      updated = { ...call, status: 'error', error: e.error, content: `ERROR (${e.error.code}): ${e.error.message}`, ...duration(e) };
      // Retries exhausted on a failure that was worth retrying: the step cannot be done this way.
      if (e.error.retryable) next = { ...next, notes: [...next.notes, replanPrompt(call.tool, call.attempts)], replans: next.replans + 1 };
    }
  } else {
    enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'ok', attempt: call.attempts, ...duration(e) } });
    const output = e.result?.output;
    updated = { ...call, status: 'ok', content: clip(typeof output === 'string' ? output : JSON.stringify(output ?? null), c.settings.maxResultChars), ...duration(e) };
  }
  next = { ...next, calls: c.calls.map((x) => (x.id === call.id ? updated : x)) };
  enqueue.assign({ calls: next.calls, now: next.now, notes: next.notes, replans: next.replans });
  settle(next, enqueue);
}

/** A durable timer per call: a call nobody answers (no live runner) fails instead of hanging. */
function armDeadline(c: AgentContext, call: CallState, attempt: number, enqueue: Enqueue): void {
  const delay = (c.toolTimeouts[call.tool] ?? 10 * 60_000) + c.settings.toolDeadlineGraceMs;
  enqueue.raise({ type: 'tool.deadline', callId: call.id, attempt }, { id: `deadline-${call.id}`, delay });
}

function onDeadline(c: AgentContext, e: { callId: string; attempt: number }, enqueue: Enqueue): void {
  const call = c.calls.find((x) => x.id === e.callId);
  if (!call || call.status !== 'running' || call.attempts !== e.attempt) return;
  const within = Math.round(((c.toolTimeouts[call.tool] ?? 10 * 60_000) + c.settings.toolDeadlineGraceMs) / 1000);
  onToolResult(
    c,
    { type: 'tool.result', callId: call.id, error: { code: 'ERR_TOOL_NO_ANSWER', message: `no answer from ${call.tool} within ${within} s: no tool-runner may be serving it`, retryable: true } },
    enqueue,
  );
}

function duration(e: ToolResultEvent): { durationMs?: number } {
  return typeof e.durationMs === 'number' ? { durationMs: e.durationMs } : {};
}

function retryTool(c: AgentContext, callId: string, enqueue: Enqueue): void {
  const call = c.calls.find((x) => x.id === callId);
  if (!call || call.status !== 'retrying') return;
  const attempts = call.attempts + 1;
  enqueue({ type: 'errand.tool', params: { callId: call.id, tool: call.tool, args: call.args, attempt: attempts, ...(call.approval ? { approval: call.approval } : {}) } });
  armDeadline(c, call, attempts, enqueue);
  enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'requested', attempt: attempts } });
  enqueue.assign({ calls: c.calls.map((x) => (x.id === callId ? { ...x, status: 'running' as const, attempts } : x)) });
}

function onChildResult(c: AgentContext, e: ChildResultEvent, enqueue: Enqueue): void {
  const call = c.calls.find((x) => x.id === e.ref && x.kind === 'delegate');
  if (!call || call.status !== 'running') return;
  const updated: CallState =
    e.outcome === 'done'
      ? { ...call, status: 'ok', content: clip(JSON.stringify(e.output ?? null), c.settings.maxResultChars) }
      : { ...call, status: 'error', content: `ERROR: the delegated agent ${e.outcome}${e.error ? `: ${e.error.message}` : ''}` };
  const calls = c.calls.map((x) => (x.id === call.id ? updated : x));
  enqueue.assign({ calls, now: tellTime(c, e) });
  settle({ ...c, calls }, enqueue);
}

/** When every call of the round has an outcome: give the results to the model (or ask the human). */
function settle(c: AgentContext, enqueue: Enqueue): void {
  if (c.calls.some((x) => x.status === 'running' || x.status === 'retrying')) return;
  const human = c.calls.find((x) => x.status === 'waiting');
  if (human) {
    enqueue.raise({ type: 'go', to: 'awaitingInput' });
    return;
  }
  const external = c.calls.filter((x) => x.kind === 'tool' || x.kind === 'delegate');
  const progressed = external.some((x) => x.status === 'ok');
  const allFailed = external.length > 0 && external.every((x) => x.status === 'error');
  const failedRounds = allFailed ? c.failedRounds + 1 : 0;
  const idleRounds = progressed ? 0 : c.idleRounds + 1;
  const notes = [...c.notes];
  if (failedRounds > 0 && failedRounds % c.settings.strategyAfterFailures === 0) notes.push(strategyPrompt(failedRounds));
  let reflections = c.reflections;
  const stuck = idleRounds >= c.settings.idleRoundsLimit;
  if (stuck && reflections < 1) {
    notes.push(reflectionPrompt(`${idleRounds} rounds have brought no new result`));
    reflections += 1;
  } else if (stuck) {
    reflections += 1;
  }
  enqueue.assign({ messages: [...c.messages, ...toolMessages(c.calls)], calls: [], failedRounds, idleRounds, notes, reflections });
  if (stuck && reflections > 1) {
    // Reflection did not help: a person looks before more is spent.
    enqueue.assign({ question: { requestId: `stuck-${c.rounds}`, text: `I have made no progress for ${idleRounds} rounds. How should I proceed?`, reason: 'loop' }, idleRounds: 0 });
    enqueue.raise({ type: 'go', to: 'awaitingInput' });
    return;
  }
  if (c.replans > c.settings.maxReplans) {
    enqueue.assign({ failure: { code: 'ERR_REPLANS_EXHAUSTED', message: `gave up after ${c.replans} re-plans; the last failure: ${c.calls.find((x) => x.error)?.error?.message ?? 'unknown'}`, retryable: false } });
    enqueue.raise({ type: 'go', to: 'failed' });
    return;
  }
  enqueue.raise({ type: 'go', to: 'planning' });
}

/** A message from a person while the agent works: staged for the next planning step, or an interrupt. */
function onTold(c: AgentContext, e: InputEvent, enqueue: Enqueue, state: 'planning' | 'acting' | 'backingOff'): void {
  const staged = [...c.staged, e.text];
  const now = tellTime(c, e);
  if (!e.interrupt) {
    enqueue.assign({ staged, now });
    return;
  }
  if (state === 'acting') {
    const calls = c.calls.map((x) =>
      x.status === 'running' || x.status === 'retrying' || x.status === 'waiting' ? { ...x, status: 'cancelled' as const, content: 'Cancelled: interrupted by a new message from the user.' } : x,
    );
    enqueue.assign({ staged, now, messages: [...c.messages, ...toolMessages(calls)], calls: [], question: undefined });
  } else {
    enqueue.assign({ staged, now });
  }
  // Re-entering planning issues a new request; the interrupted one's answer no longer matches planRef.
  enqueue.raise({ type: 'go', to: 'planning' });
}

function toolMessages(calls: readonly CallState[]): ChatMessage[] {
  return calls.map((x) => ({ role: 'tool', toolCallId: x.id, name: x.tool, content: x.content ?? `ERROR: no result (${x.status})` }));
}

/** Tasks as the model wrote them, made valid for the wire (unknown statuses become `pending`). */
function normalizeTasks(tasks: readonly Task[]): Task[] {
  const map: Record<string, Task['status']> = { pending: 'pending', in_progress: 'in_progress', active: 'in_progress', done: 'done', failed: 'failed', blocked: 'failed', cancelled: 'cancelled' };
  return tasks.map((t) => ({
    id: String(t.id),
    title: String(t.title ?? ''),
    status: map[String(t.status)] ?? 'pending',
    ...(Array.isArray(t.children) ? { children: normalizeTasks(t.children) } : {}),
  }));
}
