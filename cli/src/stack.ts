import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { gatewayService } from '@errand/gateway';
import { hostService } from '@errand/host';
import { startMockLlm, type MockLlm, type MockScript } from '@errand/llm';
import { connect, provision, startNatsServer, writePrivateFile, type NatsServer, type ProvisionReport } from '@errand/nats';
import { notifierService } from '@errand/notifier';
import { plannerService } from '@errand/planner';
import { resourceSpecs, type Logger, type Redactor, type Role } from '@errand/protocols';
import { startService, type ServiceDefinition, type ServiceLogger, type StartedService } from '@errand/service';
import { setupTracing, startMetricsServer, type MetricsServer, type Readiness } from '@errand/telemetry';
import { toolRunnerService } from '@errand/tool-runner-service';
import { serviceEnv, type DeploymentCredentials } from './credentials.js';

type Env = Record<string, string | undefined>;

/** Every service `errand up` runs, in start order (a host first, so goals are accepted at once). */
export const SERVICES: readonly ServiceDefinition<never>[] = [hostService, plannerService, toolRunnerService, notifierService, gatewayService] as never[];

/** The gateway's port when none is asked for (another free one when it is taken). */
export const DEFAULT_GATEWAY_PORT = 7878;

/** Whether `port` can be listened on at 127.0.0.1 now; 0 asks the system for a free one. */
async function listenable(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : undefined));
    });
  });
}

/** The port the gateway listens on: `requested` as given, else 7878, else any free one. */
export async function gatewayPort(requested: number | undefined): Promise<number> {
  if (requested !== undefined && requested !== 0) return requested;
  if (requested === undefined && (await listenable(DEFAULT_GATEWAY_PORT)) !== undefined) return DEFAULT_GATEWAY_PORT;
  const free = await listenable(0);
  if (free === undefined) throw new Error('no free port for the gateway on 127.0.0.1');
  return free;
}

/** The person `errand up` signs in to the dashboard as: the login name, as a gateway user name. */
export function localUser(): string {
  let name = 'local';
  try {
    name = userInfo().username;
  } catch {
    // no user database entry (a container): 'local'
  }
  return name.replace(/[^A-Za-z0-9._@-]/g, '-').slice(0, 64) || 'local';
}

/** The file in the data folder that keeps the local user's dashboard token. */
export const gatewayTokenFile = (dataDir: string): string => join(dataDir, 'gateway-token');

/**
 * The local user's dashboard login token, kept in the data folder (mode 0600) so the printed link
 * stays valid across restarts; made on first use.
 */
export async function loadGatewayToken(dataDir: string, create = true): Promise<{ user: string; token: string } | undefined> {
  const file = gatewayTokenFile(dataDir);
  try {
    const saved = JSON.parse(await readFile(file, 'utf8')) as { user?: unknown; token?: unknown };
    if (typeof saved.user === 'string' && typeof saved.token === 'string' && /^[A-Za-z0-9_-]{32,}$/.test(saved.token)) return { user: saved.user, token: saved.token };
  } catch {
    // none yet (or unreadable): make one
  }
  if (!create) return undefined;
  const made = { user: localUser(), token: randomBytes(24).toString('base64url') };
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writePrivateFile(file, `${JSON.stringify(made)}\n`);
  return made;
}

/** What the scripted model answers when `errand up` has no OPENAI_API_KEY and no script. */
export const FALLBACK_SCRIPT: MockScript = {
  steps: [
    {
      repeat: true,
      reply: {
        content:
          'This answer comes from Errand\'s scripted model: no OPENAI_API_KEY was set when `errand up` started. ' +
          'Set OPENAI_API_KEY (or OPENAI_BASE_URL for any OpenAI-compatible server) and start it again for real answers.',
      },
    },
  ],
};

