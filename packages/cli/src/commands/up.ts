import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseMockScript, type MockScript } from '@errand/llm';
import { defaultDataDir } from '@errand/nats';
import { createServiceLogger } from '@errand/service';
import { DEFAULT_PREFIX, type Redactor } from '@errand/protocols';
import { explicitServer, removeUpState, writeUpState, type GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { createLogger } from '../logger.js';
import { CliError, printJson } from '../output.js';
import { defaultWorkspace, FALLBACK_SCRIPT, startStack } from '../stack.js';
import { formatReport } from './provision.js';
import { parsePort, parseReplicas } from './options.js';

interface UpOptions extends GlobalOptions {
  dataDir: string;
  port: number;
  replicas: number;
  workspace?: string;
  llmScript?: string;
  metricsPort: number;
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
    .description('run all of Errand on this machine: nats-server (unless NATS_URL is set), a host, a planner, a tool runner and a notifier')
    .option('--data-dir <dir>', 'where the embedded server keeps its data (persists across runs)', defaultDataDir())
    .option('--port <port>', 'client port of the embedded server (0: any free port)', parsePort, 0)
    .option('--replicas <n>', 'JetStream replicas when NATS_URL points at a cluster', parseReplicas, 1)
    .option('--workspace <dir>', 'the folder the fs_* tools work in (default: next to the data folder)')
    .option('--metrics-port <port>', 'port of the Prometheus /metrics endpoint on 127.0.0.1 (0: any free port)', parsePort, 0)
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

Stop it with Ctrl-C; started again it finds its data where it left it, and every agent continues
where it was. Other errand commands, in other terminals, find the server it started on their own.

Examples:
  $ errand up                                # embedded nats-server in ~/.errand/nats
  $ errand up --port 4333 --data-dir ./nats  # a fixed port and a project-local data folder
  $ OPENAI_API_KEY=sk-… errand up            # plan with OpenAI
  $ NATS_URL=nats://127.0.0.1:4222 errand up # use a server you already run`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<UpOptions>();
      const logger = createLogger(opts.logLevel ?? 'info', 'up');
      const say = (line: string) => {
        if (!opts.json) process.stdout.write(`${line}\n`);
      };
      const external = explicitServer(opts);
      const prefix = opts.prefix ?? process.env.ERRAND_PREFIX ?? DEFAULT_PREFIX;
      const stack = await startStack({
        external,
        dataDir: opts.dataDir,
        port: opts.port,
        replicas: opts.replicas,
        prefix,
        workspace: opts.workspace ?? defaultWorkspace(opts.dataDir),
        env: process.env,
        script: opts.llmScript ? await readScript(opts.llmScript) : FALLBACK_SCRIPT,
        serviceLogLevel: opts.logLevel ?? 'info',
        metricsPort: opts.metricsPort,
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
        if (stack.server) await writeUpState({ url: stack.url, prefix, pid: process.pid });
        if (opts.json) {
          printJson({
            ok: true,
            url: stack.url,
            prefix,
            embedded: stack.server !== undefined,
            dataDir: stack.server?.storeDir,
            workspace: stack.env.ERRAND_WORKSPACE,
            model: stack.mock ? { scripted: stack.mock.url } : { baseURL: stack.env.OPENAI_BASE_URL ?? 'https://api.openai.com/v1' },
            services: stack.services.map((s) => s.name),
            metrics: stack.metrics?.url,
            pid: process.pid,
            provision: stack.report,
          });
        } else {
          process.stdout.write(formatReport(stack.report, stack.url));
          say(`workspace for the fs_* tools: ${stack.env.ERRAND_WORKSPACE}`);
          say(`metrics: ${stack.metrics?.url}`);
          say(`Errand is up. NATS_URL=${stack.url}  (Ctrl-C to stop)`);
          say(`try: errand submit "take a nap" --agent sleeper --input '{"delayMs":2000}' --wait`);
        }
        await untilSignal();
      } finally {
        await stop();
      }
    });
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
}
