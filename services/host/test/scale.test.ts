import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '@errand/testing';
import { deploy, type Deployment } from './helpers.js';

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

describe('many agents', () => {
  it('1,000 agents across two host processes all reach their final state', async () => {
    const n = 1000;
    const done = new Set<string>();
    let allDone: () => void = () => {};
    const finished = new Promise<void>((resolve) => (allDone = resolve));
    const ids = new Set<string>();
    // Core subscription to every agent's done event (JetStream publishes reach it too).
    const sub = d.conn.nc.subscribe(d.subjects.agentEventAll(undefined, 'done'), {
      callback: (_err, msg) => {
        const parsed = d.subjects.parse(msg.subject);
        if (parsed.type === 'agent.ev') done.add(parsed.agentId);
        if (ids.size === n && [...ids].every((id) => done.has(id))) allDone();
      },
    });
    await d.conn.nc.flush();

    for (let batch = 0; batch < n / 100; batch++) {
      const submitted = await Promise.all(
        Array.from({ length: 100 }, (_, i) => d.submit({ goal: `nap ${batch * 100 + i}`, agent: 'sleeper', input: { delayMs: 50 } })),
      );
      for (const id of submitted) ids.add(id);
    }
    expect(ids.size).toBe(n);
    if ([...ids].every((id) => done.has(id))) allDone();

    const timeout = setTimeout(() => allDone(), 150_000);
    await finished;
    clearTimeout(timeout);
    sub.unsubscribe();
    const missing = [...ids].filter((id) => !done.has(id));
    expect(missing).toEqual([]);

    const sample = [...ids].slice(0, 50);
    for (const id of sample) expect((await d.record(id))?.status).toBe('done');
  }, 180_000);
});
