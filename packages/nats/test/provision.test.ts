import { Kvm } from '@nats-io/kv';
import { nanos } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourceSpecs } from '@errand/protocols';
import { NatsError, NatsErrorCode, openObjectStore, provision, type ErrandConnection } from '@errand/nats';
import { startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

let srv: TestServer;
let conn: ErrandConnection;
beforeAll(async () => {
  srv = await startTestServer();
  conn = await srv.connect();
});
afterAll(() => srv.stop());

describe('provision', () => {
  it('creates every stream and bucket, then changes nothing the second time', async () => {
    const specs = resourceSpecs({ prefix: uniquePrefix() });
    const first = await provision(conn, { specs });
    expect(first.changed).toBe(true);
    expect(first.items.map((i) => [i.kind, i.name, i.action])).toEqual([
      ...specs.streams.map((s) => ['stream', s.name, 'created']),
      ...specs.buckets.map((b) => ['bucket', b.bucket, 'created']),
      ...specs.objectStores.map((b) => ['object-store', b.bucket, 'created']),
    ]);

    const second = await provision(conn, { specs });
    expect(second.changed).toBe(false);
    expect(second.items.every((i) => i.action === 'unchanged' && i.changes.length === 0)).toBe(true);

    const jsm = await conn.jsm();
    const work = await jsm.streams.info(specs.names.streams.work);
    expect(work.config.retention).toBe('workqueue');
    expect(work.config.subjects).toEqual(specs.streams.find((s) => s.name === specs.names.streams.work)?.subjects);
  });

  it('makes buckets that work as KV: compare-and-set rejects a stale revision', async () => {
    const specs = resourceSpecs({ prefix: uniquePrefix() });
    await provision(conn, { specs });
    const kv = await new Kvm(conn.js).open(specs.names.buckets.agents);
    const rev = await kv.create('agent-1', 'v1');
    const rev2 = await kv.update('agent-1', 'v2', rev);
    expect(rev2).toBeGreaterThan(rev);
    await expect(kv.update('agent-1', 'v3', rev)).rejects.toThrow();
    expect((await kv.get('agent-1'))?.string()).toBe('v2');
  });

  it('makes an object store that works: a large value goes in and comes back', async () => {
    const specs = resourceSpecs({ prefix: uniquePrefix() });
    await provision(conn, { specs });
    const store = await openObjectStore(conn, specs.names.objectStores.results);
    const big = new TextEncoder().encode('z'.repeat(3 * 1024 * 1024));
    await store.putBlob({ name: 'a-1.7.0' }, big);
    expect((await store.getBlob('a-1.7.0'))?.byteLength).toBe(big.byteLength);
  });

  it('restores settings after a manual change, and reports what it changed', async () => {
    const specs = resourceSpecs({ prefix: uniquePrefix() });
    await provision(conn, { specs });
    const jsm = await conn.jsm();
    const logs = specs.names.streams.logs;
    await jsm.streams.update(logs, { max_age: nanos(3_600_000), description: 'edited by hand' });
    await jsm.streams.update(`KV_${specs.names.buckets.agents}`, { max_msgs_per_subject: 10 });

    const dry = await provision(conn, { specs, dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect((await jsm.streams.info(logs)).config.description).toBe('edited by hand');

    const report = await provision(conn, { specs });
    const logsItem = report.items.find((i) => i.name === logs);
    expect(logsItem?.action).toBe('updated');
    expect(logsItem?.changes.map((c) => c.field).sort()).toEqual(['description', 'max_age']);
    expect(dry.items.find((i) => i.name === logs)?.changes).toEqual(logsItem?.changes);
    const bucketItem = report.items.find((i) => i.name === specs.names.buckets.agents);
    expect(bucketItem).toMatchObject({ kind: 'bucket', action: 'updated', changes: [{ field: 'max_msgs_per_subject', from: 10, to: 1 }] });

    const restored = await jsm.streams.info(logs);
    expect(restored.config.max_age).toBe(nanos(specs.streams.find((s) => s.name === logs)!.maxAgeMs));
    expect(restored.config.description).toBe(specs.streams.find((s) => s.name === logs)!.description);
    expect((await provision(conn, { specs })).changed).toBe(false);
  });

  it('refuses, saying what to do, when an existing stream has another retention policy', async () => {
    const specs = resourceSpecs({ prefix: uniquePrefix() });
    const jsm = await conn.jsm();
    const work = specs.streams.find((s) => s.name === specs.names.streams.work)!;
    await jsm.streams.add({ name: work.name, subjects: [...work.subjects], retention: 'limits' as never });
    const err = await provision(conn, { specs }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsError);
    expect((err as NatsError).code).toBe(NatsErrorCode.ProvisionConflict);
    expect((err as NatsError).message).toContain(`stream ${work.name} exists with retention 'limits'`);
    expect((err as NatsError).message).toContain(`nats stream rm ${work.name}`);
  });

  it('refuses replicas 3 on a server that is not clustered', async () => {
    const specs = resourceSpecs({ prefix: uniquePrefix(), replicas: 3 });
    await expect(provision(conn, { specs })).rejects.toMatchObject({
      code: NatsErrorCode.ProvisionConflict,
      message: expect.stringMatching(/--replicas 1/),
    });
  });

  it("turns the server's refusal into a typed error when another stream owns the subjects", async () => {
    const prefix = uniquePrefix();
    const jsm = await conn.jsm();
    await jsm.streams.add({ name: `SQUATTER_${prefix}`, subjects: [`${prefix}.logs.>`] });
    await expect(provision(conn, { specs: resourceSpecs({ prefix }) })).rejects.toMatchObject({
      code: NatsErrorCode.ProvisionFailed,
      message: expect.stringMatching(/refused to provision stream .*_LOGS: .*overlap/),
    });
  });
});
