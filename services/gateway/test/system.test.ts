import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SystemStatus } from '@errand/client';
import { startMockLlm, type MockLlm } from '@errand/llm';
import type { ErrandConnection } from '@errand/nats';
import { newAgentId, resourceNames, silentLogger } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';
import { systemRoutes } from '../src/system.js';

let srv: TestServer;
let d: Deployment;
let gateway: ErrandConnection;
let mock: MockLlm;

beforeAll(async () => {
  srv = await startTestServer({ auth: true });
  mock = await startMockLlm({ steps: [] });
  d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1' } });
  // Two hosts, a planner and a tool-runner, as real processes.
  await Promise.all([d.start('host'), d.start('host'), d.start('planner'), d.start('tool-runner')]);
  // What the gateway may do as its own identity is what it reports with.
  gateway = await srv.connect({ credsFile: await srv.auth!.credsFile('gateway', d.prefix), timeoutMs: 3000 });
});
afterAll(async () => {
  await d?.stopAll();
  await mock?.close();
  await srv?.stop();
});

/** GET /api/system through the sub-app the gateway mounts. */
async function getSystem(): Promise<SystemStatus> {
  const res = await systemRoutes({ conn: gateway, prefix: d.prefix, logger: silentLogger }).request('/api/system');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  return (await res.json()) as SystemStatus;
}

/** Polls until `test` holds (bounded), returning the last status. */
async function until(test: (s: SystemStatus) => boolean, timeoutMs = 15_000): Promise<SystemStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await getSystem();
    if (test(s) || Date.now() > deadline) return s;
  }
}

describe('GET /api/system', () => {
  it('lists the running services with versions and replicas, the server with its durability warning, and the consumers with their backlogs', async () => {
    const s = await getSystem();
    expect(s.replicas).toEqual({ 'errand-host': 2, 'errand-planner': 1, 'errand-tool-runner': 1 });
    expect(s.services).toHaveLength(4);
    for (const svc of s.services) {
      expect(svc).toMatchObject({ id: expect.any(String), version: expect.stringMatching(/^\d+\.\d+\.\d+/), host: expect.any(String), pid: expect.any(Number), startedAt: expect.any(String) });
    }
    // Each process connected with its own role's identity.
    expect(Object.fromEntries(s.services.map((x) => [x.name, x.role]))).toEqual({ 'errand-host': 'host', 'errand-planner': 'planner', 'errand-tool-runner': 'tool-runner' });
    expect(new Set(s.services.map((x) => x.pid)).size).toBe(4);

    expect(s.server.version).toBe(gateway.features.version.text);
    expect(s.server.jetstream).toBe(true);
    expect(s.server.cluster).toBeUndefined();
    if (!gateway.features.configurableSync) expect(s.server.durabilityWarning).toMatch(/syncs JetStream to disk only every 60 s/);
    else expect(s.server.durabilityWarning).toBeUndefined();

    // The services' durable consumers, with numbers for every backlog.
    const names = resourceNames(d.prefix).streams;
    expect(s.consumers.some((c) => c.stream === names.inbox)).toBe(true);
    expect(s.consumers.some((c) => c.stream === names.work)).toBe(true);
    for (const c of s.consumers) expect(c).toEqual({ stream: expect.any(String), name: expect.any(String), pending: expect.any(Number), ackPending: expect.any(Number), redelivered: expect.any(Number) });
    expect(s.dlq).toEqual([]);
  });

  it('a message that cannot be decoded, published to an agent inbox, shows up in the DLQ with its reason, origin and agent', async () => {
    const agentId = newAgentId();
    const subject = d.subjects.agentIn(agentId, 'goal');
    await d.conn.js.publish(subject, new Uint8Array([0xc1, 0xff, 0x00, 0x13]));
    const s = await until((x) => x.dlq.some((e) => e.subject === subject));
    const entry = s.dlq.find((e) => e.subject === subject);
    expect(entry).toMatchObject({ seq: expect.any(Number), subject, origin: expect.any(String), agentId, code: expect.stringMatching(/^ERR_/), at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(entry!.reason.length).toBeGreaterThan(10);
    expect(entry!.reason).not.toBe('no reason recorded');
    // The host that gave up on it acknowledged it: no backlog is left on the inbox.
    const after = await until((x) => x.consumers.filter((c) => c.stream === resourceNames(d.prefix).streams.inbox).every((c) => c.pending === 0 && c.ackPending === 0));
    expect(after.consumers.filter((c) => c.stream === resourceNames(d.prefix).streams.inbox).every((c) => c.pending === 0)).toBe(true);
  });

  it('a stopped deployment reads as no services, not as an error; a prefix with no streams as empty lists', async () => {
    const res = await systemRoutes({ conn: gateway, prefix: 'nobody-here', logger: silentLogger }).request('/api/system');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ services: [], replicas: {}, consumers: [], dlq: [] });
  });
});
