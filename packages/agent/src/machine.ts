import { setup } from 'xstate';
import { errandActions, failureOutput, type AgentInput } from '@errand/core';
import { initialContext, type AgentContext, type AgentEvent } from './context.js';
import { agentActions, agentGuards, askingActions, callStarters } from './handlers.js';

/**
 * The planner loop: planning → acting → (awaitingApproval | awaitingInput | backingOff) → planning
 * … → done | failed. Every move is an edge of the chart — an event transition or a guarded `always`
 * transition, each guard and action named (see `handlers.ts`) — so the chart is what Stately's
 * visualiser and inspector show, and each action stays a plain function of (context, event) that
 * the journal replays exactly.
 */
export const agentMachine = setup({
  types: {} as { input: AgentInput; context: AgentContext; events: AgentEvent },
  actions: { ...errandActions, ...agentActions('exact') },
  guards: agentGuards,
}).createMachine({
  id: 'agent',
  // XState may build the initial snapshot with no input (and throw it away): that must not throw.
  context: ({ input }) => initialContext(input as AgentInput | undefined),
  initial: 'planning',
  on: {
    'stuck.check': { actions: 'notifyStuck' },
    'control.budget': { actions: 'setBudget' },
    // Wherever the agent is when it fires: it fails overdue calls (only `acting` has running ones) and re-arms or disarms.
    'tool.watchdog': { actions: 'checkToolWatchdog' },
  },
  states: {
    planning: {
      entry: ['watchProgress', 'requestPlan'],
      always: { guard: 'budgetReached', target: 'awaitingApproval' },
      on: {
        // Usage is reported before and counted after each branch's own actions (see `reportUsage`).
        'plan.result': [
          { guard: 'staleAnswer' },
          { guard: 'dailyCapReached', target: 'awaitingApproval', actions: ['reportUsage', 'askToPassDailyCap', 'countUsage'] },
          { guard: 'modelRetryable', target: 'backingOff', actions: ['reportUsage', 'backOff', 'countUsage'] },
          { guard: 'contextTooLong', target: 'planning', reenter: true, actions: ['reportUsage', 'compactHistory', 'countUsage'] },
          { guard: 'modelFailed', target: 'failed', actions: ['reportUsage', 'failOnModelError', 'countUsage'] },
          { guard: 'finalAnswer', target: 'done', actions: ['reportUsage', 'finish', 'countUsage'] },
          { guard: 'repeatsCall', target: 'planning', reenter: true, actions: ['reportUsage', 'reflectOnLoop', 'countUsage'] },
          { guard: 'repeatsCallAfterReflecting', target: 'awaitingInput', actions: ['reportUsage', 'askAboutLoop', 'countUsage'] },
          { guard: 'callsNeedApproval', target: 'awaitingApproval', actions: ['reportUsage', 'takeCalls', 'askToRunCalls', 'countUsage'] },
          { target: 'acting', actions: ['reportUsage', 'takeCalls', 'countUsage'] },
        ],
        // Re-entering planning issues a new request; the interrupted one's answer no longer matches planRef.
        input: [{ guard: 'interrupts', target: 'planning', reenter: true, actions: 'stageMessage' }, { actions: 'stageMessage' }],
      },
    },
    backingOff: {
      entry: 'armPlanRetry',
      on: {
        'retry.plan': { target: 'planning' },
        input: [{ guard: 'interrupts', target: 'planning', actions: 'stageMessage' }, { actions: 'stageMessage' }],
      },
    },
    acting: {
      entry: 'startCalls',
      // When every call of the round has an outcome: the results go to the model (or a person is asked).
      always: [
        { guard: 'roundAwaitsPerson', target: 'awaitingInput' },
        { guard: 'roundStuck', target: 'awaitingInput', actions: ['closeRound', 'askWhenStuck'] },
        { guard: 'replansExhausted', target: 'failed', actions: ['giveUpReplanning', 'closeRound'] },
        { guard: 'roundOver', target: 'planning', actions: 'closeRound' },
      ],
      on: {
        'tool.result': { actions: 'takeToolResult' },
        'child.result': { actions: 'takeChildResult' },
        'retry.tool': { actions: 'retryTool' },
        // One call's own deadline timer: `assistant@1` armed one per call, and its agents may still be in flight.
        'tool.deadline': { actions: 'failCallAtDeadline' },
        input: [{ guard: 'interrupts', target: 'planning', actions: ['stageMessage', 'cancelRound'] }, { actions: 'stageMessage' }],
      },
    },
    awaitingInput: {
      entry: 'askQuestion',
      exit: 'endWait',
      on: {
        input: { guard: 'answersQuestion', target: 'planning', actions: 'takeAnswer' },
      },
    },
    awaitingApproval: {
      entry: 'requestApproval',
      exit: 'endWait',
      on: {
        'approval.reminder': { guard: 'reminderDue', actions: 'remindApprover' },
        'approval.deadline': [
          { guard: 'deadlineEscalates', actions: 'escalateApproval' },
          { guard: 'callsExpired', target: 'acting', actions: ['expireApproval', 'refuseUndecidedCalls'] },
          { guard: 'budgetExpired', target: 'failed', actions: ['expireApproval', 'stopAtUndecidedBudget'] },
        ],
        approval: [
          { guard: 'callsDecided', target: 'acting', actions: ['recordDecision', 'decideCalls'] },
          { guard: 'budgetDenied', target: 'failed', actions: ['recordDecision', 'stopAtBudget'] },
          { guard: 'budgetApproved', target: 'planning', actions: ['recordDecision', 'raiseBudget'] },
        ],
        // New limits answer the open question: plan again under them.
        'control.budget': { target: 'planning', actions: ['setBudget', 'dropApproval'] },
      },
    },
    done: { type: 'final' },
    failed: { type: 'final', entry: 'notifyFailure' },
  },
  output: ({ context }) =>
    context.failure
      ? failureOutput(context.failure)
      : { answer: context.answer ?? '', tasks: context.tasks, usage: context.usage, rounds: context.rounds },
});

/**
 * The chart as `assistant@3` ran it: the same steps, with money counted to the cent and a limit a
 * person let it pass doubled (see `Accounting` in handlers.ts). Kept registered so its journals
 * replay exactly and the agents it started finish as they began.
 */
export const agentMachineV3 = agentMachine.provide({ actions: agentActions('cents') });

/**
 * The chart as `assistant@2` ran it: as `@3`, without telling the runtime when it waits for a
 * person (`errand.wait`), so its journals say `running` there. Kept registered so its journals
 * replay exactly and the agents it started finish as they began.
 */
export const agentMachineV2 = agentMachine.provide({ actions: { ...agentActions('cents'), ...askingActions('silent', 'cents') } });

/**
 * The chart as `assistant@1` ran it: as `@2`, with a durable deadline timer per tool call instead
 * of one watchdog per agent. Kept registered so its journals replay exactly (`v1-journals.test.ts`)
 * and the agents it started finish as they began.
 */
export const agentMachineV1 = agentMachine.provide({ actions: { ...agentActions('cents'), ...callStarters('per-call'), ...askingActions('silent', 'cents') } });
