// The agent routes against a real gateway, host, planner (scripted model) and tool runner, on a
// server that requires credentials: each process connects as its own role, the gateway as the
// `gateway` identity — the one hosts trust to name the signed-in person on a decision.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '@errand/testing';
import { AgentModulesError, loadRegistry } from '../src/registry.js';
import { ALICE, BOB, gatewayWorld, urlOf, type GatewayWorld } from './helpers.js';

let srv: TestServer;
let w: GatewayWorld;

beforeAll(async () => {
  srv = await startTestServer({ auth: true });
  w = await gatewayWorld(srv, {
    steps: [
      { match: 'Tidy X', reply: { toolCalls: [{ name: 'wipe', arguments: { path: 'x.txt' } }] } },
      { match: 'Tidy X', expect: { contains: ['"wiped":"x.txt"'] }, reply: { content: 'Deleted x.txt.' } },
      { match: 'Tidy Y', reply: { toolCalls: [{ name: 'wipe', arguments: { path: 'y.txt' } }] } },
      { match: 'Tidy Y', expect: { contains: ['denied'] }, reply: { content: 'Left y.txt.' } },
      { match: 'Pick a city', reply: { toolCalls: [{ name: 'ask_human', arguments: { question: 'Which city?' } }] } },
      { match: 'Pick a city', expect: { contains: ['Rome'] }, reply: { content: 'Rome it is.' } },
    ],
    tools: { wipe: { behaviour: (r) => ({ output: { wiped: (r.args as { path: string }).path } }), policy: 'ask' } },
  });
});
afterAll(async () => {
  await w?.stop();
  await srv?.stop();
});

type Summary = { agentId: string; status: string; goal: string; labels: Record<string, string>; updatedAt: string; waiting?: { kind: string; requestId: string; argsHash?: string; question?: string } };
const json = async <T>(res: Response, status = 200): Promise<T> => {
  const body = (await res.json()) as T;
  expect(res.status, JSON.stringify(body)).toBe(status);
  return body;
};
const submit = async (body: Record<string, unknown>) => (await json<{ agentId: string }>(await w.api('/api/agents', { json: body }), 201)).agentId;
const get = async (id: string) => json<{ agent: Summary; record: Record<string, unknown> }>(await w.api(`/api/agents/${id}`));
/** Polls the API until the agent matches (bounded). */
const until = async (id: string, test: (a: Summary) => boolean, timeoutMs = 30_000): Promise<Summary> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await w.d.waitForRecord(id, () => true, 5_000).catch(() => undefined);
    void r;
    const { agent } = await get(id);
    if (test(agent)) return agent;
    if (Date.now() > deadline) throw new Error(`agent ${id}: no match within ${timeoutMs} ms (last ${JSON.stringify(agent)})`);
    await w.d.waitForRecord(id, (x) => x.updatedAt > Date.parse(agent.updatedAt), 5_000).catch(() => undefined);
  }
};
const journalEvents = async (id: string) => (await json<{ entries: { event: { type: string; by?: unknown; decision?: string } }[] }>(await w.api(`/api/agents/${id}/journal`))).entries.map((e) => e.event);

