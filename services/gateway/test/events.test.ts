// Server-sent events: an agent's tree, every agent's state, the logs — ids are stream sequences,
// and a client resumes with Last-Event-ID without a gap or a repeat, across a gateway SIGKILL.
// The server requires credentials: the gateway reads the streams as the `gateway` identity.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeliverPolicy } from '@errand/nats';
import { childAgentId, resourceNames } from '@errand/protocols';
import { inputMessage, startTestServer, type Deployment, type TestServer } from '@errand/testing';
import { ALICE, gatewayWorld, readSse, type GatewayWorld, type SseEvent } from './helpers.js';

let srv: TestServer;
let w: GatewayWorld;

beforeAll(async () => {
  srv = await startTestServer({ auth: true });
  w = await gatewayWorld(srv, { services: ['host'] });
});
afterAll(async () => {
  await w?.stop();
  await srv?.stop();
});

/** The sequences ERRAND_EVENTS holds for these agents, in order (read straight from the stream). */
async function streamSeqs(d: Deployment, agentIds: readonly string[]): Promise<number[]> {
  const consumer = await d.conn.js.consumers.get(resourceNames(d.prefix).streams.events, { filter_subjects: d.subjects.agentEventAll(), deliver_policy: DeliverPolicy.All });
  const out: number[] = [];
  if ((await consumer.info(true)).num_pending === 0) return out;
  const messages = await consumer.consume();
  try {
    for await (const m of messages) {
      const agentId = m.subject.split('.')[2]!;
      if (agentIds.includes(agentId)) out.push(m.seq);
      if (m.info.pending === 0) break;
    }
  } finally {
    await messages.close();
  }
  return out;
}

const parse = (e: SseEvent) => JSON.parse(e.data) as { kind: string; agentId: string; status?: string };
const ids = (events: SseEvent[]) => events.map((e) => Number(e.id));
const increasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);
const ended = (agentId: string) => (events: SseEvent[]) => events.some((e) => e.event === 'event.done' && parse(e).agentId === agentId);

