import { enqueueActions } from 'xstate';
import { approvalHash, roundUsd, type ChatMessage, type Task } from '@errand/protocols';
import { BUILT_IN_TOOLS, BuiltInTool } from './built-in-tools.js';
import type {
  AgentContext,
  AgentEvent,
  ApprovalDeadlineEvent,
  ApprovalEvent,
  ApprovalReminderEvent,
  BudgetEvent,
  CallState,
  ChildResultEvent,
  InputEvent,
  PlanResultEvent,
  RetryToolEvent,
  StuckCheckEvent,
  ToolDeadlineEvent,
  ToolResultEvent,
  ToolWatchdogEvent,
} from './context.js';
import {
  backoffDelay,
  canonical,
  clip,
  compact,
  duration,
  keepLast,
  centsUsd,
  exactUsd,
  normalizeTasks,
  notifyActions as notifyWith,
  overBudget as overBudgetWith,
  readReply,
  repeatedTool,
  roundCalls,
  roundOutcome,
  size,
  tellTime,
  toolMessages,
} from './helpers.js';
import { budgetQuestion, reflectionPrompt, replanPrompt, toldPrompt } from './prompts.js';

/**
 * The chart's named actions and guards, registered in `setup({ actions, guards })`. Each action is
 * a plain function of (context, event) that decides what to remember and which commands to send;
 * where the agent goes next is the chart's business (its guarded transitions), never an action's.
 */

/** What the actions need of XState's action enqueuer. */
interface Enqueue {
  (action: { type: string; params?: unknown }): void;
  assign(patch: Partial<AgentContext>): void;
  raise(event: AgentEvent, options?: { id?: string; delay?: number }): void;
  cancel(id: string): void;
}

/**
 * An `enqueueActions` block that runs `fn(context, event, enqueue)`. Typed loosely on purpose:
 * XState's per-transition action types do not survive being built outside the machine config, and
 * the actions are checked against `AgentContext` and their own event type instead.
 */
function action<E extends AgentEvent>(fn: (context: AgentContext, event: E, enqueue: Enqueue) => void): never {
  return enqueueActions(({ context, event, enqueue }: { context: AgentContext; event: AgentEvent; enqueue: unknown }) =>
    fn(context, event as E, enqueue as Enqueue),
  ) as never;
}

/** A guard on the context and the event of the transition it guards. */
function guard<E extends AgentEvent>(fn: (context: AgentContext, event: E) => boolean) {
  return ({ context, event }: { context: AgentContext; event: AgentEvent }): boolean => fn(context, event as E);
}

/** Every call of the round has an outcome (none running, none waiting for a retry). */
function roundOver(c: AgentContext): boolean {
  return !c.calls.some((x) => x.status === 'running' || x.status === 'retrying');
}

/**
 * A decision binds to the request and to the exact arguments the person was shown. No hash, no
 * decision: a missing argsHash never matches. Another agent (`from`) never decides.
 */
function decides(c: AgentContext, e: ApprovalEvent): boolean {
  return c.approval !== undefined && e.from === undefined && e.requestId === c.approval.requestId && e.argsHash === c.approval.argsHash;
}

/** A reminder or deadline of the request still open (a superseded one changes nothing). */
function ofOpenRequest(c: AgentContext, e: ApprovalReminderEvent | ApprovalDeadlineEvent): boolean {
  return c.approval !== undefined && c.approval.requestId === e.requestId;
}

/**
 * The chart's guards. Where several guard one event they are tried in the order the chart lists
 * them; each name says what it checks, so an edge in the visualiser reads as its condition.
 */
