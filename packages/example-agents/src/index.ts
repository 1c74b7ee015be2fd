import { assign, cancel, enqueueActions, setup } from 'xstate';
import { approvalHash, defineAgent, errandActions, failureOutput, type AgentDefinition, type AgentInput } from '@errand/core';

type InputEvent = { type: 'input'; text: string };
type ToolResultEvent = { type: 'tool.result'; callId: string; result?: { output?: unknown }; error?: { message: string } };
type ChildResultEvent = { type: 'child.result'; ref: string; outcome: 'done' | 'failed' | 'cancelled'; output?: unknown };

const num = (value: unknown, fallback: number): number => (typeof value === 'number' && Number.isFinite(value) ? value : fallback);

/**
 * The goal's free-form input, or none. XState may compute a machine's initial snapshot without
 * any input (and throw it away), so a context factory must not assume one: reading `input.input.x`
 * would throw there, to be caught, every time.
 */
const given = (input: AgentInput | undefined): Readonly<Record<string, unknown>> => input?.input ?? {};

/**
 * `tally`: adds up the numbers people send as input until it has `input.expect` of them. Every
 * message is one step, so it shows that no event is lost or applied twice however hosts race.
 */
export const tally = defineAgent({
  id: 'tally',
  version: 1,
  description: 'adds up numeric input messages until it has input.expect of them',
  machine: setup({
    types: {} as { input: AgentInput; context: { expect: number; sum: number; seen: string[] }; events: InputEvent },
    actions: errandActions,
  }).createMachine({
    id: 'tally',
    context: ({ input }) => ({ expect: num(given(input).expect, 1), sum: 0, seen: [] }),
    initial: 'counting',
    states: {
      counting: {
        always: { guard: ({ context }) => context.seen.length >= context.expect, target: 'done' },
        on: {
          input: {
            actions: assign({
              sum: ({ context, event }) => context.sum + Number(event.text),
              seen: ({ context, event }) => [...context.seen, event.text],
            }),
          },
        },
      },
      done: { type: 'final' },
    },
    output: ({ context }) => ({ sum: context.sum, count: context.seen.length, seen: context.seen }),
  }),
});

/**
 * `sleeper`: waits `input.delayMs` on a durable timer, then finishes. With `input.reminderMs` it
 * also sets a reminder that the input `cancel-reminder` cancels: a cancelled timer must not fire.
 */
export const sleeper = defineAgent({
  id: 'sleeper',
  version: 1,
  description: 'sleeps input.delayMs on a durable timer; optional reminder at input.reminderMs, cancelled by the input "cancel-reminder"',
  machine: setup({
    types: {} as {
      input: AgentInput;
      context: { delayMs: number; reminderMs: number; reminders: number };
      events: InputEvent | { type: 'reminder' };
    },
    actions: errandActions,
    delays: { sleep: ({ context }) => context.delayMs },
  }).createMachine({
    id: 'sleeper',
    context: ({ input }) => ({ delayMs: num(given(input).delayMs, 1000), reminderMs: num(given(input).reminderMs, 0), reminders: 0 }),
    initial: 'sleeping',
    states: {
      sleeping: {
        entry: enqueueActions(({ context, enqueue }) => {
          if (context.reminderMs > 0) enqueue.raise({ type: 'reminder' }, { id: 'reminder', delay: context.reminderMs });
        }),
        after: { sleep: 'awake' },
        on: {
          reminder: { actions: assign({ reminders: ({ context }) => context.reminders + 1 }) },
          input: { guard: ({ event }) => event.text === 'cancel-reminder', actions: cancel('reminder') },
        },
      },
      awake: { type: 'final' },
    },
    output: ({ context }) => ({ reminders: context.reminders, sleptMs: context.delayMs }),
  }),
});

/**
 * `pipeline`: calls the tool `input.tool` (default `echo`) `input.steps` times, one after the
 * other, each with the previous output; finishes with every output.
 */
