import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrandClient } from '@errand/client';
import { publishMessage } from '@errand/nats';
import { resourceNames } from '@errand/protocols';
import { createDeployment, recordingLogger, startTestServer, type TestServer } from '@errand/testing';
import { scheduledAgentId, ScheduleStore, scheduleTickMessageId, startScheduler } from '../src/index.js';

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

describe('a lost tick', () => {
  it('is armed again once the schedule is overdue, and the fire it was for still fires (once)', async () => {
    const d = await createDeployment(srv);
    const store = await ScheduleStore.open(d.conn, d.prefix);
    const r = await store.add({ id: 'lost', cron: '* * * * * *', goal: 'g', agent: 'tally', overlap: 'allow' }, { now: Date.now() });
    // JetStream took the tick (its message id is spent) and then lost it, as nats-server 2.9 was
    // seen to lose a delayed redelivery across a node restart: arming it again is dropped as a duplicate.
    await publishMessage<'schedule.tick'>(d.conn.js, d.subjects.workSchedule('lost'), { v: 1, kind: 'schedule.tick', scheduleId: 'lost', generation: 0, fireAt: r.nextFireAt!, at: Date.now() }, {
      msgId: scheduleTickMessageId('lost', 0, r.nextFireAt!),
    });
    await (await d.conn.jsm()).streams.purge(resourceNames(d.prefix).streams.work, { filter: d.subjects.workSchedule('lost') });

    const submitted: string[] = [];
    let wake: () => void = () => {};
    const twoFires = new Promise<void>((resolve) => (wake = resolve));
    const client = {
      submit: async (_goal: string, options: { agentId: string }) => {
        submitted.push(options.agentId);
        if (submitted.length >= 2) wake();
        return { agentId: options.agentId, existing: false, traceId: 't' };
      },
      record: async () => undefined,
      control: async () => {},
    } as unknown as ErrandClient;
    const logger = recordingLogger();
    const scheduler = await startScheduler({ conn: d.conn, prefix: d.prefix, logger, client, overdueAfterMs: 1000 });
    try {
      await Promise.race([twoFires, logger.waitFor(() => false, 30_000)]).catch(() => {
        throw new Error(`no two fires: ${JSON.stringify(logger.entries)}`);
      });
      expect(logger.entries.some((e) => e.level === 'warn' && e.msg.includes('schedule overdue'))).toBe(true);
      // The lost fire first (late, inside the catch-up window), then the ones after it, each once.
      expect(submitted[0]).toBe(scheduledAgentId('lost', r.nextFireAt!));
      expect(new Set(submitted).size).toBe(submitted.length);
    } finally {
      await scheduler.stop();
    }
  });
});

describe('a fire whose record update loses a race', () => {
  it('is recorded as it happened (started), not judged again against the run a trigger recorded meanwhile', async () => {
    const d = await createDeployment(srv);
    const store = await ScheduleStore.open(d.conn, d.prefix);
    const r = await store.add({ id: 'race', cron: '* * * * * *', goal: 'g', overlap: 'skip' }, { now: Date.now() });
    const submitted: string[] = [];
    const client = {
      submit: async (_goal: string, options: { agentId: string }) => {
        submitted.push(options.agentId);
        // While the first fire submits, a trigger records its run: the fire's update will conflict.
        if (submitted.length === 1) {
          const at = Date.now();
          await store.update('race', (x) => ({ ...x, lastRun: { agentId: 'race-now-20261205T000000000Z', at, handledAt: at }, updatedAt: at }));
        }
        return { agentId: options.agentId, existing: false, traceId: 't' };
      },
      // Every run is still running: a second judgement of the first fire would skip it.
      record: async () => ({ status: 'running' }),
      control: async () => {},
    } as unknown as ErrandClient;
    const scheduler = await startScheduler({ conn: d.conn, prefix: d.prefix, client });
    try {
      const watch = await store.kv.watch({ key: 'race' });
      const stop = setTimeout(() => watch.stop(), 30_000);
      let recorded: { lastFire?: { at: number; outcome: string; agentId?: string } } | undefined;
      for await (const e of watch) {
        if (e.operation !== 'PUT') continue;
        const x = e.json<{ lastFire?: { at: number; outcome: string; agentId?: string } }>();
        if (x.lastFire?.at === r.nextFireAt) {
          recorded = x;
          break;
        }
      }
      clearTimeout(stop);
      watch.stop();
      expect(recorded?.lastFire).toMatchObject({ outcome: 'started', agentId: scheduledAgentId('race', r.nextFireAt!) });
      expect(submitted.filter((id) => id === scheduledAgentId('race', r.nextFireAt!))).toHaveLength(1);
    } finally {
      await scheduler.stop();
    }
  });
});