export const agentGuards = {
  // --- planning
  /** Entering planning found a budget limit reached and opened a budget request instead of calling the model. */
  budgetReached: guard((c) => c.approval !== undefined),
  /** An answer to a request an interruption made stale: it changes nothing. */
  staleAnswer: guard<PlanResultEvent>((c, e) => e.ref !== undefined && e.ref !== c.planRef),
  /** The planner refused the call at a label's daily cost cap. */
  dailyCapReached: guard<PlanResultEvent>((_c, e) => e.error?.code === 'ERR_DAILY_BUDGET'),
  /** A model error worth retrying, with retries left. */
  modelRetryable: guard<PlanResultEvent>((c, e) => e.error !== undefined && e.error.retryable && c.modelAttempts + 1 <= c.settings.maxModelRetries),
  /** The model says the history is too long, and it has not been compacted for that three times yet. */
  contextTooLong: guard<PlanResultEvent>((c, e) => e.error?.code === 'ERR_LLM_CONTEXT_LENGTH' && c.compactions < 3),
  /** Any other model error: permanent, or retries used up. */
  modelFailed: guard<PlanResultEvent>((_c, e) => e.error !== undefined),
  /** A reply with no tool call: the answer. */
  finalAnswer: guard<PlanResultEvent>((c, e) => readReply(c, e).toolCalls.length === 0),
  /** The reply repeats a call `loopRepeats` times, and the model has not been asked to reflect yet. */
  repeatsCall: guard<PlanResultEvent>((c, e) => readReply(c, e).repeated !== undefined && c.reflections < 1),
  /** The reply repeats a call although the model was asked to reflect. */
  repeatsCallAfterReflecting: guard<PlanResultEvent>((c, e) => readReply(c, e).repeated !== undefined && c.reflections >= 1),
  /** A call of the reply needs a person's approval first (an `ask` policy, or arguments the catalog marks). */
  callsNeedApproval: guard<PlanResultEvent>((c, e) => roundCalls(c, readReply(c, e).toolCalls).some((x) => x.status === 'approval')),
  /** A message from a person that interrupts the work in flight. */
  interrupts: guard<InputEvent>((_c, e) => e.interrupt === true),

  // --- acting: checked after every step in it
  /** The round is over and a call waits for a person (ask_human, or an effect only a person can confirm). */
  roundAwaitsPerson: guard((c) => roundOver(c) && c.calls.some((x) => x.status === 'waiting')),
  /** The round is over, with no progress for `idleRoundsLimit` rounds although the model reflected. */
  roundStuck: guard((c) => {
    if (!roundOver(c)) return false;
    const r = roundOutcome(c);
    return r.stuck && r.reflections > 1;
  }),
  /** The round is over, and the model has revised its plan more than `maxReplans` times. */
  replansExhausted: guard((c) => roundOver(c) && c.replans > c.settings.maxReplans),
  /** Every call of the round has an outcome (none running, none waiting for a retry). */
  roundOver: guard(roundOver),

  // --- awaitingInput
  /** An answer to the open question (or a message that names none). */
  answersQuestion: guard<InputEvent>((c, e) => e.requestId === undefined || e.requestId === c.question?.requestId),

  // --- awaitingApproval
  /** A person decided on the calls they were shown. */
  callsDecided: guard<ApprovalEvent>((c, e) => decides(c, e) && c.approval!.kind === 'tools'),
  /** A person decided not to go on past the budget. */
  budgetDenied: guard<ApprovalEvent>((c, e) => decides(c, e) && c.approval!.kind === 'budget' && e.decision === 'deny'),
  /** A person allowed going on past the budget. */
  budgetApproved: guard<ApprovalEvent>((c, e) => decides(c, e) && c.approval!.kind === 'budget' && e.decision === 'approve'),
  reminderDue: guard<ApprovalReminderEvent>(ofOpenRequest),
  /** Nobody decided in time, and there is another channel in `escalateTo` to ask. */
  deadlineEscalates: guard<ApprovalDeadlineEvent>(
    (c, e) => ofOpenRequest(c, e) && c.settings.approvalTimeoutOutcome === 'escalate' && Boolean(c.settings.escalateTo[c.approval!.escalations ?? 0]),
  ),
  /** Nobody decided on the calls in time. */
  callsExpired: guard<ApprovalDeadlineEvent>((c, e) => ofOpenRequest(c, e) && c.approval!.kind === 'tools'),
  /** Nobody decided on the budget in time. */
  budgetExpired: guard<ApprovalDeadlineEvent>((c, e) => ofOpenRequest(c, e) && c.approval!.kind === 'budget'),
};

/**
 * How the agent counts money and raises a limit a person let it pass. `exact` (`assistant@4`):
 * costs summed are rounded to a nano-dollar (no float noise in its usage, events and output),
 * amounts it writes have the digits a small amount needs (`spent $0.000061 of $0.00005`), and an
 * approved limit gets its allowance again from where usage stands — a wall-clock limit runs
 * `elapsed + limit` more, however long the person took to decide. `cents` (`@1`–`@3`): costs summed
 * as they come, amounts to the cent (`$0.00`), and a reached limit doubled or set just past usage
 * (a wall-clock limit approved after a long wait asked again at once); kept so their journals
 * replay exactly.
 */
export type Accounting = 'exact' | 'cents';

