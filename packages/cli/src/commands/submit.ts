import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { openBucket } from '@errand/nats';
import { ClientError, ClientErrorCode, createClient } from '@errand/client';
import { createSubjects, decodeMessage, decodeRecord, resourceNames, type AgentRecord, type Message } from '@errand/protocols';
import { connectTo, resolveTarget, type GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { createLogger } from '../logger.js';
import { CliError, printJson } from '../output.js';

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

function collectLabel(value: string, previous: Record<string, string>): Record<string, string> {
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
    .option('-w, --wait', 'stay until the agent ends, printing each step; exit 0 when done, 1 when it failed or was cancelled')
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
      const goal = opts.file ? (await readFile(opts.file, 'utf8')).trim() : words.join(' ').trim();
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
        const record = await waitForEnd(conn, target.prefix, agentId, opts.timeout * 1000, opts.json ? undefined : (line) => process.stdout.write(`${line}\n`));
        if (opts.json) printJson({ ok: record.status === 'done', agentId, status: record.status, output: record.output, error: record.error });
        else if (record.status === 'done') process.stdout.write(`done: ${JSON.stringify(record.output)}\n`);
        else process.stdout.write(`${record.status}: ${record.error?.message ?? ''}\n`);
        process.exitCode = record.status === 'done' ? ExitCode.Ok : ExitCode.Failed;
      } finally {
        await conn.close();
      }
    });
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

/** Prints each journaled step as it happens and resolves with the record once the agent ended. */
async function waitForEnd(
  conn: Awaited<ReturnType<typeof connectTo>>,
  prefix: string,
  agentId: string,
  timeoutMs: number,
  print: ((line: string) => void) | undefined,
): Promise<AgentRecord> {
  const subjects = createSubjects(prefix);
  const names = resourceNames(prefix);
  // An ordered consumer on the agent's journal: every step so far, then each new one.
  const journal = await conn.js.consumers.get(names.streams.events, { filter_subjects: subjects.agentEvent(agentId, 'step') });
  const steps = await journal.consume();
  let printed = 0;
  let caughtUp: (() => void) | undefined;
  let upTo = Number.POSITIVE_INFINITY;
  void (async () => {
    for await (const msg of steps) {
      try {
        const s = decodeMessage(msg.data, { expect: 'event.step' });
        if (s.step <= printed) continue;
        printed = s.step;
        print?.(`  step ${s.step}  ${s.event.type}  → ${JSON.stringify(s.state)} (${s.status})`);
        if (printed >= upTo) caughtUp?.();
      } catch {
        // progress is best effort; the record below is the truth
      }
    }
  })();
  /** Lets the journal printing catch up with the record (it may lag by a message). */
  const drain = (step: number) =>
    new Promise<void>((resolve) => {
      if (printed >= step || !print) return resolve();
      upTo = step;
      caughtUp = resolve;
      setTimeout(resolve, 2000);
    });
  const kv = await openBucket(conn, names.buckets.agents);
  const watch = await kv.watch({ key: agentId });
  const timer = setTimeout(() => watch.stop(), timeoutMs);
  try {
    for await (const e of watch) {
      if (e.operation !== 'PUT') continue;
      const r = decodeRecord(e.value);
      if (r.status === 'done' || r.status === 'failed' || r.status === 'cancelled') {
        await drain(r.step);
        return r;
      }
    }
    throw new CliError(ExitCode.Failed, `agent ${agentId} did not end within ${timeoutMs / 1000} s; it keeps running`);
  } finally {
    clearTimeout(timer);
    watch.stop();
    await steps.close();
  }
}
