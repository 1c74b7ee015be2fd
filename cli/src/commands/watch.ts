import type { Command } from 'commander';
import { ClientError, ClientErrorCode, createClient } from '@errand/client';
import { createSubjects, isAgentId } from '@errand/protocols';
import { connectTo, resolveTarget, type GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { followAgent } from '../follow.js';
import { createLogger } from '../logger.js';
import { CliError } from '../output.js';
import { cliErrorOf } from '../with-client.js';
import { Ansi, formatLine, isTerminal, LiveFrame, ProgressModel, renderFrame, statusOf } from '../progress.js';

interface WatchOptions extends GlobalOptions {
  follow: boolean;
  lines?: boolean;
}

/** How often the tree is redrawn at most, and at least (elapsed times keep moving). */
const REDRAW_MS = 80;
const TICK_MS = 1000;

export function registerWatch(program: Command): void {
  program
    .command('watch')
    .description('follow an agent live: its task tree, the step in flight, tool calls with status and duration, cost (one line per event when not on a terminal)')
    .argument('<agentId>')
    .option('--no-follow', 'show what happened so far and exit, without waiting for the agent to end')
    .option('--lines', 'one line per event even on a terminal (as in a pipe or a log)')
    .addHelpText(
      'after',
      `
Shows the agent's history first (replayed from the events stream), then follows it and its child
agents until it ends. Ctrl-C stops watching; the agent keeps running.

Exit codes: 0 the agent is done (or still running, with --no-follow), 1 it failed or was cancelled,
2 usage, 3 no such agent, 4 NATS unavailable, 130 stopped with Ctrl-C.

Examples:
  $ errand watch a-mwv4snjw-a370a48e
  $ errand watch a-mwv4snjw-a370a48e --lines | tee agent.log
  $ errand watch a-mwv4snjw-a370a48e --json | jq -c 'select(.kind == "event.tool")'
  $ errand watch a-mwv4snjw-a370a48e --no-follow`,
    )
    .action(async (agentId: string, _o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<WatchOptions>();
      if (!isAgentId(agentId)) throw new CliError(ExitCode.Usage, `'${agentId}' is not an agent id (letters, digits, '_' and '-'); list agents with \`errand ls\``);
      const logger = createLogger(opts.logLevel ?? 'error');
      const target = await resolveTarget(opts);
      const conn = await connectTo(target, logger);
      const stopWatching = new AbortController();
      const onSigint = () => stopWatching.abort();
      process.once('SIGINT', onSigint);
      try {
        const client = await createClient(conn, target.prefix);
        // An agent submitted a moment ago may have no record yet: find waits for it.
        const record = await client.find(agentId).catch((err: unknown) => {
          if (err instanceof ClientError && err.code === ClientErrorCode.NotFound) {
            throw new CliError(ExitCode.NotFound, `no agent ${agentId} under prefix '${target.prefix}' on ${target.servers}; list agents with \`errand ls\``);
          }
          throw cliErrorOf(err);
        });
        const model = new ProgressModel(agentId, createSubjects(target.prefix));
        if (!opts.json && !opts.lines && process.stdout.isTTY) model.applyRecord(record);
        const mode = opts.json ? 'json' : process.stdout.isTTY && !opts.lines ? 'tree' : 'lines';
        const write = (s: string) => process.stdout.write(s);
        const follow = { conn, prefix: target.prefix, model, live: opts.follow, signal: stopWatching.signal, logger };

        if (mode === 'json') {
          await followAgent({ ...follow, onEvent: (e) => write(`${JSON.stringify(e)}\n`) });
        } else if (mode === 'lines') {
          const print = (lines: { at: number; agentId: string; text: string }[]) => {
            for (const l of lines) write(`${formatLine(model, l)}\n`);
          };
          await followAgent({ ...follow, onEvent: (_e, lines) => print(lines), onRecord: (_r, lines) => print(lines) });
        } else {
          await watchTree(model, follow);
        }

        const status = statusOf(model.root);
        if (stopWatching.signal.aborted) process.exitCode = 130;
        else process.exitCode = isTerminal(status) && status !== 'done' ? ExitCode.Failed : ExitCode.Ok;
      } finally {
        process.off('SIGINT', onSigint);
        await conn.close();
      }
    });
}

/** Redraws the tree in place while following; leaves the last frame on screen. */
async function watchTree(model: ProgressModel, follow: Omit<Parameters<typeof followAgent>[0], 'onEvent' | 'onRecord'>): Promise<void> {
  const out = process.stdout;
  const frame = new LiveFrame((s) => out.write(s));
  const draw = () => frame.draw(renderFrame(model, { width: out.columns || 80, height: out.rows || 24, now: Date.now() }));
  if (!follow.live) {
    await followAgent(follow);
    draw();
    return;
  }
  let pending: NodeJS.Timeout | undefined;
  const schedule = () => {
    pending ??= setTimeout(() => {
      pending = undefined;
      draw();
    }, REDRAW_MS);
  };
  const onResize = () => {
    frame.reset();
    draw();
  };
  const ticker = setInterval(draw, TICK_MS);
  out.on('resize', onResize);
  out.write(Ansi.hideCursor);
  try {
    // The first frame waits a moment for the replay, so it shows the history rather than an empty tree.
    schedule();
    await followAgent({ ...follow, onEvent: schedule, onRecord: schedule });
  } finally {
    clearInterval(ticker);
    clearTimeout(pending);
    out.off('resize', onResize);
    draw();
    out.write(Ansi.showCursor);
  }
}