/** The chart's actions, for one way of counting money (see {@link Accounting}). */
export function agentActions(accounting: Accounting) {
  const exact = accounting === 'exact';
  const usd = exact ? exactUsd : centsUsd;
  const notifyActions = (...[c, topic, title, text, approval]: Parameters<typeof notifyWith>) => notifyWith(c, topic, title, text, approval, usd);
  const overBudget = (c: AgentContext) => overBudgetWith(c, usd);
  const addUsage = (c: AgentContext, e: PlanResultEvent) => usageWith(c, e, exact);
  return {
    // --- anywhere
    notifyStuck: action<StuckCheckEvent>((c, e, enqueue) => {
      const minutes = Math.round(c.settings.stuckAfterMs / 60_000);
      const text = `No progress on "${clip(c.goal, 80)}" for ${minutes >= 1 ? `${minutes} min` : `${Math.round(c.settings.stuckAfterMs / 1000)} s`} (step ${e.since}).`;
      for (const n of notifyActions(c, 'stuck', 'Your agent seems stuck', text)) enqueue(n);
    }),
    setBudget: action<BudgetEvent>((c, e, enqueue) => enqueue.assign({ budget: { ...c.budget, ...(e.budget ?? {}) }, now: tellTime(c, e) })),
    /** A new budget answers an open budget (or tools) question: it is closed without a decision. */
    dropApproval: action((_c, _e, enqueue) => enqueue.assign({ approval: undefined })),
    /** A message from a person while the agent works: staged for the next planning step. */
    stageMessage: action<InputEvent>((c, e, enqueue) => enqueue.assign({ staged: [...c.staged, e.text], now: tellTime(c, e) })),

    // --- planning
    /** Each planning step is progress: re-arming the watch (same id) supersedes the previous one. */
    watchProgress: action((c, _e, enqueue) => {
      if (c.settings.stuckAfterMs > 0) enqueue.raise({ type: 'stuck.check', since: c.rounds }, { id: 'stuck-watch', delay: c.settings.stuckAfterMs });
    }),
    /** Asks the model for the next move — or, at a budget limit, opens a budget request instead (see `budgetReached`). */
    requestPlan: action((c, _e, enqueue) => {
      const over = overBudget(c);
      if (over) {
        const requestId = `budget-${c.rounds}-${c.usage.inputTokens + c.usage.outputTokens}`;
        enqueue.assign({ approval: { kind: 'budget', requestId, argsHash: requestId, what: over.what, exceeded: over.exceeded } });
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
    }),
    /**
     * A model call's usage is reported first (its event leads the step's commands) and counted last,
     * after the branch's own actions: those read the context as the answer found it (the `done`
     * notification says what was spent before this reply).
     */
    reportUsage: action<PlanResultEvent>((c, e, enqueue) => {
      if (!e.usage) return;
      const usage = exact && e.usage.costUsd !== undefined ? { ...e.usage, costUsd: roundUsd(e.usage.costUsd) } : e.usage;
      enqueue({ type: 'errand.emit', params: { kind: 'usage', usage, total: addUsage(c, e) } });
    }),
    countUsage: action<PlanResultEvent>((c, e, enqueue) => enqueue.assign({ usage: addUsage(c, e), now: tellTime(c, e) })),
    /** A label's daily cap, enforced by the planner across every host: a person decides. */
    askToPassDailyCap: action<PlanResultEvent>((c, e, enqueue) =>
      enqueue.assign({ approval: { kind: 'budget', requestId: `daily-${c.planSeq}`, argsHash: `daily-${c.planSeq}`, what: e.error!.message, exceeded: [] } }),
    ),
    backOff: action<PlanResultEvent>((c, e, enqueue) => {
      const attempts = c.modelAttempts + 1;
      enqueue.assign({ modelAttempts: attempts, backoffMs: backoffDelay(c.settings, attempts, `${c.agentId}:${c.planRef}`, e.error!.retryAfterMs) });
    }),
    compactHistory: action((c, _e, enqueue) =>
      enqueue.assign({ messages: compact(c.messages, Math.max(4, Math.floor(c.settings.keepRecent / 2))), compactions: c.compactions + 1, modelAttempts: 0 }),
    ),
    failOnModelError: action<PlanResultEvent>((c, e, enqueue) => {
      const error = e.error!;
      const attempts = c.modelAttempts + 1;
      const why = error.retryable ? `the model kept failing (${attempts} attempts): ${error.message}` : `the model call failed: ${error.message}`;
      enqueue.assign({ failure: { ...error, message: why, retryable: false } });
    }),
    finish: action<PlanResultEvent>((c, e, enqueue) => {
      const { message } = readReply(c, e);
      enqueue.assign({ ...replied(c, e), answer: message.content ?? '' });
      for (const a of notifyActions(c, 'done', `Done: ${clip(c.goal, 80)}`, clip(message.content ?? '', 1000))) enqueue(a);
    }),
    /** The repeated calls are not run: the model is told so, and asked to reflect. */
    reflectOnLoop: action<PlanResultEvent>((c, e, enqueue) => {
      const tool = repeatedTool(readReply(c, e).repeated!);
      enqueue.assign({ ...refuseRepeated(c, e), reflections: c.reflections + 1, notes: [...c.notes, reflectionPrompt(`you called ${tool} with the same arguments ${c.settings.loopRepeats} times`)] });
    }),
    /** The repeated calls are not run, and a reflection did not break the loop: a person is asked. */
    askAboutLoop: action<PlanResultEvent>((c, e, enqueue) => {
      const tool = repeatedTool(readReply(c, e).repeated!);
      const text = `I seem to be stuck: I keep calling ${tool} with the same arguments. How should I proceed?`;
      enqueue.assign({ ...refuseRepeated(c, e), question: { requestId: `loop-${c.rounds + 1}`, text, reason: 'loop' } });
    }),
    /** The reply's calls become the round; nothing of it starts before `acting` (or a person's approval). */
    takeCalls: action<PlanResultEvent>((c, e, enqueue) => {
      const reply = readReply(c, e);
      enqueue.assign({ ...replied(c, e), calls: roundCalls(c, reply.toolCalls), recent: reply.recent });
    }),
    /** Nothing of this round starts before a person has decided. */
    askToRunCalls: action((c, _e, enqueue) => {
      const asking = c.calls.filter((x) => x.status === 'approval');
      const shown = asking.map((x) => ({ tool: x.tool, args: x.args }));
      const what = asking.map((x) => `${x.tool}(${canonical(x.args)})`).join('; ');
      enqueue.assign({ approval: { kind: 'tools', requestId: `tools-${c.planSeq}`, argsHash: approvalHash(shown), what, exceeded: [] } });
    }),

    // --- backingOff
    armPlanRetry: action((c, _e, enqueue) => enqueue.raise({ type: 'retry.plan' }, { id: 'retry-plan', delay: c.backoffMs })),

    // --- awaitingInput, awaitingApproval: the agent asks a person, and says so with `errand.wait`
    ...askingActions('declared', accounting),

    // --- acting
    ...callStarters('watchdog'),
    takeToolResult: action<ToolResultEvent>(takeToolResult),
    /** A call nobody answered in time (no live runner?) fails like a transient error: one call's own timer (`assistant@1`). */
    failCallAtDeadline: action<ToolDeadlineEvent>((c, e, enqueue) => {
      const call = c.calls.find((x) => x.id === e.callId);
      if (!call || call.status !== 'running' || call.attempts !== e.attempt) return;
      const patch = noAnswer(c, call, enqueue);
      if (patch) enqueue.assign(patch);
    }),
    /**
     * The watchdog fired: every call whose deadline has passed fails as above, and the watchdog is
     * armed again for the earliest deadline still ahead (or left unarmed when no call runs).
     * Only its own timer counts: another agent's `tool.watchdog` message changes nothing.
     */
    checkToolWatchdog: action<ToolWatchdogEvent>((c, e, enqueue) => {
      if (e.from !== undefined) return;
      const now = tellTime(c, e);
      let next: AgentContext = c;
      for (const call of c.calls) {
        if (!watched(call) || call.deadlineAt! > now) continue;
        next = { ...next, ...noAnswer(next, next.calls.find((x) => x.id === call.id)!, enqueue) };
      }
      const ahead = earliestDeadline(next.calls);
      if (ahead !== undefined) enqueue.raise({ type: 'tool.watchdog', at: ahead }, { id: WATCHDOG, delay: Math.max(0, ahead - now) });
      enqueue.assign({ calls: next.calls, notes: next.notes, replans: next.replans, now: next.now, question: next.question, watchdogAt: ahead });
    }),
    takeChildResult: action<ChildResultEvent>((c, e, enqueue) => {
      const call = c.calls.find((x) => x.id === e.ref && x.kind === 'delegate');
      if (!call || call.status !== 'running') return;
      const updated: CallState =
        e.outcome === 'done'
          ? { ...call, status: 'ok', content: clip(JSON.stringify(e.output ?? null), c.settings.maxResultChars) }
          : { ...call, status: 'error', content: `ERROR: the delegated agent ${e.outcome}${e.error ? `: ${e.error.message}` : ''}` };
      enqueue.assign({ calls: c.calls.map((x) => (x.id === call.id ? updated : x)), now: tellTime(c, e) });
    }),
    /** An interrupting message: the calls in flight are cancelled and the model hears so. */
    cancelRound: action((c, _e, enqueue) => {
      const calls = c.calls.map((x) =>
        x.status === 'running' || x.status === 'retrying' || x.status === 'waiting' ? { ...x, status: 'cancelled' as const, content: 'Cancelled: interrupted by a new message from the user.' } : x,
      );
      enqueue.assign({ messages: [...c.messages, ...toolMessages(calls)], calls: [], question: undefined });
    }),
    /** Every call of the round has an outcome: the results go to the model, and the round is counted. */
    closeRound: action((c, _e, enqueue) => {
      const { failedRounds, idleRounds, notes, reflections } = roundOutcome(c);
      enqueue.assign({ messages: [...c.messages, ...toolMessages(c.calls)], calls: [], failedRounds, idleRounds, notes, reflections });
    }),
    /** Reflection did not help: a person looks before more is spent. */
    askWhenStuck: action((c, _e, enqueue) =>
      enqueue.assign({ question: { requestId: `stuck-${c.rounds}`, text: `I have made no progress for ${c.idleRounds} rounds. How should I proceed?`, reason: 'loop' }, idleRounds: 0 }),
    ),
    giveUpReplanning: action((c, _e, enqueue) =>
      enqueue.assign({
        failure: { code: 'ERR_REPLANS_EXHAUSTED', message: `gave up after ${c.replans} re-plans; the last failure: ${c.calls.find((x) => x.error)?.error?.message ?? 'unknown'}`, retryable: false },
      }),
    ),

    // --- awaitingInput
    takeAnswer: action<InputEvent>((c, e, enqueue) => {
      const q = c.question!;
      const now = tellTime(c, e);
      if (q.callId) {
        const calls = c.calls.map((x) => (x.id === q.callId ? { ...x, status: 'ok' as const, content: `The person answered: ${e.text}` } : x));
        enqueue.assign({ messages: [...c.messages, ...toolMessages(calls)], calls: [], question: undefined, now, idleRounds: 0 });
      } else {
        enqueue.assign({ question: undefined, now, idleRounds: 0, reflections: 0, notes: [...c.notes, `The person said: ${e.text}`] });
      }
    }),

    // --- awaitingApproval
    remindApprover: action((c, _e, enqueue) => {
      const a = c.approval!;
      for (const n of notifyActions(c, 'reminder', 'Still waiting for your decision', a.what, { requestId: a.requestId, argsHash: a.argsHash, tool: a.kind, summary: a.what })) enqueue(n);
    }),
    /** Nobody decided in time, and there is nobody left to ask: the request expires. */
    expireApproval: action((c, _e, enqueue) => {
      const a = c.approval!;
      enqueue({ type: 'errand.emit', params: { kind: 'approval', requestId: a.requestId, status: 'expired', argsHash: a.argsHash, tool: a.kind === 'budget' ? 'budget' : 'tools' } });
      enqueue.assign({ decided: keepLast({ ...c.decided, [a.requestId]: { decision: 'expired', by: 'the deadline' } }, 20) });
    }),
    refuseUndecidedCalls: action((c, _e, enqueue) => {
      const calls = c.calls.map((x): CallState => (x.status === 'approval' ? { ...x, status: 'error', content: 'ERROR: nobody approved this call in time; it was not run.' } : x));
      enqueue.assign({ approval: undefined, calls });
    }),
    stopAtUndecidedBudget: action((c, _e, enqueue) =>
      enqueue.assign({ approval: undefined, failure: { code: 'ERR_BUDGET', message: `stopped at the budget: nobody decided in time (${c.approval!.what})`, retryable: false } }),
    ),
    recordDecision: action<ApprovalEvent>((c, e, enqueue) => {
      const a = c.approval!;
      const status = e.decision === 'approve' ? 'approved' : 'denied';
      const who = e.by ? `${e.by.name ?? e.by.id} (${e.by.channel})` : 'someone';
      enqueue({ type: 'errand.emit', params: { kind: 'approval', requestId: a.requestId, status, argsHash: a.argsHash, tool: a.kind === 'budget' ? 'budget' : 'tools', ...(e.by ? { by: e.by } : {}) } });
      enqueue.assign({ decided: keepLast({ ...c.decided, [a.requestId]: { decision: e.decision, by: who } }, 20) });
      enqueue.cancel('approval-reminder');
      enqueue.cancel('approval-deadline');
    }),
    /** Approved calls run (named with the request, for the host's evidence); denied ones fail. */
    decideCalls: action<ApprovalEvent>((c, e, enqueue) => {
      const a = c.approval!;
      const calls = c.calls.map((x): CallState =>
        x.status !== 'approval' ? x : e.decision === 'approve' ? { ...x, status: 'running', approval: a.requestId } : { ...x, status: 'error', content: 'ERROR: a person denied this call.' },
      );
      enqueue.assign({ approval: undefined, calls, now: tellTime(c, e) });
    }),
    stopAtBudget: action((c, _e, enqueue) =>
      enqueue.assign({ approval: undefined, failure: { code: 'ERR_BUDGET', message: `stopped at the budget: ${c.approval!.what}`, retryable: false } }),
    ),
    /**
     * Continue. `exact`: each limit that was reached gets its allowance again from where usage
     * stands at the decision (a wall-clock limit: the time run so far, waiting for the decision
     * included, plus the limit). `cents`: doubled, or just past usage.
     */
    raiseBudget: action<ApprovalEvent>((c, e, enqueue) => {
      const a = c.approval!;
      const b = { ...c.budget };
      const tokens = c.usage.inputTokens + c.usage.outputTokens;
      const now = tellTime(c, e);
      if (exact) {
        if (a.exceeded.includes('maxSteps')) b.maxSteps = c.rounds + b.maxSteps!;
        if (a.exceeded.includes('maxTokens')) b.maxTokens = tokens + b.maxTokens!;
        if (a.exceeded.includes('maxCostUsd')) b.maxCostUsd = roundUsd(c.usage.costUsd + b.maxCostUsd!);
        if (a.exceeded.includes('maxWallMs')) b.maxWallMs = now - c.startedAt + b.maxWallMs!;
      } else {
        if (a.exceeded.includes('maxSteps')) b.maxSteps = Math.max(c.rounds + 1, (b.maxSteps ?? 0) * 2);
        if (a.exceeded.includes('maxTokens')) b.maxTokens = Math.max(tokens + 1, (b.maxTokens ?? 0) * 2);
        if (a.exceeded.includes('maxCostUsd')) b.maxCostUsd = Math.max(c.usage.costUsd + 0.01, (b.maxCostUsd ?? 0) * 2);
        if (a.exceeded.includes('maxWallMs')) b.maxWallMs = Math.max(c.now - c.startedAt + 1, (b.maxWallMs ?? 0) * 2);
      }
      enqueue.assign({ approval: undefined, budget: b, now, overDailyCap: c.overDailyCap || a.exceeded.length === 0 });
    }),

    // --- failed
    notifyFailure: action((c, _e, enqueue) => {
      const why = c.failure?.message ?? 'unknown error';
      for (const n of notifyActions(c, 'failed', `Failed: ${clip(c.goal, 80)}`, clip(why, 1000))) enqueue(n);
    }),
  };
}

/** The usage with the model call's added; `exact`: the cost rounded to a nano-dollar. */
function usageWith(c: AgentContext, e: PlanResultEvent, exact: boolean): AgentContext['usage'] {
  if (!e.usage) return c.usage;
  const costUsd = c.usage.costUsd + (e.usage.costUsd ?? 0);
  return { inputTokens: c.usage.inputTokens + e.usage.inputTokens, outputTokens: c.usage.outputTokens + e.usage.outputTokens, costUsd: exact ? roundUsd(costUsd) : costUsd };
}

/** The reply joins the history and counts as a round; the model's failed attempts are forgotten. */
function replied(c: AgentContext, e: PlanResultEvent): Pick<AgentContext, 'messages' | 'modelAttempts' | 'rounds'> {
  return { messages: [...c.messages, e.result!.message], modelAttempts: 0, rounds: c.rounds + 1 };
}

/** A reply that repeats a call: none of its calls run, and each gets an answer saying why. */
function refuseRepeated(c: AgentContext, e: PlanResultEvent): Partial<AgentContext> {
  const reply = readReply(c, e);
  const calls: CallState[] = reply.toolCalls.map((t) => ({
    id: t.id,
    tool: t.name,
    args: null,
    argsText: t.arguments,
    kind: 'builtin',
    status: 'cancelled',
    attempts: 0,
    content: 'Not executed: this exact call was already made several times.',
  }));
  return { ...replied(c, e), recent: reply.recent, calls: [], messages: [...c.messages, reply.message, ...toolMessages(calls)] };
}

function takeToolResult(c: AgentContext, e: ToolResultEvent, enqueue: Enqueue): void {
  const patch = toolResultPatch(c, e, enqueue);
  if (patch) enqueue.assign(patch);
}

/** What a call's result changes (undefined: nothing, it is not a running call); its events and retry timer are enqueued. */
function toolResultPatch(c: AgentContext, e: ToolResultEvent, enqueue: Enqueue): Pick<AgentContext, 'calls' | 'now' | 'notes' | 'replans' | 'question'> | undefined {
  const call = c.calls.find((x) => x.id === e.callId && x.kind === 'tool');
  if (!call || call.status !== 'running') return undefined;
  // Only a call `assistant@1` sent has a timer of its own; the watchdog stays armed (see `checkToolWatchdog`).
  if (call.deadlineAt === undefined) enqueue.cancel(`deadline-${call.id}`);
  const now = tellTime(c, e);
  if (e.error?.code === 'ERR_EFFECT_UNCERTAIN') {
    // Not safe to run again, not known to have happened: only a person can tell.
    enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'error', attempt: call.attempts, error: e.error, ...duration(e) } });
    const text = `${e.error.message}. Did ${call.tool}(${clip(call.argsText, 500)}) take effect? Answer, and I will go on from there.`;
    const updated: CallState = { ...call, status: 'waiting', error: e.error };
    return { calls: c.calls.map((x) => (x.id === call.id ? updated : x)), now, notes: c.notes, replans: c.replans, question: { requestId: call.id, callId: call.id, text, reason: 'ask_human' } };
  }
  let updated: CallState;
  let { notes, replans } = c;
  if (e.error) {
    if (e.error.retryable && call.attempts < c.settings.maxToolAttempts) {
      const delay = backoffDelay(c.settings, call.attempts, `${c.agentId}:${call.id}:${call.attempts}`, e.error.retryAfterMs);
      enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'retrying', attempt: call.attempts, error: e.error } });
      // The retry says when it was due, so its deadline counts from then (calls `assistant@1` sent: as they always did).
      enqueue.raise({ type: 'retry.tool', callId: call.id, ...(call.deadlineAt === undefined ? {} : { at: now + delay }) }, { id: `retry-${call.id}`, delay });
      updated = { ...call, status: 'retrying', error: e.error };
    } else {
      enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'error', attempt: call.attempts, error: e.error, ...duration(e) } });
      updated = { ...call, status: 'error', error: e.error, content: `ERROR (${e.error.code}): ${e.error.message}`, ...duration(e) };
      // Retries exhausted on a failure that was worth retrying: the step cannot be done this way.
      if (e.error.retryable) (notes = [...notes, replanPrompt(call.tool, call.attempts)]), (replans += 1);
    }
  } else {
    enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'ok', attempt: call.attempts, ...duration(e) } });
    const output = e.result?.output;
    updated = { ...call, status: 'ok', content: clip(typeof output === 'string' ? output : JSON.stringify(output ?? null), c.settings.maxResultChars), ...duration(e) };
  }
  return { calls: c.calls.map((x) => (x.id === call.id ? updated : x)), now, notes, replans, question: c.question };
}