describe('GET /api/agents/:id/events', () => {
  it("streams the agent's and its children's events in stream order; ids are the stream's sequences", async () => {
    const res = await w.api('/api/agents', { json: { goal: 'delegate', agent: 'parent', input: { children: 2, childAgent: 'sleeper', childInput: { delayMs: 200 } } } });
    const { agentId } = (await res.json()) as { agentId: string };
    const stream = await w.api(`/api/agents/${agentId}/events`);
    expect(stream.headers.get('content-type')).toMatch(/text\/event-stream/);
    const { events } = await readSse(stream, ended(agentId));
    const children = ['child-1', 'child-2'].map((ref) => childAgentId(agentId, ref));
    const agents = new Set(events.map((e) => parse(e).agentId));
    expect([...agents].sort()).toEqual([agentId, ...children].sort());
    for (const child of children) expect(events.some((e) => e.event === 'event.done' && parse(e).agentId === child)).toBe(true);
    expect(events.every((e) => e.event === parse(e).kind)).toBe(true);
    // Exactly what the stream holds for the tree up to the parent's end, in its order.
    const seqs = await streamSeqs(w.d, [agentId, ...children]);
    expect(ids(events)).toEqual(seqs.filter((s) => s <= Number(events.at(-1)!.id)));

    // ?after= and Last-Event-ID: what follows, and nothing before.
    const middle = events[Math.floor(events.length / 2)]!;
    const after = await readSse(await w.api(`/api/agents/${agentId}/events?after=${middle.id}`), ended(agentId));
    expect(ids(after.events)).toEqual(ids(events).filter((i) => i > Number(middle.id)));
    const header = await readSse(await w.api(`/api/agents/${agentId}/events`, { headers: { 'Last-Event-ID': middle.id! } }), ended(agentId));
    expect(ids(header.events)).toEqual(ids(after.events));
    expect((await w.api(`/api/agents/${agentId}/events`, { headers: { 'Last-Event-ID': 'x1' } })).status).toBe(400);
  });

  it('finds children whose ids are hashes (a parent id too long for <parent>-<ref>)', async () => {
    const parentId = `p-${'x'.repeat(95)}-${Date.now().toString(36)}`;
    const res = await w.api('/api/agents', { json: { goal: 'delegate', agentId: parentId, agent: 'parent', input: { children: 2, childAgent: 'sleeper', childInput: { delayMs: 50 } } } });
    expect(res.status).toBe(201);
    const children = ['child-1', 'child-2'].map((ref) => childAgentId(parentId, ref));
    expect(children.every((c) => c.startsWith('c-'))).toBe(true);
    const { events } = await readSse(await w.api(`/api/agents/${parentId}/events`), ended(parentId));
    expect([...new Set(events.map((e) => parse(e).agentId))].sort()).toEqual([parentId, ...children].sort());
    expect(ids(events)).toEqual((await streamSeqs(w.d, [parentId, ...children])).filter((s) => s <= Number(events.at(-1)!.id)));
  });

  it('resumes from Last-Event-ID with no gap and no repeat after the gateway is SIGKILLed mid-run', async () => {
    const port = Number(new URL(w.base).port);
    const create = await w.api('/api/agents', { json: { goal: 'count to six', agent: 'tally', input: { expect: 6 } } });
    const created = (await create.json()) as { agentId: string };
    expect(create.status, JSON.stringify(created)).toBe(201);
    const { agentId } = created;
    const tell = (n: number) => w.d.send(inputMessage(agentId, String(n)));
    const seen: SseEvent[] = [];
    const stepsOf = (events: SseEvent[]) => events.filter((e) => e.event === 'event.step').length;

    // First connection: the start and two inputs.
    await tell(1);
    await tell(2);
    const first = await readSse(await w.api(`/api/agents/${agentId}/events`), (events) => stepsOf(events) >= 3);
    seen.push(...first.events);
    const lastId = seen.at(-1)!.id!;

    // The gateway dies; the agent goes on meanwhile.
    w.gateway.signal('SIGKILL');
    await w.gateway.exited;
    await tell(3);
    await tell(4);
    await w.d.waitForRecord(agentId, (r) => r.step >= 5);
    await w.startGateway(port);
    expect(new URL(w.base).port).toBe(String(port));

    // The client reconnects as EventSource does, with the last id it saw.
    await tell(5);
    await tell(6);
    const second = await readSse(await w.api(`/api/agents/${agentId}/events`, { headers: { 'Last-Event-ID': lastId } }), ended(agentId));
    seen.push(...second.events);
    expect(increasing(ids(seen))).toBe(true);
    expect(ids(seen)).toEqual((await streamSeqs(w.d, [agentId])).filter((s) => s <= Number(seen.at(-1)!.id)));
    expect(seen.filter((e) => e.event === 'event.done')).toHaveLength(1);
  });

  it('the stream stays open after the agent ended, with keep-alive comments', async () => {
    const create = await w.api('/api/agents', { json: { goal: 'nap', agent: 'sleeper', input: { delayMs: 10 } } });
    const { agentId } = (await create.json()) as { agentId: string };
    await w.d.waitForStatus(agentId, ['done']);
    const res = await w.api(`/api/agents/${agentId}/events`);
    const { comments, events } = await readSse(res, () => false, 2_000);
    expect(ended(agentId)(events)).toBe(true);
    expect(comments).toContain('keep-alive');
  });
});