describe('submit, get, list', () => {
  it('submits a goal and shows the agent with its record', async () => {
    const id = await submit({ goal: 'nap briefly', agent: 'sleeper', input: { delayMs: 50 }, labels: { team: 'ops' } });
    expect(id).toMatch(/^a-/);
    const again = await json<{ agentId: string; existing: boolean }>(await w.api('/api/agents', { json: { goal: 'nap briefly', agent: 'sleeper', agentId: id } }), 201);
    expect(again).toMatchObject({ agentId: id, existing: true });
    const done = await until(id, (a) => a.status === 'done');
    // Started by the signed-in person, whom the gateway vouched for.
    expect(done).toMatchObject({ agentId: id, goal: 'nap briefly', labels: { team: 'ops' }, submittedBy: { id: 'alice', channel: 'gateway' } });
    const { record } = await get(id);
    expect(record).toMatchObject({ timers: {}, pending: {}, approvals: [] });
  });

  it('lists with filters and cursor pages that neither repeat nor skip', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await submit({ goal: `page test ${i} zebra`, agent: 'sleeper', input: { delayMs: 600_000 }, labels: { batch: 'p1' } }));
    await Promise.all(ids.map((id) => w.d.waitForStatus(id, ['running'])));
    const all = await json<{ agents: Summary[] }>(await w.api('/api/agents?label=batch:p1&limit=100'));
    expect(all.agents.map((a) => a.agentId).sort()).toEqual([...ids].sort());
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await json<{ agents: Summary[]; nextCursor?: string }>(await w.api(`/api/agents?label=batch:p1&limit=2${cursor ? `&cursor=${cursor}` : ''}`));
      seen.push(...page.agents.map((a) => a.agentId));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(all.agents.map((a) => a.agentId));
    // Most recently updated first.
    const times = all.agents.map((a) => a.updatedAt);
    expect([...times].sort().reverse()).toEqual(times);
    // Text over goal and id, status, agent.
    expect((await json<{ agents: Summary[] }>(await w.api('/api/agents?q=ZEBRA&status=running,waiting'))).agents).toHaveLength(5);
    expect((await json<{ agents: Summary[] }>(await w.api(`/api/agents?q=${ids[2]}`))).agents.map((a) => a.agentId)).toEqual([ids[2]]);
    expect((await json<{ agents: Summary[] }>(await w.api('/api/agents?label=batch:p1&status=done'))).agents).toHaveLength(0);
    expect((await json<{ agents: Summary[] }>(await w.api('/api/agents?label=batch:p1&agent=tally'))).agents).toHaveLength(0);
    expect((await json<{ agents: Summary[] }>(await w.api('/api/agents?label=batch:p1&agent=sleeper&status=running'))).agents.map((a) => a.agentId).sort()).toEqual([...ids].sort());
    expect((await w.api('/api/agents?label=batch')).status).toBe(400);
    expect((await w.api('/api/agents?cursor=garbage')).status).toBe(400);
    for (const id of ids) expect((await w.api(`/api/agents/${id}/cancel`, { json: { reason: 'test over' } })).status).toBe(202);
    await Promise.all(ids.map((id) => w.d.waitForStatus(id, ['cancelled'])));
  });
});

