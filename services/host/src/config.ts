import { z } from 'zod';
import type { ConnectOptions } from '@errand/nats';
import { createCommandVerifier, NotifyRuleSchema, WIRE_FORMATS, type CommandSigner, type CommandVerifier, type NotifyRule, type WireFormat } from '@errand/protocols';
import { CRASH_POINTS, DEFAULT_RETENTION_MS, defaultHostSettings, DURATION_FORMAT, isCrashPoint, parseDuration, type CrashPoint, type HostSettings } from '@errand/runtime';
import { ConfigError, envConnect, envFlag, envInt, envPrefix, envSigningKey } from '@errand/service';

/**
 * The host's configuration, parsed once from the environment: the host's own settings (the
 * runtime's {@link HostSettings}, one description shared with `startHost`) and what only a process
 * has — how to connect, which agent modules to load, logging, crash points, the signing key.
 */
export interface HostConfig {
  connect: Partial<ConnectOptions>;
  settings: HostSettings;
  /** Module specifiers (or paths) whose `agents` export is registered. */
  agentModules: string[];
  defaultAgent: string | undefined;
  logLevel: string;
  /** `ERRAND_CRASH_AT=point[:n]`: SIGKILL at the n-th time the point is reached (default 1). */
  crashAt: { point: CrashPoint; nth: number } | undefined;
  /** `ERRAND_SIGNING_KEY` (a PEM file): signs every work command this host publishes. */
  signer: CommandSigner | undefined;
  /** Verifies the durable timers the host fires: the signer's own public key. */
  verifier: CommandVerifier | undefined;
}

/** `ERRAND_RETENTION`: a duration above 0 (removing agents the moment they end is `errand gc --older-than 0`'s job). */
function parseRetention(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_RETENTION_MS;
  let ms: number;
  try {
    ms = parseDuration(raw);
  } catch {
    throw new ConfigError(`ERRAND_RETENTION must be ${DURATION_FORMAT}, got '${raw}'`);
  }
  if (ms <= 0) throw new ConfigError(`ERRAND_RETENTION must be above 0, got '${raw}'; to keep finished agents forever set ERRAND_GC_INTERVAL_MS=0`);
  return ms;
}

/** `ERRAND_EVENT_FORMAT`: how progress events are written (`msgpack`, the default, or `json`). */
function parseEventFormat(raw: string | undefined, fallback: WireFormat): WireFormat {
  if (raw === undefined || raw === '') return fallback;
  const format = raw.trim().toLowerCase();
  if (!(WIRE_FORMATS as readonly string[]).includes(format)) {
    throw new ConfigError(`ERRAND_EVENT_FORMAT must be one of ${WIRE_FORMATS.join(', ')}, got '${raw}'`);
  }
  return format as WireFormat;
}

function parseNotify(raw: string | undefined): NotifyRule[] {
  if (!raw) return [];
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    json = undefined;
  }
  const parsed = z.array(NotifyRuleSchema).safeParse(json);
  if (!parsed.success) throw new ConfigError(`ERRAND_DEFAULT_NOTIFY must be JSON like [{"channel": "ops", "on": ["failed", "approval"]}]: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** The modules whose `agents` a host registers when ERRAND_AGENT_MODULES names none. */
export const DEFAULT_AGENT_MODULES = '@errand/agent,@errand/example-agents';

/** ERRAND_AGENT_MODULES (comma-separated specifiers or paths), or the default. */
export function agentModulesOf(env: Readonly<Record<string, string | undefined>>): string[] {
  return (env.ERRAND_AGENT_MODULES || DEFAULT_AGENT_MODULES)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
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
  const signer = envSigningKey(env);
  const d = defaultHostSettings();
  return {
    connect: envConnect(env, 'errand-host'),
    settings: {
      prefix: envPrefix(env),
      concurrency: envInt(env, 'ERRAND_HOST_CONCURRENCY', d.concurrency),
      ackWaitMs: envInt(env, 'ERRAND_HOST_ACK_WAIT_MS', d.ackWaitMs, 100),
      timers: envFlag(env, 'ERRAND_HOST_TIMERS', d.timers),
      intake: envFlag(env, 'ERRAND_HOST_INTAKE', d.intake),
      schedules: envFlag(env, 'ERRAND_HOST_SCHEDULES', d.schedules),
      defaultNotify: parseNotify(env.ERRAND_DEFAULT_NOTIFY),
      retentionMs: parseRetention(env.ERRAND_RETENTION),
      gcIntervalMs: envInt(env, 'ERRAND_GC_INTERVAL_MS', d.gcIntervalMs, 0),
      retryBaseMs: envInt(env, 'ERRAND_HOST_RETRY_BASE_MS', d.retryBaseMs, 10),
      submitRate: { perMinute: envInt(env, 'ERRAND_SUBMIT_RATE', d.submitRate.perMinute, 0), burst: envInt(env, 'ERRAND_SUBMIT_BURST', d.submitRate.burst, 1) },
      eventFormat: parseEventFormat(env.ERRAND_EVENT_FORMAT, d.eventFormat),
    },
    agentModules: agentModulesOf(env),
    defaultAgent: env.ERRAND_DEFAULT_AGENT || undefined,
    logLevel: env.LOG_LEVEL || 'info',
    crashAt,
    signer,
    verifier: signer ? createCommandVerifier(signer.publicKey) : undefined,
  };
}
