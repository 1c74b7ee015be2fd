import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { CodecError, decodeMessage, decodeRecord, encodeMessage, encodeRecord, MESSAGE_VERSION, RECORD_FORMAT, redactDeep, type AgentRecord, type Message } from '@errand/protocols';

const record: AgentRecord = {
  format: RECORD_FORMAT,
  agentId: 'a-1',
  machine: { id: 'counter', version: 2 },
  status: 'running',
  step: 3,
  snapshot: { status: 'active', value: { working: 'waiting' }, context: { n: 2 }, historyValue: {}, children: {} },
  goal: 'count to three',
  labels: { team: 'core' },
  children: { kid: { agentId: 'c-1', status: 'running' } },
  timers: { 'xstate.after.1000.counter.waiting': { key: 'a-1:3:0', dueAt: 1_800_000_000_000 } },
  pending: { 'a-1:2:0': { kind: 'tool.request', at: 1_700_000_000_500 } },
  applied: ['goal:a-1', 'a-1:2:1'],
  outbox: [{ subject: 'errand.work.timer', msgId: 'a-1:3:0', message: { kind: 'timer.request', v: 1 } }],
  deferred: [],
  createdAt: 1_700_000_000_000,
  updatedAt: 1_700_000_001_000,
};

describe('agent records', () => {
  it('round trip', () => {
    expect(decodeRecord(encodeRecord(record))).toEqual(record);
  });

  it('store a conversation a planner request shares with the context once, and give it back in both places', () => {
    const messages = Array.from({ length: 40 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `message ${i} ${'x'.repeat(200)}` }));
    const planning: AgentRecord = {
      ...record,
      snapshot: { ...(record.snapshot as object), context: { n: 2, messages } },
      outbox: [{ subject: 'errand.work.plan', msgId: 'a-1:3:0', message: { v: 1, kind: 'plan.request', key: 'a-1:3:0', messages, tools: [] } }],
    };
    const stored = encodeRecord(planning);
    const twice = new Packr({ useRecords: false }).pack(planning);
    expect(stored.length).toBeLessThan(twice.length * 0.6);
    const read = decodeRecord(stored);
    expect(read).toEqual(planning);
    expect(read.outbox[0]!.message.messages).toBe((read.snapshot as { context: { messages: unknown } }).context.messages);
    // A copy that is merely equal is not the same array: it is stored as it is.
    const copied = { ...planning, outbox: [{ ...planning.outbox[0]!, message: { ...planning.outbox[0]!.message, messages: [...messages] } }] };
    expect(decodeRecord(encodeRecord(copied))).toEqual(copied);
  });

  it('read records of format 1, and refuse a reference to a context field that is not there', () => {
    expect(decodeRecord(new Packr({ useRecords: false }).pack({ ...record, format: 1 }))).toEqual({ ...record, format: 1 });
    const dangling = new Packr({ useRecords: false }).pack({ ...record, outboxRefs: [{ entry: 0, field: 'messages', context: 'nothing' }] });
    expect(() => decodeRecord(dangling)).toThrow(/outboxRefs: entry 0's messages refers to context.nothing/);
  });

  it('carry what the agent waits for, its usage and budget; records without them read as before, and a malformed wait is refused', () => {
    const waiting: AgentRecord = {
      ...record,
      status: 'waiting',
      waiting: { kind: 'approval', requestId: 'tools-1', since: 1_700_000_000_900, deadline: 1_700_000_600_900, calls: [{ tool: 'fs_write', args: { path: 'a', overwrite: true } }], argsHash: 'h', summary: 'fs_write(a)' },
      usage: { inputTokens: 10, outputTokens: 2, costUsd: 0.0001 },
      budget: { maxCostUsd: 1 },
    };
    expect(decodeRecord(encodeRecord(waiting))).toEqual(waiting);
    expect(decodeRecord(encodeRecord(record)).waiting).toBeUndefined();
    const wrong = new Packr({ useRecords: false }).pack({ ...record, waiting: { kind: 'coffee', requestId: 'x', since: 1 } });
    expect(() => decodeRecord(wrong)).toThrow(/waiting\.kind/);
  });

  it('refuse a format written by a newer Errand, naming it', () => {
    const newer = new Packr({ useRecords: false }).pack({ ...record, format: RECORD_FORMAT + 1 });
    expect(() => decodeRecord(newer)).toThrow(CodecError);
    expect(() => decodeRecord(newer)).toThrow(new RegExp(`format ${RECORD_FORMAT + 1} cannot be read`));
  });

  it('refuse a damaged record with the field that is wrong', () => {
    const damaged = new Packr({ useRecords: false }).pack({ ...record, step: 'three' });
    expect(() => decodeRecord(damaged)).toThrow(/step/);
    const bytes = encodeRecord(record);
    expect(() => decodeRecord(bytes.subarray(0, bytes.length - 10))).toThrow(/not valid msgpack/);
  });

  it('a fork keeps its origin; a record without one (written before forks) still reads', () => {
    const fork = { ...record, origin: { agentId: 'a-0', step: 2 } };
    expect(decodeRecord(encodeRecord(fork)).origin).toEqual({ agentId: 'a-0', step: 2 });
    expect(decodeRecord(encodeRecord(record)).origin).toBeUndefined();
  });
});

describe('fork seeds on goals', () => {
  it('a goal may carry a fork seed; reissue defaults to none', () => {
    const goal: Message<'goal'> = {
      v: MESSAGE_VERSION,
      kind: 'goal',
      agentId: 'a-2',
      goal: 'count to three',
      fork: { from: { agentId: 'a-1', step: 3 }, machine: { id: 'counter', version: 2 }, snapshot: record.snapshot, reissue: [], event: { type: 'tool.result', callId: 'c1' } },
      at: 1_700_000_000_000,
    };
    expect(decodeMessage(encodeMessage(goal).data)).toEqual(goal);
    const { reissue: _r, ...bare } = goal.fork!;
    expect((decodeMessage(encodeMessage({ ...goal, fork: bare as never }).data) as Message<'goal'>).fork?.reissue).toEqual([]);
  });
});

describe('redaction', () => {
  it('redacts secrets in every string of a value, keys included', () => {
    const key = 'sk-abcdefghijklmnopqrstuvwx123456';
    const out = redactDeep({ goal: `use ${key}`, list: [key, 1, null], [key]: { token: 'ghp_abcdefghijklmnopqrstuvwxyz0123' } });
    expect(JSON.stringify(out)).not.toMatch(/sk-abc|ghp_/);
    expect(out.list).toEqual(['[redacted]', 1, null]);
  });
});
