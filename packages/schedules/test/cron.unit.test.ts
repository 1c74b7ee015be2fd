import { describe, expect, it } from 'vitest';
import { createSubjects } from '@errand/protocols';
import {
  compileCron,
  formatScheduleDuration,
  newScheduleRecord,
  nextFireAfter,
  nextFireAfterHandling,
  nextFires,
  parseScheduleDuration,
  recordFire,
  scheduledAgentId,
  ScheduleError,
  decodeScheduleRecord,
} from '../src/index.js';

const iso = (ms: number[] | number | undefined) => (Array.isArray(ms) ? ms.map((m) => new Date(m).toISOString()) : ms === undefined ? undefined : new Date(ms).toISOString());
const t = (s: string) => Date.parse(s);

describe('next fire times', () => {
  it('weekdays at 9:00 in Paris: Saturday night gives Monday 08:00 UTC (winter, UTC+1)', () => {
    expect(iso(nextFires('0 9 * * 1-5', 'Europe/Paris', t('2026-12-05T22:00:00Z'), 3))).toEqual([
      '2026-12-07T08:00:00.000Z',
      '2026-12-08T08:00:00.000Z',
      '2026-12-09T08:00:00.000Z',
    ]);
  });

  it('9:00 in Paris is 07:00 UTC in summer (UTC+2) and 08:00 in winter', () => {
    expect(iso(nextFireAfter('0 9 * * *', 'Europe/Paris', t('2026-07-01T00:00:00Z')))).toBe('2026-07-01T07:00:00.000Z');
    expect(iso(nextFireAfter('0 9 * * *', 'Europe/Paris', t('2026-12-01T00:00:00Z')))).toBe('2026-12-01T08:00:00.000Z');
  });

  it('across the spring DST jump a daily 9:00 keeps its wall-clock time (New York)', () => {
    // 2026-03-08: clocks go from 02:00 to 03:00 EST→EDT.
    expect(iso(nextFires('0 9 * * *', 'America/New_York', t('2026-03-07T00:00:00Z'), 2))).toEqual(['2026-03-07T14:00:00.000Z', '2026-03-08T13:00:00.000Z']);
  });

  it('a time skipped by the spring jump fires once, right after the jump; the days around it at their time', () => {
    // Europe/Paris 2026-03-29: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist that day.
    const fires = iso(nextFires('30 2 * * *', 'Europe/Paris', t('2026-03-28T00:00:00Z'), 3));
    expect(fires).toEqual(['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
  });

  it('a time repeated by the autumn jump fires once, at its first occurrence', () => {
    // Europe/Paris 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30 happens twice.
    const fires = iso(nextFires('30 2 * * *', 'Europe/Paris', t('2026-10-24T00:00:00Z'), 3));
    expect(fires).toEqual(['2026-10-24T00:30:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });

  it('six fields: seconds first', () => {
    expect(iso(nextFires('*/20 * * * * *', 'UTC', t('2026-12-05T10:00:05.500Z'), 3))).toEqual([
      '2026-12-05T10:00:20.000Z',
      '2026-12-05T10:00:40.000Z',
      '2026-12-05T10:01:00.000Z',
    ]);
  });

  it('is strictly after the given time', () => {
    expect(iso(nextFireAfter('0 * * * *', 'UTC', t('2026-12-05T10:00:00Z')))).toBe('2026-12-05T11:00:00.000Z');
  });

  it('names and nicknames', () => {
    expect(iso(nextFireAfter('0 9 * * MON-FRI', 'UTC', t('2026-12-05T00:00:00Z')))).toBe('2026-12-07T09:00:00.000Z');
    expect(iso(nextFireAfter('@daily', 'UTC', t('2026-12-05T10:00:00Z')))).toBe('2026-12-06T00:00:00.000Z');
  });

  it('refuses a bad expression or time zone saying what is wrong and what to write', () => {
    expect(() => compileCron('61 * * * *', 'UTC')).toThrow(/invalid cron expression "61 \* \* \* \*": Invalid value for minute: 61\. Use five fields/);
    expect(() => compileCron('every morning', 'UTC')).toThrow(/invalid cron expression "every morning".*five fields/);
    expect(() => compileCron('', 'UTC')).toThrow(/invalid cron expression "": it is empty/);
    expect(() => compileCron('* * * * * * *', 'UTC')).toThrow(ScheduleError);
    expect(() => compileCron('0 9 * * *', 'Mars/Olympus')).toThrow(/unknown time zone "Mars\/Olympus": use an IANA name such as UTC, Europe\/Paris/);
    try {
      compileCron('0 25 * * *', 'UTC');
    } catch (err) {
      expect((err as ScheduleError).code).toBe('ERR_INVALID_SCHEDULE');
    }
  });
});

describe('after a fire is handled', () => {
  const hourly = { cron: '0 * * * *', timezone: 'UTC', catchupWindowMs: 3_600_000 };

  it('arms the next time when on time', () => {
    expect(iso(nextFireAfterHandling(hourly, t('2026-12-05T10:00:00Z'), t('2026-12-05T10:00:00.020Z')))).toBe('2026-12-05T11:00:00.000Z');
  });

  it('after downtime, the next armed is the first still inside the catch-up window (one catch-up per missed time in it)', () => {
    // Handled at 13:30 a fire due at 10:00: 11:00 and 12:00 are older than the 1 h window, 13:00 is inside it.
    expect(iso(nextFireAfterHandling(hourly, t('2026-12-05T10:00:00Z'), t('2026-12-05T13:30:00Z')))).toBe('2026-12-05T13:00:00.000Z');
    // A window of 0 still tolerates a few seconds (a host takes a tick milliseconds late).
    expect(iso(nextFireAfterHandling({ ...hourly, catchupWindowMs: 0 }, t('2026-12-05T10:00:00Z'), t('2026-12-05T13:30:00Z')))).toBe('2026-12-05T14:00:00.000Z');
  });
});

describe('durations', () => {
  it('reads units and combinations', () => {
    expect(parseScheduleDuration('90s')).toBe(90_000);
    expect(parseScheduleDuration('1h30m')).toBe(5_400_000);
    expect(parseScheduleDuration('2d')).toBe(172_800_000);
    expect(parseScheduleDuration('250ms')).toBe(250);
    expect(parseScheduleDuration('0')).toBe(0);
    expect(formatScheduleDuration(5_400_000)).toBe('1h30m');
    expect(formatScheduleDuration(3_600_000)).toBe('1h');
  });

  it('refuses what is not a duration, naming the accepted format', () => {
    for (const bad of ['1y', '', 'h', '10', '-1h', '1 h', '1h and more']) {
      expect(() => parseScheduleDuration(bad, '--catchup')).toThrow(/--catchup ".*" is not a duration: use a number with a unit: ms, s, m, h or d/);
    }
  });
});

describe('schedule records', () => {
  const now = t('2026-12-05T10:00:00Z');

  it('a new schedule: defaults, first fire from now', () => {
    const r = newScheduleRecord({ id: 'digest', cron: '0 9 * * 1-5', timezone: 'Europe/Paris', goal: 'summarise' }, { now });
    expect(r).toMatchObject({ id: 'digest', overlap: 'skip', catchupWindowMs: 3_600_000, state: 'active', generation: 0, counts: { started: 0, skipped: 0, refused: 0 } });
    expect(iso(r.nextFireAt)).toBe('2026-12-07T08:00:00.000Z');
    expect(decodeScheduleRecord(JSON.stringify(r), 'digest')).toEqual(r);
    expect(newScheduleRecord({ cron: '* * * * *', goal: 'g' }, { now }).id).toMatch(/^s-[a-z0-9]+-[0-9a-f]{6}$/);
  });

  it('refuses bad ids, goals, policies and windows with a clear reason', () => {
    const ok = { cron: '* * * * *', goal: 'g' };
    expect(() => newScheduleRecord({ ...ok, id: 'has space' }, { now })).toThrow(/schedule id "has space" is not usable: use 1-64 letters/);
    expect(() => newScheduleRecord({ ...ok, id: 'x'.repeat(65) }, { now })).toThrow(/is not usable/);
    expect(() => newScheduleRecord({ ...ok, goal: '  ' }, { now })).toThrow(/a schedule needs a goal/);
    expect(() => newScheduleRecord({ ...ok, overlap: 'never' as 'skip' }, { now })).toThrow(/overlap policy "never" is unknown: use one of skip, allow, cancel-previous/);
    expect(() => newScheduleRecord({ ...ok, catchupWindowMs: -1 }, { now })).toThrow(/catch-up window/);
    expect(() => newScheduleRecord({ ...ok, agent: 'a.b' }, { now })).toThrow(/is not an agent definition id/);
  });

  it('an unreadable record is refused with ERR_SCHEDULE_UNREADABLE', () => {
    expect(() => decodeScheduleRecord('{"v":2}', 'x')).toThrow(/schedule x cannot be read: version 2/);
    expect(() => decodeScheduleRecord('nope', 'x')).toThrow(expect.objectContaining({ code: 'ERR_SCHEDULE_UNREADABLE' }));
  });

  it('agent ids are deterministic per schedule and fire time, and distinct for triggers', () => {
    expect(scheduledAgentId('digest', t('2026-12-07T08:00:00Z'))).toBe('digest-20261207T080000Z');
    expect(scheduledAgentId('digest', t('2026-12-07T08:00:00.250Z'), true)).toBe('digest-now-20261207T080000250Z');
  });

  it('recording fires: started and existing count as one run each and become the run overlap looks at; skips do not', () => {
    const r = newScheduleRecord({ id: 'd', cron: '* * * * *', goal: 'g' }, { now });
    const a = recordFire(r, { at: now, handledAt: now, outcome: 'started', agentId: 'd-a' }, now + 60_000, now);
    expect(a.counts).toEqual({ started: 1, skipped: 0, refused: 0 });
    expect(a.lastRun).toEqual({ agentId: 'd-a', at: now, handledAt: now });
    const b = recordFire(a, { at: now + 60_000, handledAt: now + 60_000, outcome: 'skipped-overlap', reason: 'still running' }, now + 120_000, now + 60_000);
    expect(b.counts).toEqual({ started: 1, skipped: 1, refused: 0 });
    expect(b.lastRun?.agentId).toBe('d-a');
    expect(b.lastFire?.outcome).toBe('skipped-overlap');
    const c = recordFire(b, { at: now + 120_000, handledAt: now + 120_000, outcome: 'existing', agentId: 'd-c' }, undefined, now + 120_000);
    expect(c.counts.started).toBe(2);
    expect(c.nextFireAt).toBeUndefined();
  });
});

describe('the tick subject', () => {
  it('is one token per schedule under <p>.work.schedule, parsed back', () => {
    const s = createSubjects('acme');
    expect(s.workSchedule('digest')).toBe('acme.work.schedule.digest');
    expect(s.workSchedule()).toBe('acme.work.schedule.*');
    expect(s.parse('acme.work.schedule.digest')).toEqual({ type: 'work.schedule', scheduleId: 'digest' });
    expect(() => s.workSchedule('a.b')).toThrow(/schedule id "a.b" contains '.'/);
    expect(() => s.parse('acme.work.schedule.a.b')).toThrow(/unexpected shape/);
  });
});
