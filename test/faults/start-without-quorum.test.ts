// A service started while its cluster cannot answer JetStream requests (two of three nodes down: no
// quorum, as during a cluster's first start or a bad restart) waits and starts once it can, instead
// of exiting 1 — and then does its work.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@errand/client';
import { createDeployment, startTestCluster, type TestCluster } from '@errand/testing';
import { waitForStreamsCurrent } from '../cluster/world.js';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster();
}, 90_000);
afterAll(() => cluster?.stop(), 60_000);

describe('a service started without a JetStream quorum', () => {
  it('keeps trying (saying why) and starts once the quorum is back; its first goal then runs', async () => {
    const d = await createDeployment(cluster);
    try {
      await cluster.kill(1);
      await cluster.kill(2);
      const host = d.spawn('host', {}, { node: 0 });
      await host.waitForLine(/could not start yet/, 60_000);
      await Promise.all([cluster.restart(1), cluster.restart(2)]);
      await host.waitForLine(/"msg":"host ready"/, 120_000);
      expect(host.stdout()).not.toMatch(/failed to start/);
      // A goal once the deployment's streams have their replicas back (on a loaded machine the
      // elections outlast a client's resends).
      await waitForStreamsCurrent(cluster, d.prefix, 120_000);
      const client = await createClient(d.conn, d.prefix);
      const { agentId: id } = await client.submit('count one number', { agent: 'tally', input: { expect: 1 } });
      const waiting = await d.waitForStatus(id, ['waiting', 'running', 'done'], 60_000);
      expect(waiting.agentId).toBe(id);
    } finally {
      await d.stopAll();
    }
  }, 240_000);
});