export interface StackOptions {
  /** The NATS server to use; when undefined an embedded one is started. */
  external: string | undefined;
  /**
   * The deployment's credentials: each service connects as its role and hosts sign commands.
   * With `insecure`, the server requires no credentials (the signing key is still used).
   */
  credentials: DeploymentCredentials;
  /** Run the embedded server without authentication (and connect without credentials). */
  insecure: boolean;
  dataDir: string;
  port: number;
  replicas: number;
  prefix: string;
  /** The tool runner's workspace folder. */
  workspace: string;
  /** The environment the services read their settings from. */
  env: Env;
  /** The scripted model's script, used when the environment names no model server. */
  script: MockScript;
  serviceLogLevel: string;
  /** Port of the one Prometheus endpoint for every service in this process (0: any free port). */
  metricsPort: number | undefined;
  logger: Logger;
  serviceLogger?: (service: string, level: string, redactor: Redactor) => ServiceLogger;
  /** The gateway (HTTP API and dashboard) on 127.0.0.1: its port and the local user's login; none: no gateway. */
  gateway: { port: number; user: string; token: string } | undefined;
  /** Progress lines for a person. */
  say(line: string): void;
}

export interface Stack {
  readonly url: string;
  readonly prefix: string;
  readonly server: NatsServer | undefined;
  readonly mock: MockLlm | undefined;
  readonly services: readonly StartedService[];
  readonly metrics: MetricsServer | undefined;
  /** The gateway's base URL and the local user's login link, when it runs. */
  readonly dashboard: { readonly url: string; readonly loginUrl: string } | undefined;
  readonly report: ProvisionReport;
  /** The environment the services were started with (without secrets worth printing). */
  readonly env: Env;
  stop(): Promise<void>;
}

/**
 * Everything on one machine: nats-server (unless `external`), provisioning, the scripted model
 * (unless the environment names a model), and one of each service, in this process. On a failure
 * part-way, what was started is stopped again before the error is thrown.
 */
