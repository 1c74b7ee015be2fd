import { describe, expect, it } from 'vitest';
import { createSubjects, MESSAGE_VERSION, RECORD_FORMAT, type AgentRecord, type Message } from '@errand/protocols';
import { formatLine, LiveFrame, ProgressModel, renderFrame } from '../src/progress.js';

const subjects = createSubjects('errand');
const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);

function step(agentId: string, n: number, event: Record<string, unknown> & { type: string }, commands: Message<'event.step'>['commands'] = [], state: unknown = 'working'): Message<'event.step'> {
  return { v: MESSAGE_VERSION, kind: 'event.step', agentId, at: T0 + n * 1000, step: n, inboxId: `in-${n}`, machine: { id: 'pipeline', version: 1 }, event, state, status: 'running', commands };
}

function record(agentId: string, patch: Partial<AgentRecord> = {}): AgentRecord {
  return {
    format: RECORD_FORMAT, agentId, machine: { id: 'pipeline', version: 1 }, status: 'running', step: 1, snapshot: { value: 'calling', context: {} }, goal: 'a goal',
    children: {}, timers: {}, pending: {}, applied: [], outbox: [], deferred: [], createdAt: T0, updatedAt: T0, ...patch,
  };
}

describe('the progress model', () => {
  it('reads tool calls from the journal for machines that publish no tool events', () => {
    const m = new ProgressModel('a1', subjects);
    const lines = [
      ...m.applyEvent(step('a1', 1, { type: 'xstate.init', input: { goal: 'pipe it' } }, [{ kind: 'tool.request', key: 'a1:1:0', subject: subjects.workTool('echo') }])),
      ...m.applyEvent(step('a1', 2, { type: 'tool.result', key: 'a1:1:0', durationMs: 12 })),
    ].map((l) => formatLine(m, l).slice(9));
    expect(lines).toEqual(['step 1  xstate.init  → working (running)', 'step 1  tool echo requested', 'step 2  tool.result  → working (running)', 'step 2  tool echo ok 12 ms']);
    expect(m.root.goal).toBe('pipe it');
  });

  it('nests children found in goal commands and records, labelled by their ref', () => {
    const m = new ProgressModel('p', subjects);
    m.applyEvent(step('p', 1, { type: 'xstate.init' }, [{ kind: 'goal', key: 'goal:p-child-1', subject: subjects.agentIn('p-child-1', 'goal') }]));
    m.applyRecord(record('p', { children: { 'child-2': { agentId: 'p-child-2', status: 'cancelled' } } }));
    m.applyRecord(record('p-child-1', { children: { x: { agentId: 'c-0123456789abcdef', status: 'running' } } }));
    expect([...m.agents.values()].map((v) => [v.agentId, v.label])).toEqual([
      ['p', ''],
      ['p-child-1', 'child-1'],
      ['p-child-2', 'child-2'],
      ['c-0123456789abcdef', 'child-1/c-0123456789abcdef'],
    ]);
    const [line] = m.applyEvent(step('p-child-1', 1, { type: 'xstate.init' }));
    expect(formatLine(m, line!)).toMatch(/^\d\d:\d\d:\d\d \[child-1\] step 1  xstate\.init/);
    // The parent's word that a child was cancelled is ahead of the child's own record.
    expect(renderFrame(m, { width: 200, height: 40, now: T0 }).join('\n')).toMatch(/⊘ child-2 \(p-child-2\) · \? · cancelled/);
  });

  it('announces a question once, with the command that answers it', () => {
    const m = new ProgressModel('a1', subjects);
    // From the record's `waiting`, whatever the machine keeps in its context.
    const asking = record('a1', { status: 'waiting', snapshot: { value: 'asking', context: {} }, waiting: { kind: 'input', requestId: 'q1', since: T0, question: 'Which city?' } });
    expect(m.applyRecord(asking).map((l) => l.text)).toEqual(['waiting for an answer: Which city?   → errand answer a1 "…"']);
    expect(m.applyRecord({ ...asking, updatedAt: T0 + 5 })).toEqual([]);
    expect(renderFrame(m, { width: 200, height: 40, now: T0 }).join('\n')).toContain('? waits for an answer: Which city?   → errand answer a1 "…"');
    const approving = record('a2', {
      status: 'waiting',
      waiting: { kind: 'approval', requestId: 'r1', since: T0, calls: [{ tool: 'fs_delete', args: { path: 'a.txt' } }], argsHash: 'h' },
    });
    expect(new ProgressModel('a2', subjects).applyRecord(approving).map((l) => l.text)).toEqual([
      'waiting for approval: fs_delete({"path":"a.txt"})   → errand approve a2 | errand deny a2',
    ]);
  });
});

describe('the live tree', () => {
  it('fits the terminal: long sections are shortened, never the header or the step in flight; lines are cut to the width', () => {
    const m = new ProgressModel('a1', subjects);
    m.applyRecord(record('a1', { pending: { k: { kind: 'tool.request', at: T0 } }, goal: 'g'.repeat(300) }));
    const tools = Array.from({ length: 30 }, (_, i) => ({ kind: 'tool.request' as const, key: `a1:1:${i}`, subject: subjects.workTool(`tool_${i}`) }));
    m.applyEvent(step('a1', 1, { type: 'xstate.init' }, tools));
    const frame = renderFrame(m, { width: 60, height: 12, now: T0 + 3000 });
    expect(frame.length).toBeLessThanOrEqual(11);
    expect(frame[0]).toMatch(/^▸ a1 · pipeline · running · state calling · step 1 · 3\.0 s$/);
    expect(frame[2]).toBe('  now: step 1 (xstate.init, 2.0 s ago) · waiting for 1 too…');
    expect(frame.some((l) => /^ {4}… \d+ earlier$/.test(l))).toBe(true);
    expect(frame.at(-1)).toMatch(/tool_29 +running/);
    for (const l of frame) expect([...l].length).toBeLessThan(60);
  });

  it('redraws in place: up over the last frame, erase below, the new frame', () => {
    let out = '';
    const f = new LiveFrame((s) => (out += s));
    f.draw(['a', 'b']);
    f.draw(['c']);
    expect(out).toBe('\x1b[Ja\nb\n\r\x1b[2A\x1b[Jc\n');
  });
});
