import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { headers, openBucket } from '@errand/nats';
import { encodeMessage, ErrorCode, Header, MESSAGE_VERSION, resourceNames, type Message } from '@errand/protocols';
import { createRegistry, defineAgent, errandActions, type AgentInput } from '@errand/core';
import { startIntake } from '@errand/runtime/internal';
import { createDeployment, recordingLogger, startTestServer, type Deployment, type TestServer } from '@errand/testing';

/**
 * A host that dies between claiming a submit's agent id and publishing its goal: the resend (same
 * agent id) must publish the goal, and the agent runs exactly once.
 */

let srv: TestServer;
let d: Deployment;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
});

interface Reply {
  agentId?: string;
  existing?: boolean;
  traceId?: string;
  error?: { code: string; message: string };
}

const TRACE = 'a1b2c3d4'.repeat(4);

async function submit(body: Record<string, unknown>, timeout = 10_000): Promise<Reply> {
  const h = headers();
  h.set('traceparent', `00-${TRACE}-${'1'.repeat(16)}-01`);
  const reply = await d.conn.nc.request(d.subjects.submit(), new TextEncoder().encode(JSON.stringify(body)), { timeout, headers: h });
  return JSON.parse(reply.string()) as Reply;
}

async function goalsInInbox(agentId: string): Promise<number> {
  const jsm = await d.conn.jsm();
  const info = await jsm.streams.info(resourceNames(d.prefix).streams.inbox, { subjects_filter: d.subjects.agentIn(agentId, 'goal') });
  return Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
}

describe('a host that dies at intake.after-claim', () => {
  it('leaves a claim without a goal; the resend publishes it, answers existing with the first trace, and the agent runs once', async () => {
    const doomed = d.spawn('host', { ERRAND_CRASH_AT: 'intake.after-claim' });
    // Ready means its intake is subscribed; wait for that before submitting.
    await doomed.waitForLine(/"msg":"host ready"/, 20_000);
    const body = { agentId: 'after-claim-1', goal: 'nothing to add', agent: 'tally', input: { expect: 0 } };
    await expect(submit(body, 3_000)).rejects.toThrow();
    expect((await doomed.exited).signal).toBe('SIGKILL');
    expect(doomed.stderr()).toContain('crash point intake.after-claim reached');
    // The claim is there, the goal is not (no host ran since: the inbox still holds any goal): before the fix every resend was told the agent exists
    // and it never ran.
    expect(await goalsInInbox('after-claim-1')).toBe(0);
    expect(await d.record('after-claim-1')).toBeUndefined();

    await d.start('host');
    // The first submitter never got an answer; the resend is told it exists, under the first trace.
    expect(await submit(body)).toMatchObject({ agentId: 'after-claim-1', existing: true, traceId: TRACE });
    const done = await d.waitForStatus('after-claim-1', ['done', 'failed'], 20_000);
    expect(done.status).toBe('done');
    expect(done.trace).toContain(TRACE);
    // Resent again (record there now): answered existing, nothing published.
    const inbox = resourceNames(d.prefix).streams.inbox;
    const jsm = await d.conn.jsm();
    const before = (await jsm.streams.info(inbox)).state.last_seq;
    expect(await submit(body)).toMatchObject({ agentId: 'after-claim-1', existing: true, traceId: TRACE });
    expect((await jsm.streams.info(inbox)).state.last_seq).toBe(before);

    // A late duplicate of the goal under another message id (past JetStream's window) is acked by
    // the host and not applied: the journal keeps its one goal step.
    const late: Message<'goal'> = { v: MESSAGE_VERSION, kind: 'goal', agentId: 'after-claim-1', goal: 'nothing to add', agent: 'tally', input: { expect: 0 }, at: Date.now() };
    const encoded = encodeMessage(late, { format: 'json' });
    const h = headers();
    if (encoded.contentType) h.set(Header.ContentType, encoded.contentType);
    h.set('Nats-Msg-Id', 'late-duplicate-goal');
    expect((await d.conn.js.publish(d.subjects.agentIn('after-claim-1', 'goal'), encoded.data, { headers: h })).duplicate).toBe(false);
    const inboxConsumers = async () => {
      const out: { pending: number; ackPending: number }[] = [];
      for await (const c of jsm.consumers.list(resourceNames(d.prefix).streams.inbox)) out.push({ pending: c.num_pending, ackPending: c.num_ack_pending });
      return out;
    };
    await expect.poll(inboxConsumers, { timeout: 10_000, interval: 100 }).toSatisfy((cs: { pending: number; ackPending: number }[]) => cs.length > 0 && cs.every((c) => c.pending === 0 && c.ackPending === 0));
    expect((await d.journal('after-claim-1')).map((j) => j.step)).toEqual([1]);
    expect((await d.record('after-claim-1'))?.step).toBe(1);
  }, 60_000);
});

describe('a submit that fails on the way (the inbox stream unavailable)', () => {
  it('is refused with ERR_UNAVAILABLE (a client sends it again), logged as a warning, and its claim given back', async () => {
    const c = await createDeployment(srv);
    const idle = defineAgent({
      id: 'idle',
      version: 1,
      machine: setup({ types: {} as { input: AgentInput }, actions: errandActions }).createMachine({ id: 'idle', initial: 'waiting', states: { waiting: {} } }),
    });
    const effects = await openBucket(c.conn, resourceNames(c.prefix).buckets.effects);
    const logger = recordingLogger();
    const sub = startIntake({
      nc: c.conn.nc,
      js: c.conn.js,
      agents: c.agents,
      effects,
      subjects: c.subjects,
      registry: createRegistry([idle]),
      deadLetter: { js: c.conn.js, subjects: c.subjects, origin: 'intake', maxPayload: 1024 * 1024 },
      queue: 'test-intake-unavailable',
      logger,
    });
    try {
      await c.conn.nc.flush();
      // No stream takes the goal: JetStream answers the publish with no responders, as while a node restarts.
      await (await c.conn.jsm()).streams.delete(resourceNames(c.prefix).streams.inbox);
      const reply = JSON.parse(
        (await c.conn.nc.request(c.subjects.submit(), new TextEncoder().encode(JSON.stringify({ agentId: 'unavailable-1', goal: 'nap', agent: 'idle' })), { timeout: 10_000 })).string(),
      ) as Reply;
      expect(reply.agentId).toBeUndefined();
      expect(reply.error?.code).toBe(ErrorCode.Unavailable);
      expect(reply.error?.message).toMatch(/send the same submit, with the same agentId, again/);
      expect(logger.entries.some((e) => e.level === 'warn' && e.msg.startsWith('submit refused for a passing failure'))).toBe(true);
      // The claim was given back: the resend is not told the agent exists.
      expect(await effects.get('intake.unavailable-1')).toMatchObject({ operation: 'DEL' });
      // A refusal of the goal itself keeps its own code.
      const invalid = JSON.parse((await c.conn.nc.request(c.subjects.submit(), new TextEncoder().encode(JSON.stringify({ goal: 'nap', agent: 'nobody' })), { timeout: 10_000 })).string()) as Reply;
      expect(invalid.error?.code).toBe('ERR_UNKNOWN_AGENT');
    } finally {
      sub.unsubscribe();
    }
  });
});
