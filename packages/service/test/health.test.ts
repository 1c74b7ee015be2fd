// Every service serves liveness (/healthz) and readiness (/readyz) on its metrics port: ready only
// while connected to NATS, started and not draining; the reason in a 503 otherwise.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '@errand/nats';
import { createServiceLogger, envConnect, startService, type ServiceDefinition, type StartedService } from '@errand/service';
import { freePort, startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

type Env = Record<string, string | undefined>;
let srv: TestServer;
const prefix = uniquePrefix();
const quiet = (service: string) => createServiceLogger(service, 'silent', { stdout: false, shipLevel: 'silent' });
const extra: NatsServer[] = [];
const started: StartedService[] = [];

beforeAll(async () => {
  srv = await startTestServer({ auth: false });
});
afterAll(async () => {
  for (const s of started) await s.stop();
  for (const s of extra) await s.stop();
  await srv?.stop();
});

async function probe(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('GET /healthz and /readyz on ERRAND_METRICS_PORT', () => {
  it('ready once started; 503 with the reason while the service says it cannot work, while NATS is away, and while draining; live throughout', async () => {
    let notReady: string | undefined;
    let releaseStop!: () => void;
    const stopGate = new Promise<void>((r) => (releaseStop = r));
    const definition: ServiceDefinition<Env> = {
      name: 'errand-health-probe',
      parseConfig: (env) => ({ ...env }),
      logLevel: () => 'silent',
      connect: (env) => ({ ...envConnect(env, 'errand-health-probe'), reconnectTimeWaitMs: 100 }),
      start: async () => ({ stop: () => stopGate, notReady: () => notReady }),
    };
    const service = await startService(definition, { NATS_URL: srv.url, ERRAND_PREFIX: prefix, ERRAND_METRICS_PORT: '0' }, { logger: quiet });
    const base = service.metrics!.base;
    expect(await probe(`${base}/healthz`)).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await probe(`${base}/readyz`)).toEqual({ status: 200, body: { status: 'ready' } });
    expect(service.readiness()).toEqual({ ready: true });
    expect((await fetch(`${base}/metrics`)).status).toBe(200);

    notReady = 'the work consumer stopped';
    expect(await probe(`${base}/readyz`)).toEqual({ status: 503, body: { code: 'ERR_NOT_READY', message: 'the work consumer stopped' } });
    notReady = undefined;

    // NATS away: not ready (the reason says so), still live; back: ready again.
    await srv.server.kill();
    await expect.poll(async () => (await probe(`${base}/readyz`)).body, { timeout: 10_000, interval: 50 }).toEqual({ code: 'ERR_NOT_READY', message: 'reconnecting to NATS' });
    expect((await probe(`${base}/healthz`)).status).toBe(200);
    await srv.server.restart();
    await expect.poll(async () => (await probe(`${base}/readyz`)).status, { timeout: 20_000, interval: 100 }).toBe(200);

    // Draining: stop() has begun and the service has not finished its in-flight work.
    const stopping = service.stop();
    await expect.poll(async () => (await probe(`${base}/readyz`)).body.message, { timeout: 5_000, interval: 20 }).toMatch(/^draining/);
    expect((await probe(`${base}/healthz`)).status).toBe(200);
    releaseStop();
    await stopping;
    // Stopped: the endpoint is gone with the process's service.
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });

  it('answers while waiting for a first NATS server: live, and not ready with what it waits for', async () => {
    const natsPort = await freePort();
    const metricsPort = await freePort();
    const pending = startService(
      { name: 'errand-health-wait', parseConfig: (env) => ({ ...env }), logLevel: () => 'silent', connect: (env) => ({ ...envConnect(env, 'errand-health-wait'), reconnectTimeWaitMs: 100 }), start: async () => ({ stop: async () => {} }) },
      { NATS_URL: `nats://127.0.0.1:${natsPort}`, ERRAND_PREFIX: prefix, ERRAND_METRICS_PORT: String(metricsPort) },
      { logger: quiet },
    );
    const base = `http://127.0.0.1:${metricsPort}`;
    await expect.poll(async () => (await probe(`${base}/healthz`).catch(() => ({ status: 0 }))).status, { timeout: 10_000, interval: 50 }).toBe(200);
    expect(await probe(`${base}/readyz`)).toEqual({ status: 503, body: { code: 'ERR_NOT_READY', message: 'connecting to NATS (NATS_URL)' } });
    extra.push(await startNatsServer({ port: natsPort, storeDir: 'temporary', env: process.env }));
    const service = await pending;
    started.push(service);
    await expect.poll(async () => (await probe(`${base}/readyz`)).status, { timeout: 10_000, interval: 50 }).toBe(200);
  });
});
