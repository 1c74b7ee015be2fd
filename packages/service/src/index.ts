import { pino } from 'pino';
import pinoPretty from 'pino-pretty';
import { connect, connectOptionsFromEnv, isNatsUnavailable, type ConnectOptions, type ErrandConnection, type NatsConnection } from '@errand/nats';
import { setupTracing, startMetricsServer, type MetricsServer, type Readiness } from '@errand/telemetry';
import { assertPrefix, createRedactor, createSubjects, DEFAULT_PREFIX, patternRedactor, type Logger, type Redactor } from '@errand/protocols';

import { readFileSync } from 'node:fs';
import { createCommandSigner, createCommandVerifier, type CommandSigner, type CommandVerifier } from '@errand/protocols';
import { watchedPid, whenPidGone } from './watch-pid.js';
import { answerDiscovery, serviceMetadata, type DiscoveryResponder } from './discovery.js';

export { answerDiscovery, ERRAND_VERSION, serviceMetadata, type DiscoveryOptions, type DiscoveryResponder } from './discovery.js';
export { importModule, ModuleImportError, resolveModuleFrom } from './modules.js';
export { pidAlive, watchedPid, whenPidGone } from './watch-pid.js';

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

/**
 * `ERRAND_SIGNING_KEY`: the path of the host's PKCS#8 PEM private key, read and checked once; the
 * signer of the work commands it publishes. Undefined when unset. Errors name the variable, never
 * the path or the key.
 */
export function envSigningKey(env: Env): CommandSigner | undefined {
  const path = env.ERRAND_SIGNING_KEY;
  if (!path) return undefined;
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`ERRAND_SIGNING_KEY names a file that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); \`errand creds\` writes the deployment's signing key`);
  }
  try {
    return createCommandSigner(pem);
  } catch (err) {
    throw new ConfigError(`ERRAND_SIGNING_KEY: ${(err as Error).message}`);
  }
}

/**
 * `ERRAND_VERIFY_KEY`: the deployment's public key(s) (`ed25519:…`, comma-separated while keys
 * rotate) that work commands must be signed with. With `required`, unset is a {@link ConfigError}
 * that says how to get one.
 */
export function envVerifyKey(env: Env, service: string, options: { required: true }): CommandVerifier;
export function envVerifyKey(env: Env, service: string, options?: { required?: boolean }): CommandVerifier | undefined;
export function envVerifyKey(env: Env, service: string, options: { required?: boolean } = {}): CommandVerifier | undefined {
  const raw = env.ERRAND_VERIFY_KEY;
  if (!raw) {
    if (!options.required) return undefined;
    throw new ConfigError(
      `the ${service} needs ERRAND_VERIFY_KEY, the deployment's public key that hosts sign work commands with (ed25519:…), so that it runs only what a host issued: ` +
        '`errand creds` prints it (and `errand up` sets it for the services it starts); the hosts need the matching ERRAND_SIGNING_KEY',
    );
  }
  try {
    return createCommandVerifier(raw);
  } catch (err) {
    throw new ConfigError(`ERRAND_VERIFY_KEY: ${(err as Error).message}`);
  }
}

/** Environment variables whose values are secrets: `…_KEY`, `…_TOKEN`, `…_SECRET`, `…_PASSWORD`, `…_PASSWD`, `…_CREDENTIALS`, `…_NKEY`, `…_SEED`. */
const SECRET_ENV = /(?:^|_)(?:API_?KEY|N?KEY|SEED|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS)$/i;
/** …but not these: public keys, and settings that only name a file (whose contents the patterns find). */
const NOT_SECRET_ENV = /(?:PUBLIC|VERIFY)_KEY$/i;

/**
 * The secret values a process knows from its environment, collected once at start: the values of
 * variables named like secrets, the password of a `NATS_URL`, and the JWT and seed of the
 * `NATS_CREDS` file when it can be read. Feed them to a {@link Redactor} (values under 8
 * characters are not used by it).
 */
