// GET /metrics on a loopback port serves the registry in Prometheus text format; nothing else is served.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics, startMetricsServer, type MetricsServer } from '@errand/telemetry';

let server: MetricsServer;
beforeAll(async () => {
  server = await startMetricsServer({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await server?.close();
});

describe('startMetricsServer', () => {
  it('serves the counters at GET /metrics', async () => {
    metrics.deadLettered.inc({ consumer: 'scrape-test' });
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/metrics`);
    const res = await fetch(server.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect(await res.text()).toContain('errand_dead_lettered_total{consumer="scrape-test"} 1');
  });

  it('answers 404 for any other path or method', async () => {
    expect((await fetch(server.url.replace('/metrics', '/'))).status).toBe(404);
    expect((await fetch(server.url, { method: 'POST' })).status).toBe(404);
  });
});
