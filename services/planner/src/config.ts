import { readFileSync } from 'node:fs';
import type { PriceTable } from '@errand/llm';
import type { ConnectOptions } from '@errand/nats';
import { ConfigError, envConnect, envInt, envPrefix, envVerifyKey } from '@errand/service';
import type { CommandVerifier } from '@errand/protocols';

export interface PlannerConfig {
  connect: Partial<ConnectOptions>;
  prefix: string;
  baseURL: string | undefined;
  apiKey: string;
  /** The model for plan commands that name none. */
  model: string;
  concurrency: number;
  /** Requests per window (a minute unless `rateWindowMs` says otherwise) per model, across every planner; 0 for no limit. */
  requestsPerMinute: number;
  /** The window `requestsPerMinute` counts in (ms); 60 000 by default. */
  rateWindowMs: number;
  timeoutMs: number;
  /** ERRAND_PLANNER_ACK_WAIT_MS: how long a dead planner's model calls wait to be taken over (a call still running heartbeats every third of it). */
  ackWaitMs: number;
  /** ERRAND_STOP_GRACE_MS: on SIGTERM, how long model calls in flight may finish before the rest are handed back (nak: another planner takes them at once). */
  stopGraceMs: number;
  prices: PriceTable;
  /** USD per day by label (`team=research`), enforced across every planner. */
  dailyCaps: Record<string, number>;
  logLevel: string;
  /** `ERRAND_VERIFY_KEY`: when set, a plan command without a host's signature is refused. */
  verify: CommandVerifier | undefined;
}

/** Built-in prices (USD per million tokens) for common models; ERRAND_PRICES adds or overrides. */
export const DEFAULT_PRICES: PriceTable = {
  'gpt-4o': { inputPerMTok: 2.5, outputPerMTok: 10 },
  'gpt-4o-mini': { inputPerMTok: 0.15, outputPerMTok: 0.6 },
  'gpt-4.1': { inputPerMTok: 2, outputPerMTok: 8 },
  'gpt-4.1-mini': { inputPerMTok: 0.4, outputPerMTok: 1.6 },
};

export function parseConfig(env: Readonly<Record<string, string | undefined>>): PlannerConfig {
  let prices: PriceTable = DEFAULT_PRICES;
  if (env.ERRAND_PRICES) {
    const source = env.ERRAND_PRICES.trim().startsWith('{') ? env.ERRAND_PRICES : readFileSync(env.ERRAND_PRICES, 'utf8');
    try {
      prices = { ...DEFAULT_PRICES, ...(JSON.parse(source) as PriceTable) };
    } catch (err) {
      throw new ConfigError(`ERRAND_PRICES must be JSON ({"model": {"inputPerMTok": 1, "outputPerMTok": 2}}) or a file with it: ${(err as Error).message}`);
    }
  }
  let dailyCaps: Record<string, number> = {};
  if (env.ERRAND_DAILY_CAPS) {
    try {
      dailyCaps = JSON.parse(env.ERRAND_DAILY_CAPS) as Record<string, number>;
      for (const [label, cap] of Object.entries(dailyCaps)) {
        if (!label.includes('=') || typeof cap !== 'number' || !(cap >= 0)) throw new Error(`'${label}': ${String(cap)}`);
      }
    } catch (err) {
      throw new ConfigError(`ERRAND_DAILY_CAPS must be JSON like {"team=research": 5} (USD per day by label): ${(err as Error).message}`);
    }
  }
  if (!env.OPENAI_API_KEY && !env.OPENAI_BASE_URL) {
    throw new ConfigError('set OPENAI_API_KEY (for OpenAI) or OPENAI_BASE_URL (for any OpenAI-compatible server, such as `errand mock-llm`)');
  }
  return {
    connect: envConnect(env, 'errand-planner'),
    prefix: envPrefix(env),
    baseURL: env.OPENAI_BASE_URL || undefined,
    apiKey: env.OPENAI_API_KEY || 'not-needed',
    model: env.ERRAND_MODEL || 'gpt-4o-mini',
    concurrency: envInt(env, 'ERRAND_PLANNER_CONCURRENCY', 32),
    requestsPerMinute: envInt(env, 'ERRAND_MODEL_RPM', 0, 0),
    rateWindowMs: envInt(env, 'ERRAND_MODEL_RATE_WINDOW_MS', 60_000, 1000),
    timeoutMs: envInt(env, 'ERRAND_LLM_TIMEOUT_MS', 600_000, 1000),
    ackWaitMs: envInt(env, 'ERRAND_PLANNER_ACK_WAIT_MS', 3_000, 100),
    stopGraceMs: envInt(env, 'ERRAND_STOP_GRACE_MS', 10_000, 0),
    prices,
    dailyCaps,
    logLevel: env.LOG_LEVEL || 'info',
    verify: envVerifyKey(env, 'planner'),
  };
}
