import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { defaultDataDir } from '@errand/nats';
import { runService } from '@errand/service';
import { resolveTarget, type GlobalOptions } from '../context.js';
import { loadCredentials, serviceEnv } from '../credentials.js';
import { ExitCode } from '../exit-codes.js';
import { CliError } from '../output.js';
import { loadGatewayToken, roleOf, SERVICES } from '../stack.js';

interface WorkerOptions extends GlobalOptions {
  config?: string;
  workspace?: string;
  tools?: string[];
  concurrency?: number;
}

const names = SERVICES.map((s) => s.name.replace(/^errand-/, ''));

function parseService(value: string): string {
  if (!names.includes(value)) throw new InvalidArgumentError(`the services are ${names.join(', ')}.`);
  return value;
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('run one service in the foreground, to scale it out: start as many as you like, on any machine that reaches NATS')
    .argument('<service>', `the service: ${names.join(' | ')}`, parseService)
    .option('--config <file>', 'tool-runner: an errand.json with MCP servers (sets ERRAND_CONFIG)')
    .option('--workspace <dir>', 'tool-runner: the folder the fs_* tools work in (sets ERRAND_WORKSPACE)')
    .option(
      '--tools <module>',
      'tool-runner: a module of tools made with defineTool (@errand/function-tools) to serve beside the built-ins and MCP servers: a built file (./dist/my-tools.js) or a package name; repeat it or separate with commas (sets ERRAND_TOOL_MODULES)',
      (value: string, previous: string[] = []) => [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)],
    )
    .addHelpText(
      'after',
      `
The service reads its settings from the environment (docs/operations.md lists them); the NATS
server and prefix come from --server/--prefix, NATS_URL/ERRAND_PREFIX, or a running \`errand up\`.
Logs are JSON lines on stdout (pretty on a terminal). SIGINT or SIGTERM stops it gracefully: work
in flight finishes or is handed to another worker.

Examples:
  $ NATS_URL=nats://nats.internal:4222 errand worker host
  $ OPENAI_API_KEY=sk-… ERRAND_PLANNER_CONCURRENCY=64 errand worker planner
  $ errand worker tool-runner --config ./errand.json --workspace /srv/agent-files
  $ errand worker tool-runner --tools ./dist/my-tools.js --tools @acme/tools
  $ ERRAND_GATEWAY_TOKENS=alice:<token> ERRAND_GATEWAY_PORT=8080 errand worker gateway

The gateway (HTTP API and dashboard, docs/gateway.md) needs ERRAND_GATEWAY_TOKENS; beside a
running \`errand up\` without it, it signs in the same local user as the link \`errand up\` printed.`,
    )
    .action(async (service: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<WorkerOptions>();
      if (opts.tools !== undefined && service !== 'tool-runner') throw new CliError(ExitCode.Usage, `--tools is for the tool-runner (errand worker tool-runner --tools ${opts.tools.join(',')}), not the ${service}`);
      if (opts.tools !== undefined && !opts.tools.length) throw new CliError(ExitCode.Usage, '--tools needs a module: a built file (./dist/my-tools.js) or a package name');
      const target = await resolveTarget(opts);
      const definition = SERVICES.find((s) => s.name === `errand-${service}`)!;
      // Beside a running `errand up`, a worker joins it as its role, with its keys; elsewhere
      // NATS_CREDS, ERRAND_SIGNING_KEY and ERRAND_VERIFY_KEY come from the environment.
      const credentials = target.credsDir ? await loadCredentials(target.credsDir, { prefix: target.prefix, create: false }) : undefined;
      const identity: Record<string, string | undefined> = credentials ? serviceEnv(credentials, roleOf(definition.name)) : {};
      if (service === 'gateway' && !process.env.ERRAND_GATEWAY_TOKENS && target.source === 'errand up') {
        const login = await loadGatewayToken(defaultDataDir(), false);
        if (login) identity.ERRAND_GATEWAY_TOKENS = `${login.user}:${login.token}`;
      }
      await runService(definition, {
        ...identity,
        ...process.env,
        NATS_URL: target.servers,
        ERRAND_PREFIX: target.prefix,
        ...(opts.logLevel ? { LOG_LEVEL: opts.logLevel } : {}),
        ...(opts.config ? { ERRAND_CONFIG: resolve(opts.config) } : {}),
        ...(opts.workspace ? { ERRAND_WORKSPACE: resolve(opts.workspace) } : {}),
        // The service runs in this process: paths are taken from this folder, as typed.
        ...(opts.tools ? { ERRAND_TOOL_MODULES: opts.tools.join(',') } : {}),
      });
      // The service runs on (its connection keeps the process alive) until a signal; runService exits then.
    });
}
