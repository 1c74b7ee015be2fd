#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { registerAgentCommands } from './commands/agents.js';
import { registerCreds } from './commands/creds.js';
import { registerDemo } from './commands/demo.js';
import { registerGc } from './commands/gc.js';
import { registerLogs } from './commands/logs.js';
import { registerLs } from './commands/ls.js';
import { registerMcp } from './commands/mcp.js';
import { registerMockLlm } from './commands/mock-llm.js';
import { registerProvision } from './commands/provision.js';
import { registerReplay } from './commands/replay.js';
import { registerSchedule } from './commands/schedule.js';
import { registerStatus } from './commands/status.js';
import { registerSubmit } from './commands/submit.js';
import { registerUp } from './commands/up.js';
import { registerWatch } from './commands/watch.js';
import { registerWorker } from './commands/worker.js';
import { ExitCode } from './exit-codes.js';
import { exitCodeOf, printError } from './output.js';

// A reader that stops early (`errand ls | head`) closes the pipe: that ends the output, quietly, as
// for any Unix tool — not an unhandled EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('errand')
  .description('Errand: durable async agents on NATS')
  .version(version)
  .option('-s, --server <url>', 'NATS server URL(s), comma-separated (default: NATS_URL, else the server of a running `errand up`, said on stderr; none: exit 4)')
  .option('--prefix <prefix>', 'subject prefix of this Errand deployment (default: ERRAND_PREFIX or "errand")')
  .option('--json', 'print machine-readable JSON on stdout')
  .option('--log-level <level>', 'debug | info | warn | error')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .addHelpText(
    'after',
    `
Environment:
  NATS_URL         NATS server URL(s); when unset \`errand up\` runs an embedded nats-server
  NATS_CREDS       path of a NATS .creds file
  NATS_SERVER_BIN  the nats-server binary for the embedded server (default: PATH, /usr/sbin)
  ERRAND_PREFIX    subject prefix (default "errand")
  OPENAI_API_KEY   the planner's model key (without it and OPENAI_BASE_URL, \`errand up\` uses a scripted model)
  OPENAI_BASE_URL  any OpenAI-compatible server instead of OpenAI

Exit codes: 0 ok, 1 failed, 2 usage, 3 not found, 4 NATS unavailable.`,
  );

registerDemo(program);
registerUp(program);
registerWorker(program);
registerProvision(program);
registerCreds(program);
registerSubmit(program);
registerSchedule(program);
registerWatch(program);
registerLs(program);
registerAgentCommands(program);
registerGc(program);
registerReplay(program);
registerLogs(program);
registerStatus(program);
registerMockLlm(program);
registerMcp(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander has already printed help or the usage error.
    process.exitCode = err.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  } else {
    printError(err, program.opts<{ json?: boolean }>().json ?? false);
    process.exitCode = exitCodeOf(err);
  }
}
