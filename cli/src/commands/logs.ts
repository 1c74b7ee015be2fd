import { InvalidArgumentError, type Command } from 'commander';
import { DeliverPolicy } from '@errand/nats';
import { createSubjects, resourceNames } from '@errand/protocols';
import { DURATION_FORMAT, parseDuration } from '@errand/runtime';
import { connectTo, resolveTarget, type GlobalOptions } from '../context.js';
import { createLogger } from '../logger.js';
import { clock } from '../progress.js';
import { terminalSafe } from '../terminal-safe.js';

interface LogsOptions extends GlobalOptions {
  follow?: boolean;
  agent?: string;
  service?: string;
  level?: number;
  since: number;
  lines: number;
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
const NAMES = Object.fromEntries(Object.entries(LEVELS).map(([k, v]) => [v, k.toUpperCase().padEnd(5)]));

function parseLevel(value: string): number {
  const n = LEVELS[value.toLowerCase()];
  if (n === undefined) throw new InvalidArgumentError(`levels are ${Object.keys(LEVELS).join(', ')}.`);
  return n;
}

function parseSince(value: string): number {
  try {
    return parseDuration(value);
  } catch {
    throw new InvalidArgumentError(`expected ${DURATION_FORMAT}; e.g. --since 15m.`);
  }
}

function parseLines(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number (0: none of the stored lines).');
  return n;
}

interface LogLine {
  level?: number;
  time?: number;
  service?: string;
  agentId?: string;
  traceId?: string;
  msg?: string;
  [key: string]: unknown;
}

/** A log line as people read it: `12:01:03 WARN  planner [a-…] msg  key=value …`. */
export function formatLogLine(l: LogLine): string {
  const { level, time, service, agentId, msg, pid: _pid, hostname: _h, traceId: _t, ...rest } = l;
  const extra = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  // Log lines carry goals, tool names and error texts from agents: shown, never obeyed by the terminal.
  return terminalSafe(`${time ? clock(time) : '--:--:--'} ${NAMES[level ?? 30] ?? String(level)} ${(service ?? '?').padEnd(11)} ${agentId ? `[${agentId}] ` : ''}${msg ?? ''}${extra ? `  ${extra}` : ''}`);
}

export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description('read the services\' logs from NATS (the ERRAND_LOGS stream), filtered; -f follows new lines')
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('--agent <agentId>', 'only lines about this agent (and its children)')
    .option('--service <name>', 'only this service: host, planner, tool-runner, notifier')
    .option('--level <level>', 'only lines at this level or above: debug, info, warn, error', parseLevel)
    .option('--since <duration>', "start this far back: '15m', '2h', '7d'", parseSince, 60 * 60 * 1000)
    .option('-n, --lines <n>', 'print at most the last n stored lines that match (then follow with -f)', parseLines, 200)
    .addHelpText(
      'after',
      `
Every service ships its log lines (JSON, secrets redacted) to <prefix>.logs.<service>; this reads
them back from any machine that reaches NATS. --json prints the lines as they were shipped: one
JSON object a line, each key once (a nested component reads outer.inner, e.g. worker.consumer).

Examples:
  $ errand logs --level warn
  $ errand logs -f --agent a-mwv4snjw-a370a48e
  $ errand logs --service planner --since 10m --json | jq .msg`,
    )
    .action(async (_o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<LogsOptions>();
      const target = await resolveTarget(opts);
      const conn = await connectTo(target, createLogger(opts.logLevel ?? 'error'));
      const subjects = createSubjects(target.prefix);
      const names = resourceNames(target.prefix);
      const wanted = (l: LogLine) =>
        (opts.level === undefined || (l.level ?? 0) >= opts.level) &&
        (opts.agent === undefined || l.agentId === opts.agent || (typeof l.agentId === 'string' && l.agentId.startsWith(`${opts.agent}-`)));
      const print = (raw: string, l: LogLine) => process.stdout.write(`${opts.json ? raw : formatLogLine(l)}\n`);
      try {
        const consumer = await conn.js.consumers.get(names.streams.logs, {
          filter_subjects: subjects.logs(opts.service),
          deliver_policy: DeliverPolicy.StartTime,
          opt_start_time: new Date(Date.now() - opts.since).toISOString(),
        });
        // Stored lines first (the last --lines of them), then — with -f — each new one.
        let stored = (await consumer.info()).num_pending;
        if (stored === 0 && !opts.follow) return;
        const backlog: [string, LogLine][] = [];
        const messages = await consumer.consume();
        const stop = () => void messages.close();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        for await (const m of messages) {
          // Lines shipped before a service stripped pino's newline still end with one.
          const raw = m.string().replace(/\n+$/, '');
          let line: LogLine;
          try {
            line = JSON.parse(raw) as LogLine;
          } catch {
            line = { msg: raw };
          }
          if (stored > 0) {
            stored = m.info.pending;
            if (wanted(line)) {
              backlog.push([raw, line]);
              if (backlog.length > opts.lines) backlog.shift();
            }
            if (stored === 0) {
              for (const [r, l] of backlog) print(r, l);
              if (!opts.follow) break;
            }
            continue;
          }
          if (wanted(line)) print(raw, line);
        }
        await messages.close();
      } finally {
        await conn.close();
      }
    });
}
