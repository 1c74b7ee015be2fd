import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { encodeMessage, MESSAGE_VERSION, resourceNames, type AgentStatus } from '@errand/protocols';
import { childAgentId, createRegistry, defineAgent, errandActions, type AgentInput } from '@errand/core';
import { collectGarbage, parseDuration, startHost, type Host } from '@errand/runtime/internal';
import { createDeployment, inputMessage, recordingLogger, startTestServer, type Deployment, type TestServer } from '@errand/testing';

const DAY = 24 * 60 * 60 * 1000;

/** Waits for input; the input `done` finishes it. */
const listener = defineAgent({
  id: 'listener',
  version: 1,
  description: 'finishes on the input "done"',
  machine: setup({ types: {} as { input: AgentInput; context: { heard: number }; events: { type: 'input'; text: string } }, actions: errandActions }).createMachine({
    id: 'listener',
    context: { heard: 0 },
    initial: 'listening',
    states: {
      listening: {
        on: { input: [{ guard: ({ event }) => event.text === 'done', target: 'done' }, { actions: assign({ heard: ({ context }) => context.heard + 1 }) }] },
      },
      done: { type: 'final' },
    },
  }),
});

/** Spawns one `listener` child and keeps running until told `done` (whatever the child does). */
const spawner = defineAgent({
  id: 'spawner',
  version: 1,
  description: 'spawns a listener child; finishes on the input "done"',
  machine: setup({ types: {} as { input: AgentInput; events: { type: 'input'; text: string } }, actions: errandActions }).createMachine({
    id: 'spawner',
    initial: 'waiting',
    states: {
      waiting: {
        entry: { type: 'errand.spawn', params: { ref: 'kid', goal: 'listen', agent: 'listener' } },
        on: { input: { guard: ({ event }) => event.text === 'done', target: 'done' } },
      },
      done: { type: 'final' },
    },
  }),
});

const registry = createRegistry([listener, spawner]);

let srv: TestServer;
let d: Deployment;
let host: Host;
/** The host's clock runs `skew` ms off, so agents can be made to have finished days ago. */
let skew = 0;

beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv);
  host = await startHost({ conn: d.conn, registry, prefix: d.prefix, gcIntervalMs: 0, now: () => Date.now() + skew });
});
afterAll(async () => {
  await host?.stop();
  await srv?.stop();
});

const submit = (agentId: string, agent = 'listener') => d.submit({ goal: `be ${agentId}`, agent, agentId });
const tell = (agentId: string, text: string) => d.send(inputMessage(agentId, text));
const finish = async (agentId: string, agent = 'listener') => {
  await submit(agentId, agent);
  await d.waitForStatus(agentId, ['running', 'waiting']);
  await tell(agentId, 'done');
  return d.waitForStatus(agentId, ['done']);
};

/** Messages stored for each subject matching `filter` in `stream`, summed. */
async function stored(stream: string, filter: string): Promise<number> {
  const jsm = await d.conn.jsm();
  const info = await jsm.streams.info(stream, { subjects_filter: filter });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}
const names = () => resourceNames(d.prefix);
const journalSize = (id: string) => stored(names().streams.events, d.subjects.agentEventAll(id));
const inboxSize = (id: string) => stored(names().streams.inbox, d.subjects.agentInAll(id));
const revision = async (id: string) => (await d.agents.get(id))?.revision;

