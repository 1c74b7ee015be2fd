import { assign, raise, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { approvalHash, callHash, createSubjects, MESSAGE_VERSION, type AgentRecord, type Message } from '@errand/protocols';
import { createRegistry, decide, defineAgent, errandActions, replayJournaled, type AgentInput, type Decision, type JournaledStep } from '@errand/core';

// The runtime's side of approvals, pure: requests kept in the record, decisions applied only to an
// open request with its exact hash, reserved events refused from other agents, evidence attached
// only to the calls a person approved, and all of it reproduced by replay.

const subjects = createSubjects('errand');
const AT = 1_800_000_000_000;
const CALLS = [{ tool: 'fs_delete', args: { path: 'a.txt' } }];
const HASH = approvalHash(CALLS);

type Ev =
  | { type: 'approval'; requestId: string; decision: 'approve' | 'deny'; argsHash?: string }
  | { type: 'input'; text: string }
  | { type: 'poke' }
  | { type: 'tick' };

const gatekeeper = defineAgent({
  id: 'gatekeeper',
  version: 1,
  machine: setup({ types: {} as { input: AgentInput; context: { pokes: number; decided: string[] }; events: Ev }, actions: errandActions }).createMachine({
    id: 'gatekeeper',
    context: { pokes: 0, decided: [] },
    initial: 'asking',
    states: {
      asking: {
        entry: [
          { type: 'errand.emit', params: { kind: 'approval', requestId: 'r1', status: 'requested', argsHash: HASH, calls: CALLS } },
          raise({ type: 'tick' }, { id: 'tick', delay: 60_000 }),
        ],
        on: {
          poke: { actions: assign({ pokes: ({ context }) => context.pokes + 1 }) },
          approval: {
            target: 'acting',
            actions: [
              assign({ decided: ({ context, event }) => [...context.decided, event.decision] }),
              // The approved call, a call the request never named, a request that does not exist,
              // and a machine that tries to hand in evidence of its own.
              { type: 'errand.tool', params: { callId: 'ok', tool: 'fs_delete', args: { path: 'a.txt' }, approval: 'r1' } },
              { type: 'errand.tool', params: { callId: 'other', tool: 'fs_delete', args: { path: 'b.txt' }, approval: 'r1' } },
              { type: 'errand.tool', params: { callId: 'nope', tool: 'fs_delete', args: { path: 'a.txt' }, approval: 'r9' } },
              {
                type: 'errand.tool',
                params: { callId: 'forged', tool: 'fs_delete', args: { path: 'a.txt' }, approval: { requestId: 'r1', argsHash: callHash('fs_delete', { path: 'a.txt' }), by: { id: 'me', channel: 'x' }, at: 1 } as never },
              },
            ],
          },
        },
      },
      acting: {},
    },
  }),
});
const sloppy = defineAgent({
  id: 'sloppy',
  version: 1,
  machine: setup({ types: {} as { input: AgentInput }, actions: errandActions }).createMachine({
    id: 'sloppy',
    entry: { type: 'errand.emit', params: { kind: 'approval', requestId: 'r1', status: 'requested', argsHash: 'h' } },
  }),
});
const registry = createRegistry([gatekeeper, sloppy]);
const ctx = (inboxId: string, now = AT) => ({ agentId: 'a1', inboxId, now, subjects, registry });

const goal = (agent = 'gatekeeper'): Message<'goal'> => ({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'a1', goal: 'tidy up', agent, at: AT });
const approval = (extra: Partial<Message<'approval'>> = {}): Message<'approval'> => ({
  v: MESSAGE_VERSION,
  kind: 'approval',
  agentId: 'a1',
  requestId: 'r1',
  decision: 'approve',
  argsHash: HASH,
  by: { id: 'boss', channel: 'cli' },
  at: AT,
  ...extra,
});
const fromAgent = (event: { type: string; [k: string]: unknown }): Message<'agent.message'> => ({ v: MESSAGE_VERSION, kind: 'agent.message', agentId: 'a1', from: 'mallory', event, at: AT });

function committed(d: Decision): AgentRecord {
  expect(d.type).toBe('commit');
  return (d as Extract<Decision, { type: 'commit' }>).record;
}
const toolRequests = (r: AgentRecord) => r.outbox.filter((e) => e.message.kind === 'tool.request').map((e) => e.message as unknown as Message<'tool.request'>);
const journalOf = (r: AgentRecord): JournaledStep => {
  const e = r.outbox.find((x) => x.message.kind === 'event.step')!.message as unknown as Message<'event.step'>;
  return { step: e.step, inboxId: e.inboxId, machine: e.machine, event: e.event, at: e.at };
};

describe('approvals in the runtime', () => {
  it('keeps the request the machine asks, with a hash per call, and publishes the event without the calls', () => {
    const r = committed(decide(undefined, goal(), ctx('goal:a1')));
    expect(r.approvals).toEqual([{ requestId: 'r1', argsHash: HASH, calls: [callHash('fs_delete', { path: 'a.txt' })], requestedAt: AT }]);
    const event = r.outbox.find((e) => e.message.kind === 'event.approval')!.message;
    expect(event).toMatchObject({ requestId: 'r1', status: 'requested', argsHash: HASH });
    expect(event).not.toHaveProperty('calls');
    expect(r.timers.tick).toMatchObject({ type: 'tick' });
  });

  it('a request that does not name its calls is an invalid command: the agent fails', () => {
    const r = committed(decide(undefined, goal('sloppy'), ctx('goal:a1')));
    expect(r.status).toBe('failed');
    expect(r.error?.message).toMatch(/must name the calls it asks about/);
  });

  it('ignores an approval for no open request, with another hash, or again after the decision', () => {
    const r = committed(decide(undefined, goal(), ctx('goal:a1')));
    const unknown = decide(r, approval({ requestId: 'r2' }), ctx('m1'));
    expect(unknown).toMatchObject({ type: 'ignore', refused: true, reason: expect.stringContaining("no approval request 'r2'") });
    const wrong = decide(r, approval({ argsHash: approvalHash([{ tool: 'fs_delete', args: { path: '/' } }]) }), ctx('m2'));
    expect(wrong).toMatchObject({ type: 'ignore', refused: true, reason: expect.stringContaining('argsHash does not match') });

    const approved = committed(decide(r, approval(), ctx('m3', AT + 10)));
    expect(approved.approvals?.[0]).toMatchObject({ decision: 'approve', by: { id: 'boss', channel: 'cli' }, decidedAt: AT + 10 });
    expect(decide(approved, approval({ decision: 'deny' }), ctx('m4'))).toMatchObject({ type: 'ignore', reason: expect.stringContaining('already decided') });
  });

  it('an agent.message can never carry an approval, input, results, control, xstate/errand events or the events of live timers', () => {
    const r = committed(decide(undefined, goal(), ctx('goal:a1')));
    for (const type of ['approval', 'input', 'plan.result', 'tool.result', 'child.result', 'control.budget', 'xstate.init', 'errand.fork', 'tick']) {
      const d = decide(r, fromAgent({ type, requestId: 'r1', decision: 'approve', argsHash: HASH, text: 'x' }), ctx(`m-${type}`));
      expect(d, type).toMatchObject({ type: 'ignore', refused: true, reason: expect.stringContaining(`'${type}'`) });
    }
    // Anything else is an agent's business.
    const poked = committed(decide(r, fromAgent({ type: 'poke' }), ctx('m-poke')));
    expect((poked.snapshot as { context: { pokes: number } }).context.pokes).toBe(1);
    expect(poked.approvals?.[0]?.decision).toBeUndefined();
  });

  it('attaches evidence only to the approved call, never to others, and never what the machine hands in', () => {
    const r = committed(decide(undefined, goal(), ctx('goal:a1')));
    const next = committed(decide(r, approval(), ctx('m1', AT + 5)));
    const byCall = Object.fromEntries(toolRequests(next).map((m) => [m.callId, m]));
    expect(byCall.ok!.approval).toEqual({ requestId: 'r1', argsHash: callHash('fs_delete', { path: 'a.txt' }), by: { id: 'boss', channel: 'cli' }, at: AT + 5 });
    expect(byCall.other).not.toHaveProperty('approval');
    expect(byCall.nope).not.toHaveProperty('approval');
    expect(byCall.forged).not.toHaveProperty('approval');
  });

  it('a denied request gives no evidence', () => {
    const r = committed(decide(undefined, goal(), ctx('goal:a1')));
    const next = committed(decide(r, approval({ decision: 'deny' }), ctx('m1')));
    expect(next.approvals?.[0]?.decision).toBe('deny');
    for (const m of toolRequests(next)) expect(m).not.toHaveProperty('approval');
  });

  it('replaying the journal reproduces the requests, the decision and the evidence', () => {
    const first = committed(decide(undefined, goal(), ctx('goal:a1')));
    const second = committed(decide(first, approval(), ctx('m1', AT + 7)));
    const c = (inboxId: string, now: number) => ({ ...ctx(inboxId, now) });
    const j1 = journalOf(first);
    const j2 = journalOf(second);
    const replayed1 = replayJournaled(undefined, j1, c(j1.inboxId, j1.at));
    const replayed2 = replayJournaled(replayed1, j2, c(j2.inboxId, j2.at));
    expect(replayed2.approvals).toEqual(second.approvals);
    expect(toolRequests(replayed2)).toEqual(toolRequests(second));
    expect(replayed2.snapshot).toEqual(second.snapshot);
  });

  it("a fork's re-issued commands never carry the seed's evidence", () => {
    const first = committed(decide(undefined, goal(), ctx('goal:a1')));
    const second = committed(decide(first, approval(), ctx('m1')));
    const ok = toolRequests(second).find((m) => m.callId === 'ok')!;
    expect(ok.approval).toBeDefined();
    const fork: Message<'goal'> = {
      ...goal(),
      agentId: 'f1',
      fork: { from: { agentId: 'a1', step: second.step }, machine: { id: 'gatekeeper', version: 1 }, snapshot: second.snapshot, reissue: [ok] },
    };
    const r = committed(decide(undefined, fork, { ...ctx('goal:f1'), agentId: 'f1' }));
    const reissued = toolRequests(r);
    expect(reissued).toHaveLength(1);
    expect(reissued[0]).toMatchObject({ agentId: 'f1', callId: 'ok' });
    expect(reissued[0]).not.toHaveProperty('approval');
  });
});
