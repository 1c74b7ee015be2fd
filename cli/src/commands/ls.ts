import { InvalidArgumentError, type Command } from 'commander';
import { ClientError, createClient, type AgentSummary } from '@errand/client';
import { AGENT_STATUSES, type Waiting } from '@errand/protocols';
import { connectTo, resolveTarget, type GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { createLogger } from '../logger.js';
import { CliError, printJson } from '../output.js';
import { terminalSafe } from '../terminal-safe.js';
import { collectLabel } from './submit.js';

interface LsOptions extends GlobalOptions {
  status?: string[];
  label?: Record<string, string>;
  agent?: string;
  limit: number;
}

function collectStatus(value: string, previous: string[] = []): string[] {
  const given = value.split(',').map((s) => s.trim()).filter(Boolean);
  const wrong = given.filter((s) => !(AGENT_STATUSES as readonly string[]).includes(s));
  if (wrong.length || !given.length) throw new InvalidArgumentError(`'${wrong.join(',') || value}' is not a status; use ${AGENT_STATUSES.join(', ')}.`);
  return [...previous, ...given];
}

function parseLimit(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number above 0.');
  return n;
}

export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list agents, most recently updated first (filter by status, label, agent definition); STATE is the statechart state, a ! after the status and WAITING FOR say what an agent waits for a person to do')
    .option('--status <status>', `only agents in this status: ${AGENT_STATUSES.join(', ')} (repeatable, or comma-separated)`, collectStatus)
    .option('-l, --label <key=value>', 'only agents with this label (repeatable: all must match)', collectLabel)
    .option('-a, --agent <definition>', 'only agents of this agent definition (e.g. sleeper)')
    .option('-n, --limit <n>', 'at most this many', parseLimit, 50)
    .addHelpText(
      'after',
      `
Examples:
  $ errand ls
  $ errand ls --status waiting          # what needs me?
  $ errand ls --status running,paused
  $ errand ls --status failed --label team=research --limit 10
  $ errand ls --agent sleeper --json`,
    )
    .action(async (_o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<LsOptions>();
      const status = opts.status ?? [];
      const label = opts.label ?? {};
      const target = await resolveTarget(opts);
      const conn = await connectTo(target, createLogger(opts.logLevel ?? 'error'));
      try {
        let agents: AgentSummary[];
        try {
          agents = await (await createClient(conn, target.prefix)).list({
            ...(status.length ? { status } : {}),
            ...(Object.keys(label).length ? { labels: label } : {}),
            ...(opts.agent ? { agent: opts.agent } : {}),
            limit: opts.limit,
          });
        } catch (err) {
          if (err instanceof ClientError) throw new CliError(ExitCode.Failed, err.message, { cause: err });
          throw err;
        }
        if (opts.json) printJson(agents);
        else if (agents.length === 0) process.stdout.write(`${emptyHint(status, label, opts.agent)}\n`);
        else process.stdout.write(table(agents, process.stdout.isTTY ? process.stdout.columns || 100 : undefined, Date.now()));
      } finally {
        await conn.close();
      }
    });
}

function emptyHint(status: string[], label: Record<string, string>, agent: string | undefined): string {
  const filters = [...(status.length ? [`status ${status.join(',')}`] : []), ...Object.entries(label).map(([k, v]) => `label ${k}=${v}`), ...(agent ? [`agent ${agent}`] : [])];
  return filters.length
    ? `no agents match (${filters.join(', ')}); drop a filter, or see every agent with \`errand ls\``
    : 'no agents yet; hand one a goal with `errand submit "take a nap" --agent sleeper`';
}

/** `5s ago`, `3m ago`, `2h ago`, `4d ago`. */
function age(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** A statechart state value on one line: `planning`, `acting.tools`, `a.x,b.y` for parallel regions. */
function stateText(state: unknown): string {
  if (typeof state === 'string') return state;
  if (state === null || typeof state !== 'object') return '-';
  return Object.entries(state as Record<string, unknown>)
    .map(([k, v]) => (v === null || (typeof v === 'object' && Object.keys(v).length === 0) ? k : `${k}.${stateText(v)}`))
    .join(',');
}

/** What the agent waits for a person to do, in a few words: `approval: fs_write`, `answer: Which city?`, `budget`. */
function waitingFor(w: Waiting): string {
  if (w.kind === 'approval') return `approval: ${[...new Set((w.calls ?? []).map((c) => c.tool))].join(',') || w.requestId}`;
  if (w.kind === 'budget') return 'budget';
  return `answer: ${(w.question ?? w.requestId).replace(/\s+/g, ' ').trim()}`;
}

function clipCell(text: string, max: number): string {
  const chars = [...text];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : text;
}

/** The agents as aligned columns; the goal takes what is left of `width` (60 characters off a terminal). */
function table(agents: AgentSummary[], width: number | undefined, now: number): string {
  // Goals and labels are the submitter's text: shown escaped, on one line, never as terminal control.
  const rows = agents.map((a) =>
    [
      a.agentId,
      a.agent,
      a.waiting ? `${a.status}!` : a.status,
      clipCell(stateText(a.state), 24),
      String(a.step),
      age(a.updatedAt, now),
      Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-',
      a.waiting ? clipCell(waitingFor(a.waiting), 32) : '-',
      a.goal.replace(/\s+/g, ' ').trim(),
    ].map((cell) => terminalSafe(cell)),
  );
  const head = ['ID', 'AGENT', 'STATUS', 'STATE', 'STEP', 'UPDATED', 'LABELS', 'WAITING FOR', 'GOAL'];
  const widths = head.slice(0, -1).map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const used = widths.reduce((n, w) => n + w + 2, 0);
  const goalWidth = width === undefined ? 60 : Math.max(12, width - used - 1);
  const line = (cells: string[]) => {
    const goal = [...cells.at(-1)!];
    const shown = goal.length > goalWidth ? `${goal.slice(0, goalWidth - 1).join('')}…` : goal.join('');
    return `${cells.slice(0, -1).map((c, i) => c.padEnd(widths[i]!)).join('  ')}  ${shown}`.trimEnd();
  };
  return `${[head, ...rows].map(line).join('\n')}\n`;
}
