import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourceSpecs } from '@errand/protocols';
import { provision, type ErrandConnection } from '@errand/nats';
import { startTestCluster, uniquePrefix, type TestCluster } from '@errand/testing';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster();
}, 90_000);
afterAll(() => cluster?.stop());

/** Retries a read or write while the cluster elects a new leader (bounded). */
async function eventually<T>(fn: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

describe('3-node cluster', () => {
  it('provisions every stream and bucket with 3 replicas', async () => {
    const conn = await cluster.connect();
    expect(conn.features.clustered).toBe(true);
    const specs = resourceSpecs({ prefix: uniquePrefix(), replicas: 3 });
    await provision(conn, { specs });
    const jsm = await conn.jsm();
    for (const s of specs.streams) {
      const info = await jsm.streams.info(s.name);
      expect(info.config.num_replicas).toBe(3);
      expect(info.cluster?.replicas).toHaveLength(2);
    }
    expect((await provision(conn, { specs })).changed).toBe(false);
  }, 60_000);

  it('keeps a replicated KV write when the node that leads it is killed', async () => {
    const conn: ErrandConnection = await cluster.connect({ reconnectTimeWaitMs: 100 });
    const specs = resourceSpecs({ prefix: uniquePrefix(), replicas: 3 });
    await provision(conn, { specs });
    const bucket = specs.names.buckets.agents;
    const kv = await new Kvm(conn.js).open(bucket);
    const rev = await kv.put('agent-7', 'survives');

    const jsm = await conn.jsm();
    const leader = (await jsm.streams.info(`KV_${bucket}`)).cluster?.leader;
    const victim = cluster.nodes.findIndex((n, i) => leader === undefined ? i === 0 : leader.endsWith(`_n${i + 1}`));
    expect(victim).toBeGreaterThanOrEqual(0);
    await cluster.kill(victim);

    const entry = await eventually(async () => {
      const e = await kv.get('agent-7');
      if (!e) throw new Error('not readable yet');
      return e;
    });
    expect(entry.string()).toBe('survives');
    expect(entry.revision).toBe(rev);
    const next = await eventually(() => kv.update('agent-7', 'still writable', rev));
    expect(next).toBeGreaterThan(rev);

    await cluster.restart(victim);
  }, 90_000);
});
