import { pino } from 'pino';
import { connect, connectOptionsFromEnv, type ConnectOptions, type ErrandConnection } from '@errand/nats';
import { assertPrefix, DEFAULT_PREFIX, type Logger } from '@errand/protocols';

type Env = Readonly<Record<string, string | undefined>>;

/** A setting in the environment that cannot be used; the process exits 2 with the message. */
export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** `ERRAND_PREFIX`, checked. */
export function envPrefix(env: Env): string {
  const prefix = env.ERRAND_PREFIX || DEFAULT_PREFIX;
  try {
    return assertPrefix(prefix);
  } catch (err) {
    throw new ConfigError(`ERRAND_PREFIX: ${(err as Error).message}`);
  }
}

/** A whole number of at least `min`, or `fallback` when unset. */
export function envInt(env: Env, name: string, fallback: number, min = 1): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(`${name} must be a whole number of at least ${min}, got '${raw}'`);
  return n;
}

/** true/false (also 1/0, yes/no, on/off), or `fallback` when unset. */
export function envFlag(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
  throw new ConfigError(`${name} must be true or false, got '${raw}'`);
}

/** How a service connects: `NATS_URL` / `NATS_CREDS`, named, waiting for the server on start. */
export function envConnect(env: Env, name: string): Partial<ConnectOptions> {
  return { ...connectOptionsFromEnv(env), name, waitOnFirstConnect: true };
}

/** The process's root logger: JSON lines on stdout, bound to the service, secrets redacted. */
export function createServiceLogger(service: string, level: string): Logger {
  return pino({
    level,
    base: { service, pid: process.pid },
    redact: { paths: ['apiKey', '*.apiKey', '*.token', '*.secret', '*.password', 'headers.authorization'], censor: '[redacted]' },
  }) as unknown as Logger;
}

/** What a service's `start` returns: something to stop on SIGTERM/SIGINT. */
export interface Running {
  stop(): Promise<void>;
}

export interface ServiceDefinition<C> {
  /** `errand-host`, `errand-planner`…: the name in messages. */
  name: string;
  parseConfig(env: Env): C;
  logLevel(config: C): string;
  connect(config: C): Partial<ConnectOptions>;
  start(context: { config: C; conn: ErrandConnection; logger: Logger }): Promise<Running>;
}

/**
 * Runs a service process: parses its configuration (a bad setting exits 2 with the reason),
 * connects, starts it, and on SIGTERM or SIGINT stops it gracefully and exits 0. A failure to
 * start is logged once and exits 1.
 */
export async function runService<C>(definition: ServiceDefinition<C>): Promise<void> {
  let config: C;
  try {
    config = definition.parseConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${definition.name}: ${err.message}\n`);
    process.exit(2);
  }
  const logger = createServiceLogger(definition.name.replace(/^errand-/, ''), definition.logLevel(config));
  try {
    const conn = await connect({ ...definition.connect(config), logger });
    const running = await definition.start({ config, conn, logger });
    const shutdown = async (signal: string) => {
      logger.info({ signal }, 'shutting down');
      await running.stop();
      await conn.close();
      process.exit(0);
    };
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
    process.once('SIGINT', () => void shutdown('SIGINT'));
  } catch (err) {
    logger.error({ err, code: (err as { code?: string }).code }, `${definition.name} failed to start: ${(err as Error).message}`);
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
}
