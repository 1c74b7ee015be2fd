import { readFile } from 'node:fs/promises';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { connect as natsConnect, credsAuthenticator, type NatsConnection, type Status } from '@nats-io/transport-node';
import { silentLogger, type Logger } from '@errand/protocols';
import { NatsError, NatsErrorCode } from './errors.js';
import { serverFeatures, warnAboutDurability, type ServerFeatures } from './features.js';
import { credsInfo, type CredsInfo } from './identity.js';
import { proverOf, type IdentityProver } from './proof.js';

const warnedAbout = new Set<string>();

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export interface ConnectOptions {
  /** One URL, a comma-separated list, or a list. */
  servers: string | readonly string[];
  /** Path of a `.creds` file (JWT + NKey seed). */
  credsFile: string | undefined;
  /**
   * TLS: the CA that signed the server's certificate (a self-signed deployment's own CA), and a
   * client certificate and key where the server asks for one. Unset: plain TCP unless the URL is
   * `tls://` or the server requires TLS (then the system's CAs are used).
   */
  tls: { caFile?: string; certFile?: string; keyFile?: string } | undefined;
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
  /**
   * Give a failed or timed-out request the stack of the code that made it. The client builds that
   * stack for every request, failed or not, which costs about a sixth of a busy host's CPU, so it
   * is off unless asked for (`ERRAND_ASYNC_TRACES=1`; the test harness turns it on).
   */
  asyncTraces: boolean;
}

export function defaultConnectOptions(): ConnectOptions {
  return {
    servers: DEFAULT_NATS_URL,
    credsFile: undefined,
    tls: undefined,
    name: 'errand',
    logger: silentLogger,
    waitOnFirstConnect: false,
    reconnectTimeWaitMs: 1000,
    timeoutMs: 5000,
    asyncTraces: false,
  };
}

/**
 * Reads `NATS_URL`, `NATS_CREDS`, the TLS files `NATS_CA`, `NATS_CERT`, `NATS_KEY` (the names
 * the `nats` CLI uses) and `ERRAND_ASYNC_TRACES` from the environment it is given (call it at the process edge with
 * `process.env`; libraries do not read the environment themselves).
 */
export function connectOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): Partial<ConnectOptions> {
  const options: Partial<ConnectOptions> = {};
  if (env.NATS_URL) options.servers = env.NATS_URL;
  if (env.NATS_CREDS) options.credsFile = env.NATS_CREDS;
  if (env.ERRAND_ASYNC_TRACES === '1' || env.ERRAND_ASYNC_TRACES === 'true') options.asyncTraces = true;
  if (env.NATS_CA || env.NATS_CERT || env.NATS_KEY) {
    options.tls = {
      ...(env.NATS_CA ? { caFile: env.NATS_CA } : {}),
      ...(env.NATS_CERT ? { certFile: env.NATS_CERT } : {}),
      ...(env.NATS_KEY ? { keyFile: env.NATS_KEY } : {}),
    };
  }
  return options;
}

/** A connection and what Errand needs beside it. Closing drains: in-flight work is delivered. */
export interface ErrandConnection extends AsyncDisposable {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  /** What the server said it supports when we connected. */
  readonly features: ServerFeatures;
  /**
   * The identity of the `.creds` this connection authenticated with, to prove who sent a message
   * (see `IDENTITY_HEADER`); undefined without credentials.
   */
  readonly identity: IdentityProver | undefined;
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
  const creds = o.credsFile ? await readCreds(o.credsFile) : undefined;
  const authenticator = creds ? credsAuthenticator(creds) : undefined;
  // An Errand identity may read replies only under its own inbox prefix (see rolePermissions).
  const user = creds ? readCredsInfo(creds, o.credsFile!) : undefined;
  const inboxPrefix = user?.replyPrefix;
  const identity = user ? proverOf(user) : undefined;

  let nc: NatsConnection;
  try {
    nc = await natsConnect({
      servers,
      name: o.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: o.reconnectTimeWaitMs,
      waitOnFirstConnect: o.waitOnFirstConnect,
      timeout: o.timeoutMs,
      noAsyncTraces: !o.asyncTraces,
      ...(authenticator ? { authenticator } : {}),
      ...(inboxPrefix ? { inboxPrefix } : {}),
      ...(o.tls ? { tls: { ...o.tls } } : {}),
    });
  } catch (cause) {
    if (isAuthError(cause)) {
      throw new NatsError(
        NatsErrorCode.AuthFailed,
        `the NATS server at ${servers.join(', ')} refused ${o.credsFile ? `the credentials in '${o.credsFile}'` : 'a connection without credentials'}: ` +
          `${(cause as Error).message}. Set NATS_CREDS to a .creds file this server trusts (\`errand creds\` mints them; \`errand up\` finds its own)`,
        { cause },
      );
    }
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
    identity,
    jsm: () => jetstreamManager(nc, { timeout: o.timeoutMs }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

function isAuthError(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string; cause?: unknown } | undefined;
  if (!e) return false;
  if (e.name === 'AuthorizationError' || e.name === 'UserAuthenticationExpiredError') return true;
  if (typeof e.message === 'string' && /authorization violation|authentication/i.test(e.message)) return true;
  return e.cause !== undefined && e.cause !== err && isAuthError(e.cause);
}

function readCredsInfo(creds: Uint8Array, path: string): CredsInfo {
  try {
    return credsInfo(new TextDecoder().decode(creds));
  } catch (cause) {
    throw new NatsError(NatsErrorCode.Identity, `'${path}' (NATS_CREDS) is not a NATS credentials file: ${(cause as Error).message}`, { cause });
  }
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
  const refused = new Set<string>();
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
      case 'error': {
        // A refused publish would be refused again on every retry, and the log line about it may
        // itself be shipped over NATS: say it once per subject, never in a loop.
        const v = s.error as { name?: string; operation?: string; subject?: string };
        if (v.name === 'PermissionViolationError') {
          const key = `${v.operation}:${v.subject}`;
          if (refused.has(key)) break;
          refused.add(key);
          logger.error({ operation: v.operation, subject: v.subject }, `NATS refused this identity's ${v.operation ?? 'operation'} on ${v.subject ?? 'a subject'}: its permissions do not allow it (see docs/security.md)`);
          break;
        }
        logger.error({ err: s.error }, 'NATS connection error');
        break;
      }
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