export function secretsFromEnv(env: Env): string[] {
  const found: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (value && SECRET_ENV.test(name) && !NOT_SECRET_ENV.test(name)) found.push(value);
  }
  for (const url of (env.NATS_URL ?? '').split(',')) {
    const password = /^[a-z]+:\/\/[^:@/]*:([^@/]+)@/i.exec(url.trim())?.[1];
    if (password) found.push(password, decodeURIComponentSafe(password));
  }
  if (env.NATS_CREDS) {
    try {
      const creds = readFileSync(env.NATS_CREDS, 'utf8');
      // The blocks of a .creds file: the user JWT and the NKey seed.
      for (const m of creds.matchAll(/-{3,}BEGIN [A-Z ]+-{3,}\s*([A-Za-z0-9._=-]+)\s*-{3,}END/g)) found.push(m[1]!);
    } catch {
      // Unreadable here: connecting will say so; the patterns still find JWTs and seeds.
    }
  }
  return found;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The process's one {@link Redactor}: the secrets of `env` ({@link secretsFromEnv}) and `extra`
 * (those a service's configuration names), plus the patterns for the usual secret formats.
 */
export function processRedactor(env: Env, extra: Iterable<string | undefined> = []): Redactor {
  return createRedactor({ secrets: [...secretsFromEnv(env), ...extra] });
}

/**
 * Ships log lines to `<prefix>.logs.<service>` (the ERRAND_LOGS stream) without ever holding up
 * the service: each line is a core NATS publish into the client's buffer. Lines written before
 * {@link LogShipper.attach} wait in a small buffer; when NATS is away or the buffer is full, lines
 * are dropped and counted (the next shipped line says how many).
 */
export class LogShipper {
  private nc: NatsConnection | undefined;
  private subject = '';
  private early: string[] = [];
  private dropped = 0;
  private away = false;

  constructor(private readonly maxEarly = 1000) {}

  attach(nc: NatsConnection, subject: string): void {
    this.nc = nc;
    this.subject = subject;
    this.away = false;
    // While disconnected the client would buffer every publish in memory: drop and count instead.
    void (async () => {
      for await (const s of nc.status()) {
        if (this.nc !== nc) break;
        if (s.type === 'disconnect') this.away = true;
        else if (s.type === 'reconnect') this.away = false;
      }
    })().catch(() => {});
    const early = this.early;
    this.early = [];
    for (const line of early) this.write(line);
  }

  detach(): void {
    this.nc = undefined;
  }

  /** pino's destination interface. */
  write(line: string): void {
    const nc = this.nc;
    if (!nc) {
      if (this.early.length < this.maxEarly) this.early.push(line);
      else this.dropped += 1;
      return;
    }
    if (this.away || nc.isClosed() || nc.isDraining()) {
      this.dropped += 1;
      return;
    }
    try {
      if (this.dropped) {
        nc.publish(this.subject, JSON.stringify({ level: 40, time: Date.now(), msg: `${this.dropped} log lines were not shipped (NATS was away or slow)` }));
        this.dropped = 0;
      }
      // One JSON object per message: pino ends each line with a newline, which readers printed as a blank line.
      nc.publish(this.subject, line.endsWith('\n') ? line.slice(0, -1) : line);
    } catch {
      this.dropped += 1;
    }
  }
}

export interface ServiceLogger {
  logger: Logger;
  /** Ships the lines to NATS once attached. */
  shipper: LogShipper;
}

const LEVEL_VALUES: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/**
 * The process's root logger for a service: JSON lines on stdout at `level` (pretty on a terminal
 * unless `LOG_FORMAT=json`), bound to the service, secrets redacted, and shipped to NATS through
 * the returned {@link LogShipper} at `shipLevel` (default info, so `errand logs` has the story even
 * when the terminal shows only warnings).
 */
export function createServiceLogger(
  service: string,
  level: string,
  options: {
    stdout?: boolean;
    pretty?: boolean;
    shipLevel?: string;
    /** 2: stderr instead of stdout. */
    fd?: 1 | 2;
    /** Applied to every line, on the terminal and shipped alike; patterns only unless given. */
    redactor?: Redactor;
  } = {},
): ServiceLogger {
  const shipLevel = options.shipLevel ?? 'info';
  const shipper = new LogShipper();
  const streams: { level: string; stream: { write(line: string): void } }[] = shipLevel === 'silent' ? [] : [{ level: shipLevel, stream: shipper }];
  if (options.stdout !== false) {
    const fd = options.fd ?? 1;
    const pretty = options.pretty ?? ((fd === 1 ? process.stdout : process.stderr).isTTY === true && process.env.LOG_FORMAT !== 'json');
    streams.push({ level, stream: pretty ? pinoPretty({ destination: fd, ignore: 'pid,hostname', translateTime: 'HH:MM:ss' }) : pino.destination(fd) });
  }
  const lowest = streams.reduce((min, st) => ((LEVEL_VALUES[st.level] ?? 30) < (LEVEL_VALUES[min] ?? 30) ? st.level : min), streams[0]?.level ?? 'silent');
  const redactor = options.redactor ?? patternRedactor;
  // Redaction at the root, on the finished line: the message, every field, error stacks and
  // bindings alike, before any destination (the terminal, NATS) sees it.
  const root = pino({ level: lowest, base: null, hooks: { streamWrite: (line) => redactor.redactJsonLine(line) } }, pino.multistream(streams));
  return { logger: keyedOnce(root, { service, pid: process.pid }), shipper };
}

type Bindings = Record<string, unknown>;

/**
 * A child's bindings joined to its parent's, each key once: the inner value wins, except that a
 * nested `component` is the path from the outer one (`worker` then `consumer`: `worker.consumer`).
 */
export function joinBindings(outer: Bindings, inner: Bindings): Bindings {
  const joined = { ...outer };
  for (const [key, value] of Object.entries(inner)) {
    const nested = key === 'component' && typeof outer.component === 'string' && typeof value === 'string' && outer.component !== value;
    joined[key] = nested ? `${outer.component as string}.${value}` : value;
  }
  return joined;
}

/**
 * A logger whose lines carry each key once. pino writes a child's bindings after its parent's and
 * a call's fields after both, so nested components and a field named like a binding (a
 * nats-server's `pid` beside the process's) came out as duplicate keys, which JSON readers resolve
 * differently (`errand logs --json`, jq, Python). So every logger binds the joined set directly on
 * the root (see {@link joinBindings}), and a call's field named like a binding wins over it: that
 * line is written without the binding.
 */
function keyedOnce(root: pino.Logger, bindings: Bindings): Logger {
  const bound = root.child(bindings);
  const write = (level: 'debug' | 'info' | 'warn' | 'error') => (obj: object, msg?: string) => {
    const clash = obj !== null && typeof obj === 'object' && Object.keys(obj).some((k) => k in bindings);
    const target = clash ? root.child(Object.fromEntries(Object.entries(bindings).filter(([k]) => !(k in obj)))) : bound;
    if (msg === undefined) target[level](obj);
    else target[level](obj, msg);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error'), child: (more) => keyedOnce(root, joinBindings(bindings, more)) };
}

/** What a service's `start` returns: something to stop on SIGTERM/SIGINT. */
export interface Running {
  stop(): Promise<void>;
  /**
   * Why the service cannot take work right now (its consumer stopped, a dependency is away), or
   * undefined when it can. Read on every `GET /readyz`; the connection and the start/drain state
   * are checked by {@link startService} already.
   */
  notReady?(): string | undefined;
}

export interface ServiceDefinition<C> {
  /** `errand-host`, `errand-planner`…: the name in messages and in service discovery (`nats micro ls`). */
  name: string;
  /** What `nats micro info` says the service does. */
  description?: string;
  /** SemVer in service discovery; default the Errand release ({@link ERRAND_VERSION}). */
  version?: string;
  parseConfig(env: Env): C;
  logLevel(config: C): string;
  connect(config: C): Partial<ConnectOptions>;
  /** Secrets the configuration holds beyond secret-named variables (a bot token inside a JSON setting). */
  secrets?(config: C): Iterable<string | undefined>;
  /** `redactor` knows every secret of the process: hand it to whatever emits text. */
  start(context: { config: C; conn: ErrandConnection; logger: Logger; redactor: Redactor }): Promise<Running>;
}

/** A service started in this process. */
export interface StartedService extends Running {
  readonly name: string;
  readonly logger: Logger;
  /** The Prometheus endpoint, when ERRAND_METRICS_PORT asked for one. */
  readonly metrics: MetricsServer | undefined;
  /** Its answers to service discovery (`$SRV.PING`…): `id` is this instance's. */
  readonly discovery: DiscoveryResponder;
  /**
   * Ready: connected to NATS, started (its consumers run) and not draining. What `GET /readyz`
   * answers; `errand up` combines its services' into one.
   */
  readiness(): Readiness;
}

/** The phases of a service process, as readiness reports them. */
type Phase = 'connecting' | 'starting' | 'running' | 'draining' | 'stopped';

/**
 * Starts a service in this process from an environment: parses its configuration (throws
 * {@link ConfigError}), connects with its own connection, starts it, and then answers service
 * discovery on that connection (`$SRV.PING|INFO|STATS`, see {@link answerDiscovery}) with the
 * metadata `prefix`, `role`, `hostname`, `pid`, `started`. `stop()` stops answering first, then
 * stops the service and closes the connection. `errand up` starts every service this way;
 * {@link runService} one.
 */
export async function startService<C>(
  definition: ServiceDefinition<C>,
  env: Env,
  options: { logger?: (service: string, level: string, redactor: Redactor) => ServiceLogger; connect?: Partial<ConnectOptions> } = {},
): Promise<StartedService> {
  // Starting while JetStream cannot answer yet (a cluster electing its leaders, a node restarting)
  // is tried again, from a new connection, for up to ERRAND_START_RETRY_MS; what is not passing (a
  // bad setting, a refusal, a bug) fails at once.
  const config = definition.parseConfig(env);
  const retryMs = envInt(env, 'ERRAND_START_RETRY_MS', 120_000, 0);
  const since = Date.now();
  let warn: Logger | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServiceOnce(definition, env, config, options);
    } catch (err) {
      if (!(err instanceof ServiceStartError) || !err.passing || Date.now() - since >= retryMs) throw err instanceof ServiceStartError ? err.cause : err;
      const delay = Math.min(5_000, 250 * 2 ** Math.min(attempt - 1, 5));
      warn ??= (options.logger ?? ((service, level, redactor) => createServiceLogger(service, level, { redactor })))(definition.name.replace(/^errand-/, ''), definition.logLevel(config), processRedactor(env, definition.secrets?.(config))).logger;
      warn.warn({ err: (err.cause as Error).message, attempt, retryInMs: delay }, `${definition.name} could not start yet (NATS or JetStream not answering): trying again`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** A failure of a service's own `start`, after it connected: `passing` when trying again may help. */
class ServiceStartError extends Error {
  constructor(
    override readonly cause: unknown,
    readonly passing: boolean,
  ) {
    super((cause as Error)?.message ?? String(cause));
    this.name = 'ServiceStartError';
  }
}

async function startServiceOnce<C>(
  definition: ServiceDefinition<C>,
  env: Env,
  config: C,
  options: { logger?: (service: string, level: string, redactor: Redactor) => ServiceLogger; connect?: Partial<ConnectOptions> },
): Promise<StartedService> {
  const service = definition.name.replace(/^errand-/, '');
  const redactor = processRedactor(env, definition.secrets?.(config));
  const { logger, shipper } = options.logger ? options.logger(service, definition.logLevel(config), redactor) : createServiceLogger(service, definition.logLevel(config), { redactor });
  const metricsPort = env.ERRAND_METRICS_PORT ? envInt(env, 'ERRAND_METRICS_PORT', 0, 0) : undefined;
  const tracing = setupTracing(definition.name, env);
  let phase: Phase = 'connecting';
  let away: string | undefined;
  let running: Running | undefined;
  let conn: ErrandConnection | undefined;
  const readiness = (): Readiness => {
    if (phase === 'connecting') return { ready: false, reason: 'connecting to NATS (NATS_URL)' };
    if (phase === 'starting') return { ready: false, reason: `starting ${definition.name}` };
    if (phase === 'draining') return { ready: false, reason: 'draining: stopping on SIGTERM, in-flight work is finished or handed back' };
    if (phase === 'stopped' || conn?.nc.isClosed()) return { ready: false, reason: 'stopped' };
    if (away) return { ready: false, reason: away };
    const reason = running?.notReady?.();
    return reason ? { ready: false, reason } : { ready: true };
  };
  // The endpoint answers before NATS does: liveness holds while the service waits for a server
  // (waitOnFirstConnect), readiness says what it waits for.
  let metricsServer: MetricsServer | undefined;
  if (metricsPort !== undefined) {
    metricsServer = await startMetricsServer({ port: metricsPort, readiness });
    logger.info({ url: metricsServer.url, live: `${metricsServer.base}/healthz`, ready: `${metricsServer.base}/readyz` }, `metrics at ${metricsServer.url}, health at /healthz and /readyz`);
  }
  try {
    conn = await connect({ ...definition.connect(config), ...options.connect, logger });
  } catch (err) {
    await metricsServer?.close();
    throw err;
  }
  const nc = conn.nc;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnecting') away ??= 'reconnecting to NATS';
      else if (s.type === 'reconnect') away = undefined;
      else if (s.type === 'close') away = 'the NATS connection is closed';
    }
  })().catch(() => {});
  shipper.attach(conn.nc, createSubjects(envPrefix(env)).logs(service));
  let discovery: DiscoveryResponder | undefined;
  const stopOnce = async () => {
    phase = 'draining';
    // Gone from discovery before it stops taking work.
    discovery?.stop();
    await running?.stop();
    phase = 'stopped';
    await metricsServer?.close();
    await tracing.flush().catch((err: unknown) => logger.warn({ err }, 'could not export the last spans'));
    shipper.detach();
    await conn!.close();
  };
  // Once: a second SIGTERM (or stop()) while draining waits for the same drain.
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= stopOnce());
  try {
    const started = new Date();
    phase = 'starting';
    running = await definition.start({ config, conn, logger, redactor });
    discovery = answerDiscovery(conn.nc, {
      name: definition.name,
      ...(definition.version ? { version: definition.version } : {}),
      ...(definition.description ? { description: definition.description } : {}),
      metadata: serviceMetadata(envPrefix(env), conn.identity?.role, started),
      logger,
    });
    // The server has the subscriptions once this returns: a ping right after start is answered.
    await conn.nc.flush();
    phase = 'running';
  } catch (err) {
    await stop().catch(() => {});
    throw new ServiceStartError(err, isNatsUnavailable(err));
  }
  if (tracing.exporting) logger.info({}, 'exporting traces over OTLP');
  return { name: service, logger, metrics: metricsServer, discovery: discovery!, readiness, stop };
}

