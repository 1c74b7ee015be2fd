import { describe, expect, it } from 'vitest';
import { runProcess, serviceMain } from '@errand/testing';
import { parseConfig } from '../src/config.js';

describe('planner configuration', () => {
  it('needs a model server, and says which variables name one', async () => {
    expect(() => parseConfig({})).toThrow(/set OPENAI_API_KEY .* or OPENAI_BASE_URL/);
    const r = await runProcess(process.execPath, [serviceMain.planner], { env: { PATH: process.env.PATH } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^errand-planner: set OPENAI_API_KEY/);
  });

  it('reads prices and daily caps, refusing malformed ones', () => {
    const c = parseConfig({ OPENAI_BASE_URL: 'http://x/v1', ERRAND_PRICES: '{"m": {"inputPerMTok": 1, "outputPerMTok": 2}}', ERRAND_DAILY_CAPS: '{"team=a": 3}' });
    expect(c.prices.m).toEqual({ inputPerMTok: 1, outputPerMTok: 2 });
    expect(c.dailyCaps).toEqual({ 'team=a': 3 });
    expect(() => parseConfig({ OPENAI_BASE_URL: 'http://x/v1', ERRAND_DAILY_CAPS: '{"team": 3}' })).toThrow(/ERRAND_DAILY_CAPS must be JSON like/);
  });
});
