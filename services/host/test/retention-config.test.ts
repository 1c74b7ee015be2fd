import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';

const DAY = 24 * 60 * 60 * 1000;

describe('host retention settings', () => {
  it('keep finished agents 30 days and sweep hourly by default', () => {
    expect(parseConfig({}).settings).toMatchObject({ retentionMs: 30 * DAY, gcIntervalMs: 60 * 60 * 1000 });
  });

  it('read ERRAND_RETENTION as a duration and ERRAND_GC_INTERVAL_MS in milliseconds (0: no sweeps)', () => {
    expect(parseConfig({ ERRAND_RETENTION: '12h' }).settings.retentionMs).toBe(12 * 60 * 60 * 1000);
    expect(parseConfig({ ERRAND_RETENTION: '7d' }).settings.retentionMs).toBe(7 * DAY);
    expect(parseConfig({ ERRAND_RETENTION: '90000' }).settings.retentionMs).toBe(90_000);
    expect(parseConfig({ ERRAND_GC_INTERVAL_MS: '0' }).settings.gcIntervalMs).toBe(0);
    expect(parseConfig({ ERRAND_GC_INTERVAL_MS: '60000' }).settings.gcIntervalMs).toBe(60_000);
  });

  it('refuse a setting they cannot use, saying what they expect', () => {
    expect(() => parseConfig({ ERRAND_RETENTION: 'a month' })).toThrow(/ERRAND_RETENTION must be a number with a unit .*'30d'.*got 'a month'/);
    expect(() => parseConfig({ ERRAND_RETENTION: '0' })).toThrow(/ERRAND_RETENTION must be above 0.*ERRAND_GC_INTERVAL_MS=0/);
    expect(() => parseConfig({ ERRAND_GC_INTERVAL_MS: '-5' })).toThrow(/ERRAND_GC_INTERVAL_MS must be a whole number of at least 0/);
  });
});
