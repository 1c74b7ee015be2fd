import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceLogger, joinBindings } from '@errand/service';
import { startTestServer, uniquePrefix, type TestServer, topLevelKeys } from '@errand/testing';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

describe('service log lines carry each key once', () => {
  it('nested components read outer.inner; a call field named like a binding wins; shipped lines end without a newline', async () => {
    const subject = `${uniquePrefix()}.logs.host`;
    const reader = await srv.connect();
    const writer = await srv.connect();
    const { logger, shipper } = createServiceLogger('host', 'error', { stdout: false });
    const raw: string[] = [];
    const sub = reader.nc.subscribe(subject, { max: 4, timeout: 10_000 });
    await reader.nc.flush();
    const done = (async () => {
      for await (const m of sub) raw.push(m.string());
    })();
    shipper.attach(writer.nc, subject);
    const consumer = logger.child({ component: 'worker', worker: 'planner' }).child({ component: 'consumer', origin: 'work' });
    consumer.info({ agentId: 'a-1' }, 'nested');
    logger.child({ component: 'nats-server' }).info({ pid: 4242, url: 'nats://x' }, 'nats-server ready');
    consumer.child({ worker: 'tool-runner' }).warn({}, 'rebound');
    logger.info({}, 'root');
    await writer.nc.flush();
    await done;
    expect(raw).toHaveLength(4);
    for (const line of raw) {
      expect(line.endsWith('\n'), line).toBe(false);
      const keys = topLevelKeys(line);
      expect(keys, line).toEqual([...new Set(keys)]);
    }
    const [nested, ready, rebound, root] = raw.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(nested).toMatchObject({ service: 'host', pid: process.pid, component: 'worker.consumer', worker: 'planner', origin: 'work', agentId: 'a-1', msg: 'nested' });
    expect(ready).toMatchObject({ service: 'host', component: 'nats-server', pid: 4242, msg: 'nats-server ready' });
    expect(rebound).toMatchObject({ component: 'worker.consumer', worker: 'tool-runner', level: 40 });
    expect(root).toMatchObject({ service: 'host', pid: process.pid, msg: 'root' });
    expect(root).not.toHaveProperty('component');
  });

  it('joinBindings: the inner value wins, a component nests once', () => {
    expect(joinBindings({ service: 's', component: 'host' }, { component: 'intake', agentId: 'a' })).toEqual({ service: 's', component: 'host.intake', agentId: 'a' });
    expect(joinBindings({ component: 'host' }, { component: 'host' })).toEqual({ component: 'host' });
    expect(joinBindings({ worker: 'a' }, { worker: 'b' })).toEqual({ worker: 'b' });
  });
});
