import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrandConnection } from '@errand/nats';
import { DiscoveryResponseType, type Role } from '@errand/protocols';
import { createServiceLogger, envConnect, ERRAND_VERSION, startService, type ServiceDefinition, type StartedService } from '@errand/service';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

let srv: TestServer;
const prefix = uniquePrefix();
const quiet = (service: string) => createServiceLogger(service, 'silent', { stdout: false, shipLevel: 'silent' });

/** A service that does nothing but start: what discovery says comes from startService alone. */
type Env = Record<string, string | undefined>;
const idle = (name: string, extra: Partial<ServiceDefinition<Env>> = {}): ServiceDefinition<Env> => ({
  name,
  parseConfig: (env) => ({ ...env }),
  logLevel: () => 'silent',
  connect: (env) => envConnect(env, name),
  start: async () => ({ stop: async () => {} }),
  ...extra,
});

async function startAs(role: Role, definition: ServiceDefinition<Env>): Promise<StartedService> {
  return startService(definition, { ...(await srv.env(role, prefix)) }, { logger: quiet });
}
async function as(role: Role): Promise<ErrandConnection> {
  return srv.connect({ credsFile: await srv.auth!.credsFile(role, prefix), timeoutMs: 1500 });
}
/** Every reply to `subject` within the bounded wait (stops 100 ms after the last one). */
async function ask(conn: ErrandConnection, subject: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for await (const m of await conn.nc.requestMany(subject, undefined, { strategy: 'stall', stall: 100, maxWait: 1000 })) out.push(m.json());
  return out;
}

beforeAll(async () => {
  srv = await startTestServer({ auth: true });
});
afterAll(async () => {
  await srv?.stop();
});

describe('every started service answers NATS service discovery ($SRV, ADR-32)', () => {
  it('PING, INFO and STATS answer with the name, version, id and metadata; two replicas answer twice; a stopped one no more', async () => {
    const host1 = await startAs('host', idle('errand-host', { description: 'runs agents' }));
    const host2 = await startAs('host', idle('errand-host'));
    const runner = await startAs('tool-runner', idle('errand-tool-runner', { version: '1.2.3' }));
    const gateway = await as('gateway');
    try {
      const pings = (await ask(gateway, '$SRV.PING')).filter((p) => (p.metadata as Record<string, string>).prefix === prefix);
      expect(pings).toHaveLength(3);
      const h = pings.find((p) => p.id === host1.discovery.id)!;
      expect(h).toEqual({
        type: DiscoveryResponseType.Ping,
        name: 'errand-host',
        id: host1.discovery.id,
        version: ERRAND_VERSION,
        metadata: { prefix, role: 'host', hostname: hostname(), pid: String(process.pid), started: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
      });
      expect(ERRAND_VERSION).toMatch(/^\d+\.\d+\.\d+/);
      expect(pings.find((p) => p.name === 'errand-tool-runner')).toMatchObject({ version: '1.2.3', metadata: { role: 'tool-runner' } });

      // By name: both hosts; by name and id: that one.
      expect((await ask(gateway, '$SRV.PING.errand-host')).filter((p) => (p.metadata as Record<string, string>).prefix === prefix).map((p) => p.id).sort()).toEqual(
        [host1.discovery.id, host2.discovery.id].sort(),
      );
      const info = await ask(gateway, `$SRV.INFO.errand-host.${host1.discovery.id}`);
      expect(info).toEqual([expect.objectContaining({ type: DiscoveryResponseType.Info, name: 'errand-host', id: host1.discovery.id, description: 'runs agents', endpoints: [] })]);
      // STATS: operators' tools read it; the admin identity may ask it.
      const admin = await srv.connect({});
      const stats = await ask(admin, `$SRV.STATS.errand-tool-runner.${runner.discovery.id}`);
      expect(stats).toEqual([expect.objectContaining({ type: DiscoveryResponseType.Stats, version: '1.2.3', started: expect.any(String), endpoints: [] })]);

      await host2.stop();
      const after = (await ask(gateway, '$SRV.PING.errand-host')).filter((p) => (p.metadata as Record<string, string>).prefix === prefix);
      expect(after.map((p) => p.id)).toEqual([host1.discovery.id]);
    } finally {
      await Promise.all([host1.stop(), host2.stop(), runner.stop()]);
    }
  });

  it('a role that does not report on the deployment may not ask: the server refuses a planner and a submitter', async () => {
    const host = await startAs('host', idle('errand-host'));
    try {
      for (const role of ['planner', 'submitter'] as const) {
        const conn = await as(role);
        const err = await conn.nc.request('$SRV.PING', undefined, { timeout: 1000 }).then(
          () => undefined,
          (e: unknown) => e as Error,
        );
        expect(err, role).toBeDefined();
        expect(`${err!.name}: ${err!.message} ${String((err as { cause?: unknown }).cause ?? '')}`).toMatch(/permission/i);
      }
      // The operator's CLI may.
      const operator = await as('operator');
      expect((await ask(operator, '$SRV.PING.errand-host')).some((p) => p.id === host.discovery.id)).toBe(true);
    } finally {
      await host.stop();
    }
  });
});
