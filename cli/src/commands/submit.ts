import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { ClientError, ClientErrorCode, createClient } from '@errand/client';
import { createSubjects, type AgentRecord, type Logger, type Message } from '@errand/protocols';
import { connectTo, resolveTarget, type GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { createLogger } from '../logger.js';
import { followAgent } from '../follow.js';
import { CliError, printJson } from '../output.js';
import { formatLine, isTerminal, ProgressModel, type ProgressLine } from '../progress.js';
import { terminalSafe } from '../terminal-safe.js';

interface SubmitOptions extends GlobalOptions {
  agent?: string;
  model?: string;
  system?: string;
  tools?: string[];
  maxSteps?: number;
  maxTokens?: number;
  maxCost?: number;
  maxTime?: number;
  notify: { channel: string; on: string[] }[];
  input?: Record<string, unknown>;
  label: Record<string, string>;
  id?: string;
  file?: string;
  wait?: boolean;
  timeout: number;
}

function parseJsonObject(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('must be a JSON object, e.g. \'{"delayMs":2000}\'.');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError('must be a JSON object.');
  return parsed as Record<string, unknown>;
}

export function collectLabel(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('labels are key=value.');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function parsePositive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number above 0.');
  return n;
}

const TOPICS = ['done', 'failed', 'approval', 'input', 'budget', 'stuck'];
function collectNotify(value: string, previous: { channel: string; on: string[] }[]) {
  const [channel, list = TOPICS.join(',')] = value.split(':');
  const on = list.split(',').filter(Boolean);
  if (!channel || on.some((t) => !TOPICS.includes(t))) throw new InvalidArgumentError(`notify rules are channel[:topics], topics from ${TOPICS.join(', ')}.`);
  return [...previous, { channel, on }];
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number of seconds above 0.');
  return n;
}

export function registerSubmit(program: Command): void {
  program
    .command('submit')
    .description('hand a goal to Errand; prints the agent id (and with --wait, its progress and outcome)')
    .argument('[goal...]', 'the goal, in words')
    .option('-f, --file <path>', 'read the goal from a file')
    .option('-a, --agent <id>', 'the agent definition to run (default: the host\'s default)')
    .option('-i, --input <json>', 'input for the agent, a JSON object', parseJsonObject)
    .option('-l, --label <key=value>', 'a label (repeatable)', collectLabel, {})
    .option('--id <agentId>', 'choose the agent id yourself (makes the submit idempotent)')
    .option('-m, --model <model>', 'the model for agents that plan with one (default: the planner\'s ERRAND_MODEL)')
    .option('--system <prompt>', 'a system prompt for agents that plan with a model')
    .option('-t, --tools <names>', 'the tools the agent may use, comma-separated', (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .option('--max-steps <n>', 'budget: planning steps', parsePositive)
    .option('--max-tokens <n>', 'budget: model tokens', parsePositive)
    .option('--max-cost <usd>', 'budget: model cost in USD', parsePositive)
    .option('--max-time <seconds>', 'budget: wall-clock time', parsePositive)
    .option('-n, --notify <channel[:topics]>', 'notify a channel (topics: done,failed,approval,input,budget,stuck; all by default); repeatable', collectNotify, [])
    .option('-w, --wait', 'stay until the agent ends, printing a line per progress event; exit 0 when done, 1 when it failed or was cancelled')
    .option('--timeout <seconds>', 'with --wait: give up after this long (the agent keeps running)', parseSeconds, 3600)
    .addHelpText(
      'after',
      `
Examples:
  $ errand submit "take a nap" --agent sleeper --input '{"delayMs":2000}' --wait
  $ errand submit --file goal.md --label team=research
  $ errand submit "count to three" --agent tally --input '{"expect":3}' --id my-tally --json
  $ errand submit "summarise the open issues" --agent assistant --model gpt-4o-mini --max-cost 2 --notify slack:done,approval`,
    )
    .action(async (words: string[], _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<SubmitOptions>();
      const goal = opts.file ? await readGoalFile(opts.file) : words.join(' ').trim();
      if (!goal) throw new CliError(ExitCode.Usage, 'no goal given: pass it as words or with --file (see errand submit --help)');
      const logger = createLogger(opts.logLevel ?? 'error');
      const target = await resolveTarget(opts);
      const conn = await connectTo(target, logger);
      try {
        let reply: { agentId: string; existing: boolean };
        try {
          reply = await (await createClient(conn, target.prefix)).submit(goal, {
            ...(opts.agent ? { agent: opts.agent } : {}),
            ...(opts.input ? { input: opts.input } : {}),
            ...(Object.keys(opts.label).length ? { labels: opts.label } : {}),
            ...(opts.id ? { agentId: opts.id } : {}),
            ...(opts.model ? { model: opts.model } : {}),
            ...(opts.system ? { system: opts.system } : {}),
            ...(opts.tools?.length ? { tools: opts.tools } : {}),
            ...(opts.notify.length ? { notify: opts.notify as Message<'submit.request'>['notify'] } : {}),
            ...(budgetOf(opts) ? { budget: budgetOf(opts) } : {}),
            submittedBy: { id: process.env.USER ?? 'cli', channel: 'cli' },
          });
        } catch (err) {
          if (!(err instanceof ClientError)) throw err;
          const exit = err.code === ClientErrorCode.NoHost ? ExitCode.Unavailable : err.reason === 'ERR_UNKNOWN_AGENT' ? ExitCode.NotFound : ExitCode.Failed;
          throw new CliError(exit, err.message, { cause: err });
        }
        const { agentId } = reply;
        if (!opts.wait) {
          if (opts.json) printJson({ ok: true, agentId, existing: reply.existing });
          else process.stdout.write(`${agentId}${reply.existing ? '  (already existed)' : ''}\n`);
          return;
        }
        if (!opts.json) process.stdout.write(`${agentId}\n`);
        const record = await waitForEnd(conn, target.prefix, agentId, opts.timeout * 1000, opts.json ? undefined : (line) => process.stdout.write(`${line}\n`), logger);
        if (opts.json) printJson({ ok: record.status === 'done', agentId, status: record.status, output: record.output, error: record.error });
        else if (record.status === 'done') process.stdout.write(`done: ${terminalSafe(JSON.stringify(record.output) ?? '')}\n`);
        else process.stdout.write(`${record.status}: ${terminalSafe(record.error?.message ?? '')}\n`);
        process.exitCode = record.status === 'done' ? ExitCode.Ok : ExitCode.Failed;
      } finally {
        await conn.close();
      }
    });
}

/** The goal in a file; one that cannot be read is a one-line error (exit 3 when it does not exist, else 2), not a stack trace. */
async function readGoalFile(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'there is no such file' : code === 'EISDIR' ? 'it is a folder' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new CliError(code === 'ENOENT' ? ExitCode.NotFound : ExitCode.Usage, `cannot read the goal from --file ${path}: ${why}`);
  }
}

function budgetOf(o: SubmitOptions): Message<'submit.request'>['budget'] {
  const b = {
    ...(o.maxSteps ? { maxSteps: Math.ceil(o.maxSteps) } : {}),
    ...(o.maxTokens ? { maxTokens: Math.ceil(o.maxTokens) } : {}),
    ...(o.maxCost ? { maxCostUsd: o.maxCost } : {}),
    ...(o.maxTime ? { maxWallMs: Math.ceil(o.maxTime * 1000) } : {}),
  };
  return Object.keys(b).length ? b : undefined;
}

/**
 * Follows the agent until it ends, printing a line per progress event (its children's too), and
 * resolves with its final record. The agent may not have a record yet: the host creates it when
 * it takes the goal.
 */
async function waitForEnd(
  conn: Awaited<ReturnType<typeof connectTo>>,
  prefix: string,
  agentId: string,
  timeoutMs: number,
  print: ((line: string) => void) | undefined,
  logger: Logger,
): Promise<AgentRecord> {
  const model = new ProgressModel(agentId, createSubjects(prefix));
  const signal = AbortSignal.timeout(timeoutMs);
  const show = (lines: ProgressLine[]) => {
    for (const l of lines) print?.(formatLine(model, l));
  };
  await followAgent({ conn, prefix, model, live: true, signal, logger, onEvent: (_e, lines) => show(lines), onRecord: (_r, lines) => show(lines) });
  const record = model.root.record;
  if (signal.aborted || !record || !isTerminal(record.status)) {
    throw new CliError(ExitCode.Failed, `agent ${agentId} did not end within ${timeoutMs / 1000} s; it keeps running (follow it with \`errand watch ${agentId}\`)`);
  }
  return record;
}
