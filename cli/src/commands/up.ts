import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseMockScript, type MockScript } from '@errand/llm';
import { defaultDataDir } from '@errand/nats';
import { createServiceLogger, watchedPid, whenPidGone } from '@errand/service';
import { DEFAULT_PREFIX, type Redactor } from '@errand/protocols';
import { explicitServer, removeUpState, writeUpState, type GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { createLogger } from '../logger.js';
import { CliError, printJson } from '../output.js';
import { defaultCredsDir, loadCredentials, type DeploymentCredentials } from '../credentials.js';
import { DEFAULT_GATEWAY_PORT, defaultWorkspace, FALLBACK_SCRIPT, gatewayPort, loadGatewayToken, startStack } from '../stack.js';
import { formatReport } from './provision.js';
import { parsePort, parseReplicas } from './options.js';

interface UpOptions extends GlobalOptions {
  dataDir: string;
  credsDir?: string;
  insecure?: boolean;
  port: number;
  replicas: number;
  workspace?: string;
  llmScript?: string;
  metricsPort: number;
  gatewayPort?: number;
}

export async function readScript(path: string): Promise<MockScript> {
  try {
    return parseMockScript(JSON.parse(await readFile(path, 'utf8')));
  } catch (err) {
    throw new CliError(ExitCode.Usage, `cannot use the model script ${path}: ${(err as Error).message} (see errand mock-llm --help for the format)`);
  }
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run all of Errand on this machine: nats-server (unless NATS_URL is set), a host, a planner, a tool runner, a notifier and the gateway (HTTP API and dashboard)')
    .option('--data-dir <dir>', 'where the embedded server keeps its data (persists across runs)', defaultDataDir())
    .option('--port <port>', 'client port of the embedded server (0: any free port)', parsePort, 0)
    .option('--replicas <n>', 'JetStream replicas when NATS_URL points at a cluster', parseReplicas, 1)
    .option('--workspace <dir>', 'the folder the fs_* tools work in (default: next to the data folder)')
    .option('--creds-dir <dir>', 'where the deployment\'s credentials are kept, minted on first start (default: next to the data folder)')
    .option('--insecure', 'run the embedded server without authentication: any client that reaches it may do anything (not for shared machines)')
    .option('--metrics-port <port>', 'port of the Prometheus /metrics endpoint on 127.0.0.1 (0: any free port)', parsePort, 0)
    .option('--gateway-port <port>', `port of the gateway (HTTP API and dashboard) on 127.0.0.1 (default ${DEFAULT_GATEWAY_PORT}, or any free port when it is taken; 0: any free port)`, parsePort)
    .option('--llm-script <file>', 'without OPENAI_API_KEY: the scripted model\'s script (default: one fixed answer)')
    .addHelpText(
      'after',
      `
Every service runs in this one process, each with its own NATS connection, and logs to stdout
(stderr with --json; pretty on a terminal, JSON otherwise; --log-level sets the level, default
info; \`errand logs\` reads them back from NATS). Prometheus metrics of all of them are served at
the printed /metrics URL. Without OPENAI_API_KEY or OPENAI_BASE_URL the planner talks to a
scripted model. Notifications go to the log as 'console' channel lines unless
ERRAND_NOTIFY_CHANNELS configures real channels. Every service setting in docs/operations.md can
be given in the environment.

The embedded server requires credentials: on first start \`errand up\` mints one NATS identity
per role (host, planner, tool-runner, notifier, gateway, operator, submitter, admin) into the
credentials folder (mode 0700, files 0600), and each service connects as its own role, allowed
only the subjects that role needs. Other errand commands use the operator's .creds from there;
applications get submitter.creds (NATS_CREDS). Hosts sign every command with the folder's
signing key and workers refuse what no host signed. \`errand creds\` manages the folder;
docs/security.md says what each role may do.

The gateway serves the HTTP API and the dashboard on 127.0.0.1 (--gateway-port). \`errand up\`
makes a login token for you on first start, keeps it in the data folder (gateway-token, mode
0600) so the printed link stays valid across restarts, and prints the link:
  Dashboard: http://127.0.0.1:7878/login?token=…
Opening it signs the browser in; the same token works as \`Authorization: Bearer <token>\` for
the API (docs/gateway.md). ERRAND_GATEWAY_TOKENS adds other people (name:token,…). The
notifier's links point at the dashboard (ERRAND_DASHBOARD_URL, unless you set it).

Stop it with Ctrl-C; started again it finds its data where it left it, and every agent continues
where it was. Killed instead (kill -9), its embedded nats-server is stopped by a watchdog; a server
left running anyway is stopped by the next \`errand up\` on the same data folder, but only when it is
provably the one Errand started there (docs/operations.md, "The embedded server").
Other errand commands, in other terminals, find the server it started on their own.

Examples:
  $ errand up                                # embedded nats-server in ~/.errand/nats
  $ errand up --port 4333 --data-dir ./nats  # a fixed port and a project-local data folder
  $ errand up --gateway-port 8080            # the dashboard on http://127.0.0.1:8080
  $ OPENAI_API_KEY=sk-… errand up            # plan with OpenAI
  $ NATS_URL=nats://127.0.0.1:4222 errand up # use a server you already run`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<UpOptions>();
      // Ctrl-C (or SIGTERM) from the first moment: one that comes while the stack starts stops it
      // once it has started, cleanly, instead of killing the process half-way (its embedded
      // nats-server left to the watchdog).
      const stopSignal = stopOnSignal();
      const logger = createLogger(opts.logLevel ?? 'info', 'up');
      const say = (line: string) => {
        if (!opts.json) process.stdout.write(`${line}\n`);
      };
      const external = explicitServer(opts);
      const prefix = opts.prefix ?? process.env.ERRAND_PREFIX ?? DEFAULT_PREFIX;
      const credsDir = resolve(opts.credsDir ?? defaultCredsDir(opts.dataDir));
      const credentials = await loadDeploymentCredentials(credsDir, prefix);
      if (credentials.created) say(`minted this deployment's credentials in ${credsDir}`);
      if (opts.insecure) {
        logger.warn({}, '--insecure: the embedded nats-server accepts every client without credentials; anyone who reaches it can approve, run tools and read everything');
      }
      const login = (await loadGatewayToken(opts.dataDir))!;
      const stack = await startStack({
        external,
        credentials,
        insecure: opts.insecure === true,
        dataDir: opts.dataDir,
        port: opts.port,
        replicas: opts.replicas,
        prefix,
        workspace: opts.workspace ?? defaultWorkspace(opts.dataDir),
        env: process.env,
        script: opts.llmScript ? await readScript(opts.llmScript) : FALLBACK_SCRIPT,
        serviceLogLevel: opts.logLevel ?? 'info',
        metricsPort: opts.metricsPort,
        gateway: { port: await gatewayPort(opts.gatewayPort), ...login },
        // With --json, stdout carries only the JSON report: the services log to stderr.
        ...(opts.json ? { serviceLogger: (service: string, level: string, redactor: Redactor) => createServiceLogger(service, level, { fd: 2, redactor }) } : {}),
        logger,
        say,
      });
      let stopping = false;
      const stop = async () => {
        if (stopping) return;
        stopping = true;
        say('stopping …');
        await stack.stop();
        if (stack.server) await removeUpState();
        say('stopped');
      };
      try {
        if (stack.server) await writeUpState({ url: stack.url, prefix, pid: process.pid, ...(opts.insecure ? {} : { credsDir }) });
        if (opts.json) {
          printJson({
            ok: true,
            url: stack.url,
            prefix,
            embedded: stack.server !== undefined,
            auth: opts.insecure ? 'none' : 'credentials',
            credsDir,
            dataDir: stack.server?.storeDir,
            workspace: stack.env.ERRAND_WORKSPACE,
            model: stack.mock ? { scripted: stack.mock.url } : { baseURL: stack.env.OPENAI_BASE_URL ?? 'https://api.openai.com/v1' },
            services: stack.services.map((s) => s.name),
            metrics: stack.metrics?.url,
            dashboard: stack.dashboard?.loginUrl,
            pid: process.pid,
            provision: stack.report,
          });
        } else {
          process.stdout.write(formatReport(stack.report, stack.url));
          say(`workspace for the fs_* tools: ${stack.env.ERRAND_WORKSPACE}`);
          say(`metrics: ${stack.metrics?.url}`);
          say(opts.insecure ? 'WARNING: --insecure: the server accepts any client without credentials' : `credentials: ${credsDir} (applications: NATS_CREDS=${credentials.credsFile('submitter')})`);
          if (stack.dashboard) say(`Dashboard: ${stack.dashboard.loginUrl}`);
          say(`Errand is up. NATS_URL=${stack.url}  (Ctrl-C to stop)`);
          say(`try: errand submit "take a nap" --agent sleeper --input '{"delayMs":2000}' --wait`);
        }
        await stopSignal.received;
      } finally {
        await stop();
        stopSignal.dispose();
      }
    });
}

