import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceLogger } from '@errand/service';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

/** Collects what arrives on `subject` until `count` messages came (bounded). */
async function collect(conn: Awaited<ReturnType<TestServer['connect']>>, subject: string, count: number) {
  const got: Record<string, unknown>[] = [];
  const sub = conn.nc.subscribe(subject, { max: count, timeout: 10_000 });
  await conn.nc.flush();
  return {
    got,
    done: (async () => {
      for await (const m of sub) got.push(JSON.parse(m.string()) as Record<string, unknown>);
    })(),
  };
}

describe('the service logger ships its lines to NATS', () => {
  it('ships lines written before the connection, at info even when stdout shows only errors, redacted', async () => {
    const subject = `${uniquePrefix()}.logs.planner`;
    const reader = await srv.connect();
    const writer = await srv.connect();
    const { logger, shipper } = createServiceLogger('planner', 'error', { stdout: false });
    logger.info({ agentId: 'a-1' }, 'before the connection');
    const inbox = await collect(reader, subject, 3);
    shipper.attach(writer.nc, subject);
    logger.debug({}, 'below the ship level');
    logger.info({ apiKey: 'sk-not-for-logs', headers: { authorization: 'Bearer x' } }, 'with secrets');
    logger.warn({ traceId: 't' }, 'a warning');
    await writer.nc.flush();
    await inbox.done;
    expect(inbox.got.map((l) => l.msg)).toEqual(['before the connection', 'with secrets', 'a warning']);
    expect(inbox.got[0]).toMatchObject({ service: 'planner', agentId: 'a-1', level: 30 });
    expect(inbox.got[1]).toMatchObject({ apiKey: '[redacted]', headers: { authorization: '[redacted]' } });
    expect(JSON.stringify(inbox.got)).not.toContain('sk-not-for-logs');
  });

  it('drops lines while NATS is away without blocking, and says how many on the next shipped line', async () => {
    const subject = `${uniquePrefix()}.logs.host`;
    const reader = await srv.connect();
    const first = await srv.connect();
    const { logger, shipper } = createServiceLogger('host', 'error', { stdout: false });
    shipper.attach(first.nc, subject);
    await first.close();
    for (let i = 0; i < 5; i++) logger.info({}, `lost ${i}`);
    const second = await srv.connect();
    const inbox = await collect(reader, subject, 2);
    shipper.attach(second.nc, subject);
    logger.info({}, 'back');
    await second.nc.flush();
    await inbox.done;
    expect(inbox.got.map((l) => l.msg)).toEqual(['5 log lines were not shipped (NATS was away or slow)', 'back']);
  });

  it('while the server is down, lines are dropped (not buffered) and counted; after the reconnect shipping resumes', async () => {
    const subject = `${uniquePrefix()}.logs.tool-runner`;
    const writer = await srv.connect({ reconnectTimeWaitMs: 50 });
    const { logger, shipper } = createServiceLogger('tool-runner', 'error', { stdout: false });
    shipper.attach(writer.nc, subject);
    const waitFor = (type: string) =>
      new Promise<void>((resolve) => {
        void (async () => {
          for await (const s of writer.nc.status()) {
            if (s.type === type) return resolve();
          }
        })();
      });
    const disconnected = waitFor('disconnect');
    await srv.kill();
    await disconnected;
    for (let i = 0; i < 3; i++) logger.info({}, `while down ${i}`);
    const reconnected = waitFor('reconnect');
    await srv.restart();
    await reconnected;
    const reader = await srv.connect();
    const inbox = await collect(reader, subject, 2);
    logger.info({}, 'after');
    await writer.nc.flush();
    await inbox.done;
    expect(inbox.got.map((l) => l.msg)).toEqual(['3 log lines were not shipped (NATS was away or slow)', 'after']);
  });
});
