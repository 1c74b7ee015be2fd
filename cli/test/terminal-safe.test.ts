import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeployment, runProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';
import { createSubjects, MESSAGE_VERSION, RECORD_FORMAT, type AgentRecord } from '@errand/protocols';
import { formatLine, ProgressModel, renderFrame } from '../src/progress.js';
import { terminalSafe } from '../src/terminal-safe.js';

const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));

/** A window title change, a bell and a colour: what a hostile goal would hide in its text. */
const HOSTILE = '\x1b]0;pwned\x07\x1b[31m';
const SHOWN = '\\x1b]0;pwned\\x07\\x1b[31m';
/** Anything a terminal would act on: ESC, BEL, CSI (C1), DEL, other C0, bidi overrides. */
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe('terminalSafe', () => {
  it('shows control characters, C1, DEL and bidi controls as visible escapes and leaves printable text alone', () => {
    expect(terminalSafe(`goal ${HOSTILE}red`)).toBe(`goal ${SHOWN}red`);
    expect(terminalSafe('a\u009b2Jb\u007fc\u0000d')).toBe('a\\x9b2Jb\\x7fc\\x00d');
    expect(terminalSafe('pay \u202eevil\u202c now \u2066x\u2069')).toBe('pay \\u202eevil\\u202c now \\u2066x\\u2069');
    expect(terminalSafe('Zürich · 東京 · ✓ 🙂')).toBe('Zürich · 東京 · ✓ 🙂');
  });

  it('keeps line breaks and tabs only where text is shown over several lines', () => {
    expect(terminalSafe('one\ntwo\tthree\r')).toBe('one\\ntwo\\tthree\\r');
    expect(terminalSafe('one\ntwo\tthree\r', { multiline: true })).toBe('one\ntwo\tthree\\r');
  });
});

describe('watch: the line log and the live tree', () => {
  it('show a goal, a question and a failure with their control characters escaped', () => {
    const m = new ProgressModel('a1', createSubjects('errand'));
    const at = Date.UTC(2030, 0, 1);
    const lines = [
      ...m.applyEvent({ v: MESSAGE_VERSION, kind: 'event.step', agentId: 'a1', at, step: 1, inboxId: 'in-1', machine: { id: 'assistant', version: 1 }, event: { type: 'xstate.init', input: { goal: `tidy ${HOSTILE}` } }, state: 'planning', status: 'running', commands: [] }),
      ...m.applyRecord({
        format: RECORD_FORMAT, agentId: 'a1', machine: { id: 'assistant', version: 1 }, status: 'waiting', step: 1, goal: `tidy ${HOSTILE}`,
        snapshot: { value: 'awaitingInput', context: {} },
        waiting: { kind: 'input', requestId: 'q1', since: at, question: `Which?\n${HOSTILE}` },
        children: {}, timers: {}, pending: {}, applied: [], outbox: [], deferred: [], createdAt: at, updatedAt: at,
      } as AgentRecord),
      ...m.applyEvent({ v: MESSAGE_VERSION, kind: 'event.failed', agentId: 'a1', at, error: { code: 'ERR_TOOL', message: `boom ${HOSTILE}`, retryable: false } }),
    ].map((l) => formatLine(m, l));
    // On one line: its line break is a space.
    expect(lines.join('\n')).toContain(`Which? ${SHOWN}`);
    expect(lines.join('\n')).toContain(`boom ${SHOWN}`);
    for (const l of lines) expect(l).not.toMatch(CONTROL);
    const frame = renderFrame(m, { width: 200, height: 40, now: at });
    expect(frame.join('\n')).toContain(`goal: tidy ${SHOWN}`);
    for (const l of frame) expect(l).not.toMatch(CONTROL);
  });
});

describe('errand ls and show print agents’ text escaped', () => {
  let srv: TestServer;
  let d: Deployment;
  let agentId: string;
  const goal = `nap ${HOSTILE} now`;
  beforeAll(async () => {
    srv = await startTestServer();
    d = await createDeployment(srv);
    await d.start('host');
    agentId = await d.submit({ goal, agent: 'sleeper', input: { delayMs: 600_000 }, labels: { team: `core${HOSTILE}` } });
    await d.waitForStatus(agentId, ['running']);
  });
  afterAll(async () => {
    await d?.stopAll();
    await srv?.stop();
  });

  const errand = (args: string[]) => runProcess(process.execPath, [cli, ...args], { env: { ...process.env, ...d.env('operator') } });

  it('ls', async () => {
    const r = await errand(['ls']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(CONTROL);
    expect(r.stdout).toContain(`nap ${SHOWN} now`);
    expect(r.stdout).toContain(`team=core${SHOWN}`);
  });

  it('show', async () => {
    const r = await errand(['show', agentId]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(CONTROL);
    expect(r.stdout).toContain(`goal: nap ${SHOWN} now`);
    // A sleeping agent says when it moves on.
    expect(r.stdout).toMatch(/^next timer: \S+ \S+ \(in 9m\)$/m);
  });

  it('--json stays exact JSON: the goal comes back byte for byte', async () => {
    const ls = await errand(['ls', '--json']);
    expect((JSON.parse(ls.stdout) as { agentId: string; goal: string }[]).find((a) => a.agentId === agentId)?.goal).toBe(goal);
    const show = await errand(['show', agentId, '--json']);
    expect((JSON.parse(show.stdout) as { goal: string }).goal).toBe(goal);
  });
});
