import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { contentTypeOf, createSubjects, decodeMessage, Header, isEndingEvent, MESSAGE_VERSION, resourceSpecs, type Message, type ProgressEvent, type WireFormat } from '@errand/protocols';
import { createRegistry, defineAgent, errandActions, type AgentInput } from '@errand/core';
import { openBucket, provision, type ErrandConnection } from '@errand/nats';
import { StepExecutor } from '@errand/runtime/internal';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

/** Waits for input: `stop` finishes it, `boom` makes its machine throw (the agent fails). */
const finisher = defineAgent({
  id: 'finisher',
  version: 1,
  machine: setup({
    types: {} as { input: AgentInput; events: { type: 'input'; text: string } },
    actions: errandActions,
    guards: {
      explodes: ({ event }) => {
        if (event.text === 'boom') throw new Error('boom');
        return false;
      },
    },
  }).createMachine({
    initial: 'waiting',
    states: {
      waiting: {
        on: {
          input: [
            { guard: 'explodes', target: 'finished' },
            { guard: ({ event }) => event.text === 'stop', target: 'finished' },
            { target: 'waiting' },
          ],
        },
      },
      finished: { type: 'final', output: { ok: true } },
    },
  }),
});

let srv: TestServer;
let conn: ErrandConnection;
beforeAll(async () => {
  srv = await startTestServer();
  conn = await srv.connect();
});
afterAll(() => srv?.stop());

const goal = (agentId: string): Message<'goal'> => ({ v: MESSAGE_VERSION, kind: 'goal', agentId, goal: 'wait', agent: 'finisher', at: Date.now() });
const input = (agentId: string, text: string): Message<'input'> => ({ v: MESSAGE_VERSION, kind: 'input', agentId, text, by: { id: 'test', channel: 'test' }, at: Date.now() });
const cancel = (agentId: string): Message<'control'> => ({ v: MESSAGE_VERSION, kind: 'control', agentId, action: 'cancel', reason: 'enough', at: Date.now() });

describe('the step executor publishes events', () => {
  it.each(['msgpack', 'json'] as const)('as %s, each with its Content-Type, and the ending event of done, failed and cancelled last', async (format: WireFormat) => {
    const prefix = uniquePrefix('order');
    const specs = resourceSpecs({ prefix });
    await provision(conn, { specs });
    const subjects = createSubjects(prefix);
    const agents = await openBucket(conn, specs.names.buckets.agents);
    const host = new StepExecutor({ js: conn.js, agents, subjects, registry: createRegistry([finisher]), eventFormat: format });

    /** Every event of the agent stored now, in stream order (run resolves after its step's publishes). */
    const stored = async (agentId: string) => {
      const consumer = await conn.js.consumers.get(specs.names.streams.events, { filter_subjects: subjects.agentEventAll(agentId) });
      const backlog = (await consumer.info(true)).num_pending;
      const out: { contentType: string | undefined; event: ProgressEvent }[] = [];
      const messages = await consumer.consume();
      const timer = setTimeout(() => void messages.close(), 10_000);
      for await (const m of messages) {
        const contentType = m.headers?.get(Header.ContentType) || undefined;
        out.push({ contentType, event: decodeMessage(m.data, { contentType }) as ProgressEvent });
        if (out.length >= backlog) break;
      }
      clearTimeout(timer);
      await messages.close();
      return out;
    };

    const runs = { done: ['stop'], failed: ['boom'], cancelled: [] as string[] } as const;
    for (const [outcome, texts] of Object.entries(runs)) {
      const agentId = `${outcome}-1`;
      await host.run(goal(agentId), `goal:${agentId}`);
      await host.run(input(agentId, 'not yet'), `${agentId}:in-1`);
      for (const [i, text] of texts.entries()) await host.run(input(agentId, text), `${agentId}:in-${i + 2}`);
      if (outcome === 'cancelled') await host.run(cancel(agentId), `${agentId}:cancel`);
      // A message to an ended agent publishes nothing.
      await host.run(input(agentId, 'late'), `${agentId}:late`);

      const events = await stored(agentId);
      const kinds = events.map((e) => e.event.kind).join(', ');
      const last = events.at(-1)!.event;
      expect(isEndingEvent(last), `${outcome}: ${kinds}`).toBe(true);
      expect(last.kind).toBe(outcome === 'cancelled' ? 'event.state' : `event.${outcome}`);
      if (last.kind === 'event.state') expect(last.status).toBe('cancelled');
      expect(events.filter((e) => isEndingEvent(e.event)), kinds).toHaveLength(1);
      // The ending step's journal entry and state change are stored before it.
      if (outcome !== 'cancelled') expect(events.slice(-3).map((e) => e.event.kind), kinds).toEqual(['event.step', 'event.state', `event.${outcome}`]);
      for (const e of events) expect(e.contentType).toBe(contentTypeOf(format));
    }
  });
});