/** A running call nobody answered in time (no live runner?): it fails like a transient error. */
function noAnswer(c: AgentContext, call: CallState, enqueue: Enqueue): ReturnType<typeof toolResultPatch> {
  const within = Math.round(answerWithinMs(c, call) / 1000);
  return toolResultPatch(
    c,
    { type: 'tool.result', callId: call.id, error: { code: 'ERR_TOOL_NO_ANSWER', message: `no answer from ${call.tool} within ${within} s: no tool-runner may be serving it`, retryable: true } },
    enqueue,
  );
}

/** A tool's time limit when the catalog names none. */
const DEFAULT_TOOL_TIMEOUT_MS = 10 * 60_000;
/** The timer id of the agent's one watchdog over its calls: re-arming it supersedes the armed one. */
const WATCHDOG = 'tool-watchdog';

/** How long a call may go without any answer: its tool's timeout, plus the grace for the runner's own. */
function answerWithinMs(c: AgentContext, call: CallState): number {
  return (c.toolTimeouts[call.tool] ?? DEFAULT_TOOL_TIMEOUT_MS) + c.settings.toolDeadlineGraceMs;
}

/** A running call the watchdog keeps an eye on. */
function watched(call: CallState): boolean {
  return call.kind === 'tool' && call.status === 'running' && call.deadlineAt !== undefined;
}

