import type { Command } from 'commander';
import { connect, defaultDataDir, provision, startNatsServer, type ErrandConnection, type NatsServer } from '@errand/nats';
import { explicitServer, removeUpState, writeUpState, type GlobalOptions } from '../context.js';
import { DEFAULT_PREFIX, resourceSpecs } from '@errand/protocols';
import { agents as exampleAgents } from '@errand/example-agents';
import { createRegistry, startHost, type Host } from '@errand/runtime';
import { createLogger } from '../logger.js';
import { printJson } from '../output.js';
import { formatReport } from './provision.js';
import { parsePort, parseReplicas } from './options.js';

interface UpOptions extends GlobalOptions {
  dataDir: string;
  port: number;
  replicas: number;
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('run Errand on this machine: an embedded nats-server (unless NATS_URL is set), provisioned, and a host')
    .option('--data-dir <dir>', 'where the embedded server keeps its data (persists across runs)', defaultDataDir())
    .option('--port <port>', 'client port of the embedded server (0: any free port)', parsePort, 0)
    .option('--replicas <n>', 'JetStream replicas when NATS_URL points at a cluster', parseReplicas, 1)
    .addHelpText(
      'after',
      `
Stop it with Ctrl-C; started again it finds its data where it left it. Other errand commands, in
other terminals, find the server it started on their own.

Examples:
  $ errand up                                # embedded nats-server in ~/.errand/nats
  $ errand up --port 4333 --data-dir ./nats  # a fixed port and a project-local data folder
  $ NATS_URL=nats://127.0.0.1:4222 errand up # use a server you already run`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<UpOptions>();
      const logger = createLogger(opts.logLevel ?? 'info', 'up');
      const say = (line: string) => {
        if (!opts.json) process.stdout.write(`${line}\n`);
      };

      let server: NatsServer | undefined;
      let conn: ErrandConnection | undefined;
      let host: Host | undefined;
      const external = explicitServer(opts);
      const prefix = opts.prefix ?? process.env.ERRAND_PREFIX ?? DEFAULT_PREFIX;
      try {
        let url = external ?? '';
        if (external === undefined) {
          say(`starting nats-server (data in ${opts.dataDir}) …`);
          server = await startNatsServer({ port: opts.port, storeDir: opts.dataDir, env: process.env, logger });
          url = server.url;
          say(`nats-server ${server.version} listening on ${url} (pid ${server.pid})`);
        } else {
          say(`using the NATS server at ${url}`);
        }
        conn = await connect({ servers: url, name: 'errand-up', logger, waitOnFirstConnect: server === undefined });
        say(`provisioning streams and buckets under prefix '${prefix}' …`);
        const report = await provision(conn, {
          specs: resourceSpecs({ prefix, replicas: opts.replicas }),
          logger,
        });
        const registry = createRegistry(exampleAgents);
        host = await startHost({ conn, registry, prefix, logger });
        if (server) await writeUpState({ url, prefix, pid: process.pid });
        if (opts.json) printJson({ ok: true, url, prefix, embedded: server !== undefined, dataDir: server?.storeDir, provision: report });
        else {
          process.stdout.write(formatReport(report, url));
          say(`host running agents: ${registry.list().map((d) => d.id).join(', ')} (default: ${registry.defaultAgent})`);
          say(`Errand is up. NATS_URL=${url}  (Ctrl-C to stop)`);
          say(`try: errand submit "take a nap" --agent sleeper --input '{"delayMs":2000}' --wait`);
        }
        await untilSignal();
        say('stopping …');
      } finally {
        await host?.stop();
        await conn?.close();
        if (server) {
          await server.stop();
          await removeUpState();
        }
      }
      say('stopped');
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
