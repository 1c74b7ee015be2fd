import { assign, cancel, raise, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { createSubjects, MESSAGE_VERSION, type AgentRecord, type InboxMessage, type Message } from '@errand/protocols';
import { createRegistry, decide, defineAgent, errandActions, RuntimeErrorCode, type AgentInput, type Decision } from '@errand/core';

const subjects = createSubjects('errand');
const AT = 1_800_000_000_000;

const worker = defineAgent({
  id: 'worker',
  version: 1,
  machine: setup({
    types: {} as { input: AgentInput; context: { results: unknown[] }; events: { type: 'tool.result'; result?: { output?: unknown } } | { type: 'input'; text: string } | { type: 'nudge' } },
    actions: errandActions,
  }).createMachine({
    id: 'worker',
    context: { results: [] },
    initial: 'working',
    states: {
      working: {
        entry: [
          { type: 'errand.tool', params: { callId: 'c1', tool: 'echo', args: { hello: 'world' } } },
          raise({ type: 'nudge' }, { id: 'nudge', delay: 5000 }),
        ],
        on: {
          'tool.result': { target: 'done', actions: assign({ results: ({ context, event }) => [...context.results, event.result?.output] }) },
          nudge: { actions: { type: 'errand.emit', params: { kind: 'plan', tasks: [{ id: 't1', title: 'nudged', status: 'in_progress' }] } } },
          input: [
            { guard: ({ event }) => event.text === 'stop-nudge', actions: cancel('nudge') },
            { guard: ({ event }) => event.text === 'bad-tool', actions: { type: 'errand.tool', params: { callId: 'c2', tool: 'not.a.token', args: {} } } },
            {
              guard: ({ event }) => event.text === 'boom',
              actions: assign({
                results: () => {
                  throw new Error('exploded');
                },
              }),
            },
            { guard: ({ event }) => event.text === 'spawn', actions: { type: 'errand.spawn', params: { ref: 'helper', goal: 'help', agent: 'worker' } } },
          ],
        },
      },
      done: { type: 'final' },
    },
    output: ({ context }) => ({ results: context.results }),
  }),
});
const registry = createRegistry([worker]);

const ctx = (inboxId: string, now = AT) => ({ agentId: 'a1', inboxId, now, subjects, registry });

function goal(extra: Partial<Message<'goal'>> = {}): Message<'goal'> {
  return { v: MESSAGE_VERSION, kind: 'goal', agentId: 'a1', goal: 'say hello', agent: 'worker', at: AT, ...extra };
}
const input = (text: string): Message<'input'> => ({ v: MESSAGE_VERSION, kind: 'input', agentId: 'a1', text, by: { id: 'u1', channel: 'cli' }, at: AT });
const control = (action: 'cancel' | 'pause' | 'resume'): Message<'control'> => ({ v: MESSAGE_VERSION, kind: 'control', agentId: 'a1', action, at: AT });

function committed(d: Decision): AgentRecord {
  expect(d.type).toBe('commit');
  return (d as Extract<Decision, { type: 'commit' }>).record;
}
const kinds = (r: AgentRecord) => r.outbox.map((e) => e.message.kind);
const find = <K extends string>(r: AgentRecord, kind: K) => r.outbox.find((e) => e.message.kind === kind);

function started(): AgentRecord {
  return committed(decide(undefined, goal(), ctx('goal:a1')));
}

describe('decide: the pure half of a step', () => {
  it('starts an agent from its goal: commands of the entry actions, a timer, the journal', () => {
    const r = started();
    expect(r).toMatchObject({ agentId: 'a1', machine: { id: 'worker', version: 1 }, status: 'running', step: 1, applied: ['goal:a1'] });
    expect(kinds(r).sort()).toEqual(['event.state', 'event.step', 'timer.request', 'tool.request']);
    const tool = find(r, 'tool.request')!;
    expect(tool.subject).toBe('errand.work.tool.echo');
    expect(tool.msgId).toBe('a1:1:0');
    expect(tool.message).toMatchObject({ key: 'a1:1:0', callId: 'c1', args: { hello: 'world' }, attempt: 1 });
    expect(r.timers.nudge).toEqual({ key: 'a1:1:1', dueAt: AT + 5000, type: 'nudge' });
    expect(find(r, 'event.step')!.message).toMatchObject({ step: 1, event: { type: 'xstate.init' }, state: 'working', status: 'running' });
  });

  it('treats a message it has applied as a duplicate', () => {
    expect(decide(started(), goal(), ctx('goal:a1'))).toEqual({ type: 'duplicate' });
  });

  it('applies a result, finishes, and reports the output', () => {
    const result: InboxMessage = {
      v: MESSAGE_VERSION, kind: 'tool.result', agentId: 'a1', key: 'a1:1:0', callId: 'c1', tool: 'echo', attempt: 1, durationMs: 3, result: { output: 'hi' }, at: AT,
    };
    const r = committed(decide(started(), result, ctx('r1')));
    expect(r.status).toBe('done');
    expect(r.output).toEqual({ results: ['hi'] });
    expect(r.step).toBe(2);
    expect(r.timers).toEqual({});
    expect(kinds(r)).toContain('event.done');
    expect(find(r, 'event.step')!.message).toMatchObject({ step: 2, event: { type: 'tool.result', callId: 'c1' }, status: 'done' });
    expect(decide(r, input('late'), ctx('late'))).toMatchObject({ type: 'ignore', reason: 'the agent is already done' });
  });

  it('matches results to pending commands: a repeat or a stray result changes nothing', () => {
    const result = (key: string): InboxMessage => ({
      v: MESSAGE_VERSION, kind: 'tool.result', agentId: 'a1', key, callId: 'c1', tool: 'echo', attempt: 1, durationMs: 3, result: { output: 'hi' }, at: AT,
    });
    const r = started();
    expect(r.pending).toEqual({ 'a1:1:0': { kind: 'tool.request', at: AT } });
    expect(decide(r, result('a1:9:9'), ctx('stray'))).toMatchObject({ type: 'ignore', reason: 'no command is waiting for this result' });
    const after = committed(decide(r, result('a1:1:0'), ctx('r1')));
    expect(after.pending).toEqual({});
    // The same result re-published under a new message id (after the duplicate window).
    expect(decide(after, result('a1:1:0'), ctx('r1-again'))).toMatchObject({ type: 'ignore' });
  });

  it('ignores a child result from an agent that is not its child', () => {
    const r = committed(decide(started(), input('spawn'), ctx('i-spawn')));
    const childResult = (childId: string): InboxMessage => ({
      v: MESSAGE_VERSION, kind: 'child.result', agentId: 'a1', childId, ref: 'helper', outcome: 'done', output: 1, at: AT,
    });
    expect(decide(r, childResult('impostor'), ctx('x'))).toMatchObject({ type: 'ignore', reason: 'not a child of this agent' });
    const got = committed(decide(r, childResult('a1-helper'), ctx('y')));
    expect(got.children.helper!.status).toBe('done');
    expect(decide(got, childResult('a1-helper'), ctx('z'))).toMatchObject({ type: 'ignore' });
  });

  it('delivers a timer whose key matches, and ignores a cancelled or superseded one', () => {
    const r = started();
    const fired = (key: string): Message<'timer.fired'> => ({
      v: MESSAGE_VERSION, kind: 'timer.fired', agentId: 'a1', key, timerId: 'nudge', event: { type: 'nudge' }, dueAt: AT + 5000, firedAt: AT + 5001,
    });
    expect(decide(r, fired('a1:0:9'), ctx('t-old'))).toMatchObject({ type: 'ignore' });
    const after = committed(decide(r, fired('a1:1:1'), ctx('t1')));
    expect(after.timers.nudge).toBeUndefined();
    expect(kinds(after)).toContain('event.plan');
    // Firing twice (after the dedupe window) finds no timer any more.
    expect(decide(after, fired('a1:1:1'), ctx('t1-again'))).toMatchObject({ type: 'ignore' });

    const stopped = committed(decide(r, input('stop-nudge'), ctx('i1')));
    expect(stopped.timers).toEqual({});
    expect(decide(stopped, fired('a1:1:1'), ctx('t2'))).toMatchObject({ type: 'ignore', reason: 'the timer was cancelled or superseded' });
  });

  it('fails the agent, not the caller, when the machine throws', () => {
    const r = committed(decide(started(), input('boom'), ctx('i-boom')));
    expect(r.status).toBe('failed');
    expect(r.error).toMatchObject({ code: RuntimeErrorCode.MachineError, message: expect.stringContaining('exploded') });
    expect(kinds(r)).toEqual(expect.arrayContaining(['event.failed', 'event.state', 'event.step']));
  });

  it('tells the goal\'s "failed" rules of ends the machine never saw: an exception, a cancel; not the machine\'s own end', () => {
    const rules = { notify: [{ channel: 'ops', on: ['failed' as const] }, { channel: 'team', on: ['done' as const, 'approval' as const] }] };
    const begun = committed(decide(undefined, goal(rules), ctx('g1')));
    expect(begun.notify).toEqual(rules.notify);
    const notices = (r: AgentRecord) => r.outbox.filter((e) => e.message.kind === 'notify.request').map((e) => ({ subject: e.subject, ...(e.message as Message<'notify.request'>) }));

    const thrown = committed(decide(begun, input('boom'), ctx('i-boom')));
    expect(notices(thrown)).toEqual([
      expect.objectContaining({ subject: subjects.workNotify('ops'), topic: 'failed', title: 'Agent a1 failed', text: expect.stringMatching(/exploded[\s\S]*Goal: say hello/) }),
    ]);
    const cancelled = committed(decide(begun, control('cancel'), ctx('c1')));
    expect(notices(cancelled)).toEqual([expect.objectContaining({ subject: subjects.workNotify('ops'), topic: 'failed', title: 'Agent a1 was cancelled' })]);
    // Its key differs from every command key of the step it was cancelled at.
    expect(new Set(cancelled.outbox.map((e) => e.msgId)).size).toBe(cancelled.outbox.length);
    expect(begun.outbox.map((e) => e.msgId)).not.toContain(notices(cancelled)[0]!.key);

    // A finish the machine reached itself notifies nobody from the runtime; nor does a goal without rules.
    const done = committed(decide(begun, { v: MESSAGE_VERSION, kind: 'tool.result', agentId: 'a1', key: Object.keys(begun.pending)[0]!, callId: 'c1', tool: 'echo', attempt: 1, result: { output: 1 }, durationMs: 1, at: AT }, ctx('t1')));
    expect(done.status).toBe('done');
    expect(notices(done)).toEqual([]);
    expect(notices(committed(decide(started(), input('boom'), ctx('i-boom'))))).toEqual([]);
  });

  it('fails the agent when an action asks for an invalid command', () => {
    const r = committed(decide(started(), input('bad-tool'), ctx('i-bad')));
    expect(r.status).toBe('failed');
    expect(r.error?.message).toMatch(/invalid command: .*not\.a\.token/);
  });

  it('spawns a child with a deterministic id, and cancels it with the parent', () => {
    const r = committed(decide(started(), input('spawn'), ctx('i-spawn')));
    const g = find(r, 'goal')!;
    expect(g.subject).toBe('errand.agent.a1-helper.in.goal');
    expect(g.msgId).toBe('goal:a1-helper');
    expect(g.message).toMatchObject({ agentId: 'a1-helper', parent: { agentId: 'a1', ref: 'helper' }, agent: 'worker' });
    expect(r.children).toEqual({ helper: { agentId: 'a1-helper', status: 'running' } });

    const c = committed(decide(r, control('cancel'), ctx('c1')));
    expect(c.status).toBe('cancelled');
    expect(c.timers).toEqual({});
    expect(find(c, 'control')).toMatchObject({ subject: 'errand.agent.a1-helper.in.control', message: { action: 'cancel' } });
    expect(c.children.helper!.status).toBe('cancelled');
  });

  it('tells the parent when a child finishes', () => {
    const child = committed(decide(undefined, goal({ agentId: 'a1', parent: { agentId: 'p1', ref: 'r1' } }), ctx('goal:a1')));
    const result: InboxMessage = {
      v: MESSAGE_VERSION, kind: 'tool.result', agentId: 'a1', key: 'a1:1:0', callId: 'c1', tool: 'echo', attempt: 1, durationMs: 3, result: { output: 42 }, at: AT,
    };
    const done = committed(decide(child, result, ctx('r1')));
    expect(find(done, 'child.result')).toMatchObject({
      subject: 'errand.agent.p1.in.child',
      msgId: 'child:a1',
      message: { agentId: 'p1', childId: 'a1', ref: 'r1', outcome: 'done', output: { results: [42] } },
    });
  });

  it('defers events while paused and applies them on resume', () => {
    const paused = committed(decide(started(), control('pause'), ctx('p')));
    expect(paused.status).toBe('paused');
    const held = committed(decide(paused, input('stop-nudge'), ctx('i-held')));
    expect(held.deferred).toHaveLength(1);
    expect(held.step).toBe(1);
    expect(held.timers.nudge).toBeDefined();
    const resumed = committed(decide(held, control('resume'), ctx('r')));
    expect(resumed.status).toBe('running');
    expect(resumed.deferred).toEqual([]);
    expect(resumed.step).toBe(2);
    expect(resumed.timers).toEqual({});
  });

  it('keeps who paused, resumed and cancelled the agent on its record and its state events', () => {
    const alice = { id: 'alice', channel: 'gateway', name: 'Alice' };
    const bob = { id: 'bob', channel: 'cli' };
    const paused = committed(decide(started(), { ...control('pause'), by: alice, at: AT + 1 }, ctx('p')));
    expect(paused.control).toEqual({ action: 'pause', by: alice, at: AT + 1 });
    expect(find(paused, 'event.state')!.message).toMatchObject({ status: 'paused', by: alice });
    // A pause of a paused agent changes nothing, and says nothing of who asked.
    expect(decide(paused, { ...control('pause'), by: bob }, ctx('p2')).type).toBe('ignore');
    const resumed = committed(decide(paused, { ...control('resume'), by: bob, at: AT + 2 }, ctx('r')));
    expect(resumed.control).toEqual({ action: 'resume', by: bob, at: AT + 2 });
    expect(find(resumed, 'event.state')!.message).toMatchObject({ status: 'running', by: bob });
    const cancelled = committed(decide(resumed, { ...control('cancel'), by: alice, reason: 'not needed', at: AT + 3 }, ctx('c')));
    expect(cancelled.control).toEqual({ action: 'cancel', by: alice, reason: 'not needed', at: AT + 3 });
    expect(find(cancelled, 'event.state')!.message).toMatchObject({ status: 'cancelled', by: alice });
    // A state change nobody gave names nobody.
    expect(find(started(), 'event.state')!.message).not.toHaveProperty('by');
  });

  it('refuses a message for an agent that does not exist', () => {
    expect(() => decide(undefined, input('hello'), ctx('x'))).toThrow(expect.objectContaining({ code: RuntimeErrorCode.AgentNotFound, agentId: 'a1' }));
  });

  it('detects a machine version change, and migrates when a migration is registered', () => {
    const r = started();
    const v2 = defineAgent({ id: 'worker', version: 2, machine: worker.machine });
    expect(() => decide(r, input('x'), { ...ctx('x'), registry: createRegistry([v2]) })).toThrow(
      expect.objectContaining({ code: RuntimeErrorCode.MachineVersion, message: expect.stringMatching(/worker@1.*worker@2.*migration/) }),
    );
    const migrated = defineAgent({ id: 'worker', version: 2, machine: worker.machine, migrations: { 1: (s) => s } });
    const next = committed(decide(r, input('x'), { ...ctx('x'), registry: createRegistry([migrated]) }));
    expect(next.machine).toEqual({ id: 'worker', version: 2 });
  });
});