export async function startStack(o: StackOptions): Promise<Stack> {
  let server: NatsServer | undefined;
  let mock: MockLlm | undefined;
  let metrics: MetricsServer | undefined;
  const services: StartedService[] = [];
  const stop = async () => {
    for (const s of [...services].reverse()) {
      await s.stop().catch((err: unknown) => o.logger.error({ err, service: s.name }, `could not stop ${s.name} cleanly`));
    }
    services.length = 0;
    await metrics?.close();
    await mock?.close();
    await server?.stop();
  };
  try {
    let url = o.external ?? '';
    if (o.external === undefined) {
      o.say(`starting nats-server (data in ${o.dataDir}) …`);
      server = await startNatsServer({
        port: o.port,
        storeDir: o.dataDir,
        env: process.env,
        logger: o.logger,
        // The server stops when this process dies, even by kill -9; if that fails, the next up takes it over.
        supervise: true,
        ...(o.insecure ? {} : { config: await readFile(o.credentials.serverConfigFile, 'utf8'), client: { credsFile: o.credentials.credsFile('admin') } }),
      });
      url = server.url;
      if (server.orphanStopped !== undefined) o.say(`stopped the nats-server (pid ${server.orphanStopped}) an earlier errand up left running on this data folder`);
      o.say(`nats-server ${server.version} listening on ${url} (pid ${server.pid})`);
    } else {
      o.say(`using the NATS server at ${url}`);
    }

    o.say(`provisioning streams and buckets under prefix '${o.prefix}' …`);
    // Against a server of the user's own, their NATS_CREDS is the identity to use; otherwise each
    // connection uses its role's creds from the deployment's folder (none with --insecure).
    const ownCreds = o.external !== undefined && o.env.NATS_CREDS ? o.env.NATS_CREDS : undefined;
    const admin = ownCreds ? { credsFile: ownCreds } : o.insecure ? {} : { credsFile: o.credentials.credsFile('admin') };
    const conn = await connect({ servers: url, name: 'errand-up', logger: o.logger, waitOnFirstConnect: server === undefined, ...admin });
    let report: ProvisionReport;
    try {
      report = await provision(conn, { specs: resourceSpecs({ prefix: o.prefix, replicas: o.replicas }), logger: o.logger });
    } finally {
      await conn.close();
    }

    const env: Env = {
      ...o.env,
      // Without channels of their own, notifications become log lines of the notifier.
      ERRAND_NOTIFY_CHANNELS: o.env.ERRAND_NOTIFY_CHANNELS || JSON.stringify({ console: { type: 'console' } }),
      ERRAND_DEFAULT_NOTIFY: o.env.ERRAND_NOTIFY_CHANNELS ? o.env.ERRAND_DEFAULT_NOTIFY : JSON.stringify([{ channel: 'console', on: ['done', 'failed', 'approval', 'input', 'budget', 'stuck'] }]),
      NATS_URL: url,
      ERRAND_PREFIX: o.prefix,
      ERRAND_WORKSPACE: o.workspace,
      LOG_LEVEL: o.serviceLogLevel,
      // One endpoint for the whole process (below), not one per service.
      ERRAND_METRICS_PORT: undefined,
    };
    const dashboard = o.gateway ? { url: `http://127.0.0.1:${o.gateway.port}`, loginUrl: `http://127.0.0.1:${o.gateway.port}/login?token=${o.gateway.token}` } : undefined;
    if (o.gateway) {
      env.ERRAND_GATEWAY_HOST = '127.0.0.1';
      env.ERRAND_GATEWAY_PORT = String(o.gateway.port);
      env.ERRAND_GATEWAY_TOKENS = [`${o.gateway.user}:${o.gateway.token}`, o.env.ERRAND_GATEWAY_TOKENS].filter(Boolean).join(',');
      // The notifier's links open the agent in the dashboard (…/agents/<id>).
      env.ERRAND_DASHBOARD_URL = o.env.ERRAND_DASHBOARD_URL || dashboard!.url;
    }
    setupTracing('errand', env);
    if (!env.OPENAI_API_KEY && !env.OPENAI_BASE_URL) {
      mock = await startMockLlm(o.script);
      env.OPENAI_BASE_URL = mock.url;
      o.say(`no OPENAI_API_KEY: the planner uses the scripted model at ${mock.url}`);
    }
    for (const definition of SERVICES) {
      if (definition === (gatewayService as unknown) && !o.gateway) continue;
      // Each service connects as its own role; hosts sign the commands they publish, workers check them.
      const identity = serviceEnv(o.credentials, roleOf(definition.name));
      if (o.insecure) delete identity.NATS_CREDS;
      if (ownCreds) identity.NATS_CREDS = ownCreds;
      const started = await startService(definition, { ...env, ...identity }, o.serviceLogger ? { logger: o.serviceLogger } : {});
      services.push(started);
      o.say(`  ${started.name.padEnd(12)} running (pid ${process.pid})`);
    }
    if (o.metricsPort !== undefined) {
      // One /readyz for the process: ready when every service is, else the first one's reason.
      const readiness = (): Readiness => {
        for (const s of services) {
          const r = s.readiness();
          if (!r.ready) return { ready: false, reason: `${s.name}: ${r.reason}` };
        }
        return { ready: true };
      };
      metrics = await startMetricsServer({ port: o.metricsPort, host: '127.0.0.1', readiness });
    }
    return { url, prefix: o.prefix, server, mock, services, metrics, dashboard, report, env, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The identity a service of `errand up` connects as. */
export function roleOf(service: string): Role {
  const role = service.replace(/^errand-/, '');
  if (role === 'host' || role === 'planner' || role === 'tool-runner' || role === 'notifier' || role === 'gateway') return role;
  throw new Error(`no NATS role for service ${service}`);
}

/** The tool runner's workspace next to the data folder: `~/.errand/nats` → `~/.errand/workspace`. */
export function defaultWorkspace(dataDir: string): string {
  return join(dataDir, '..', 'workspace');
}