describe('decisions', () => {
  it('an approval with a wrong argsHash is 409 and the agent still waits; the right one, with a forged `by`, is decided by the token\'s person', async () => {
    const id = await submit({ goal: 'Tidy X' });
    const waiting = await until(id, (a) => a.waiting?.kind === 'approval');
    const { requestId, argsHash } = waiting.waiting!;
    expect(argsHash).toBeTruthy();

    const wrong = await w.api(`/api/agents/${id}/approve`, { json: { requestId, argsHash: `${argsHash}0` } });
    expect(wrong.status).toBe(409);
    expect(await wrong.json()).toMatchObject({ code: 'ERR_ARGS_CHANGED' });
    const other = await w.api(`/api/agents/${id}/approve`, { json: { requestId: 'tools-99', argsHash } });
    expect(other.status).toBe(409);
    expect(await other.json()).toMatchObject({ code: 'ERR_NOTHING_PENDING' });
    expect((await get(id)).agent).toMatchObject({ status: 'waiting', waiting: { requestId, argsHash } });

    const ok = await w.api(`/api/agents/${id}/approve`, {
      json: { requestId, argsHash, by: { id: 'mallory', channel: 'slack', name: 'Mallory' } },
      headers: { Authorization: `Bearer ${BOB.token}` },
    });
    expect(await json(ok, 202)).toEqual({ requestId });
    const done = await until(id, (a) => a.status === 'done');
    expect(done.waiting).toBeUndefined();
    const approval = (await journalEvents(id)).find((e) => e.type === 'approval')!;
    expect(approval).toMatchObject({ decision: 'approve', by: { id: 'bob', channel: 'gateway', name: 'bob' } });
    expect(JSON.stringify(approval)).not.toContain('mallory');
    // Decided: a second approval finds nothing pending.
    expect((await w.api(`/api/agents/${id}/approve`, { json: { requestId, argsHash } })).status).toBe(409);
  });

  it('deny', async () => {
    const id = await submit({ goal: 'Tidy Y' });
    const { waiting } = await until(id, (a) => a.waiting?.kind === 'approval');
    expect(await json(await w.api(`/api/agents/${id}/deny`, { json: { requestId: waiting!.requestId, argsHash: waiting!.argsHash } }), 202)).toEqual({ requestId: waiting!.requestId });
    await until(id, (a) => a.status === 'done');
    expect((await journalEvents(id)).find((e) => e.type === 'approval')).toMatchObject({ decision: 'deny', by: { id: 'alice', channel: 'gateway' } });
  });

  it('answer: a stale requestId is 409, the open one is taken', async () => {
    const id = await submit({ goal: 'Pick a city' });
    const { waiting } = await until(id, (a) => a.waiting?.kind === 'input');
    expect(waiting).toMatchObject({ question: 'Which city?' });
    const stale = await w.api(`/api/agents/${id}/answer`, { json: { text: 'Oslo', requestId: 'nope' } });
    expect(stale.status).toBe(409);
    expect(await stale.json()).toMatchObject({ code: 'ERR_NOTHING_PENDING' });
    await json(await w.api(`/api/agents/${id}/answer`, { json: { text: 'Rome', requestId: waiting!.requestId } }), 202);
    await until(id, (a) => a.status === 'done');
    const input = (await journalEvents(id)).find((e) => e.type === 'input');
    expect(input).toMatchObject({ by: { id: 'alice', channel: 'gateway' } });
  });

  it("a custom machine's wait (the reviewer example's errand.wait) is shown and decided the same way, from the record alone", async () => {
    const id = await submit({ goal: 'review a wipe', agent: 'reviewer', input: { tool: 'wipe', args: { path: 'r.txt' } } });
    const asked = await until(id, (a) => a.waiting?.kind === 'approval');
    expect(asked.waiting).toMatchObject({ requestId: 'review-1', summary: 'run wipe', calls: [{ tool: 'wipe', args: { path: 'r.txt' } }], argsHash: expect.any(String), deadline: expect.any(Number) });
    const { requestId, argsHash } = asked.waiting!;
    expect((await w.api(`/api/agents/${id}/approve`, { json: { requestId, argsHash: `${argsHash}x` } })).status).toBe(409);
    await json(await w.api(`/api/agents/${id}/approve`, { json: { requestId, argsHash } }), 202);
    const note = await until(id, (a) => a.waiting?.kind === 'input');
    expect(note.waiting).toMatchObject({ requestId: 'note-1', question: 'The call ran. Any note to file with it?' });
    expect((await json<{ agents: Summary[] }>(await w.api('/api/agents?status=waiting&agent=reviewer'))).agents.map((a) => a.agentId)).toContain(id);
    await json(await w.api(`/api/agents/${id}/answer`, { json: { text: 'filed', requestId: 'note-1' } }), 202);
    const done = await w.d.waitForStatus(id, ['done']);
    expect(done.output).toMatchObject({ ran: true, result: { wiped: 'r.txt' }, note: 'filed' });
    expect((await get(id)).agent.waiting).toBeUndefined();
  });

  it('tell, pause, resume, cancel; a finished agent is 409 ERR_AGENT_ENDED', async () => {
    const id = await submit({ goal: 'add up', agent: 'tally', input: { expect: 2 } });
    await w.d.waitForStatus(id, ['running']);
    await json(await w.api(`/api/agents/${id}/tell`, { json: { text: '3' } }), 202);
    await json(await w.api(`/api/agents/${id}/pause`, { method: 'POST' }), 202);
    await w.d.waitForStatus(id, ['paused']);
    // Who paused it is on the record, as the gateway vouched for the token's person.
    const paused = await json<{ agent: { control?: unknown } }>(await w.api(`/api/agents/${id}`));
    expect(paused.agent.control).toMatchObject({ action: 'pause', by: { id: 'alice', channel: 'gateway' } });
    await json(await w.api(`/api/agents/${id}/tell`, { json: { text: '4' } }), 202);
    await json(await w.api(`/api/agents/${id}/resume`, { json: {} }), 202);
    const done = await w.d.waitForStatus(id, ['done']);
    expect(done.output).toMatchObject({ sum: 7, count: 2 });
    // What was told is recorded as told by the token's person, as the gateway vouched.
    const told = (await journalEvents(id)).filter((e) => e.type === 'input');
    expect(told).toHaveLength(2);
    for (const e of told) expect(e.by).toEqual({ id: 'alice', channel: 'gateway', name: 'alice' });
    for (const path of ['tell', 'cancel', 'pause', 'answer']) {
      const res = await w.api(`/api/agents/${id}/${path}`, { json: path === 'tell' || path === 'answer' ? { text: '1' } : {} });
      expect(res.status, path).toBe(409);
      expect(await res.json()).toMatchObject({ code: 'ERR_AGENT_ENDED' });
    }
    const sleeper = await submit({ goal: 'sleep long', agent: 'sleeper', input: { delayMs: 600_000 } });
    await w.d.waitForStatus(sleeper, ['running']);
    await json(await w.api(`/api/agents/${sleeper}/cancel`, { json: { reason: 'enough' } }), 202);
    expect((await w.d.waitForStatus(sleeper, ['cancelled'])).error?.message).toBe('enough');
    const cancelled = await json<{ agent: { control?: unknown } }>(await w.api(`/api/agents/${sleeper}`));
    expect(cancelled.agent.control).toMatchObject({ action: 'cancel', by: { id: 'alice', channel: 'gateway', name: 'alice' }, reason: 'enough' });
  });
});