describe('collecting finished agents', () => {
  const running = 'gc-running';
  const parentId = 'gc-parent';
  const kid = childAgentId(parentId, 'kid');
  let statusesBefore: Map<string, { revision: number | undefined; status: AgentStatus | undefined }>;

  beforeAll(async () => {
    // Two days ago: a finished agent, a cancelled one, one still running, and a running parent
    // whose child finished.
    skew = -2 * DAY;
    await finish('gc-a');
    await submit('gc-cancelled');
    await d.waitForStatus('gc-cancelled', ['running', 'waiting']);
    await d.send({ v: MESSAGE_VERSION, kind: 'control', agentId: 'gc-cancelled', action: 'cancel', reason: 'not needed', at: Date.now() });
    await d.waitForStatus('gc-cancelled', ['cancelled']);
    await submit(running);
    await tell(running, 'hello');
    await d.waitForRecord(running, (r) => r.step >= 2);
    await submit(parentId, 'spawner');
    await d.waitForStatus(kid, ['running', 'waiting']);
    await tell(kid, 'done');
    await d.waitForStatus(kid, ['done']);
    // Now: a finished agent whose id starts with the old one's.
    skew = 0;
    await finish('gc-a-b');
    // With no host running, input for finished agents stays in the inbox.
    await host.stop();
    await tell('gc-a', 'too late');
    await tell('gc-a-b', 'too late');
    statusesBefore = new Map();
    for (const id of [running, parentId, kid]) {
      const r = await d.record(id);
      statusesBefore.set(id, { revision: await revision(id), status: r?.status });
    }
  });

  it('a dry run reports what would go and removes nothing', async () => {
    const r = await collectGarbage({ conn: d.conn, prefix: d.prefix, olderThanMs: DAY, dryRun: true });
    expect(r.removed.sort()).toEqual(['gc-a', 'gc-cancelled']);
    expect(r.scanned).toBe(6);
    expect(r.kept).toBe(4);
    expect(await d.record('gc-a')).toBeDefined();
    expect(await journalSize('gc-a')).toBeGreaterThan(0);
    expect(await inboxSize('gc-a')).toBe(1);
  });

  it('removes finished agents past the cutoff: record, journal and inbox; keeps recent ones and the prefix-sharing id', async () => {
    const journalOfNeighbour = await journalSize('gc-a-b');
    expect(journalOfNeighbour).toBeGreaterThan(0);
    const progress: number[] = [];
    const r = await collectGarbage({ conn: d.conn, prefix: d.prefix, olderThanMs: DAY, onProgress: (p) => progress.push(p.removed) });
    expect(r.removed.sort()).toEqual(['gc-a', 'gc-cancelled']);
    expect(r).toMatchObject({ scanned: 6, kept: 4 });
    expect(progress.at(-1)).toBe(2);
    for (const id of ['gc-a', 'gc-cancelled']) {
      expect(await d.record(id)).toBeUndefined();
      expect(await journalSize(id)).toBe(0);
      expect(await inboxSize(id)).toBe(0);
    }
    // `gc-a` is a prefix of `gc-a-b`: the neighbour keeps everything.
    expect((await d.record('gc-a-b'))?.status).toBe('done');
    expect(await journalSize('gc-a-b')).toBe(journalOfNeighbour);
    expect(await inboxSize('gc-a-b')).toBe(1);
  });

  it('purges the delete markers removed records leave, once they are old enough', async () => {
    const kvStream = `KV_${resourceNames(d.prefix).buckets.agents}`;
    const markers = async () => (await (await d.conn.jsm()).streams.info(kvStream, { subjects_filter: '>' })).state.subjects ?? {};
    // The earlier sweep left markers for gc-a and gc-cancelled (younger than the default 30 minutes).
    expect(Object.keys(await markers()).some((s) => s.endsWith('.gc-a'))).toBe(true);
    await collectGarbage({ conn: d.conn, prefix: d.prefix, olderThanMs: DAY, markerAgeMs: 0 });
    const left = Object.keys(await markers());
    expect(left.some((s) => s.endsWith('.gc-a') || s.endsWith('.gc-cancelled'))).toBe(false);
    expect(left.some((s) => s.endsWith('.gc-a-b'))).toBe(true);
  });

  it('never touches a running agent, nor a finished child of a running parent, even with olderThanMs 0', async () => {
    const r = await collectGarbage({ conn: d.conn, prefix: d.prefix, olderThanMs: 0 });
    expect(r.removed).toEqual(['gc-a-b']);
    expect(r).toMatchObject({ scanned: 4, kept: 3 });
    for (const [id, before] of statusesBefore) {
      expect(await revision(id)).toBe(before.revision);
      expect((await d.record(id))?.status).toBe(before.status);
      expect(await journalSize(id)).toBeGreaterThan(0);
    }
    expect(statusesBefore.get(kid)?.status).toBe('done');
    expect(await inboxSize('gc-a-b')).toBe(0);
  });
});

describe("the host's periodic sweep", () => {
  it('removes a finished agent past the retention, logs it, and leaves a running one', async () => {
    const logger = recordingLogger();
    skew = 0;
    const sweeper = await startHost({ conn: d.conn, registry, prefix: d.prefix, logger, retentionMs: 1, gcIntervalMs: 50 });
    try {
      await submit('gc-swept');
      await submit('gc-busy');
      await d.waitForStatus('gc-busy', ['running', 'waiting']);
      const gone = waitForRemoval('gc-swept', 20_000);
      await d.waitForStatus('gc-swept', ['running', 'waiting']);
      await tell('gc-swept', 'done');
      await gone;
      expect(await journalSize('gc-swept')).toBe(0);
      await logger.waitFor((e) => e.level === 'info' && /removed \d+ finished agents/.test(e.msg));
      expect((await d.record('gc-busy'))?.status).toMatch(/running|waiting/);
    } finally {
      await sweeper.stop();
    }
  });
});

/** Resolves when the agent's record is deleted (watching its key); rejects after `timeoutMs`. */
async function waitForRemoval(agentId: string, timeoutMs: number): Promise<void> {
  const watch = await d.agents.watch({ key: agentId });
  const timer = setTimeout(() => watch.stop(), timeoutMs);
  try {
    for await (const e of watch) if (e.operation === 'DEL' || e.operation === 'PURGE') return;
  } finally {
    clearTimeout(timer);
    watch.stop();
  }
  throw new Error(`agent ${agentId} was not removed within ${timeoutMs} ms (status: ${(await d.record(agentId))?.status ?? 'no record'})`);
}

describe('durations', () => {
  it('reads days, hours, minutes, seconds and plain milliseconds', () => {
    expect(parseDuration('30d')).toBe(30 * DAY);
    expect(parseDuration('12h')).toBe(12 * 60 * 60 * 1000);
    expect(parseDuration('45m')).toBe(45 * 60 * 1000);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1.5h')).toBe(90 * 60 * 1000);
    expect(parseDuration('250')).toBe(250);
    expect(parseDuration('0')).toBe(0);
  });

  it('refuses anything else, saying what it expects', () => {
    for (const bad of ['nonsense', '', '-1d', '3w', '1.5', 'd']) {
      expect(() => parseDuration(bad)).toThrow(/expected a number with a unit .*'30d'.*milliseconds, got/);
    }
  });
});
