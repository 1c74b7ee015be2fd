import { describe, expect, it } from 'vitest';
import { approvalHash, callHash, createSubjects, MESSAGE_VERSION, type AgentRecord, type InboxMessage, type Message } from '@errand/protocols';
import { createRegistry, decide, replayJournaled } from '@errand/core';
import { agents } from '@errand/example-agents';

// `reviewer`, a custom machine that says what it waits for with `errand.wait`: the record shows
// the exact call it asks about, a decision applies only to that request and hash, the approved call
// carries evidence, the follow-up question is an input wait, and replay reaches the same records.

const subjects = createSubjects('errand');
const registry = createRegistry(agents);
const AT = 1_800_000_000_000;
const by = { id: 'ana', channel: 'cli' };
const call = { tool: 'fs_write', args: { path: 'notes.txt', content: 'hello' } };
const HASH = approvalHash([call]);

class Run {
  record: AgentRecord | undefined;
  readonly journal: Message<'event.step'>[] = [];
  private n = 0;
  decide(message: InboxMessage) {
    return decide(this.record, message, { agentId: 'rv', inboxId: `m${++this.n}`, now: AT + this.n * 1000, subjects, registry });
  }
  send(message: InboxMessage): AgentRecord {
    const d = this.decide(message);
    if (d.type !== 'commit') throw new Error(`expected a commit, got ${d.type}${d.type === 'ignore' ? `: ${d.reason}` : ''}`);
    this.record = d.record;
    for (const e of d.record.outbox) if (e.message.kind === 'event.step') this.journal.push(e.message as unknown as Message<'event.step'>);
    return d.record;
  }
  start(deadlineMs = 60_000) {
    return this.send({ v: MESSAGE_VERSION, kind: 'goal', agentId: 'rv', goal: 'write the note', agent: 'reviewer', input: { ...call, deadlineMs }, at: AT });
  }
  sent<K extends Message['kind']>(kind: K): Message<K>[] {
    return this.record!.outbox.filter((e) => e.message.kind === kind).map((e) => e.message as unknown as Message<K>);
  }
}

describe('the reviewer example (errand.wait in a custom machine)', () => {
  it('waits for approval of the exact call, runs it with evidence once approved, then waits for an answer', () => {
    const run = new Run();
    const started = run.start();
    expect(started.status).toBe('waiting');
    expect(started.waiting).toEqual({ kind: 'approval', requestId: 'review-1', since: AT + 1000, deadline: AT + 1000 + 60_000, calls: [call], argsHash: HASH, summary: 'run fs_write' });
    expect(run.decide({ v: MESSAGE_VERSION, kind: 'approval', agentId: 'rv', requestId: 'review-1', decision: 'approve', argsHash: approvalHash([{ ...call, args: { path: 'other.txt' } }]), by, at: AT })).toMatchObject({
      type: 'ignore',
      refused: true,
    });
    run.send({ v: MESSAGE_VERSION, kind: 'approval', agentId: 'rv', requestId: 'review-1', decision: 'approve', argsHash: HASH, by, at: AT });
    expect(run.record!.status).toBe('running');
    expect(run.record!.waiting).toBeUndefined();
    const [request] = run.sent('tool.request');
    expect(request).toMatchObject({ tool: 'fs_write', args: call.args, approval: { requestId: 'review-1', argsHash: callHash(call.tool, call.args), by } });
    run.send({ v: MESSAGE_VERSION, kind: 'tool.result', agentId: 'rv', key: request!.key, callId: 'call-1', tool: 'fs_write', attempt: 1, durationMs: 3, result: { output: 'written' }, at: AT });
    expect(run.record!).toMatchObject({ status: 'waiting', waiting: { kind: 'input', requestId: 'note-1', question: 'The call ran. Any note to file with it?' } });
    run.send({ v: MESSAGE_VERSION, kind: 'input', agentId: 'rv', requestId: 'note-1', text: 'filed', by, at: AT });
    expect(run.record!).toMatchObject({ status: 'done', output: { ran: true, result: 'written', note: 'filed' } });
    expect(run.record!.waiting).toBeUndefined();

    // Replay reaches the same waits, step by step.
    let replayed: AgentRecord | undefined;
    for (const entry of run.journal) {
      replayed = replayJournaled(replayed, entry, { agentId: 'rv', inboxId: entry.inboxId, now: entry.at, subjects, registry });
      expect(replayed.status, `step ${entry.step}`).toBe(entry.status);
    }
    expect(replayed!.approvals).toEqual(run.record!.approvals);
  });

  it('denied: it stops without running anything; undecided by the deadline: the request expires and it fails', () => {
    const denied = new Run();
    denied.start();
    denied.send({ v: MESSAGE_VERSION, kind: 'approval', agentId: 'rv', requestId: 'review-1', decision: 'deny', argsHash: HASH, by, at: AT });
    expect(denied.record!).toMatchObject({ status: 'done', output: { ran: false } });
    expect(denied.sent('tool.request')).toEqual([]);

    const late = new Run();
    late.start(5_000);
    const [timer] = late.sent('timer.request');
    late.send({ v: MESSAGE_VERSION, kind: 'timer.fired', agentId: 'rv', key: timer!.key, timerId: timer!.timerId, event: timer!.event, dueAt: timer!.dueAt, firedAt: timer!.dueAt });
    expect(late.record!).toMatchObject({ status: 'failed', error: { code: 'ERR_NOT_APPROVED' } });
    expect(late.record!.waiting).toBeUndefined();
    expect(late.record!.approvals?.[0]).toMatchObject({ requestId: 'review-1', decision: 'expired' });
  });
});
