import { enqueueActions, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { approvalHash, callHash, createSubjects, MESSAGE_VERSION, type AgentRecord, type InboxMessage, type Message } from '@errand/protocols';
import { createRegistry, decide, defineAgent, errandActions, replayJournaled, type AgentInput, type WaitParams } from '@errand/core';

// `record.waiting`, pure: set from a machine's `errand.wait`, cleared by the event that answers it,
// by the machine (an approval event other than `requested`, another wait, `errand.endWait`) and by
// the agent's end; the status follows it; replay reproduces it step by step.

const subjects = createSubjects('errand');
const AT = 1_800_000_000_000;
const CALLS = [{ tool: 'fs_delete', args: { path: 'a.txt', force: true } }];
const HASH = approvalHash(CALLS);
const by = { id: 'alice', channel: 'cli' };

/** Another agent drives it: `ask` makes it wait (the event carries the params), `end` / `expire` stop, `finish` ends. */
type Ev =
  | { type: 'ask'; wait: WaitParams }
  | { type: 'end'; requestId?: string }
  | { type: 'expire'; requestId: string }
  | { type: 'finish' }
  | { type: 'approval' | 'input' | 'control.budget' };

const asker = defineAgent({
  id: 'asker',
  version: 1,
  machine: setup({ types: {} as { input: AgentInput; events: Ev }, actions: errandActions }).createMachine({
    id: 'asker',
    initial: 'open',
    states: {
      open: {
        on: {
          ask: { actions: enqueueActions(({ event, enqueue }) => enqueue({ type: 'errand.wait', params: (event as Extract<Ev, { type: 'ask' }>).wait })) },
          end: { actions: enqueueActions(({ event, enqueue }) => enqueue({ type: 'errand.endWait', params: { requestId: (event as { requestId?: string }).requestId } })) },
          expire: {
            actions: enqueueActions(({ event, enqueue }) =>
              enqueue({ type: 'errand.emit', params: { kind: 'approval', requestId: (event as { requestId: string }).requestId, status: 'expired', argsHash: HASH } }),
            ),
          },
          finish: 'done',
        },
      },
      done: { type: 'final' },
    },
  }),
});
const registry = createRegistry([asker]);

class Run {
  record: AgentRecord | undefined;
  readonly journal: Message<'event.step'>[] = [];
  readonly records: AgentRecord[] = [];
  private n = 0;

  send(message: InboxMessage): AgentRecord {
    const d = decide(this.record, message, { agentId: 'w1', inboxId: `m${++this.n}`, now: AT + this.n * 1000, subjects, registry });
    if (d.type !== 'commit') throw new Error(`expected a commit, got ${d.type}${d.type === 'ignore' ? `: ${d.reason}` : ''}`);
    this.record = d.record;
    this.records.push(d.record);
    for (const e of d.record.outbox) if (e.message.kind === 'event.step') this.journal.push(e.message as unknown as Message<'event.step'>);
    return d.record;
  }
  /** Refused or ignored: returns the decision. */
  try(message: InboxMessage) {
    return decide(this.record, message, { agentId: 'w1', inboxId: `x${++this.n}`, now: AT + this.n * 1000, subjects, registry });
  }
  start() {
    return this.send({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'w1', goal: 'ask people', agent: 'asker', budget: { maxCostUsd: 1 }, at: AT });
  }
  drive(event: Ev) {
    return this.send({ v: MESSAGE_VERSION, kind: 'agent.message', agentId: 'w1', from: 'driver', event, at: AT });
  }
  ask(wait: WaitParams) {
    return this.drive({ type: 'ask', wait });
  }
  approval(requestId: string, argsHash: string, decision: 'approve' | 'deny' = 'approve'): InboxMessage {
    return { v: MESSAGE_VERSION, kind: 'approval', agentId: 'w1', requestId, decision, argsHash, by, at: AT };
  }
  input(text: string, requestId?: string): InboxMessage {
    return { v: MESSAGE_VERSION, kind: 'input', agentId: 'w1', text, ...(requestId ? { requestId } : {}), by, at: AT };
  }
  control(action: 'pause' | 'resume' | 'cancel'): InboxMessage {
    return { v: MESSAGE_VERSION, kind: 'control', agentId: 'w1', action, by, at: AT };
  }
  budget(maxCostUsd: number): InboxMessage {
    return { v: MESSAGE_VERSION, kind: 'control', agentId: 'w1', action: 'budget', budget: { maxCostUsd }, by, at: AT };
  }
}

const stateEvents = (r: AgentRecord) => r.outbox.filter((e) => e.message.kind === 'event.state').map((e) => (e.message as Message<'event.state'>).status);

describe('record.waiting', () => {
  it('an approval wait: status waiting, the exact calls, one approval request; a wrong hash is refused, the decision clears it', () => {
    const run = new Run();
    expect(run.start()).toMatchObject({ status: 'running', budget: { maxCostUsd: 1 } });
    const r = run.ask({ kind: 'approval', requestId: 'r1', calls: CALLS, argsHash: HASH, summary: 'delete a.txt', deadlineInMs: 30_000 });
    expect(r.status).toBe('waiting');
    expect(r.waiting).toEqual({ kind: 'approval', requestId: 'r1', since: r.updatedAt, deadline: r.updatedAt + 30_000, calls: CALLS, argsHash: HASH, summary: 'delete a.txt' });
    expect(r.approvals).toEqual([{ requestId: 'r1', argsHash: HASH, calls: [callHash('fs_delete', CALLS[0]!.args)], requestedAt: r.updatedAt }]);
    expect(stateEvents(r)).toEqual(['waiting']);
    // Nothing is sent for a wait, and no command key is taken.
    expect(r.outbox.filter((e) => !e.message.kind.startsWith('event.'))).toEqual([]);
    expect(run.try(run.approval('r1', 'f00d'))).toMatchObject({ type: 'ignore', refused: true });
    expect(run.try(run.approval('r2', HASH))).toMatchObject({ type: 'ignore', refused: true });
    const after = run.send(run.approval('r1', HASH, 'deny'));
    expect(after.status).toBe('running');
    expect(after.waiting).toBeUndefined();
    expect(after.approvals?.[0]).toMatchObject({ decision: 'deny', by });
    expect(stateEvents(after)).toEqual(['running']);
  });

  it('an input wait: cleared by an answer naming it or naming none, not by an answer to another question nor by an agent', () => {
    const run = new Run();
    run.start();
    run.ask({ kind: 'input', requestId: 'q1', question: 'Which city?' });
    expect(run.record!.waiting).toMatchObject({ kind: 'input', question: 'Which city?' });
    expect(run.record!.approvals).toBeUndefined();
    run.send(run.input('no', 'q0'));
    expect(run.record!.status).toBe('waiting');
    expect(run.try({ v: MESSAGE_VERSION, kind: 'agent.message', agentId: 'w1', from: 'other', event: { type: 'input', text: 'x' }, at: AT })).toMatchObject({ type: 'ignore', refused: true });
    run.send(run.input('Paris', 'q1'));
    expect(run.record!.status).toBe('running');
    run.ask({ kind: 'input', requestId: 'q2', question: 'And then?' });
    run.send(run.input('Lyon'));
    expect(run.record!.waiting).toBeUndefined();
  });

  it('a budget wait: new limits clear it (and are merged into record.budget); a decision on it clears it too', () => {
    const run = new Run();
    run.start();
    run.ask({ kind: 'budget', requestId: 'b1', argsHash: 'b1', question: 'Spent $1.00 of $1.00. Go on?' });
    expect(run.record!.approvals).toEqual([{ requestId: 'b1', argsHash: 'b1', calls: [], requestedAt: run.record!.updatedAt }]);
    // Not an answer to a budget question.
    run.send(run.input('hello'));
    expect(run.record!.status).toBe('waiting');
    run.send(run.budget(3));
    expect(run.record!).toMatchObject({ status: 'running', budget: { maxCostUsd: 3 } });
    run.ask({ kind: 'budget', requestId: 'b2', argsHash: 'b2', question: 'Again?' });
    run.send(run.approval('b2', 'b2'));
    expect(run.record!.waiting).toBeUndefined();
  });

  it('the machine ends it: another wait replaces it (the same request keeps its since), endWait, an approval event other than requested', () => {
    const run = new Run();
    run.start();
    const first = run.ask({ kind: 'approval', requestId: 'r1', calls: CALLS, argsHash: HASH, deadlineAt: AT + 5_000 });
    const again = run.ask({ kind: 'approval', requestId: 'r1', calls: CALLS, argsHash: HASH, deadlineAt: AT + 9_000 });
    expect(again.waiting).toMatchObject({ since: first.waiting!.since, deadline: AT + 9_000 });
    // Still one open request, as first asked.
    expect(again.approvals).toEqual(first.approvals);
    const other = run.ask({ kind: 'input', requestId: 'q1', question: '?' });
    expect(other.waiting).toMatchObject({ kind: 'input', requestId: 'q1', since: other.updatedAt });
    run.drive({ type: 'end', requestId: 'q0' });
    expect(run.record!.status).toBe('waiting');
    run.drive({ type: 'end', requestId: 'q1' });
    expect(run.record!).toMatchObject({ status: 'running' });
    run.ask({ kind: 'input', requestId: 'q2', question: '?' });
    run.drive({ type: 'end' });
    expect(run.record!.waiting).toBeUndefined();
    run.ask({ kind: 'approval', requestId: 'r3', calls: CALLS, argsHash: HASH });
    run.drive({ type: 'expire', requestId: 'r3' });
    expect(run.record!.status).toBe('running');
    expect(run.record!.approvals?.find((a) => a.requestId === 'r3')).toMatchObject({ decision: 'expired' });
    // An expired request takes no decision any more.
    expect(run.try(run.approval('r3', HASH))).toMatchObject({ type: 'ignore' });
  });

  it('paused, it stays paused and keeps what it waits for; resumed, it waits again; an ended agent waits for nothing', () => {
    const run = new Run();
    run.start();
    run.ask({ kind: 'input', requestId: 'q1', question: '?' });
    run.send(run.control('pause'));
    expect(run.record!).toMatchObject({ status: 'paused', waiting: { requestId: 'q1' } });
    // Deferred while paused, applied on resume: it answers the question then.
    run.send(run.input('later', 'q1'));
    expect(run.record!).toMatchObject({ status: 'paused', waiting: { requestId: 'q1' } });
    run.send(run.control('resume'));
    expect(run.record!.status).toBe('running');
    expect(run.record!.waiting).toBeUndefined();
    run.ask({ kind: 'input', requestId: 'q2', question: '?' });
    run.send(run.control('pause'));
    run.send(run.control('resume'));
    expect(run.record!.status).toBe('waiting');
    run.drive({ type: 'finish' });
    expect(run.record!.status).toBe('done');
    expect(run.record!.waiting).toBeUndefined();
    const cancelled = new Run();
    cancelled.start();
    cancelled.ask({ kind: 'approval', requestId: 'r1', calls: CALLS, argsHash: HASH });
    cancelled.send(cancelled.control('cancel'));
    expect(cancelled.record!.status).toBe('cancelled');
    expect(cancelled.record!.waiting).toBeUndefined();
  });

  it.each([
    [{ kind: 'approval', requestId: 'r1', argsHash: HASH }, /an approval wait names the calls/],
    [{ kind: 'approval', requestId: 'r1', calls: CALLS }, /an approval wait needs the argsHash/],
    [{ kind: 'budget', requestId: 'b1' }, /a budget wait needs the argsHash/],
    [{ kind: 'later', requestId: 'x' }, /errand\.wait: kind/],
    [{ kind: 'input' }, /errand\.wait: requestId/],
  ])('a wait the runtime cannot keep fails the agent, saying why: %j', (wait, why) => {
    const run = new Run();
    run.start();
    const r = run.ask(wait as WaitParams);
    expect(r.status).toBe('failed');
    expect(r.error).toMatchObject({ code: 'ERR_MACHINE', message: expect.stringMatching(why) });
    expect(r.waiting).toBeUndefined();
  });

  it('a fork from a step where it waited waits for the same, asked anew (an approval request of its own); its journal replays to it', () => {
    const run = new Run();
    run.start();
    const original = run.ask({ kind: 'approval', requestId: 'r1', calls: CALLS, argsHash: HASH, deadlineAt: AT + 99_000 });
    const ctx = { agentId: 'f1', inboxId: 'goal:f1', now: AT + 50_000, subjects, registry };
    const d = decide(
      undefined,
      {
        v: MESSAGE_VERSION,
        kind: 'goal',
        agentId: 'f1',
        goal: 'ask people',
        agent: 'asker',
        fork: { from: { agentId: 'w1', step: original.step }, machine: original.machine, snapshot: original.snapshot, reissue: [], waiting: original.waiting },
        at: AT + 50_000,
      },
      ctx,
    );
    if (d.type !== 'commit') throw new Error(d.type);
    const fork = d.record;
    expect(fork).toMatchObject({ status: 'waiting', waiting: { kind: 'approval', requestId: 'r1', since: AT + 50_000, deadline: AT + 99_000, calls: CALLS, argsHash: HASH } });
    expect(fork.approvals).toEqual([{ requestId: 'r1', argsHash: HASH, calls: [callHash('fs_delete', CALLS[0]!.args)], requestedAt: AT + 50_000 }]);
    const entry = fork.outbox.find((e) => e.message.kind === 'event.step')!.message as unknown as Message<'event.step'>;
    expect(entry.status).toBe('waiting');
    const replayed = replayJournaled(undefined, entry, { ...ctx, now: entry.at, inboxId: entry.inboxId });
    expect({ status: replayed.status, waiting: replayed.waiting, approvals: replayed.approvals }).toEqual({ status: fork.status, waiting: fork.waiting, approvals: fork.approvals });
  });

  it('replay reaches the same waiting, status and approval requests at every step', () => {
    const run = new Run();
    run.start();
    run.ask({ kind: 'approval', requestId: 'r1', calls: CALLS, argsHash: HASH, deadlineInMs: 10_000 });
    run.send(run.control('pause'));
    run.send(run.approval('r1', HASH));
    run.send(run.control('resume'));
    run.ask({ kind: 'input', requestId: 'q1', question: 'Which?' });
    run.send(run.input('that', 'q1'));
    run.ask({ kind: 'budget', requestId: 'b1', argsHash: 'b1', question: 'More?', deadlineAt: AT + 99_000 });
    run.send(run.budget(5));
    run.ask({ kind: 'input', requestId: 'q2', question: 'Last?' });
    // The host's record after each step it committed (a pause takes no step; a resume commits the steps it applies).
    const live = new Map<number, AgentRecord>();
    for (const r of run.records) if (r.outbox.some((e) => e.message.kind === 'event.step')) live.set(r.step, r);
    const seen = (r: AgentRecord) => ({ status: r.status, waiting: r.waiting, approvals: r.approvals });
    let record: AgentRecord | undefined;
    for (const entry of run.journal) {
      record = replayJournaled(record, entry, { agentId: 'w1', inboxId: entry.inboxId, now: entry.at, subjects, registry });
      const host = live.get(entry.step);
      if (host) expect(seen(record), `step ${entry.step}`).toEqual(seen(host));
      expect(record.status, `step ${entry.step}`).toBe(entry.status);
    }
    expect(record).toMatchObject({ status: 'waiting', waiting: { kind: 'input', requestId: 'q2' }, budget: { maxCostUsd: 5 } });
  });
});