export const pipeline = defineAgent({
  id: 'pipeline',
  version: 1,
  description: 'calls a tool input.steps times in a row',
  machine: setup({
    types: {} as { input: AgentInput; context: { tool: string; steps: number; outputs: unknown[] }; events: ToolResultEvent },
    actions: errandActions,
  }).createMachine({
    id: 'pipeline',
    context: ({ input }) => {
      const i = given(input);
      return { tool: typeof i.tool === 'string' ? i.tool : 'echo', steps: num(i.steps, 3), outputs: [] };
    },
    initial: 'calling',
    states: {
      calling: {
        entry: {
          type: 'errand.tool',
          params: ({ context }) => ({
            callId: `call-${context.outputs.length + 1}`,
            tool: context.tool,
            args: { n: context.outputs.length + 1, previous: context.outputs.at(-1) ?? null },
          }),
        },
        on: {
          'tool.result': {
            guard: ({ context, event }) => event.callId === `call-${context.outputs.length + 1}`,
            target: 'next',
            actions: assign({ outputs: ({ context, event }) => [...context.outputs, event.result?.output ?? { error: event.error?.message }] }),
          },
        },
      },
      next: {
        always: [{ guard: ({ context }) => context.outputs.length >= context.steps, target: 'done' }, { target: 'calling' }],
      },
      done: { type: 'final' },
    },
    output: ({ context }) => ({ outputs: context.outputs }),
  }),
});

/**
 * `parent`: spawns `input.children` child agents (`input.childAgent`, default `sleeper`, with
 * `input.childInput`) and finishes when every child has finished, with each child's outcome.
 */
export const parent = defineAgent({
  id: 'parent',
  version: 1,
  description: 'delegates to input.children child agents and waits for all of them',
  machine: setup({
    types: {} as {
      input: AgentInput;
      context: { children: number; childAgent: string; childInput: Record<string, unknown>; results: Record<string, string> };
      events: ChildResultEvent;
    },
    actions: errandActions,
  }).createMachine({
    id: 'parent',
    context: ({ input }) => {
      const i = given(input);
      return {
        children: num(i.children, 3),
        childAgent: typeof i.childAgent === 'string' ? i.childAgent : 'sleeper',
        childInput: (i.childInput as Record<string, unknown> | undefined) ?? { delayMs: 100 },
        results: {},
      };
    },
    initial: 'waiting',
    states: {
      waiting: {
        entry: enqueueActions(({ context, enqueue }) => {
          for (let i = 1; i <= context.children; i++) {
            enqueue({
              type: 'errand.spawn',
              params: { ref: `child-${i}`, goal: `child ${i} of ${context.children}`, agent: context.childAgent, input: context.childInput },
            });
          }
        }),
        always: { guard: ({ context }) => Object.keys(context.results).length >= context.children, target: 'done' },
        on: {
          'child.result': { actions: assign({ results: ({ context, event }) => ({ ...context.results, [event.ref]: event.outcome }) }) },
        },
      },
      done: { type: 'final' },
    },
    output: ({ context }) => ({ results: context.results }),
  }),
});

/** `thrower`: the input `boom` makes its assignment throw — the agent must fail, not the host. */
export const thrower = defineAgent({
  id: 'thrower',
  version: 1,
  description: 'fails on the input "boom"; finishes on "done"',
  machine: setup({
    types: {} as { input: AgentInput; context: { said: string[] }; events: InputEvent },
    actions: errandActions,
  }).createMachine({
    id: 'thrower',
    context: { said: [] },
    initial: 'listening',
    states: {
      listening: {
        on: {
          input: [
            { guard: ({ event }) => event.text === 'done', target: 'done' },
            {
              actions: assign({
                said: ({ context, event }) => {
                  if (event.text === 'boom') throw new Error('boom: the machine exploded on purpose');
                  return [...context.said, event.text];
                },
              }),
            },
          ],
        },
      },
      done: { type: 'final' },
    },
    output: ({ context }) => ({ said: context.said }),
  }),
});