describe('connections', () => {
  it("a client that goes away takes its stream's consumer with it", async () => {
    const jsm = await w.d.conn.jsm();
    const stream = resourceNames(w.d.prefix).streams.events;
    const count = async () => (await jsm.streams.info(stream)).state.consumer_count;
    const before = await count();
    const readers = await Promise.all([0, 1, 2].map(async () => {
      const abort = new AbortController();
      const res = await w.api('/api/agents/events', { signal: abort.signal });
      const reader = res.body!.getReader();
      await reader.read(); // the first comment: the stream is open
      return { abort, reader };
    }));
    const deadline = Date.now() + 10_000;
    while ((await count()) < before + 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await count()).toBeGreaterThanOrEqual(before + 3);
    for (const r of readers) {
      await r.reader.cancel().catch(() => {});
      r.abort.abort();
    }
    // Deleted when the connection closes, well before the server would drop them as inactive.
    const gone = Date.now() + 4_000;
    while ((await count()) > before && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
    expect(await count()).toBe(before);
  });
});

describe('GET /api/agents/events', () => {
  it("every agent's state, done and failed events, resumable", async () => {
    const res = await w.api('/api/agents/events');
    const reading = readSse(res, (events) => events.filter((e) => e.event === 'event.done').length >= 2);
    const started: string[] = [];
    for (const goal of ['one', 'two']) {
      const r = await w.api('/api/agents', { json: { goal, agent: 'sleeper', input: { delayMs: 20 } } });
      started.push(((await r.json()) as { agentId: string }).agentId);
    }
    const { events } = await reading;
    expect(new Set(events.map((e) => e.event))).toEqual(new Set(['event.state', 'event.done']));
    for (const id of started) expect(events.some((e) => e.event === 'event.done' && parse(e).agentId === id)).toBe(true);
    expect(increasing(ids(events))).toBe(true);
    const again = await readSse(await w.api(`/api/agents/events?after=${events[0]!.id}`), (e) => e.length >= events.length - 1);
    expect(ids(again.events)).toEqual(ids(events).slice(1));
  });
});

describe('GET /api/logs', () => {
  it('streams shipped log lines as `log` events, filtered by service, agent and level, resumable', async () => {
    const r = await w.api('/api/agents', { json: { goal: 'log me', agent: 'sleeper', input: { delayMs: 10 } } });
    const { agentId } = (await r.json()) as { agentId: string };
    await w.d.waitForStatus(agentId, ['done']);
    const res = await fetch(`${w.base}/api/logs?service=host&agent=${agentId}&tail=1000`, { headers: { Authorization: `Bearer ${ALICE.token}` } });
    const { events } = await readSse(res, (e) => e.length >= 1, 10_000);
    expect(events.length).toBeGreaterThanOrEqual(1);
    for (const e of events) {
      expect(e.event).toBe('log');
      expect(JSON.parse(e.data)).toMatchObject({ service: 'host', agentId });
    }
    const warn = await readSse(await w.api('/api/logs?level=warn&tail=1000'), () => false, 1_000);
    for (const e of warn.events) expect((JSON.parse(e.data) as { level: number }).level).toBeGreaterThanOrEqual(40);
    const all = await readSse(await w.api('/api/logs?tail=1000'), (e) => e.length >= 3, 5_000);
    const resumed = await readSse(await w.api('/api/logs', { headers: { 'Last-Event-ID': all.events[0]!.id! } }), (e) => e.length >= 2, 5_000);
    expect(ids(resumed.events).slice(0, 2)).toEqual(ids(all.events).slice(1, 3));
  });

  it('filters exactly: an agent and its children, a level and above, a service', async () => {
    // Lines as services ship them, published here so that each filter has lines to keep and to drop.
    const agentId = `a-logs-${Date.now().toString(36)}`;
    const logs = resourceNames(w.d.prefix).streams.logs;
    const from = (await (await w.d.conn.jsm()).streams.info(logs)).state.last_seq;
    const lines: [string, Record<string, unknown>][] = [
      ['host', { level: 30, msg: 'host-info', agentId }],
      ['host', { level: 40, msg: 'host-warn', agentId }],
      ['host', { level: 50, msg: 'other-error', agentId: `${agentId}x` }],
      ['planner', { level: 20, msg: 'planner-debug', agentId: `${agentId}-child-1` }],
      ['planner', { level: 50, msg: 'planner-error', agentId }],
      ['host', { level: 50, msg: 'no-agent-error' }],
    ];
    for (const [service, line] of lines) await w.d.conn.js.publish(w.d.subjects.logs(service), new TextEncoder().encode(JSON.stringify({ time: Date.now(), ...line })));
    await w.d.conn.js.publish(w.d.subjects.logs('host'), new TextEncoder().encode('not json'));
    // The last line every filter below keeps: read up to it.
    await w.d.conn.js.publish(w.d.subjects.logs('planner'), new TextEncoder().encode(JSON.stringify({ level: 60, msg: 'end', agentId })));
    const read = async (query: string) => {
      const { events } = await readSse(await w.api(`/api/logs?after=${from}&${query}`), (e) => e.some((x) => (JSON.parse(x.data) as { msg: string }).msg === 'end'), 10_000);
      return events.map((e) => JSON.parse(e.data) as { msg: string; service: string });
    };
    expect((await read(`agent=${agentId}`)).map((l) => l.msg)).toEqual(['host-info', 'host-warn', 'planner-debug', 'planner-error', 'end']);
    expect((await read(`agent=${agentId}&level=warn`)).map((l) => l.msg)).toEqual(['host-warn', 'planner-error', 'end']);
    expect((await read(`agent=${agentId}&service=planner`)).map((l) => `${l.service}:${l.msg}`)).toEqual(['planner:planner-debug', 'planner:planner-error', 'planner:end']);
    const planner = await read('service=planner&level=error');
    expect(planner.map((l) => l.msg)).toEqual(expect.arrayContaining(['planner-error', 'end']));
    expect(planner.every((l) => l.service === 'planner')).toBe(true);
    expect((await w.api('/api/logs?level=loud')).status).toBe(400);
  });
});
