import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resourceNames } from '@errand/protocols';
import { createDeployment, recordingLogger, startTestServer, type TestServer } from '@errand/testing';
import { ScheduleStore, startScheduler } from '../src/index.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

describe('startScheduler', () => {
  it('on a deployment provisioned before schedules existed: says to run errand provision, and the host goes on without them', async () => {
    const d = await createDeployment(srv);
    await (await d.conn.jsm()).streams.delete(`KV_${resourceNames(d.prefix).buckets.schedules}`);
    const logger = recordingLogger();
    const scheduler = await startScheduler({ conn: d.conn, prefix: d.prefix, logger });
    await scheduler.stop();
    expect(logger.entries.find((e) => e.level === 'warn')?.msg).toMatch(/no schedules bucket .*_schedules: schedules are off on this host; run `errand provision` to create it/);
  });

  it('add refuses an id in use; update, pause and resume are compare-and-set and idempotent', async () => {
    const d = await createDeployment(srv);
    const store = await ScheduleStore.open(d.conn, d.prefix);
    const now = Date.parse('2026-12-05T10:00:00Z');
    await store.add({ id: 'x', cron: '0 9 * * *', goal: 'g' }, { now });
    await expect(store.add({ id: 'x', cron: '0 10 * * *', goal: 'h' }, { now })).rejects.toMatchObject({ code: 'ERR_SCHEDULE_EXISTS', scheduleId: 'x' });
    const paused = await store.pause('x', { now });
    expect(await store.pause('x', { now: now + 1 })).toEqual(paused);
    const resumed = await store.resume('x', { now: Date.parse('2026-12-06T12:00:00Z') });
    expect(new Date(resumed.nextFireAt!).toISOString()).toBe('2026-12-07T09:00:00.000Z');
    expect(resumed.generation).toBe(2);
    expect(await store.resume('x', { now })).toEqual(resumed);
    // Two writers at once: both changes land, neither overwrites the other.
    await Promise.all([
      store.update('x', (r) => ({ ...r, labels: { ...r.labels, a: '1' } })),
      store.update('x', (r) => ({ ...r, labels: { ...r.labels, b: '2' } })),
    ]);
    expect((await store.get('x')).labels).toEqual({ a: '1', b: '2' });
    await store.remove('x');
    await expect(store.remove('x')).rejects.toMatchObject({ code: 'ERR_SCHEDULE_NOT_FOUND' });
    // The id is free again.
    await store.add({ id: 'x', cron: '0 9 * * *', goal: 'g' }, { now });
    expect((await store.list()).schedules.map((s) => s.id)).toEqual(['x']);
  });
});
