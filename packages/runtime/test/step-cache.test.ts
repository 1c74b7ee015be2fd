import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { createSubjects, Header, MESSAGE_VERSION, messageIds, resourceSpecs, type Message } from '@errand/protocols';
import { createRegistry, defineAgent, errandActions, type AgentInput } from '@errand/core';
import { openBucket, provision, type ErrandConnection } from '@errand/nats';
import { StepExecutor } from '@errand/runtime/internal';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

/** Waits for a person: no command, no timer — nothing of its own will move it soon. */
const listener = defineAgent({
  id: 'listener',
  version: 1,
  machine: setup({ types: {} as { input: AgentInput; context: { heard: number }; events: { type: 'input'; text: string } }, actions: errandActions }).createMachine({
    context: { heard: 0 },
    initial: 'listening',
    states: { listening: { on: { input: { actions: assign({ heard: ({ context }) => context.heard + 1 }) } } } },
  }),
});

/** Calls a tool at start, then listens: its first step leaves a command in the outbox. */
const caller = defineAgent({
  id: 'caller',
  version: 1,
  machine: setup({ types: {} as { input: AgentInput; events: { type: 'input'; text: string } }, actions: errandActions }).createMachine({
    initial: 'calling',
    states: { calling: { entry: { type: 'errand.tool', params: { callId: 'c1', tool: 'noop', args: {} } }, on: { input: {} } } },
  }),
});

let srv: TestServer;
let conn: ErrandConnection;
beforeAll(async () => {
  srv = await startTestServer();
  conn = await srv.connect();
});
afterAll(() => srv?.stop());

const goal = (agentId: string): Message<'goal'> => ({ v: MESSAGE_VERSION, kind: 'goal', agentId, goal: 'listen', agent: 'listener', at: Date.now() });
const input = (agentId: string, text: string): Message<'input'> => ({ v: MESSAGE_VERSION, kind: 'input', agentId, text, by: { id: 'test', channel: 'test' }, at: Date.now() });

describe('the step executor and agents that wait for a person', () => {
  it('keeps no record of a waiting agent in memory, and re-publishes an outbox only when it cannot know it went out', async () => {
    const prefix = uniquePrefix('cache');
    const specs = resourceSpecs({ prefix });
    await provision(conn, { specs });
    const subjects = createSubjects(prefix);
    const agents = await openBucket(conn, specs.names.buckets.agents);
    const registry = createRegistry([listener]);
    // The id of every publish of a journal entry, repeats included: a core subscription sees what
    // the stream then drops as a duplicate.
    const ids: string[] = [];
    const sub = conn.nc.subscribe(subjects.agentEvent('l1', 'step'), { callback: (_e, m) => void ids.push(m.headers?.get('Nats-Msg-Id') ?? '?') });
    await conn.nc.flush();

    const host = new StepExecutor({ js: conn.js, agents, subjects, registry });
    await host.run(goal('l1'), 'goal:l1');
    await host.run(input('l1', 'one'), 'in-1');
    await conn.nc.flush();
    // The record left the cache after each step (it waits for a person), yet the host knows it
    // published that revision's outbox: the step-1 entry is not sent again before step 2.
    expect(ids).toEqual([messageIds.event('l1', 1, 'step'), messageIds.event('l1', 2, 'step')]);

    // Another host cannot know the outbox of the record it reads went out: it sends it again first.
    const other = new StepExecutor({ js: conn.js, agents, subjects, registry });
    await other.run(input('l1', 'two'), 'in-2');
    await conn.nc.flush();
    expect(ids.slice(2)).toEqual([messageIds.event('l1', 2, 'step'), messageIds.event('l1', 3, 'step')]);
    sub.unsubscribe();
  });

  it('marks the commands of an outbox it publishes again, so a worker looks for their result before running them', async () => {
    const prefix = uniquePrefix('again');
    const specs = resourceSpecs({ prefix });
    await provision(conn, { specs });
    const subjects = createSubjects(prefix);
    const agents = await openBucket(conn, specs.names.buckets.agents);
    const registry = createRegistry([caller]);
    const copies: (string | null)[] = [];
    const sub = conn.nc.subscribe(subjects.workTool('noop'), { callback: (_e, m) => void copies.push(m.headers?.get(Header.Republished) || null) });
    await conn.nc.flush();

    await new StepExecutor({ js: conn.js, agents, subjects, registry }).run({ ...goal('c1'), agent: 'caller' }, 'goal:c1');
    // A second host, which cannot know the first published the command, sends it again, marked.
    await new StepExecutor({ js: conn.js, agents, subjects, registry }).run(input('c1', 'hello'), 'in-1');
    await conn.nc.flush();
    sub.unsubscribe();
    expect(copies).toEqual([null, '1']);
  });
});