type ApprovalEvent = { type: 'approval'; requestId: string; decision: 'approve' | 'deny'; argsHash?: string; from?: string };
type ReviewEvent = ApprovalEvent | InputEvent | ToolResultEvent | { type: 'review.deadline' };
interface ReviewContext {
  call: { tool: string; args: unknown };
  deadlineMs: number;
  outcome: 'pending' | 'ran' | 'denied' | 'expired';
  result: unknown;
  note: string | undefined;
}
const REVIEW = 'review-1';
const NOTE = 'note-1';

/**
 * `reviewer`: asks a person before it calls `input.tool` (default `echo`) with `input.args`, then
 * asks them for a note — a custom machine saying what it waits for with `errand.wait`, so
 * `errand ls --status waiting`, `errand show`, the client, the notifier and the dashboard know
 * without reading its context. Approved, it runs the call (naming the request, so the call carries
 * the approval's evidence); denied, or undecided after `input.deadlineMs` (default 10 min), it stops.
 */
export const reviewer = defineAgent({
  id: 'reviewer',
  version: 1,
  description: 'asks a person to approve one tool call (input.tool, input.args), runs it, then asks for a note',
  machine: setup({
    types: {} as { input: AgentInput; context: ReviewContext; events: ReviewEvent },
    actions: errandActions,
    delays: { review: ({ context }) => context.deadlineMs },
  }).createMachine({
    id: 'reviewer',
    context: ({ input }) => {
      const i = given(input);
      return { call: { tool: typeof i.tool === 'string' ? i.tool : 'echo', args: i.args ?? {} }, deadlineMs: num(i.deadlineMs, 600_000), outcome: 'pending' as const, result: undefined, note: undefined };
    },
    initial: 'awaitingApproval',
    states: {
      awaitingApproval: {
        // The wait registers the approval request: a decision must name it and this exact hash.
        entry: {
          type: 'errand.wait',
          params: ({ context }) => ({
            kind: 'approval',
            requestId: REVIEW,
            calls: [context.call],
            argsHash: approvalHash([context.call]),
            summary: `run ${context.call.tool}`,
            deadlineInMs: context.deadlineMs,
          }),
        },
        after: {
          review: {
            target: 'stopped',
            // Nobody decided: the request expires (which also ends the wait).
            actions: [
              { type: 'errand.emit', params: ({ context }) => ({ kind: 'approval', requestId: REVIEW, status: 'expired', argsHash: approvalHash([context.call]) }) },
              assign({ outcome: 'expired' as const }),
            ],
          },
        },
        on: {
          approval: [
            // The runtime applied the decision (and cleared the wait) only for this request and hash.
            {
              guard: ({ event }) => event.requestId === REVIEW && event.decision === 'approve' && event.from === undefined,
              target: 'running',
            },
            { guard: ({ event }) => event.requestId === REVIEW && event.from === undefined, target: 'denied', actions: assign({ outcome: 'denied' as const }) },
          ],
        },
      },
      running: {
        entry: { type: 'errand.tool', params: ({ context }) => ({ callId: 'call-1', tool: context.call.tool, args: context.call.args, approval: REVIEW }) },
        on: {
          'tool.result': { guard: ({ event }) => event.callId === 'call-1', target: 'askingForNote', actions: assign({ outcome: 'ran' as const, result: ({ event }) => event.result?.output ?? { error: event.error?.message } }) },
        },
      },
      askingForNote: {
        entry: { type: 'errand.wait', params: { kind: 'input', requestId: NOTE, question: 'The call ran. Any note to file with it?' } },
        on: { input: { target: 'done', actions: assign({ note: ({ event }) => event.text }) } },
      },
      denied: { type: 'final' },
      stopped: { type: 'final' },
      done: { type: 'final' },
    },
    output: ({ context }) =>
      context.outcome === 'expired'
        ? failureOutput({ code: 'ERR_NOT_APPROVED', message: `nobody decided on ${context.call.tool} in time`, retryable: false })
        : context.outcome === 'denied'
          ? { ran: false }
          : { ran: true, result: context.result, note: context.note },
  }),
});

/** Every example, for `ERRAND_AGENT_MODULES=@errand/example-agents`; the first (`sleeper`) is the default. */
export const agents: readonly AgentDefinition[] = [sleeper, tally, pipeline, parent, thrower, reviewer];