/**
 * Runs a service process: parses its configuration (a bad setting exits 2 with the reason),
 * connects, starts it, and on SIGTERM or SIGINT stops it gracefully and exits 0. A failure to
 * start is logged once and exits 1.
 */
export async function runService<C>(definition: ServiceDefinition<C>, env: Env = process.env): Promise<void> {
  let started: StartedService;
  let watched: number | undefined;
  try {
    try {
      watched = watchedPid(env);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
    started = await startService(definition, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${definition.name}: ${err.message}\n`);
      process.exit(2);
    }
    createServiceLogger(definition.name.replace(/^errand-/, ''), 'error', { redactor: processRedactor(env) }).logger.error(
      { err, code: (err as { code?: string }).code },
      `${definition.name} failed to start: ${(err as Error).message}`,
    );
    process.exit(1);
  }
  const shutdown = async (signal: string) => {
    started.logger.info({ signal }, 'shutting down');
    try {
      await started.stop();
    } catch (err) {
      // Said and exited 1, rather than an unhandled rejection.
      started.logger.error({ err }, `could not stop cleanly: ${(err as Error).message}`);
      process.exit(1);
    }
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  if (watched !== undefined) {
    const pid = watched;
    whenPidGone(pid, () => {
      started.logger.warn({ watchedPid: pid }, `process ${pid} (ERRAND_WATCH_PID) is gone: stopping`);
      void shutdown('ERRAND_WATCH_PID');
    });
  }
}
