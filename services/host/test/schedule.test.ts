import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@errand/client';
import { ScheduleStore, type ScheduleRecord } from '@errand/schedules';
import { startTestServer, type TestProcess, type TestServer } from '@errand/testing';
import { deploy, type Deployment } from './helpers.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(() => srv?.stop());

/** Resolves with the first version of the schedule that passes `test` (watching its key; bounded). */
async function waitForSchedule(store: ScheduleStore, id: string, test: (r: ScheduleRecord) => boolean, timeoutMs = 30_000): Promise<ScheduleRecord> {
  const watch = await store.kv.watch({ key: id });
  const timer = setTimeout(() => watch.stop(), timeoutMs);
  let last: ScheduleRecord | undefined;
  try {
    for await (const e of watch) {
      if (e.operation !== 'PUT') continue;
      last = e.json<ScheduleRecord>();
      if (test(last)) return last;
    }
  } finally {
    clearTimeout(timer);
    watch.stop();
  }
  throw new Error(`schedule ${id} did not get there within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

/** The agents a schedule started: their ids, sorted (ids sort by fire time). */
async function agentsOf(d: Deployment, scheduleId: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const key of await d.agents.keys()) if (key.startsWith(`${scheduleId}-`)) ids.push(key);
  return ids.sort();
}

/** Fire time of an agent id `<schedule>-YYYYMMDDTHHMMSSZ`. */
const fireTimeOf = (agentId: string): number => {
  const m = /-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(agentId)!;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
};

/** The `schedule fired` log lines of host processes, as [fireAt, outcome]. */
function firesLogged(hosts: TestProcess[], scheduleId: string): { fireAt: string; outcome: string; agentId?: string }[] {
  const out: { fireAt: string; outcome: string; agentId?: string }[] = [];
  for (const h of hosts) {
    for (const line of h.stdout().split('\n')) {
      if (!line.includes('"scheduleId"')) continue;
      try {
        const e = JSON.parse(line) as { scheduleId?: string; fireAt?: string; outcome?: string; agentId?: string };
        if (e.scheduleId === scheduleId && e.fireAt && e.outcome) out.push({ fireAt: e.fireAt, outcome: e.outcome, ...(e.agentId ? { agentId: e.agentId } : {}) });
      } catch {
        // not a log line
      }
    }
  }
  return out;
}

/** No tick waits for the schedule: nothing can fire it any more (resolves once the last one is dropped). */
async function noTickWaiting(d: Deployment, scheduleId: string, timeoutMs = 20_000): Promise<void> {
  const jsm = await d.conn.jsm();
  const stream = `${d.prefix.replaceAll('.', '_').toUpperCase()}_WORK`;
  const until = Date.now() + timeoutMs;
  for (;;) {
    const m = await jsm.streams.getMessage(stream, { last_by_subj: d.subjects.workSchedule(scheduleId) }).catch(() => null);
    if (!m) return;
    if (Date.now() > until) throw new Error(`a tick for ${scheduleId} still waits after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const QUICK = { agent: 'tally', input: { expect: 0 } };

describe('schedules', () => {
  it('fires every second with two hosts, through a SIGKILL mid-fire and a restart: every fire time once, none skipped', async () => {
    const d = await deploy(srv);
    const store = await ScheduleStore.open(d.conn, d.prefix);
    const hosts: TestProcess[] = [];
    try {
      // The doomed host dies right after its third fire submitted its agent, before recording it.
      const doomed = d.spawnHost({ ERRAND_CRASH_AT: 'schedule.after-fire:3', LOG_LEVEL: 'info' });
      hosts.push(doomed);
      await doomed.waitForLine(/"msg":"host ready"/);
      await store.add({ id: 'tick', cron: '* * * * * *', goal: 'count nothing', overlap: 'allow', ...QUICK }, { now: Date.now() });
      expect((await doomed.exited).signal).toBe('SIGKILL');
      expect(doomed.stderr()).toContain('crash point schedule.after-fire reached');

      // Two hosts take over; the fire the doomed one left unrecorded is found started.
      hosts.push(await d.startHost({ LOG_LEVEL: 'info' }), await d.startHost({ LOG_LEVEL: 'info' }));
      const before = (await store.get('tick')).counts.started;
      await waitForSchedule(store, 'tick', (r) => r.counts.started >= before + 3);
      // One of the two is killed outright; the other goes on alone, then a fresh one joins.
      hosts[1]!.signal('SIGKILL');
      await hosts[1]!.exited;
      const mid = (await store.get('tick')).counts.started;
      await waitForSchedule(store, 'tick', (r) => r.counts.started >= mid + 3);
      hosts.push(await d.startHost({ LOG_LEVEL: 'info' }));
      const late = (await store.get('tick')).counts.started;
      await waitForSchedule(store, 'tick', (r) => r.counts.started >= late + 3);

      await store.pause('tick', { now: Date.now() });
      await noTickWaiting(d, 'tick');
      const agents = await agentsOf(d, 'tick');
      const times = agents.map(fireTimeOf);
      // Every second from the first fire to the last started an agent: none was skipped across the kills.
      expect(times.length).toBeGreaterThanOrEqual(9);
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBe(1000);
      // ... and each started once: no fire time was started twice by the intake, and the one the
      // doomed host left unrecorded was found `existing` by the host that took it over.
      const started = firesLogged(hosts, 'tick').filter((f) => f.outcome === 'started');
      const startedTimes = started.map((f) => f.fireAt);
      expect(new Set(startedTimes).size).toBe(startedTimes.length);
      const existing = firesLogged(hosts, 'tick').filter((f) => f.outcome === 'existing');
      expect(existing.length).toBeGreaterThanOrEqual(1);
      for (const f of existing) expect(agents).toContain(f.agentId);
      // Each agent ran its one goal once.
      for (const id of agents.slice(0, 4)) {
        const journal = await d.journal(id);
        expect(journal.filter((j) => j.event.type === 'xstate.init')).toHaveLength(1);
      }
    } finally {
      await d.stopHosts();
    }
  }, 90_000);

  it('pause stops fires, resume starts them again from now, trigger fires at once (paused or not)', async () => {
    const d = await deploy(srv);
    const store = await ScheduleStore.open(d.conn, d.prefix);
    try {
      await d.startHost();
      await store.add({ id: 'ps', cron: '* * * * * *', goal: 'g', overlap: 'allow', ...QUICK }, { now: Date.now() });
      await waitForSchedule(store, 'ps', (r) => r.counts.started >= 2);
      const paused = await store.pause('ps', { now: Date.now() });
      expect(paused.state).toBe('paused');
      expect(paused.nextFireAt).toBeUndefined();
      await noTickWaiting(d, 'ps');
      const whilePaused = await agentsOf(d, 'ps');

      // A trigger fires a paused schedule at once, under its own id.
      const client = await createClient(d.conn, d.prefix);
      const fire = await store.trigger('ps', client, { now: Date.now });
      expect(fire).toMatchObject({ outcome: 'started', manual: true });
      expect(fire.agentId).toMatch(/^ps-now-\d{8}T\d{6,9}Z$/);
      expect((await d.waitForStatus(fire.agentId!, ['done'])).labels).toMatchObject({ schedule: 'ps' });
      expect((await store.get('ps')).state).toBe('paused');
      await noTickWaiting(d, 'ps');
      expect((await agentsOf(d, 'ps')).filter((a) => !a.startsWith('ps-now-'))).toEqual(whilePaused);

      const resumedAt = Date.now();
      const resumed = await store.resume('ps', { now: resumedAt });
      expect(resumed.generation).toBe(paused.generation + 1);
      const after = await waitForSchedule(store, 'ps', (r) => r.counts.started >= paused.counts.started + 3);
      expect(after.state).toBe('active');
      // What fired after the resume is from after it: nothing missed while paused was caught up.
      const fresh = (await agentsOf(d, 'ps')).filter((a) => !a.startsWith('ps-now-') && !whilePaused.includes(a));
      expect(fresh.length).toBeGreaterThanOrEqual(2);
      for (const a of fresh) expect(fireTimeOf(a)).toBeGreaterThan(resumedAt);
      await store.remove('ps');
      await noTickWaiting(d, 'ps');
      await expect(store.get('ps')).rejects.toMatchObject({ code: 'ERR_SCHEDULE_NOT_FOUND' });
    } finally {
      await d.stopHosts();
    }
  }, 90_000);

  it('after downtime: a missed fire inside the catch-up window fires once, one outside it is skipped', async () => {
    const d = await deploy(srv);
    const store = await ScheduleStore.open(d.conn, d.prefix);
    try {
      // No host runs. Two daily schedules whose last fire time passed while none ran: 10 minutes
      // ago (inside the default 1 h window) and 2 hours ago (outside it). They were added before it.
      const now = Date.now();
      const daily = (ms: number) => { const t = new Date(ms); return `${t.getUTCSeconds()} ${t.getUTCMinutes()} ${t.getUTCHours()} * * *`; };
      const recent = Math.floor((now - 10 * 60_000) / 1000) * 1000;
      const old = Math.floor((now - 2 * 3_600_000) / 1000) * 1000;
      const a = await store.add({ id: 'recent', cron: daily(recent), goal: 'catch up', ...QUICK }, { now: recent - 1000 });
      const b = await store.add({ id: 'old', cron: daily(old), goal: 'too late', ...QUICK }, { now: old - 1000 });
      expect(a.nextFireAt).toBe(recent);
      expect(b.nextFireAt).toBe(old);

      const first = await d.startHost();
      const caught = await waitForSchedule(store, 'recent', (r) => r.lastFire !== undefined);
      expect(caught.lastFire).toMatchObject({ at: recent, outcome: 'started', agentId: `recent-${new Date(recent).toISOString().replace(/[-:]/g, '').replace('.000', '')}` });
      expect(caught.nextFireAt).toBe(recent + 86_400_000);
      await d.waitForStatus(caught.lastFire!.agentId!, ['done']);
      const skipped = await waitForSchedule(store, 'old', (r) => r.lastFire !== undefined);
      expect(skipped.lastFire).toMatchObject({ at: old, outcome: 'skipped-late' });
      expect(skipped.lastFire!.reason).toMatch(/beyond the catch-up window of 1h/);
      expect(skipped.nextFireAt).toBe(old + 86_400_000);
      expect(skipped.counts).toEqual({ started: 0, skipped: 1, refused: 0 });

      // Restarting every host, and a second one, fires nothing again.
      first.signal('SIGKILL');
      await first.exited;
      await d.startHost();
      const second = await d.startHost();
      await second.waitForLine(/"msg":"schedules running"/);
      // Arming after the restart finds the waiting ticks (tomorrow's), and leaves them as they are.
      expect(await agentsOf(d, 'recent')).toEqual([caught.lastFire!.agentId]);
      expect(await agentsOf(d, 'old')).toEqual([]);
      expect((await store.get('recent')).counts.started).toBe(1);
    } finally {
      await d.stopHosts();
    }
  }, 60_000);

  it('ERRAND_HOST_SCHEDULES=false: that host fires no schedules (another does); a value that is not a flag is refused', async () => {
    const d = await deploy(srv);
    const store = await ScheduleStore.open(d.conn, d.prefix);
    try {
      const off = await d.startHost({ ERRAND_HOST_SCHEDULES: 'false' });
      await store.add({ id: 'only-on', cron: '* * * * * *', goal: 'g', overlap: 'allow', ...QUICK }, { now: Date.now() });
      const on = await d.startHost();
      await waitForSchedule(store, 'only-on', (r) => r.counts.started >= 3);
      expect(off.stdout()).not.toContain('schedules running');
      expect(firesLogged([off], 'only-on')).toEqual([]);
      expect(on.stdout()).toContain('schedules running');
      await on.waitForLine(/"scheduleId":"only-on".*"outcome":"started"/);
      await store.pause('only-on', { now: Date.now() });

      const bad = d.spawnHost({ ERRAND_HOST_SCHEDULES: 'sometimes' });
      expect((await bad.exited).code).toBe(2);
      expect(bad.stderr() + bad.stdout()).toContain("ERRAND_HOST_SCHEDULES must be true or false, got 'sometimes'");
    } finally {
      await d.stopHosts();
    }
  }, 60_000);

  it('a goal the intake refuses (an agent definition no host has) is recorded as refused, and later fires go on', async () => {
    const d = await deploy(srv);
    const store = await ScheduleStore.open(d.conn, d.prefix);
    try {
      await d.startHost();
      await store.add({ id: 'nobody', cron: '* * * * * *', goal: 'g', agent: 'nobody' }, { now: Date.now() });
      const r = await waitForSchedule(store, 'nobody', (x) => x.counts.refused >= 2);
      await store.pause('nobody', { now: Date.now() });
      expect(r.lastFire).toMatchObject({ outcome: 'refused', agentId: expect.stringMatching(/^nobody-/) });
      expect(r.lastFire!.reason).toMatch(/nobody/);
      expect(r.counts.started).toBe(0);
      expect(await agentsOf(d, 'nobody')).toEqual([]);
    } finally {
      await d.stopHosts();
    }
  }, 60_000);

  it('overlap: skip leaves a running previous run alone; cancel-previous cancels it and starts the next', async () => {
    const d = await deploy(srv);
    const store = await ScheduleStore.open(d.conn, d.prefix);
    // tally expecting one input never ends on its own: each run overlaps the next fire.
    const LONG = { agent: 'tally', input: { expect: 1 } };
    try {
      await d.startHost();
      await store.add({ id: 'skipper', cron: '* * * * * *', goal: 'g', overlap: 'skip', ...LONG }, { now: Date.now() });
      await store.add({ id: 'canceller', cron: '* * * * * *', goal: 'g', overlap: 'cancel-previous', ...LONG }, { now: Date.now() });
      const skipper = await waitForSchedule(store, 'skipper', (r) => r.counts.skipped >= 2);
      const canceller = await waitForSchedule(store, 'canceller', (r) => r.counts.started >= 3);
      await store.pause('skipper', { now: Date.now() });
      await store.pause('canceller', { now: Date.now() });
      await noTickWaiting(d, 'skipper');
      await noTickWaiting(d, 'canceller');

      expect(skipper.lastFire).toMatchObject({ outcome: 'skipped-overlap' });
      expect(skipper.lastFire!.reason).toMatch(/the previous run skipper-\d{8}T\d{6}Z is still (running|starting)/);
      expect(await agentsOf(d, 'skipper')).toHaveLength(1);

      const runs = await agentsOf(d, 'canceller');
      expect(runs.length).toBeGreaterThanOrEqual(3);
      // Every run but the last was cancelled by the next fire.
      for (const id of runs.slice(0, -1)) expect((await d.waitForStatus(id, ['cancelled'])).status).toBe('cancelled');
      // Started and cancelled by the schedule, which the host that fired it names.
      const first = (await d.record(runs[0]!))!;
      expect(first.submittedBy).toEqual({ id: 'schedule:canceller', channel: 'schedule' });
      expect(first.control).toMatchObject({ action: 'cancel', by: { id: 'schedule:canceller', channel: 'schedule' } });
      expect(canceller.counts.skipped).toBe(0);
    } finally {
      await d.stopHosts();
    }
  }, 60_000);
});