function earliestDeadline(calls: readonly CallState[]): number | undefined {
  let at: number | undefined;
  for (const x of calls) if (watched(x) && (at === undefined || x.deadlineAt! < at)) at = x.deadlineAt;
  return at;
}

/**
 * How a call that was sent gets a deadline. `watchdog`: the call notes it, and the agent's one
 * watchdog timer is armed only when none is, or when it is armed for later — at 10 calls a run
 * that is one timer instead of ten, each of which the host would publish now and load the record
 * for when it fires. `per-call`: a durable timer per call, as `assistant@1` did (kept so that its
 * journals replay exactly and the agents it started finish the same way).
 */
type DeadlineMode = 'watchdog' | 'per-call';

/** `startCalls` and `retryTool`, the two actions that send tool commands, for one deadline mode. */
export function callStarters(mode: DeadlineMode) {
  /** The call `call` as sent now (`attempt`): its command, its deadline, its `requested` event. */
  const send = (c: AgentContext, call: CallState, attempt: number, enqueue: Enqueue): CallState => {
    enqueue({ type: 'errand.tool', params: { callId: call.id, tool: call.tool, args: call.args, attempt, ...(call.approval ? { approval: call.approval } : {}) } });
    let sent = call;
    if (mode === 'per-call') enqueue.raise({ type: 'tool.deadline', callId: call.id, attempt }, { id: `deadline-${call.id}`, delay: answerWithinMs(c, call) });
    else sent = { ...call, deadlineAt: c.now + answerWithinMs(c, call) };
    enqueue({ type: 'errand.emit', params: { kind: 'tool', callId: call.id, tool: call.tool, status: 'requested', attempt } });
    return sent;
  };
  /** Arms the watchdog for the earliest of `calls` unless it is armed for that time or earlier. */
  const watch = (c: AgentContext, calls: readonly CallState[], enqueue: Enqueue): void => {
    if (mode === 'per-call') return;
    const at = earliestDeadline(calls);
    if (at === undefined || (c.watchdogAt !== undefined && c.watchdogAt <= at)) return;
    enqueue.raise({ type: 'tool.watchdog', at }, { id: WATCHDOG, delay: Math.max(0, at - c.now) });
    enqueue.assign({ watchdogAt: at });
  };
  return {
    startCalls: action((c, _e, enqueue) => {
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
            return send(c, call, call.attempts, enqueue);
        }
      });
      enqueue.assign({ calls });
      watch(c, calls, enqueue);
    }),
    retryTool: action<RetryToolEvent>((c, e, enqueue) => {
      const call = c.calls.find((x) => x.id === e.callId);
      if (!call || call.status !== 'retrying') return;
      const attempts = call.attempts + 1;
      // A retry of a call `assistant@1` sent (no deadline noted, no `at`) learns no time, as then.
      const now = tellTime(c, e);
      const at: AgentContext = { ...c, now };
      const sent = send(at, call, attempts, enqueue);
      const calls = c.calls.map((x) => (x.id === e.callId ? { ...sent, status: 'running' as const, attempts } : x));
      enqueue.assign(now === c.now ? { calls } : { calls, now });
      watch(at, calls, enqueue);
    }),
  };
}

