import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientErrorCode, createClient, retrySubmit, SUBMIT_RETRY, submitBackoffMs } from '@errand/client';
import { ErrorCode } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';

describe('the submit retry policy', () => {
  it('retries a lost answer and a passing refusal, never a refusal of the goal or a request no host hears, and stops at 5 tries or 15 s', () => {
    expect(retrySubmit({ noAnswer: 'timeout' }, 1, 0)).toBe(true);
    expect(retrySubmit({ noAnswer: 'disconnected' }, 1, 0)).toBe(true);
    expect(retrySubmit({ noAnswer: 'no-responders' }, 1, 0)).toBe(false);
    expect(retrySubmit({ noAnswer: 'other' }, 1, 0)).toBe(false);
    expect(retrySubmit({ refusedWith: ErrorCode.Unavailable }, 1, 0)).toBe(true);
    for (const code of ['ERR_INVALID', 'ERR_UNKNOWN_AGENT', 'ERR_UNKNOWN_TOOL', 'ERR_RATE_LIMITED', 'ERR_INTERNAL', undefined]) expect(retrySubmit({ refusedWith: code }, 1, 0)).toBe(false);
    expect(retrySubmit({ noAnswer: 'timeout' }, SUBMIT_RETRY.attempts - 1, 0)).toBe(true);
    expect(retrySubmit({ noAnswer: 'timeout' }, SUBMIT_RETRY.attempts, 0)).toBe(false);
    expect(retrySubmit({ refusedWith: ErrorCode.Unavailable }, 1, SUBMIT_RETRY.withinMs)).toBe(false);
  });

  it('backs off doubling from 250 ms to at most 2 s, jittered between half and all of it', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => submitBackoffMs(n, () => 1))).toEqual([250, 500, 1000, 2000, 2000, 2000]);
    expect([1, 2, 3, 4].map((n) => submitBackoffMs(n, () => 0))).toEqual([125, 250, 500, 1000]);
  });
});

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

describe('client.submit without an agent id', () => {
  it('sends one under a new id; a try whose host died before answering is sent again under it, and one agent runs', async () => {
    const client = await createClient(d.conn, d.prefix);
    // The only host dies between claiming the id and publishing the goal: the first try gets no answer.
    const doomed = d.spawn('host', { ERRAND_CRASH_AT: 'intake.after-claim' });
    await doomed.waitForLine(/"msg":"host ready"/, 20_000);
    const submitted = client.submit('nothing to add', { agent: 'tally', input: { expect: 0 } });
    expect((await doomed.exited).signal).toBe('SIGKILL');
    await d.start('host');
    const { agentId, existing } = await submitted;
    expect(agentId).toMatch(/^a-/);
    // The retry was told the id exists (its first try claimed it); to this caller it is new.
    expect(existing).toBe(false);
    expect((await d.waitForStatus(agentId, ['done', 'failed'], 20_000)).status).toBe('done');
    expect((await d.journal(agentId)).map((j) => j.step)).toEqual([1]);
    // Only one agent in the bucket.
    const keys: string[] = [];
    for await (const k of await d.agents.keys()) keys.push(k);
    expect(keys).toEqual([agentId]);
  }, 60_000);

  it('a refusal of the goal itself is thrown at once, not retried', async () => {
    const client = await createClient(d.conn, d.prefix);
    const started = Date.now();
    await expect(client.submit('x', { agent: 'no-such-agent' })).rejects.toMatchObject({ code: ClientErrorCode.Refused, reason: 'ERR_UNKNOWN_AGENT' });
    expect(Date.now() - started).toBeLessThan(SUBMIT_RETRY.firstBackoffMs * 8);
  });
});
