import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientError, ClientErrorCode, createClient, type ErrandClient } from '@errand/client';
import { publishMessage } from '@errand/nats';
import { MESSAGE_VERSION, messageIds, newAgentId } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';

// The submit reply comes once the goal is in the agent's inbox, before a host has applied it and
// written the record. A command sent at once must still find the agent (#17: `answer` right after
// a submit, through `errand mcp`, failed 'no agent' 1 in 21 times, and the agent waited forever).

let srv: TestServer;
let d: Deployment;
let client: ErrandClient;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
  await d.start('host');
  // As a person's CLI or errand mcp connects: the operator role, which may read the inbox stream.
  const creds = d.env('operator').NATS_CREDS;
  client = await createClient(creds ? await srv.connect({ credsFile: creds }) : d.conn, d.prefix);
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
});

const codeOf = (p: Promise<unknown>) => p.then(() => 'resolved', (err: unknown) => (err instanceof ClientError ? err.code : String(err)));

describe('a command sent right after a submit finds the agent', () => {
  it('answer in the same tick as the submit reply reaches the agent: 100 tries, 0 lost', async () => {
    const lost: string[] = [];
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      // `tally` with expect 1 finishes with the first number it is sent: the answer reached it, or it waits forever.
      const { agentId } = await client.submit('count one number', { agent: 'tally', input: { expect: 1 } });
      await client.answer(agentId, String(i), { id: 'tester', channel: 'test' }).catch((err: unknown) => lost.push(`${agentId}: ${String(err)}`));
      ids.push(agentId);
    }
    expect(lost).toEqual([]);
    for (const [i, agentId] of ids.entries()) {
      const r = await d.waitForStatus(agentId, ['done', 'failed'], 30_000);
      expect(r.output, agentId).toMatchObject({ sum: i, count: 1 });
    }
  }, 180_000);

  it('pause and cancel right after a submit find the agent too', async () => {
    const paused = await client.submit('count one number', { agent: 'tally', input: { expect: 1 } });
    await client.control(paused.agentId, 'pause', { id: 'tester', channel: 'test' });
    expect((await d.waitForStatus(paused.agentId, ['paused'])).status).toBe('paused');
    const cancelled = await client.submit('count one number', { agent: 'tally', input: { expect: 1 } });
    await client.control(cancelled.agentId, 'cancel', { id: 'tester', channel: 'test' });
    expect((await d.waitForStatus(cancelled.agentId, ['cancelled', 'done'])).status).toBe('cancelled');
  }, 60_000);

  it('find and watch right after a submit: the record, and the events to the end', async () => {
    const found = await client.submit('count one number', { agent: 'tally', input: { expect: 1 } });
    expect(await client.find(found.agentId)).toMatchObject({ agentId: found.agentId, machine: { id: 'tally' } });
    for (let i = 0; i < 20; i++) {
      const { agentId } = await client.submit('count one number', { agent: 'tally', input: { expect: 1 } });
      const kinds: string[] = [];
      const watching = (async () => {
        for await (const e of client.watch(agentId, { signal: AbortSignal.timeout(30_000) })) kinds.push(e.kind);
      })();
      await client.answer(agentId, '1', { id: 'tester', channel: 'test' });
      await watching;
      expect(kinds.at(-1), agentId).toBe('event.done');
    }
  }, 120_000);

  it('an id nobody submitted is still refused at once with ERR_AGENT_NOT_FOUND', async () => {
    const nobody = newAgentId(Date.now());
    expect(await codeOf(client.answer(nobody, '1', { id: 'tester', channel: 'test' }))).toBe(ClientErrorCode.NotFound);
    expect(await codeOf(client.control(nobody, 'cancel', { id: 'tester', channel: 'test' }))).toBe(ClientErrorCode.NotFound);
    expect(await codeOf(client.decide(nobody, 'approve', { id: 'tester', channel: 'test' }))).toBe(ClientErrorCode.NotFound);
    expect(await codeOf(client.find(nobody))).toBe(ClientErrorCode.NotFound);
    expect(await codeOf((async () => {
      for await (const _ of client.watch(nobody)) break;
    })())).toBe(ClientErrorCode.NotFound);
  });

  it('a goal no host takes up: the command waits for it a while, then says no host started the agent (ERR_NO_HOST)', async () => {
    // A deployment with no host: the goal stays in the inbox.
    const idle = await createDeployment(srv);
    try {
      const agentId = newAgentId(Date.now());
      await publishMessage(idle.conn, idle.subjects.agentIn(agentId, 'goal'), { v: MESSAGE_VERSION, kind: 'goal', agentId, goal: 'nobody runs this', agent: 'tally', at: Date.now() }, { msgId: messageIds.goal(agentId) });
      const c = await createClient(idle.conn, idle.prefix);
      const err = await c.answer(agentId, '1', { id: 'tester', channel: 'test' }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(ClientError);
      expect((err as ClientError).code).toBe(ClientErrorCode.NoHost);
      expect((err as ClientError).message).toContain(`agent ${agentId} was submitted but no host has started it`);
    } finally {
      await idle.stopAll();
    }
  }, 60_000);
});