/**
 * How the agent tells the runtime that it waits for a person. `declared` (`assistant@3`): asking
 * enqueues `errand.wait` (so `record.waiting` says what for, and the status is `waiting`), and
 * leaving `awaitingInput` / `awaitingApproval` by any edge ends it with `errand.endWait`.
 * `silent`: the same steps without them, as `assistant@1` and `@2` took them — their journals say
 * `running` where a person was asked, and must replay to it.
 */
type WaitMode = 'declared' | 'silent';

/** The actions with which the agent asks a person (and stops asking), for one wait mode and way of counting money. */
export function askingActions(mode: WaitMode, accounting: Accounting) {
  const declare = mode === 'declared';
  const usd = accounting === 'exact' ? exactUsd : centsUsd;
  const notifyActions = (...[c, topic, title, text, approval]: Parameters<typeof notifyWith>) => notifyWith(c, topic, title, text, approval, usd);
  /** The calls an open tools request asks about, as the tools would get them. */
  const askedCalls = (c: AgentContext) => c.calls.filter((x) => x.status === 'approval').map((x) => ({ tool: x.tool, args: x.args }));
  /** The `errand.wait` of the open approval request: its deadline is the `approval-deadline` timer's, from now. */
  const waitForDecision = (c: AgentContext, enqueue: Enqueue): void => {
    const a = c.approval!;
    const common = { requestId: a.requestId, argsHash: a.argsHash, summary: a.what, deadlineInMs: c.settings.approvalTimeoutMs };
    if (a.kind === 'budget') enqueue({ type: 'errand.wait', params: { kind: 'budget', ...common, question: budgetQuestion(a.what) } });
    else enqueue({ type: 'errand.wait', params: { kind: 'approval', ...common, calls: askedCalls(c) } });
  };
  return {
    askQuestion: action((c, _e, enqueue) => {
      const q = c.question!;
      if (declare) enqueue({ type: 'errand.wait', params: { kind: 'input', requestId: q.requestId, question: q.text } });
      for (const a of notifyActions(c, 'input', 'A question from your agent', q.text)) enqueue(a);
    }),
    requestApproval: action((c, _e, enqueue) => {
      const a = c.approval!;
      const tool = a.kind === 'budget' ? 'budget' : c.calls.filter((x) => x.status === 'approval').map((x) => x.tool).join(', ');
      const calls = a.kind === 'budget' ? [] : askedCalls(c);
      enqueue({ type: 'errand.emit', params: { kind: 'approval', requestId: a.requestId, status: 'requested', argsHash: a.argsHash, calls, tool, reason: a.what } });
      if (declare) waitForDecision(c, enqueue);
      const approval = { requestId: a.requestId, argsHash: a.argsHash, tool, summary: a.what, deadlineAt: c.now + c.settings.approvalTimeoutMs };
      enqueue.raise({ type: 'approval.reminder', requestId: a.requestId }, { id: 'approval-reminder', delay: Math.floor(c.settings.approvalTimeoutMs / 2) });
      enqueue.raise({ type: 'approval.deadline', requestId: a.requestId }, { id: 'approval-deadline', delay: c.settings.approvalTimeoutMs });
      if (a.kind === 'budget') for (const n of notifyActions(c, 'budget', 'Your agent reached its budget', budgetQuestion(a.what), approval)) enqueue(n);
      else for (const n of notifyActions(c, 'approval', 'Your agent asks to run a tool', a.what, approval)) enqueue(n);
    }),
    /** Nobody decided in time: ask on the next escalation channel and wait again (with the new deadline). */
    escalateApproval: action((c, _e, enqueue) => {
      const a = c.approval!;
      const escalations = a.escalations ?? 0;
      enqueue({
        type: 'errand.notify',
        params: {
          channel: c.settings.escalateTo[escalations]!,
          topic: 'approval',
          title: 'Escalated: your decision is needed',
          text: a.what,
          approval: { requestId: a.requestId, argsHash: a.argsHash, tool: a.kind, summary: a.what },
        },
      });
      enqueue.assign({ approval: { ...a, escalations: escalations + 1 } });
      enqueue.raise({ type: 'approval.deadline', requestId: a.requestId }, { id: 'approval-deadline', delay: c.settings.approvalTimeoutMs });
      if (declare) waitForDecision(c, enqueue);
    }),
    /** Leaving a state where a person was asked, by whatever edge: nobody is asked any more. */
    endWait: action((_c, _e, enqueue) => {
      if (declare) enqueue({ type: 'errand.endWait' });
    }),
  };
}
