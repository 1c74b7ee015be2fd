import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type ErrandClient } from '@errand/client';
import { openBucket, readStoredRecord, type ErrandConnection, type KV } from '@errand/nats';
import { encodeRecord, resourceNames, type AgentRecord } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';

const ROUNDS = Number(process.env.ERRAND_LIST_ROUNDS) || 5;
let srv: TestServer;
let d: Deployment;
let client: ErrandClient;
let agents: KV;
let admin: ErrandConnection;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
  await d.start('host');
  client = await createClient(d.conn, d.prefix);
  agents = await openBucket(d.conn, resourceNames(d.prefix).buckets.agents);
  admin = await srv.connect({ name: 'list-test-api-counter' });
});
afterAll(async () => {
  await admin?.close();
  await d?.stopAll();
  await srv?.stop();
});

/** Counts the JetStream API requests for single messages (KV gets) on the agents bucket while `run` runs. */
async function countGets<T>(run: () => Promise<T>): Promise<{ result: T; gets: number }> {
  const stream = `KV_${resourceNames(d.prefix).buckets.agents}`;
  const subs = [admin.nc.subscribe(`$JS.API.DIRECT.GET.${stream}.>`), admin.nc.subscribe(`$JS.API.DIRECT.GET.${stream}`), admin.nc.subscribe(`$JS.API.STREAM.MSG.GET.${stream}`)];
  let gets = 0;
  const counting = subs.map(async (sub) => {
    for await (const _ of sub) gets += 1;
  });
  await admin.nc.flush();
  const result = await run();
  await admin.nc.flush();
  for (const sub of subs) sub.unsubscribe();
  await Promise.all(counting);
  return { result, gets };
}

describe('client.list reads the agents bucket in one pass', () => {
  it('lists hundreds of agents without a get per agent, filtered and ordered, leaving out deleted and unreadable records', async () => {
    const { agentId: waiting } = await client.submit('add up', { agent: 'tally', input: { expect: 2 }, labels: { team: 'ops' } });
    await d.waitForStatus(waiting, ['running']);
    const stored = await readStoredRecord(agents, waiting);
    const template: AgentRecord = stored!.record;
    // 300 more records, as a host would have written them: half done, every third labelled.
    const base = Date.now() - 1_000_000;
    for (let i = 0; i < 300; i++) {
      const agentId = `bulk-${String(i).padStart(3, '0')}`;
      const record: AgentRecord = { ...template, agentId, status: i % 2 === 0 ? 'done' : 'running', labels: i % 3 === 0 ? { team: 'ops' } : {}, updatedAt: base + i };
      await agents.put(agentId, encodeRecord(record));
    }
    await agents.put('bulk-gone', encodeRecord({ ...template, agentId: 'bulk-gone' }));
    await agents.delete('bulk-gone');
    await agents.put('bulk-garbled', new Uint8Array([0xc1, 0xc1, 0xc1]));

    const { result: all, gets } = await countGets(() => client.list({ limit: 1000 }));
    expect(all).toHaveLength(301);
    expect(all.map((a) => a.agentId)).not.toContain('bulk-gone');
    expect(all.map((a) => a.agentId)).not.toContain('bulk-garbled');
    // Most recently updated first: the live agent, then bulk-299 down to bulk-000.
    expect(all[0]!.agentId).toBe(waiting);
    expect(all.slice(1).map((a) => a.agentId)).toEqual(Array.from({ length: 300 }, (_, i) => `bulk-${String(299 - i).padStart(3, '0')}`));
    // A get per agent was 300+ requests in a row; one pass is none.
    expect(gets).toBe(0);

    const done = await client.list({ status: 'done', limit: 1000 });
    expect(done).toHaveLength(150);
    expect(done.every((a) => a.status === 'done')).toBe(true);
    const ops = await client.list({ labels: { team: 'ops' }, status: 'running', limit: 1000 });
    expect(ops.map((a) => a.agentId).sort()).toEqual([waiting, ...Array.from({ length: 300 }, (_, i) => i).filter((i) => i % 3 === 0 && i % 2 === 1).map((i) => `bulk-${String(i).padStart(3, '0')}`)].sort());
    expect(await client.list({ limit: 5 })).toHaveLength(5);
  });

  it('lists every agent once, and ends, while records are being written', async () => {
    const everyone = (await client.list({ limit: 1000 })).map((a) => a.agentId).sort();
    expect(everyone).toHaveLength(301);
    const stored = (await readStoredRecord(agents, 'bulk-000'))!.record;
    let writing = true;
    // Half the bulk agents are written over and over while the list is read.
    const writer = (async () => {
      for (let i = 0; writing && i < 20_000; i++) {
        const agentId = `bulk-${String(i % 150).padStart(3, '0')}`;
        await agents.put(agentId, encodeRecord({ ...stored, agentId, step: 100 + i, updatedAt: Date.now() }));
      }
    })();
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const ids = (await client.list({ limit: 1000 })).map((a) => a.agentId);
        expect(new Set(ids).size).toBe(ids.length);
        // An agent written while the list reads is in it too (nats-server 2.9.10's last-per-subject
        // consumer can end its pending count before a rewritten key's new value).
        expect(ids.sort()).toEqual(everyone);
      }
    } finally {
      writing = false;
      await writer;
    }
  });

  it('an empty deployment lists nothing, at once', async () => {
    const other = await createDeployment(srv);
    try {
      const empty = await createClient(other.conn, other.prefix);
      expect(await empty.list()).toEqual([]);
    } finally {
      await other.stopAll();
    }
  });
});
