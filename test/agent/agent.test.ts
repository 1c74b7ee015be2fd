import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeMessage, MESSAGE_VERSION, resourceNames } from '@errand/protocols';
import { inputMessage, startTestServer, type TestServer } from '@errand/testing';
import { contextOf, control, gate, stateOf, toolDef, world } from './setup.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

const weather = toolDef('weather');

describe('the built-in agent, end to end (host + planner processes, scripted model over HTTP)', () => {
  it('happy path: plan, two tool calls in parallel, final answer; the tree, events and token stream are right', async () => {
    const w = await world(
      srv,
      [
        {
          expect: { contains: ['Compare the weather in Oslo and Rome'] },
          reply: {
            content: 'Let me check both cities.',
            toolCalls: [
              { name: 'update_plan', arguments: { tasks: [{ id: '1', title: 'Check Oslo', status: 'in_progress' }, { id: '2', title: 'Check Rome', status: 'in_progress' }] } },
              { name: 'weather', arguments: { city: 'Oslo' } },
              { name: 'weather', arguments: { city: 'Rome' } },
            ],
          },
        },
        { expect: { contains: ['Oslo: snow', 'Rome: sun'] }, reply: { content: 'Oslo has snow; Rome has sun.' } },
      ],
      { weather: (r) => ({ output: `${(r.args as { city: string }).city}: ${(r.args as { city: string }).city === 'Oslo' ? 'snow' : 'sun'}` }) },
    );
    try {
      const tokens: string[] = [];
      const sub = w.d.conn.nc.subscribe(w.d.subjects.agentStream('happy-1'), { callback: (_e, m) => void tokens.push(m.string()) });
      await w.d.conn.nc.flush();
      const agentId = await w.d.submit({ agentId: 'happy-1', goal: 'Compare the weather in Oslo and Rome', input: { toolDefinitions: [weather] } });
      const done = await w.d.waitForStatus(agentId, ['done', 'failed']);
      expect(done.error).toBeUndefined();
      expect(done.output).toMatchObject({ answer: 'Oslo has snow; Rome has sun.', rounds: 2, tasks: [{ title: 'Check Oslo' }, { title: 'Check Rome' }] });
      expect(w.mock.failures).toEqual([]);

      // Both calls went out in the same step, before either result came back.
      const journal = await w.d.journal(agentId);
      const acting = journal.find((j) => j.commands.filter((c) => c.kind === 'tool.request').length === 2);
      expect(acting).toBeDefined();
      expect(w.tools.weather!.requests.map((r) => (r.args as { city: string }).city).sort()).toEqual(['Oslo', 'Rome']);

      // Read the agent's events until its done event (published just after the final commit).
      const events = await w.d.conn.js.consumers.get(resourceNames(w.d.prefix).streams.events, { filter_subjects: w.d.subjects.agentEventAll(agentId) });
      const kinds: string[] = [];
      const stream = await events.consume();
      const timer = setTimeout(() => void stream.close(), 15_000);
      for await (const m of stream) {
        const e = decodeMessage(m.data);
        kinds.push(e.kind === 'event.tool' ? `tool:${e.status}` : e.kind);
        if (e.kind === 'event.done' && m.info.pending === 0) break;
      }
      clearTimeout(timer);
      await stream.close();
      expect(kinds).toContain('event.plan');
      expect(kinds.filter((k) => k === 'tool:requested')).toHaveLength(2);
      expect(kinds.filter((k) => k === 'tool:ok')).toHaveLength(2);
      expect(kinds.filter((k) => k === 'event.usage')).toHaveLength(2);
      expect(kinds).toContain('event.done');
      expect(tokens.join('')).toContain('Oslo has snow; Rome has sun.');
      sub.unsubscribe();
    } finally {
      await w.stop();
    }
  });

  it('a tool fails, the model sees the error and takes another route, and finishes', async () => {
    const w = await world(
      srv,
      [
        { reply: { toolCalls: [{ name: 'fetch', arguments: { url: 'https://a.example/report' } }] } },
        { expect: { contains: ['ERROR (ERR_HTTP_404)'] }, reply: { toolCalls: [{ name: 'fetch', arguments: { url: 'https://b.example/report' } }] } },
        { expect: { contains: ['the report'] }, reply: { content: 'Found the report on the mirror.' } },
      ],
      {
        fetch: (r) =>
          (r.args as { url: string }).url.startsWith('https://a.')
            ? { error: { code: 'ERR_HTTP_404', message: 'not found', retryable: false } }
            : { output: 'the report' },
      },
    );
    try {
      const agentId = await w.d.submit({ goal: 'Get the report', input: { toolDefinitions: [toolDef('fetch')] } });
      const done = await w.d.waitForStatus(agentId, ['done', 'failed']);
      expect(done.output).toMatchObject({ answer: 'Found the report on the mirror.' });
      expect(w.mock.failures).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it('the model answers 500 twice and 429 with Retry-After: the agent waits on durable timers, survives a host restart, finishes', async () => {
    const w = await world(srv, [
      { error: { status: 500 } },
      { error: { status: 500 } },
      { error: { status: 429, retryAfterSeconds: 1 } },
      { reply: { content: 'Finally done.' } },
    ]);
    try {
      const agentId = await w.d.submit({ goal: 'Be patient', input: { settings: { backoffBaseMs: 400 } } });
      const backingOff = await w.d.waitForRecord(agentId, (r) => stateOf(r) === 'backingOff');
      expect(Object.keys(backingOff.timers)).toEqual(['retry-plan']);
      // A host restart in the middle of the back-off.
      await w.d.stopAll();
      await w.startServices();
      const done = await w.d.waitForStatus(agentId, ['done', 'failed'], 60_000);
      expect(done.output).toMatchObject({ answer: 'Finally done.' });
      expect(w.mock.requests).toHaveLength(4);
      const waits = (await w.d.journal(agentId)).filter((j) => j.event.type === 'retry.plan');
      expect(waits).toHaveLength(3);
    } finally {
      await w.stop();
    }
  });

  it('at a budget the agent pauses with an approval request; approving resumes it, denying ends it', async () => {
    const w = await world(
      srv,
      [
        { match: 'GOAL-APPROVE', reply: { toolCalls: [{ name: 'echo', arguments: { n: 1 } }] } },
        { match: 'GOAL-DENY', reply: { toolCalls: [{ name: 'echo', arguments: { n: 2 } }] } },
        { match: 'GOAL-APPROVE', reply: { content: 'Finished after the extension.' } },
      ],
      { echo: (r) => ({ output: r.args }) },
    );
    try {
      const input = { toolDefinitions: [toolDef('echo')] };
      const yes = await w.d.submit({ goal: 'GOAL-APPROVE', budget: { maxSteps: 1 }, input });
      const no = await w.d.submit({ goal: 'GOAL-DENY', budget: { maxSteps: 1 }, input });
      for (const [agentId, decision] of [
        [yes, 'approve'],
        [no, 'deny'],
      ] as const) {
        const waiting = await w.d.waitForRecord(agentId, (r) => stateOf(r) === 'awaitingApproval');
        // What it waits for, from the record (not the agent's context).
        const approval = waiting.waiting!;
        expect(approval).toMatchObject({ kind: 'budget', summary: '1 of 1 steps' });
        expect(waiting.status).toBe('waiting');
        await w.d.send({ v: MESSAGE_VERSION, kind: 'approval', agentId, requestId: approval.requestId, decision, argsHash: approval.requestId, by: { id: 'boss', channel: 'test' }, at: Date.now() });
      }
      expect((await w.d.waitForStatus(yes, ['done', 'failed'])).output).toMatchObject({ answer: 'Finished after the extension.' });
      expect((await w.d.waitForStatus(no, ['done', 'failed'])).error).toMatchObject({ code: 'ERR_BUDGET', message: 'stopped at the budget: 1 of 1 steps' });
    } finally {
      await w.stop();
    }
  });

  it('the model repeats one tool call: loop detection sends a reflection prompt', async () => {
    const same = { name: 'echo', arguments: { q: 'same' } };
    const w = await world(
      srv,
      [
        { reply: { toolCalls: [same] } },
        { reply: { toolCalls: [same] } },
        { reply: { toolCalls: [same] } },
        { expect: { contains: ['Stop and reflect: you called echo with the same arguments 3 times'] }, reply: { content: 'I was looping; here is what I have.' } },
      ],
      { echo: () => ({ output: 'nothing new' }) },
    );
    try {
      const agentId = await w.d.submit({ goal: 'Dig', input: { toolDefinitions: [toolDef('echo')] } });
      const done = await w.d.waitForStatus(agentId, ['done', 'failed']);
      expect(done.output).toMatchObject({ answer: 'I was looping; here is what I have.' });
      expect(w.mock.failures).toEqual([]);
      expect(w.tools.echo!.requests).toHaveLength(2);
    } finally {
      await w.stop();
    }
  });

  it('ask_human waits across a restart of every service and the server, and resumes on the answer', async () => {
    const w = await world(srv, [
      { reply: { toolCalls: [{ name: 'ask_human', arguments: { question: 'Which city should I pick?' } }] } },
      { expect: { contains: ['The person answered: Rome'] }, reply: { content: 'Rome it is.' } },
    ]);
    try {
      const agentId = await w.d.submit({ goal: 'Pick a city for the offsite' });
      const waiting = await w.d.waitForRecord(agentId, (r) => stateOf(r) === 'awaitingInput');
      expect(waiting).toMatchObject({ status: 'waiting', waiting: { kind: 'input', question: 'Which city should I pick?' } });
      await w.d.stopAll();
      await srv.restart();
      await w.startServices();
      await w.d.send(inputMessage(agentId, 'Rome'));
      expect((await w.d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Rome it is.' });
      expect(w.mock.failures).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it('delegate runs a child agent to completion and the parent uses its result', async () => {
    const w = await world(srv, [
      { match: 'PARENT-GOAL', reply: { toolCalls: [{ name: 'delegate', arguments: { goal: 'sub-task: name a prime' } }] } },
      { match: 'sub-task: name a prime', reply: { content: 'seven' } },
      { match: 'PARENT-GOAL', expect: { contains: ['seven'] }, reply: { content: 'My helper says seven.' } },
    ]);
    try {
      const agentId = await w.d.submit({ goal: 'PARENT-GOAL' });
      const done = await w.d.waitForStatus(agentId, ['done', 'failed']);
      expect(done.output).toMatchObject({ answer: 'My helper says seven.' });
      const [child] = Object.values(done.children);
      expect(child?.status).toBe('done');
      expect((await w.d.record(child!.agentId))?.parent).toEqual({ agentId, ref: 'call_1' });
      expect(w.mock.failures).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it('a message told to a running agent reaches the model at the next planning step', async () => {
    const hold = gate();
    const w = await world(
      srv,
      [
        { reply: { toolCalls: [{ name: 'slow', arguments: {} }] } },
        { expect: { contains: ['Message from the user while you were working: also include Paris'] }, reply: { content: 'Included Paris.' } },
      ],
      { slow: async () => (await hold.wait, { output: 'slow result' }) },
    );
    try {
      const agentId = await w.d.submit({ goal: 'Plan a trip', input: { toolDefinitions: [toolDef('slow')] } });
      await w.d.waitForRecord(agentId, (r) => stateOf(r) === 'acting');
      await w.d.send(inputMessage(agentId, 'also include Paris'));
      await w.d.waitForRecord(agentId, (r) => (contextOf(r).staged as string[]).length === 1);
      hold.open();
      expect((await w.d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Included Paris.' });
      expect(w.mock.failures).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it('cancel during a model call and during a tool call: the agent ends cancelled and nothing runs after', async () => {
    const hold = gate();
    const w = await world(
      srv,
      [
        { match: 'SLOW-MODEL', delayMs: 30_000, reply: { toolCalls: [{ name: 'slow', arguments: {} }] } },
        { match: 'SLOW-TOOL', reply: { toolCalls: [{ name: 'slow', arguments: {} }] } },
      ],
      { slow: async () => (await hold.wait, { output: 'too late' }) },
    );
    try {
      const input = { toolDefinitions: [toolDef('slow')] };
      const inModel = await w.d.submit({ goal: 'SLOW-MODEL', input });
      const inTool = await w.d.submit({ goal: 'SLOW-TOOL', input });
      await w.d.waitForRecord(inTool, (r) => stateOf(r) === 'acting');
      await w.mock.until((m) => m.requests.length >= 2);
      await w.d.send(control(inModel, 'cancel'));
      await w.d.send(control(inTool, 'cancel'));
      await w.d.waitForStatus(inModel, ['cancelled']);
      await w.d.waitForStatus(inTool, ['cancelled']);
      hold.open();
      // The planner dropped the model call it was making for the cancelled agent.
      await w.mock.until((m) => m.aborted() >= 1);
      // The tool's late result is ignored: no further model call, no further tool call.
      const rec = await w.d.record(inTool);
      expect(rec?.status).toBe('cancelled');
      expect(w.mock.requests).toHaveLength(2);
      expect(w.tools.slow!.requests).toHaveLength(1);
    } finally {
      await w.stop();
    }
  });
});
