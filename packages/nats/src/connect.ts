import { readFile } from 'node:fs/promises';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, credsAuthenticator, type NatsConnection, type Status } from '@nats-io/transport-node';
import { silentLogger, type Logger } from '@errand/protocols';
import { NatsError, NatsErrorCode } from './errors.js';
import { serverFeatures, warnAboutDurability, type ServerFeatures } from './features.js';

const warnedAbout = new Set<string>();

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export interface ConnectOptions {
  /** One URL, a comma-separated list, or a list. */
  servers: string | readonly string[];
  /** Path of a `.creds` file (JWT + NKey seed). */
  credsFile: string | undefined;
  /** The client name the server shows (`nats server report connections`). */
  name: string;
  logger: Logger;
  /**
   * Keep trying when no server answers the first attempt, as a long-running service should.
   * Off by default: a CLI command should fail fast and say so.
   */
  waitOnFirstConnect: boolean;
  reconnectTimeWaitMs: number;
  /** Timeout of each connection attempt and, after it, the default for JetStream API calls. */
  timeoutMs: number;
}

export function defaultConnectOptions(): ConnectOptions {
  return {
    servers: DEFAULT_NATS_URL,
    credsFile: undefined,
    name: 'errand',
    logger: silentLogger,
    waitOnFirstConnect: false,
    reconnectTimeWaitMs: 1000,
    timeoutMs: 5000,
  };
}

/**
 * Reads `NATS_URL` and `NATS_CREDS` from the environment it is given (call it at the process edge
 * with `process.env`; libraries do not read the environment themselves).
 */
export function connectOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): Partial<ConnectOptions> {
  const options: Partial<ConnectOptions> = {};
  if (env.NATS_URL) options.servers = env.NATS_URL;
  if (env.NATS_CREDS) options.credsFile = env.NATS_CREDS;
  return options;
}

/** A connection and what Errand needs beside it. Closing drains: in-flight work is delivered. */
export interface ErrandConnection extends AsyncDisposable {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  /** What the server said it supports when we connected. */
  readonly features: ServerFeatures;
  /** The JetStream management API (streams, consumers). */
  jsm(): Promise<JetStreamManager>;
  /** Drains and closes; safe to call twice. */
  close(): Promise<void>;
}

function serverList(servers: string | readonly string[]): string[] {
  const list = typeof servers === 'string' ? servers.split(',') : [...servers];
  return list.map((s) => s.trim()).filter((s) => s.length > 0);
}

/**
 * Connects and keeps reconnecting forever, logging every disconnect and reconnect. Reads the
 * server's version, warns once about durability on servers older than 2.10, and checks JetStream.
 * Throws {@link NatsError} `ERR_NATS_CONNECT` when no server answers (unless `waitOnFirstConnect`)
 * and `ERR_JETSTREAM_UNAVAILABLE` when the server runs without JetStream.
 */
export async function connect(options: Partial<ConnectOptions> = {}): Promise<ErrandConnection> {
  const o = { ...defaultConnectOptions(), ...options };
  const servers = serverList(o.servers);
  const logger = o.logger.child({ component: 'nats' });
  const authenticator = o.credsFile ? credsAuthenticator(await readCreds(o.credsFile)) : undefined;

  let nc: NatsConnection;
  try {
    nc = await natsConnect({
      servers,
      name: o.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: o.reconnectTimeWaitMs,
      waitOnFirstConnect: o.waitOnFirstConnect,
      timeout: o.timeoutMs,
      ...(authenticator ? { authenticator } : {}),
    });
  } catch (cause) {
    throw new NatsError(
      NatsErrorCode.ConnectFailed,
      `cannot connect to NATS at ${servers.join(', ')}: ${(cause as Error).message}. ` +
        'Start a server (`errand up` runs an embedded one) or set NATS_URL to a running nats-server',
      { cause },
    );
  }
  void logStatus(nc, logger);

  const info = nc.info;
  const features = serverFeatures({ version: info?.version ?? '0.0.0', jetstream: info?.jetstream, cluster: info?.cluster });
  logger.info({ server: nc.getServer(), serverVersion: features.version.text, cluster: info?.cluster }, 'connected to NATS');
  if (!features.jetstream) {
    await nc.close();
    throw new NatsError(
      NatsErrorCode.JetStreamUnavailable,
      `the NATS server at ${nc.getServer()} runs without JetStream; start it with -js (or 'jetstream {}' in its config)`,
    );
  }
  // Once per process and server version: `errand up` connects every service to the same server.
  if (!warnedAbout.has(features.version.text) && warnAboutDurability(features, logger)) warnedAbout.add(features.version.text);

  const js = jetstream(nc, { timeout: o.timeoutMs });
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= nc.isClosed() ? Promise.resolve() : nc.drain().catch(() => nc.close());
    return closing;
  };
  return {
    nc,
    js,
    features,
    jsm: () => jetstreamManager(nc, { timeout: o.timeoutMs }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function readCreds(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw new NatsError(NatsErrorCode.ConnectFailed, `cannot read NATS credentials file '${path}' (NATS_CREDS): ${(cause as Error).message}`, {
      cause,
    });
  }
}

async function logStatus(nc: NatsConnection, logger: Logger): Promise<void> {
  for await (const s of nc.status() as AsyncIterable<Status>) {
    switch (s.type) {
      case 'disconnect':
        logger.warn({ server: s.server }, 'disconnected from NATS; reconnecting');
        break;
      case 'reconnect':
        logger.info({ server: s.server }, 'reconnected to NATS');
        break;
      case 'ldm':
        logger.warn({ server: s.server }, 'NATS server entering lame duck mode; will move to another server');
        break;
      case 'error':
        logger.error({ err: s.error }, 'NATS connection error');
        break;
      case 'staleConnection':
        logger.warn({}, 'NATS connection stale; reconnecting');
        break;
      case 'slowConsumer':
        logger.warn({ subject: s.sub.getSubject(), pending: s.pending }, 'slow NATS subscription');
        break;
      default:
        break;
    }
  }
}
