import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceLogger, processRedactor, secretsFromEnv } from '@errand/service';
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

describe('secrets never reach a log line', () => {
  it('the process redactor removes configured secret values and the usual formats from messages, fields and error stacks, on NATS too', async () => {
    const subject = `${uniquePrefix()}.logs.tool-runner`;
    const reader = await srv.connect();
    const writer = await srv.connect();
    const redactor = processRedactor({ OPENAI_API_KEY: 'plain-secret-value-123456', SHORT_TOKEN: 'abc', PATH: '/usr/bin' }, ['config-only-secret-99']);
    const { logger, shipper } = createServiceLogger('tool-runner', 'error', { stdout: false, redactor });
    const inbox = await collect(reader, subject, 3);
    shipper.attach(writer.nc, subject);
    logger.info({ output: 'OPENAI_API_KEY=plain-secret-value-123456\nPATH=/usr/bin', nested: { list: ['config-only-secret-99'] } }, 'read plain-secret-value-123456');
    logger.error({ err: new Error('connect failed for nats://svc:pa55word-x@127.0.0.1 with config-only-secret-99') }, 'failed');
    logger.info({ agentId: 'a-1' }, 'nothing secret here');
    await writer.nc.flush();
    await inbox.done;
    const shipped = JSON.stringify(inbox.got);
    for (const secret of ['plain-secret-value-123456', 'config-only-secret-99', 'pa55word-x']) expect(shipped).not.toContain(secret);
    expect(inbox.got[0]).toMatchObject({ msg: 'read [redacted]', output: 'OPENAI_API_KEY=[redacted]\nPATH=/usr/bin', nested: { list: ['[redacted]'] } });
    expect((inbox.got[1]!.err as { message: string }).message).toBe('connect failed for nats://svc:[redacted]@127.0.0.1 with [redacted]');
    expect(inbox.got[2]).toMatchObject({ msg: 'nothing secret here', agentId: 'a-1' });
  });

  it('secretsFromEnv: secret-named variables, the NATS_URL password and the NATS_CREDS JWT and seed; not public keys', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'errand-creds-'));
    const jwt = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVQUJDIn0.c2lnbmF0dXJlc2ln';
    const seed = `SUA${'A'.repeat(55)}`;
    const creds = join(dir, 'user.creds');
    await writeFile(creds, `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n*** IMPORTANT ***\n\n-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`, { mode: 0o600 });
    const found = secretsFromEnv({
      OPENAI_API_KEY: 'k1-abcdefgh',
      ERRAND_MCP_TOKEN: 't1-abcdefgh',
      SLACK_SIGNING_SECRET: 's1-abcdefgh',
      DB_PASSWORD: 'p1-abcdefgh',
      GOOGLE_CREDENTIALS: 'c1-abcdefgh',
      ERRAND_VERIFY_KEY: 'ed25519:public',
      SOME_PUBLIC_KEY: 'public-abcdefgh',
      HOME: '/root',
      NATS_URL: 'nats://svc:u%40pass-99@127.0.0.1:4222',
      NATS_CREDS: creds,
    });
    expect(found).toEqual(expect.arrayContaining(['k1-abcdefgh', 't1-abcdefgh', 's1-abcdefgh', 'p1-abcdefgh', 'c1-abcdefgh', 'u%40pass-99', 'u@pass-99', jwt, seed]));
    expect(found).not.toContain('ed25519:public');
    expect(found).not.toContain('public-abcdefgh');
    expect(found).not.toContain('/root');
    // An unreadable creds file is not an error here (connecting reports it).
    expect(() => secretsFromEnv({ NATS_CREDS: join(dir, 'missing.creds') })).not.toThrow();
  });
});