/** The credentials in `dir`, minted on first use; refused when they belong to another prefix. */
export async function loadDeploymentCredentials(dir: string, prefix: string): Promise<DeploymentCredentials> {
  const credentials = (await loadCredentials(dir, { prefix, create: true }))!;
  if (credentials.identities.prefix !== prefix) {
    throw new CliError(
      ExitCode.Usage,
      `the credentials in ${dir} are for prefix '${credentials.identities.prefix}', not '${prefix}'; choose another folder with --creds-dir (each deployment has its own)`,
    );
  }
  return credentials;
}

/**
 * Listens for SIGINT and SIGTERM from now on: `received` resolves on the first one; a second one
 * (Ctrl-C again while it stops) exits at once with 130.
 */
function stopOnSignal(): { received: Promise<void>; dispose(): void } {
  // ERRAND_WATCH_PID: stop, as on a signal, once that process is gone (its services watch it too).
  // Read first: a bad value ends the command before any listener is left behind.
  let watched: number | undefined;
  try {
    watched = watchedPid(process.env);
  } catch (err) {
    throw new CliError(ExitCode.Usage, (err as Error).message);
  }
  let resolve!: () => void;
  const received = new Promise<void>((r) => (resolve = r));
  let signals = 0;
  const done = () => {
    if (++signals > 1) process.exit(130);
    resolve();
  };
  process.on('SIGINT', done);
  process.on('SIGTERM', done);
  const unwatch = watched === undefined ? () => {} : whenPidGone(watched, done);
  return {
    received,
    dispose: () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      unwatch();
    },
  };
}
