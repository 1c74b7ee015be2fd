import type { ConnectOptions } from '@errand/nats';
import { CRASH_POINTS, isCrashPoint, type CrashPoint } from '@errand/runtime';
import { ConfigError, envConnect, envFlag, envInt, envPrefix } from '@errand/service';

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

export function parseConfig(env: Readonly<Record<string, string | undefined>>): HostConfig {
  let crashAt: HostConfig['crashAt'];
  if (env.ERRAND_CRASH_AT) {
    const [point = '', nth = '1'] = env.ERRAND_CRASH_AT.split(':');
    if (!isCrashPoint(point) || !/^[1-9]\d*$/.test(nth)) {
      throw new ConfigError(`ERRAND_CRASH_AT must be one of ${CRASH_POINTS.join(', ')}, optionally with ':<n>', got '${env.ERRAND_CRASH_AT}'`);
    }
    crashAt = { point, nth: Number(nth) };
  }
  return {
    connect: envConnect(env, 'errand-host'),
    prefix: envPrefix(env),
    concurrency: envInt(env, 'ERRAND_HOST_CONCURRENCY', 64),
    ackWaitMs: envInt(env, 'ERRAND_HOST_ACK_WAIT_MS', 30_000, 100),
    agentModules: (env.ERRAND_AGENT_MODULES || '@errand/agent,@errand/example-agents')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    defaultAgent: env.ERRAND_DEFAULT_AGENT || undefined,
    timers: envFlag(env, 'ERRAND_HOST_TIMERS', true),
    intake: envFlag(env, 'ERRAND_HOST_INTAKE', true),
    logLevel: env.LOG_LEVEL || 'info',
    crashAt,
  };
}
