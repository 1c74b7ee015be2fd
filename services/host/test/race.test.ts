import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMessage } from '@errand/protocols';
import { startTestServer, type TestServer } from '@errand/testing';
import { deploy, inputMessage, type Deployment } from './helpers.js';

let srv: TestServer;
let d: Deployment;
beforeAll(async () => {
  srv = await startTestServer();
  d = await deploy(srv);
  await Promise.all([d.startHost(), d.startHost()]);
});
afterAll(async () => {
  await d?.stopHosts();
  await srv?.stop();
});

describe('two hosts racing on one agent', () => {
  it('apply every event exactly once: the result equals a serial application of all of them', async () => {
    const n = 200;
    const agentId = await d.submit({ goal: 'add everything up', agent: 'tally', input: { expect: n } });
    await d.waitForStatus(agentId, ['running']);
    const numbers = Array.from({ length: n }, (_, i) => i + 1);
    // Published all at once: both hosts pull from the shared consumer and contend for the record.
    await Promise.all(
      numbers.map((i) => d.conn.js.publish(d.subjects.agentIn(agentId, 'input'), encodeMessage(inputMessage(agentId, String(i))).data, { msgID: `in-${i}` })),
    );
    const done = await d.waitForStatus(agentId, ['done', 'failed'], 120_000);
    expect(done.status).toBe('done');
    const output = done.output as { sum: number; count: number; seen: string[] };
    expect(output.count).toBe(n);
    expect(output.sum).toBe((n * (n + 1)) / 2);
    expect([...output.seen].map(Number).sort((a, b) => a - b)).toEqual(numbers);
    expect(done.step).toBe(n + 1);
    const journal = await d.journal(agentId);
    expect(journal.map((j) => j.step)).toEqual(Array.from({ length: n + 1 }, (_, i) => i + 1));
  }, 150_000);
});
