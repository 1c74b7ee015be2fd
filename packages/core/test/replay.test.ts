import { assign, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { createSubjects, MESSAGE_VERSION, type AgentRecord, type InboxMessage, type Message } from '@errand/protocols';
import { createRegistry, decide, defineAgent, errandActions, replayJournaled, type AgentInput, type Decision, type JournaledStep } from '@errand/core';

// The live step (`decide`) and replay (`replayJournaled`) share one bookkeeping path: replaying
// each journaled step must rebuild exactly the record the live step committed — pending commands,
// timers, children, outbox and all — not only the state value.

const subjects = createSubjects('errand');
const AT = 1_800_000_000_000;

const juggler = defineAgent({
  id: 'juggler',
  version: 1,
  machine: setup({ types: {} as { input: AgentInput; context: { got: string[] } }, actions: errandActions }).createMachine({
    id: 'juggler',
    context: { got: [] },
    initial: 'waiting',
    states: {
      waiting: {
        entry: [
          { type: 'errand.tool', params: { callId: 'c1', tool: 'echo', args: { n: 1 } } },
          { type: 'errand.spawn', params: { ref: 'kid', goal: 'help' } },
        ],
        after: { 5000: { target: 'late' } },
        on: {
          'tool.result': { actions: assign({ got: ({ context }) => [...context.got, 'tool'] }) },
          'child.result': { actions: assign({ got: ({ context }) => [...context.got, 'child'] }) },
        },
      },
      late: { type: 'final' },
    },
    output: ({ context }) => ({ got: context.got }),
  }),
});
const registry = createRegistry([juggler]);
const ctx = (inboxId: string, now: number) => ({ agentId: 'j1', inboxId, now, subjects, registry });

function committed(d: Decision): AgentRecord {
  if (d.type !== 'commit') throw new Error(`expected a commit, got ${JSON.stringify(d)}`);
  return d.record;
}

function journalOf(record: AgentRecord): JournaledStep {
  const entry = record.outbox.find((o) => o.message.kind === 'event.step')!.message as Message<'event.step'>;
  return { step: entry.step, inboxId: entry.inboxId, machine: entry.machine, event: entry.event as JournaledStep['event'], at: entry.at };
}

describe('replayJournaled', () => {
  it('rebuilds, step by step, exactly the record decide committed: results, child outcomes and timer firings included', () => {
    const live: AgentRecord[] = [];
    const run = (message: InboxMessage, inboxId: string, now: number) => live.push(committed(decide(live.at(-1), message, ctx(inboxId, now))));
    run({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'j1', goal: 'juggle', agent: 'juggler', at: AT }, 'goal:j1', AT);
    const first = live[0]!;
    const toolKey = Object.keys(first.pending)[0]!;
    const [timerId, timer] = Object.entries(first.timers)[0]!;
    expect(first.children.kid).toEqual({ agentId: 'j1-kid', status: 'running' });

    run({ v: MESSAGE_VERSION, kind: 'tool.result', agentId: 'j1', key: toolKey, callId: 'c1', tool: 'echo', attempt: 1, result: { output: 1 }, durationMs: 1, at: AT + 10 }, `result:${toolKey}`, AT + 10);
    run({ v: MESSAGE_VERSION, kind: 'child.result', agentId: 'j1', childId: 'j1-kid', ref: 'kid', outcome: 'done', output: 'ok', at: AT + 20 }, 'child:j1-kid', AT + 20);
    // Before the timer fires, the live bookkeeping has ended the tool call and the child.
    expect(live[2]!.pending).toEqual({});
    expect(live[2]!.children.kid!.status).toBe('done');
    expect(live[2]!.timers[timerId]).toEqual(timer);
    run(
      { v: MESSAGE_VERSION, kind: 'timer.fired', agentId: 'j1', key: timer.key, timerId, event: { type: `xstate.after.5000.juggler.waiting` }, dueAt: timer.dueAt, firedAt: AT + 5000 },
      `timer:${timer.key}`,
      AT + 5000,
    );
    expect(live[3]!).toMatchObject({ status: 'done', output: { got: ['tool', 'child'] }, timers: {} });

    let replayed: AgentRecord | undefined;
    for (const [i, record] of live.entries()) {
      const entry = journalOf(record);
      replayed = replayJournaled(replayed, entry, ctx(entry.inboxId, entry.at));
      expect(replayed, `step ${entry.step}`).toEqual(record);
    }
  });

  it('settles a journaled timer firing by its inbox id: the timer is forgotten as it was live', () => {
    const start = committed(decide(undefined, { v: MESSAGE_VERSION, kind: 'goal', agentId: 'j1', goal: 'juggle', agent: 'juggler', at: AT }, ctx('goal:j1', AT)));
    const [timerId, timer] = Object.entries(start.timers)[0]!;
    // An event that does not end the machine, so only the bookkeeping removes the timer.
    const entry: JournaledStep = { step: 2, inboxId: `timer:${timer.key}`, machine: { id: 'juggler', version: 1 }, event: { type: 'nothing.happens' }, at: AT + 1 };
    const replayed = replayJournaled(start, entry, ctx(entry.inboxId, entry.at));
    expect(start.timers[timerId]).toBeDefined();
    expect(replayed.timers[timerId]).toBeUndefined();
    expect(replayed.pending).toEqual(start.pending);
  });
});
