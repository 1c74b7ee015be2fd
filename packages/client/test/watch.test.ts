import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientErrorCode, createClient, type ErrandClient } from '@errand/client';
import type { ProgressEvent } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';

let srv: TestServer;
let d: Deployment;
let client: ErrandClient;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
  await d.start('host');
  client = await createClient(d.conn, d.prefix);
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
});

const me = { id: 'test', channel: 'cli' };

async function collect(events: AsyncIterable<ProgressEvent>): Promise<ProgressEvent[]> {
  const out: ProgressEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

describe('client.watch: an async iterator of an agent\'s progress events', () => {
  it('yields the stored events, then live ones, and ends after the final step\'s events', async () => {
    const { agentId } = await client.submit('add up', { agent: 'tally', input: { expect: 2 } });
    await d.waitForStatus(agentId, ['running']);
    const watching = collect(client.watch(agentId));
    await client.answer(agentId, '2', me);
    await client.answer(agentId, '3', me);
    const events = await watching;
    const steps = events.filter((e) => e.kind === 'event.step').map((e) => (e as { step: number }).step);
    expect(steps).toEqual([1, 2, 3]);
    expect(events.filter((e) => e.kind === 'event.done')).toEqual([expect.objectContaining({ output: expect.objectContaining({ sum: 5 }) })]);
    expect(events.some((e) => e.kind === 'event.state' && e.status === 'done')).toBe(true);
    expect(events.every((e) => e.agentId === agentId)).toBe(true);

    // Watching an agent that already ended replays its events and ends on its own.
    expect((await collect(client.watch(agentId))).map((e) => e.kind)).toEqual(events.map((e) => e.kind));
  });

  it('ends on a cancel, and stops early when its signal aborts', async () => {
    const { agentId } = await client.submit('nap', { agent: 'sleeper', input: { delayMs: 600_000 } });
    await d.waitForStatus(agentId, ['running']);
    const abort = new AbortController();
    const early: ProgressEvent[] = [];
    for await (const e of client.watch(agentId, { signal: abort.signal })) {
      early.push(e);
      abort.abort();
    }
    expect(early).toHaveLength(1);

    const watching = collect(client.watch(agentId));
    await client.control(agentId, 'cancel', me, 'not needed');
    const events = await watching;
    expect(events.at(-1)).toMatchObject({ kind: 'event.state', status: 'cancelled' });
  });

  it('says when there is no such agent', async () => {
    await expect(collect(client.watch('a-nobody'))).rejects.toMatchObject({ code: ClientErrorCode.NotFound });
  });
});
