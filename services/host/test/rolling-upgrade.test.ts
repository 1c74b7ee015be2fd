import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MESSAGE_VERSION, resourceNames, type Message } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';

const tallyV2 = fileURLToPath(new URL('../../../test/fixtures/tally-v2.mjs', import.meta.url));

let srv: TestServer;
let d: Deployment;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents', ERRAND_HOST_RETRY_BASE_MS: '20' } });
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
});

const input = (agentId: string, text: string): Message<'input'> => ({ v: MESSAGE_VERSION, kind: 'input', agentId, text, by: { id: 'test', channel: 'cli' }, at: Date.now() });

describe('a machine version this host lacks (a rolling upgrade)', () => {
  it('is retried — never dead-lettered — until a host that has the version takes it', async () => {
    const old = await d.start('host');
    const agentId = await d.submit({ goal: 'add up', agent: 'tally', input: { expect: 2 } });
    await d.send(input(agentId, '1'));
    await d.waitForRecord(agentId, (r) => r.step === 2);
    old.signal('SIGTERM');
    await old.exited;

    // Only tally@2 (no migration from 1) is running: the input waits, well past the usual 5 deliveries.
    const upgraded = await d.start('host', { ERRAND_AGENT_MODULES: tallyV2 });
    await d.send(input(agentId, '2'));
    await upgraded.waitForLine(/"code":"ERR_MACHINE_VERSION".*"deliveries":7|"deliveries":7.*"code":"ERR_MACHINE_VERSION"/, 30_000);
    expect(upgraded.stdout()).not.toContain('dead-lettered');
    expect((await d.record(agentId))?.step).toBe(2);

    // A host with tally@1 comes back: it takes the waiting input and the agent finishes.
    await d.start('host');
    const done = await d.waitForStatus(agentId, ['done', 'failed']);
    expect(done).toMatchObject({ status: 'done', output: { sum: 3 } });
    const dlq = await (await d.conn.jsm()).streams.info(resourceNames(d.prefix).streams.dlq);
    expect(dlq.state.messages).toBe(0);
  });
});
