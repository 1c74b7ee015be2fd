import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { openBucket, type KV, type Subscription } from '@errand/nats';
import { catalogKeys, decodeMessage, resourceNames, type CatalogRunner, type CatalogTool } from '@errand/protocols';
import { createRegistry, defineAgent, errandActions, type AgentInput } from '@errand/core';
import { startIntake } from '@errand/runtime/internal';
import { createDeployment, recordingLogger, startTestServer, type Deployment, type TestServer } from '@errand/testing';

/** Intake in this process, against a real server: no host runs, so nothing consumes the goals. */

const idle = defineAgent({
  id: 'idle',
  version: 1,
  machine: setup({ types: {} as { input: AgentInput }, actions: errandActions }).createMachine({ id: 'idle', initial: 'waiting', states: { waiting: {} } }),
});

let srv: TestServer;
let d: Deployment;
let effects: KV;
let clock = Date.now();
const intakes: Subscription[] = [];
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv);
  effects = await openBucket(d.conn, resourceNames(d.prefix).buckets.effects);
  // Intake without a tool catalog, and with a clock the test moves.
  intakes.push(
    startIntake({
      nc: d.conn.nc,
      js: d.conn.js,
      agents: d.agents,
      effects,
      subjects: d.subjects,
      registry: createRegistry([idle]),
      deadLetter: { js: d.conn.js, subjects: d.subjects, origin: 'intake', maxPayload: 1024 * 1024 },
      queue: 'test-intake',
      now: () => clock,
    }),
  );
  await d.conn.nc.flush();
});
afterAll(async () => {
  for (const s of intakes) s.unsubscribe();
  await srv?.stop();
});

interface Reply {
  agentId?: string;
  existing?: boolean;
  traceId?: string;
  error?: { code: string; message: string };
}
async function submit(body: Record<string, unknown>): Promise<Reply> {
  const reply = await d.conn.nc.request(d.subjects.submit(), new TextEncoder().encode(JSON.stringify(body)), { timeout: 10_000 });
  return JSON.parse(reply.string()) as Reply;
}

describe('intake without a tool catalog', () => {
  it.each([
    ['toolDefinitions', { toolDefinitions: [{ name: 'fs_delete', description: 'x', parameters: {} }] }],
    ['toolPolicies', { toolPolicies: { fs_delete: 'auto' } }],
    ['toolAskIfArgs', { toolAskIfArgs: {} }],
  ])('refuses a goal that brings its own %s, saying why and what to do', async (key, input) => {
    const r = await submit({ goal: 'tidy up', agent: 'idle', input });
    expect(r.agentId).toBeUndefined();
    expect(r.error?.code).toBe('ERR_NO_CATALOG');
    expect(r.error?.message).toContain(`input.${key}`);
    expect(r.error?.message).toMatch(/leave them out/);
  });

  it('accepts a goal that brings none of them', async () => {
    const r = await submit({ goal: 'tidy up', agent: 'idle', input: { other: 1 } });
    expect(r.agentId).toMatch(/^a-/);
  });
});

describe('the submit claim', () => {
  it('a claim held by a submit still in flight answers existing with its trace, and no goal is published twice', async () => {
    await effects.create('intake.claimed-1', JSON.stringify({ traceId: 'f'.repeat(32), at: clock }));
    expect(await submit({ agentId: 'claimed-1', goal: 'nap', agent: 'idle' })).toMatchObject({ agentId: 'claimed-1', existing: true, traceId: 'f'.repeat(32) });
  });

  it('a claim whose goal never arrived is taken over after 30 s; the one that takes it starts the agent', async () => {
    await effects.create('intake.stale-1', JSON.stringify({ traceId: 'e'.repeat(32), at: clock - 31_000 }));
    const r = await submit({ agentId: 'stale-1', goal: 'nap', agent: 'idle' });
    expect(r.existing).toBeUndefined();
    expect(r.traceId).not.toBe('e'.repeat(32));
    expect(JSON.parse(new TextDecoder().decode((await effects.get('intake.stale-1'))!.value)).traceId).toBe(r.traceId);
    // Now claimed afresh: the next is told it exists, with the new trace.
    expect(await submit({ agentId: 'stale-1', goal: 'nap', agent: 'idle' })).toMatchObject({ existing: true, traceId: r.traceId });
  });

  it('a goal already published (its claim expired) is reported existing, never as new', async () => {
    const first = await submit({ agentId: 'published-1', goal: 'nap', agent: 'idle' });
    expect(first.existing).toBeUndefined();
    await effects.purge('intake.published-1');
    const again = await submit({ agentId: 'published-1', goal: 'nap', agent: 'idle' });
    expect(again).toMatchObject({ agentId: 'published-1', existing: true });
  });
});

