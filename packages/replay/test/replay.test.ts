import { assign, setup } from 'xstate';
import { describe, expect, it } from 'vitest';
import { createSubjects, MESSAGE_VERSION, type AgentRecord, type InboxMessage, type Message } from '@errand/protocols';
import { createRegistry, decide, defineAgent, errandActions, type AgentInput, type AgentRegistry } from '@errand/core';
import { agents, pipeline } from '@errand/example-agents';
import { diffRuns, forkSeed, readExport, replayJournal, ReplayErrorCode, verifyReplay, withOrigin, writeExport, type JournalEntry } from '@errand/replay';

const subjects = createSubjects('errand');
const registry = createRegistry(agents);
let clock = 1_800_000_000_000;

/** The host's step loop without NATS: decide, keep the record, collect the journal and the commands. */
class Sim {
  record: AgentRecord | undefined;
  journal: JournalEntry[] = [];
  constructor(
    readonly agentId: string,
    readonly reg: AgentRegistry = registry,
  ) {}
  step(message: InboxMessage, inboxId: string): AgentRecord {
    const d = decide(this.record, message, { agentId: this.agentId, inboxId, now: clock++, subjects, registry: this.reg });
    if (d.type !== 'commit') throw new Error(`not applied: ${d.type}`);
    this.record = d.record;
    for (const o of d.record.outbox) if (o.message.kind === 'event.step') this.journal.push(o.message as JournalEntry);
    return d.record;
  }
  toolRequests(): Message<'tool.request'>[] {
    return this.record!.outbox.filter((o) => o.message.kind === 'tool.request').map((o) => o.message as Message<'tool.request'>);
  }
  answer(req: Message<'tool.request'>, output: unknown): AgentRecord {
    return this.step(
      { v: MESSAGE_VERSION, kind: 'tool.result', agentId: this.agentId, key: req.key, callId: req.callId, tool: req.tool, attempt: 1, result: { output }, durationMs: 1, at: clock },
      `result:${req.key}`,
    );
  }
}

function runPipeline(agentId: string, goal = 'three calls'): Sim {
  const sim = new Sim(agentId);
  sim.step({ v: MESSAGE_VERSION, kind: 'goal', agentId, goal, agent: 'pipeline', input: { steps: 3 }, at: clock }, `goal:${agentId}`);
  for (let i = 1; i <= 3; i++) sim.answer(sim.toolRequests()[0]!, `out-${i}`);
  expect(sim.record!.status).toBe('done');
  return sim;
}