describe('journal, replay, fork, diff', () => {
  it('the journal is redacted; replay verifies; a fork runs; the diff shows both', async () => {
    const secret = 'sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD';
    const id = await submit({ goal: `nap with key ${secret}`, agent: 'sleeper', input: { delayMs: 50 } });
    await w.d.waitForStatus(id, ['done']);
    const journal = await w.api(`/api/agents/${id}/journal`);
    const text = await journal.text();
    expect(journal.status).toBe(200);
    expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');

    const replay = await json<{ steps: { step: number; summary: string }[]; verification?: { ok: boolean } }>(await w.api(`/api/agents/${id}/replay`));
    expect(replay.steps.length).toBeGreaterThanOrEqual(2);
    expect(replay.verification).toMatchObject({ ok: true });
    const partial = await json<{ steps: unknown[]; verification?: unknown }>(await w.api(`/api/agents/${id}/replay?step=1`));
    expect(partial.steps).toHaveLength(1);
    expect(partial.verification).toBeUndefined();
    expect((await w.api(`/api/agents/${id}/replay?step=99`)).status).toBe(422);

    const forkRes = await w.api(`/api/agents/${id}/fork`, { json: { at: 1 } });
    const fork = await json<{ agentId: string }>(forkRes, 201);
    expect(fork.agentId).not.toBe(id);
    // The fork's goal goes straight to its inbox: the host records who the gateway vouched for.
    expect((await w.d.waitForStatus(fork.agentId, ['done'])).submittedBy).toEqual({ id: 'alice', channel: 'gateway', name: 'alice' });
    const diff = await json<{ a: string; b: string; rows: unknown[] }>(await w.api(`/api/diff?a=${id}&b=${fork.agentId}`));
    expect(diff).toMatchObject({ a: id, b: fork.agentId });
    expect((await w.api(`/api/diff?a=${id}`)).status).toBe(400);
  });

  it('agent definitions that cannot be loaded are ERR_AGENT_MODULES, saying which; an unknown agent is still 404', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'errand-gateway-modules-'));
    const noAgents = join(dir, 'no-agents.mjs');
    await writeFile(noAgents, 'export const helpers = [];\n');
    await expect(loadRegistry([noAgents])).rejects.toMatchObject({ name: 'AgentModulesError', code: 'ERR_AGENT_MODULES', message: expect.stringContaining("has no 'agents' export") });
    await expect(loadRegistry([join(dir, 'missing.mjs')])).rejects.toBeInstanceOf(AgentModulesError);
    expect((await loadRegistry(['@errand/example-agents'])).latest('tally').id).toBe('tally');

    // A second gateway on the same deployment, with a module that does not exist.
    const id = await submit({ goal: 'nap', agent: 'sleeper', input: { delayMs: 10 } });
    await w.d.waitForStatus(id, ['done']);
    const broken = await w.d.start('gateway', { ERRAND_GATEWAY_PORT: '0', ERRAND_AGENT_MODULES: join(dir, 'missing.mjs') });
    try {
      const base = urlOf(await broken.waitForLine(/"msg":"gateway ready"/));
      const call = (path: string, body?: unknown) =>
        fetch(`${base}${path}`, { method: body ? 'POST' : 'GET', headers: { Authorization: `Bearer ${ALICE.token}`, 'Content-Type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
      for (const res of [await call(`/api/agents/${id}/replay`), await call(`/api/agents/${id}/fork`, { at: 1 })]) {
        expect(res.status).toBe(500);
        expect(await res.json()).toMatchObject({ code: 'ERR_AGENT_MODULES', message: expect.stringContaining('missing.mjs') });
      }
      const unknown = await call('/api/agents/a-nobody/replay');
      expect(unknown.status).toBe(404);
      expect(await unknown.json()).toMatchObject({ code: 'ERR_AGENT_NOT_FOUND' });
    } finally {
      broken.signal('SIGTERM');
      await broken.exited;
    }
  });
});