describe('intake with a tool catalog', () => {
  it('reads the catalog afresh for a goal naming a tool the cached copy lacks, and refuses one naming a tool no live runner serves', async () => {
    const c = await createDeployment(srv);
    const tools = await openBucket(c.conn, resourceNames(c.prefix).buckets.tools);
    let now = Date.now();
    const logger = recordingLogger();
    intakes.push(
      startIntake({
        nc: c.conn.nc,
        js: c.conn.js,
        agents: c.agents,
        tools,
        effects: await openBucket(c.conn, resourceNames(c.prefix).buckets.effects),
        subjects: c.subjects,
        registry: createRegistry([idle]),
        deadLetter: { js: c.conn.js, subjects: c.subjects, origin: 'intake', maxPayload: 1024 * 1024 },
        queue: 'test-intake',
        now: () => now,
        logger,
      }),
    );
    await c.conn.nc.flush();
    const submitTo = async (body: Record<string, unknown>) =>
      JSON.parse((await c.conn.nc.request(c.subjects.submit(), new TextEncoder().encode(JSON.stringify(body)), { timeout: 10_000 })).string()) as Reply;
    const toolsOf = async (agentId: string) => {
      // No host runs: read the goal the intake published from the inbox stream.
      const m = await (await c.conn.jsm()).streams.getMessage(resourceNames(c.prefix).streams.inbox, { last_by_subj: c.subjects.agentIn(agentId, 'goal') });
      if (!m) throw new Error(`no goal for ${agentId} in the inbox stream`);
      return decodeMessage(m.data, { expect: 'goal' }).input as { toolDefinitions: { name: string }[]; toolPolicies: Record<string, string> };
    };

    // The first submit caches an empty catalog.
    expect((await toolsOf((await submitTo({ goal: 'one', agent: 'idle' })).agentId!)).toolDefinitions).toEqual([]);
    // A goal naming a tool nobody serves is refused, saying which and what to do, and logged.
    const refused = await submitTo({ goal: 'one and a half', agent: 'idle', tools: ['probe'] });
    expect(refused.agentId).toBeUndefined();
    expect(refused.error?.code).toBe('ERR_UNKNOWN_TOOL');
    expect(refused.error?.message).toMatch(/probe is not in the tool catalog.*Start a tool-runner that serves probe/);
    expect(logger.entries.some((e) => e.level === 'warn' && JSON.stringify(e).includes('probe'))).toBe(true);

    // The tool is registered (through another connection) right after; the cached copy (2 s) lacks it.
    const entry: CatalogTool = { v: 1, definition: { name: 'probe', description: 'the probe', parameters: {} }, policy: 'ask', idempotent: true, destructive: false, timeoutMs: 5000, source: 'test', updatedAt: now };
    const runner: CatalogRunner = { v: 1, runnerId: 'r1', tools: ['probe'], heartbeatAt: now, heartbeatMs: 3_600_000, host: 'test', pid: 1 };
    const other = await openBucket(d.conn, resourceNames(c.prefix).buckets.tools);
    await other.put(catalogKeys.tool('probe'), JSON.stringify(entry));
    await other.put(catalogKeys.runner('r1'), JSON.stringify(runner));

    now += 10;
    // A goal not naming it gets the cached catalog (at most 2 s old)…
    expect((await toolsOf((await submitTo({ goal: 'two', agent: 'idle' })).agentId!)).toolDefinitions).toEqual([]);
    // …one naming it reads the catalog afresh at once and gets it (before the fix: no tools).
    expect((await toolsOf((await submitTo({ goal: 'three', agent: 'idle', tools: ['probe'] })).agentId!)).toolDefinitions).toEqual([entry.definition]);
    // One naming it in its own definitions gets the catalog's definition and policy.
    const four = await toolsOf((await submitTo({ goal: 'four', agent: 'idle', input: { toolDefinitions: [{ name: 'probe', description: 'mine', parameters: {} }], toolPolicies: { probe: 'auto' } } })).agentId!);
    expect(four.toolDefinitions).toEqual([entry.definition]);
    expect(four.toolPolicies).toEqual({ probe: 'ask' });
  });
});

