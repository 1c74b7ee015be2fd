import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connect,
  connectOptionsFromEnv,
  NatsError,
  NatsErrorCode,
  parseServerVersion,
  serverFeatures,
  warnAboutDurability,
} from '@errand/nats/internal';
import { freePort, recordingLogger, startTestServer, type TestServer } from '@errand/testing';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv.stop());

describe('connect', () => {
  it('reads NATS_URL and NATS_CREDS from the environment it is given', () => {
    expect(connectOptionsFromEnv({ NATS_URL: 'nats://a:1,nats://b:2', NATS_CREDS: '/x.creds' })).toEqual({
      servers: 'nats://a:1,nats://b:2',
      credsFile: '/x.creds',
    });
    expect(connectOptionsFromEnv({})).toEqual({});
  });

  it('connects, reads the server version and features, and warns about durability before 2.10', async () => {
    const logger = recordingLogger();
    // The server requires credentials unless the run is ERRAND_TEST_AUTH=0: the environment a process would get.
    const conn = await connect({ ...connectOptionsFromEnv(await srv.env('admin', 'errand')), logger });
    try {
      expect(conn.features.version.text).toBe(srv.server.version);
      expect(conn.features.jetstream).toBe(true);
      expect(conn.features.clustered).toBe(false);
      const warned = logger.entries.some((e) => e.level === 'warn' && e.msg.includes('sync_interval: always'));
      expect(warned).toBe(!conn.features.configurableSync);
    } finally {
      await conn.close();
    }
  });

  it('fails fast with a typed error that says what to do when no server answers', async () => {
    const port = await freePort();
    const err = await connect({ servers: `nats://127.0.0.1:${port}`, timeoutMs: 1000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsError);
    expect((err as NatsError).code).toBe(NatsErrorCode.ConnectFailed);
    expect((err as NatsError).message).toMatch(/NATS_URL/);
  });

  it('reports an unreadable credentials file', async () => {
    await expect(connect({ servers: srv.url, credsFile: '/nonexistent/user.creds' })).rejects.toMatchObject({
      code: NatsErrorCode.ConnectFailed,
      message: expect.stringMatching(/NATS_CREDS/),
    });
  });

  it('reconnects after the server restarts, and logs both sides', async () => {
    const logger = recordingLogger();
    const conn = await srv.connect({ logger, reconnectTimeWaitMs: 100 });
    await srv.kill();
    await logger.waitFor((e) => e.msg.startsWith('disconnected from NATS'));
    await srv.restart();
    await logger.waitFor((e) => e.msg === 'reconnected to NATS');
    const reply = conn.nc.subscribe('ping.me', { max: 1, callback: (_err, m) => void m.respond('pong') });
    const answer = await conn.nc.request('ping.me', undefined, { timeout: 2000 });
    expect(answer.string()).toBe('pong');
    await reply.closed;
  });
});

describe('server features', () => {
  it.each([
    ['2.9.10', { streamCompression: false, configurableSync: false, messageTtl: false }],
    ['2.10.0', { streamCompression: true, configurableSync: true, messageTtl: false }],
    ['2.11.3-RC.1', { streamCompression: true, configurableSync: true, messageTtl: true }],
    ['3.0.0', { streamCompression: true, configurableSync: true, messageTtl: true }],
  ])('%s', (version, expected) => {
    expect(serverFeatures({ version, jetstream: true })).toMatchObject(expected);
  });

  it('warns only where writes are not synced', () => {
    const logger = recordingLogger();
    expect(warnAboutDurability(serverFeatures({ version: '2.10.4' }), logger)).toBe(false);
    expect(warnAboutDurability(serverFeatures({ version: '2.9.10' }), logger)).toBe(true);
    expect(logger.entries).toHaveLength(1);
    expect(logger.entries[0]!.msg).toMatch(/every 60 s/);
  });

  it('rejects a version it cannot parse', () => {
    expect(() => parseServerVersion('banana')).toThrow(/cannot parse/);
  });
});