describe('replay', () => {
  it('folds the journal to the stored snapshot; a step journaled twice counts once', () => {
    const sim = runPipeline('p1');
    const journal = [...sim.journal, sim.journal[2]!];
    const r = replayJournal(journal, { registry });
    expect(r.steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(r.steps.every((s) => s.matches)).toBe(true);
    expect(verifyReplay(r, sim.record!)).toMatchObject({ ok: true });
    expect(r.record.outbox.filter((o) => o.message.kind !== 'event.step')).toEqual(sim.record!.outbox.filter((o) => o.message.kind !== 'event.step'));
  });

  it('a changed machine fails verification at the first step whose state differs', () => {
    const sim = runPipeline('p2');
    const changed = defineAgent({
      id: 'pipeline',
      version: 1,
      machine: setup({ types: {} as { input: AgentInput; context: { n: number } }, actions: errandActions }).createMachine({
        id: 'pipeline',
        context: { n: 0 },
        initial: 'calling',
        states: {
          calling: {
            entry: { type: 'errand.tool', params: ({ context }) => ({ callId: `call-${context.n + 1}`, tool: 'echo', args: {} }) },
            on: { 'tool.result': { target: 'stopped', actions: assign({ n: ({ context }) => context.n + 1 }) } },
          },
          stopped: {},
        },
      }),
    });
    const r = replayJournal(sim.journal, { registry: createRegistry([changed]) });
    const v = verifyReplay(r, sim.record!);
    expect(v.ok).toBe(false);
    expect(v.firstDivergentStep).toBe(2);
    expect(v.reason).toContain('step 2 diverges');
    expect(v.diff.length).toBeGreaterThan(0);
  });

  it('a machine version the registry lacks is named', () => {
    const sim = runPipeline('p3');
    const other = createRegistry([defineAgent({ ...pipeline, version: 2 })]);
    expect(() => replayJournal(sim.journal, { registry: other })).toThrow(expect.objectContaining({ code: ReplayErrorCode.MachineVersion, message: expect.stringContaining('pipeline@1') }));
  });

  it('--step stops there with the snapshot and the commands outstanding there', () => {
    const sim = runPipeline('p4');
    const r = replayJournal(sim.journal, { registry, stopAt: 2 });
    expect(r.steps.at(-1)!.step).toBe(2);
    expect(r.outstanding).toMatchObject([{ kind: 'tool.request', callId: 'call-2' }]);
    expect(() => replayJournal(sim.journal, { registry, stopAt: 9 })).toThrow(expect.objectContaining({ code: ReplayErrorCode.NoSuchStep }));
  });

  it('an export reads back to the same replay, with secrets redacted', () => {
    const key = 'sk-abcdefghijklmnopqrstuvwx123456';
    const sim = runPipeline('p5', `use ${key} to call`);
    const text = writeExport({ agentId: 'p5', prefix: 'errand', journal: sim.journal, record: sim.record, definition: pipeline });
    expect(text).not.toContain(key);
    const back = readExport(text);
    expect(back.header).toMatchObject({ agentId: 'p5', machine: { id: 'pipeline', version: 1 } });
    const r = replayJournal(back.journal, { registry });
    expect(verifyReplay(r, back.checkpoints.at(-1)!)).toMatchObject({ ok: true });
  });

  it('a fork with an edited result continues from the step, and the diff names the next step', () => {
    const orig = runPipeline('p6');
    const at = replayJournal(orig.journal, { registry, stopAt: 2 });
    const original3 = orig.journal.find((j) => j.step === 3)!;
    const edited = { ...original3.event, result: { output: 'corrected' } };
    const seed = forkSeed(at, { event: edited });
    const fork = new Sim('f6');
    fork.step({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'f6', goal: 'fork', fork: seed, at: clock }, 'goal:f6');
    expect(fork.record).toMatchObject({ step: 3, origin: { agentId: 'p6', step: 2 } });
    expect((fork.record!.snapshot as { context: { outputs: unknown[] } }).context.outputs).toEqual(['out-1', 'corrected']);
    fork.answer(fork.toolRequests()[0]!, 'out-3');
    expect(fork.record!.status).toBe('done');
    // The fork's own journal replays and verifies.
    expect(verifyReplay(replayJournal(fork.journal, { registry }), fork.record!)).toMatchObject({ ok: true });
    const d = diffRuns({ agentId: 'p6', journal: orig.journal }, { agentId: 'f6', journal: withOrigin(fork.journal, orig.journal) });
    expect(d.firstDivergentStep).toBe(3);
  });

  it('a fork at a step where the agent had ended is refused, naming the last running step', () => {
    const orig = runPipeline('p8');
    expect(() => forkSeed(replayJournal(orig.journal, { registry }))).toThrow(expect.objectContaining({ code: ReplayErrorCode.CannotFork, message: expect.stringContaining('the last running one is 3') }));
  });

  it('a fork while children run starts them again as its own children', () => {
    const orig = new Sim('p9');
    orig.step({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'p9', goal: 'two helpers', agent: 'parent', input: { children: 2, childInput: { delayMs: 10 } }, at: clock }, 'goal:p9');
    const seed = forkSeed(replayJournal(orig.journal, { registry, stopAt: 1 }));
    expect(seed.reissue.map((c) => c.kind)).toEqual(['goal', 'goal']);
    const fork = new Sim('f9');
    const r = fork.step({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'f9', goal: 'two helpers', fork: seed, at: clock }, 'goal:f9');
    const goals = r.outbox.filter((o) => o.message.kind === 'goal').map((o) => o.message as Message<'goal'>);
    expect(goals).toHaveLength(2);
    for (const g of goals) {
      expect(g.parent?.agentId).toBe('f9');
      expect(g.agentId.startsWith('f9-')).toBe(true);
    }
    expect(Object.values(r.children).map((c) => c.agentId).sort()).toEqual(goals.map((g) => g.agentId).sort());
  });

  it('a fork at a step where the agent waited for a person waits for the same (asked anew), with its deadline timer; a decision on the fork applies', () => {
    const orig = new Sim('r1');
    const call = { tool: 'echo', args: { n: 1 } };
    orig.step({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'r1', goal: 'review', agent: 'reviewer', input: call, at: clock }, 'goal:r1');
    expect(orig.record!.status).toBe('waiting');
    const replay = replayJournal(orig.journal, { registry });
    expect(verifyReplay(replay, orig.record!)).toMatchObject({ ok: true });
    const seed = forkSeed(replay);
    expect(seed.waiting).toEqual(orig.record!.waiting);
    const fork = new Sim('f1');
    const r = fork.step({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'f1', goal: 'review', fork: seed, at: clock }, 'goal:f1');
    expect(r).toMatchObject({ status: 'waiting', waiting: { kind: 'approval', requestId: 'review-1', calls: [call] } });
    expect(Object.keys(r.timers)).toHaveLength(1);
    const argsHash = orig.record!.waiting!.argsHash!;
    fork.step({ v: MESSAGE_VERSION, kind: 'approval', agentId: 'f1', requestId: 'review-1', decision: 'approve', argsHash, by: { id: 'ana', channel: 'cli' }, at: clock }, 'approval:f1');
    expect(fork.record!.status).toBe('running');
    expect(fork.toolRequests()).toEqual([expect.objectContaining({ tool: 'echo', approval: expect.objectContaining({ requestId: 'review-1' }) })]);
    // The fork's own journal, its seed first, replays to it.
    expect(verifyReplay(replayJournal(fork.journal, { registry }), fork.record!)).toMatchObject({ ok: true });
  });

  it('a fork without an edited event re-issues the pending command under its own id', () => {
    const orig = runPipeline('p7');
    const seed = forkSeed(replayJournal(orig.journal, { registry, stopAt: 2 }));
    const fork = new Sim('f7');
    fork.step({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'f7', goal: 'fork', fork: seed, at: clock }, 'goal:f7');
    const [req] = fork.toolRequests();
    expect(req).toMatchObject({ agentId: 'f7', callId: 'call-2', key: expect.stringMatching(/^f7:/) });
    expect(Object.keys(fork.record!.pending)).toEqual([req!.key]);
  });
});
