import { connectOptionsFromEnv, type ConnectOptions } from '@errand/nats';
import { assertPrefix, DEFAULT_PREFIX } from '@errand/protocols';
import { CRASH_POINTS, isCrashPoint, type CrashPoint } from '@errand/runtime';

/** The host's configuration, parsed once from the environment. */
export interface HostConfig {
  connect: Partial<ConnectOptions>;
  prefix: string;
  concurrency: number;
  ackWaitMs: number;
  /** Module specifiers (or paths) whose `agents` export is registered. */
  agentModules: string[];
  defaultAgent: string | undefined;
  timers: boolean;
  intake: boolean;
  logLevel: string;
  /** `ERRAND_CRASH_AT=point[:n]`: SIGKILL at the n-th time the point is reached (default 1). */
  crashAt: { point: CrashPoint; nth: number } | undefined;
}

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function positiveInt(env: Record<string, string | undefined>, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`${name} must be a whole number above 0, got '${raw}'`);
  return n;
}

function flag(env: Record<string, string | undefined>, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
  throw new ConfigError(`${name} must be true or false, got '${raw}'`);
}

export function parseConfig(env: Record<string, string | undefined>): HostConfig {
  const prefix = env.ERRAND_PREFIX || DEFAULT_PREFIX;
  try {
    assertPrefix(prefix);
  } catch (err) {
    throw new ConfigError(`ERRAND_PREFIX: ${(err as Error).message}`);
  }
  let crashAt: HostConfig['crashAt'];
  if (env.ERRAND_CRASH_AT) {
    const [point = '', nth = '1'] = env.ERRAND_CRASH_AT.split(':');
    if (!isCrashPoint(point) || !/^[1-9]\d*$/.test(nth)) {
      throw new ConfigError(`ERRAND_CRASH_AT must be one of ${CRASH_POINTS.join(', ')}, optionally with ':<n>', got '${env.ERRAND_CRASH_AT}'`);
    }
    crashAt = { point, nth: Number(nth) };
  }
  return {
    connect: { ...connectOptionsFromEnv(env), name: 'errand-host', waitOnFirstConnect: true },
    prefix,
    concurrency: positiveInt(env, 'ERRAND_HOST_CONCURRENCY', 64),
    ackWaitMs: positiveInt(env, 'ERRAND_HOST_ACK_WAIT_MS', 30_000),
    agentModules: (env.ERRAND_AGENT_MODULES || '@errand/agent,@errand/example-agents').split(',').map((s) => s.trim()).filter(Boolean),
    defaultAgent: env.ERRAND_DEFAULT_AGENT || undefined,
    timers: flag(env, 'ERRAND_HOST_TIMERS', true),
    intake: flag(env, 'ERRAND_HOST_INTAKE', true),
    logLevel: env.LOG_LEVEL || 'info',
    crashAt,
  };
}
