import { InvalidArgumentError, type Command } from 'commander';
import { ClientError, ClientErrorCode, createClient } from '@errand/client';
import {
  assertTimezone,
  DEFAULT_CATCHUP_WINDOW_MS,
  formatScheduleDuration,
  newScheduleRecord,
  OVERLAP_POLICIES,
  parseScheduleDuration,
  SCHEDULE_DURATION_FORMAT,
  ScheduleError,
  ScheduleErrorCode,
  ScheduleStore,
  type OverlapPolicy,
  type ScheduleFire,
  type ScheduleInput,
  type ScheduleRecord,
} from '@errand/schedules';
import type { ErrandConnection } from '@errand/nats';
import { connectTo, resolveTarget, type GlobalOptions, type Target } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { createLogger } from '../logger.js';
import { CliError, printJson } from '../output.js';
import { terminalSafe } from '../terminal-safe.js';
import { collectLabel } from './submit.js';

interface AddOptions extends GlobalOptions {
  agent?: string;
  tz: string;
  overlap: OverlapPolicy;
  catchup?: number;
  id?: string;
  input?: Record<string, unknown>;
  label: Record<string, string>;
}

/** A schedule refusal at the command's edge: what was wrong is a usage error, a missing schedule is not found. */
function cliErrorOf(err: unknown): unknown {
  if (err instanceof ScheduleError) {
    const exit = err.code === ScheduleErrorCode.Invalid ? ExitCode.Usage : err.code === ScheduleErrorCode.NotFound ? ExitCode.NotFound : ExitCode.Failed;
    return new CliError(exit, err.message, { cause: err });
  }
  if (isPermissionViolation(err)) {
    return new CliError(
      ExitCode.Failed,
      `these NATS credentials may not do that with schedules (${(err as Error).message}): schedules are added, paused, resumed, triggered and removed with an operator's credentials (errand creds; see docs/schedules.md)`,
      { cause: err },
    );
  }
  if (err instanceof ClientError) {
    return new CliError(err.code === ClientErrorCode.NoHost ? ExitCode.Unavailable : ExitCode.Failed, err.message, { cause: err });
  }
  return err;
}

/** NATS refused a publish or a JetStream call for this identity (the error or its cause). */
function isPermissionViolation(err: unknown): boolean {
  for (let e = err as { name?: string; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.name === 'PermissionViolationError') return true;
  }
  return false;
}

/** Commander's parsers: a bad value is a usage error naming the option and what to give instead. */
const asArgument = <T>(parse: (value: string) => T) => (value: string): T => {
  try {
    return parse(value);
  } catch (err) {
    if (err instanceof ScheduleError) throw new InvalidArgumentError(err.message);
    throw err;
  }
};

function parseOverlap(value: string): OverlapPolicy {
  if (!(OVERLAP_POLICIES as readonly string[]).includes(value)) throw new InvalidArgumentError(`use one of ${OVERLAP_POLICIES.join(', ')}.`);
  return value as OverlapPolicy;
}

function parseJsonObject(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidArgumentError('must be a JSON object, e.g. \'{"team":"support"}\'.');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError('must be a JSON object.');
  return parsed as Record<string, unknown>;
}

/** `2026-12-07 09:00:00 Europe/Paris` */
export function formatFireTime(ms: number | undefined, timezone: string): string {
  if (ms === undefined) return '-';
  const local = new Intl.DateTimeFormat('sv-SE', { timeZone: timezone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(ms);
  return `${local} ${timezone}`;
}

function describeFire(f: ScheduleFire | undefined, timezone: string): string {
  if (!f) return '-';
  return `${formatFireTime(f.at, timezone)} ${f.outcome}${f.manual ? ' (trigger)' : ''}${f.agentId && (f.outcome === 'started' || f.outcome === 'existing') ? ` ${f.agentId}` : ''}`;
}

async function withStore<T>(opts: GlobalOptions, run: (store: ScheduleStore, conn: ErrandConnection, target: Target) => Promise<T>): Promise<T> {
  const target = await resolveTarget(opts);
  const conn = await connectTo(target, createLogger(opts.logLevel ?? 'error'));
  try {
    return await run(await ScheduleStore.open(conn, target.prefix), conn, target);
  } catch (err) {
    throw cliErrorOf(err);
  } finally {
    await conn.close();
  }
}

const by = () => ({ id: process.env.USER ?? 'cli', channel: 'cli' });

export function registerSchedule(program: Command): void {
  const schedule = program
    .command('schedule')
    .description('run a goal on a cron schedule (kept in JetStream, fired by the hosts): add, ls, pause, resume, trigger, rm')
    .addHelpText(
      'after',
      `
Every host fires schedules (ERRAND_HOST_SCHEDULES=false turns that off for one host). Each fire starts
an agent <schedule>-<fire time in UTC> (e.g. digest-20261207T080000Z) through the normal intake, so a
fire is started once even when a host dies mid-fire or several hosts run. The agents carry the labels
schedule=<id> and scheduled-for=<ISO time>: \`errand ls --label schedule=digest\`.

Who may: an operator's credentials (errand creds: operator, admin) may add, pause, resume, trigger and
remove schedules; a submitter's may not. A schedule's goals are submitted by the hosts (a trigger's
by you). More in docs/schedules.md.

Examples:
  $ errand schedule add "0 9 * * 1-5" "summarise yesterday's tickets" --tz Europe/Paris --id digest
  $ errand schedule add "*/15 * * * *" "check the build" --agent assistant --overlap cancel-previous
  $ errand schedule ls
  $ errand schedule trigger digest
  $ errand schedule pause digest && errand schedule resume digest
  $ errand schedule rm digest`,
    );

  schedule
    .command('add')
    .description('add a schedule: each time the cron expression names, start an agent with the goal')
    .argument('<cron>', 'when: five fields "minute hour day-of-month month day-of-week" ("0 9 * * 1-5": weekdays at 9:00), or six with seconds first; names (MON-FRI) and @daily/@hourly work')
    .argument('<goal...>', 'the goal each fire hands to an agent, in words')
    .option('-a, --agent <id>', "the agent definition to run (default: the host's default)")
    .option('--tz <zone>', 'the IANA time zone the expression is read in (e.g. Europe/Paris)', asArgument(assertTimezone), 'UTC')
    .option('--overlap <policy>', `when the previous run has not ended: ${OVERLAP_POLICIES.join(' | ')}`, parseOverlap, 'skip' as OverlapPolicy)
    .option(
      '--catchup <duration>',
      `a fire missed while no host ran still fires (once) when at most this late, ${SCHEDULE_DURATION_FORMAT} (0: only when a few seconds late) (default: ${formatScheduleDuration(DEFAULT_CATCHUP_WINDOW_MS)})`,
      asArgument((v) => parseScheduleDuration(v, '--catchup')),
    )
    .option('--id <name>', 'the schedule id: 1-64 letters, digits, _ or - (default: a new one)')
    .option('-i, --input <json>', 'input for each agent, a JSON object', parseJsonObject)
    .option('-l, --label <key=value>', 'a label on each agent (repeatable)', collectLabel, {})
    .addHelpText(
      'after',
      `
Times are wall-clock times in --tz: "0 9 * * *" in Europe/Paris is 08:00 UTC in winter, 07:00 in
summer. Each fire starts the agent <id>-<fire time in UTC>, labelled schedule=<id>.

Examples:
  $ errand schedule add "0 9 * * 1-5" "summarise yesterday's tickets" --tz Europe/Paris --id digest
  $ errand schedule add "*/30 * * * * *" "poll the queue" --agent assistant --overlap skip --catchup 0
  $ errand schedule add "@daily" "clean up" --agent janitor --input '{"dryRun":false}' --label team=ops`,
    )
    .action(async (cron: string, words: string[], _o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<AddOptions>();
      const input: ScheduleInput = {
        cron,
        goal: words.join(' ').trim(),
        timezone: opts.tz,
        overlap: opts.overlap,
        catchupWindowMs: opts.catchup ?? DEFAULT_CATCHUP_WINDOW_MS,
        ...(opts.id !== undefined ? { id: opts.id } : {}),
        ...(opts.agent !== undefined ? { agent: opts.agent } : {}),
        ...(opts.input !== undefined ? { input: opts.input } : {}),
        ...(Object.keys(opts.label).length ? { labels: opts.label } : {}),
      };
      // Everything the user typed is checked before connecting: a mistake is told at once.
      try {
        newScheduleRecord(input, { now: Date.now() });
      } catch (err) {
        throw cliErrorOf(err);
      }
      const record = await withStore(opts, (store) => store.add(input, { now: Date.now(), createdBy: by() }));
      if (opts.json) printJson(record);
      else {
        process.stdout.write(
          `${record.id}: "${terminalSafe(record.cron)}" in ${record.timezone}, next fire ${formatFireTime(record.nextFireAt, record.timezone)}` +
            ` (overlap ${record.overlap}, catch-up ${formatScheduleDuration(record.catchupWindowMs)})\n`,
        );
      }
    });

  schedule
    .command('ls')
    .description('list schedules: state, next fire, last fire (time, outcome, agent)')
    .action(async (_o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions>();
      const { schedules, unreadable } = await withStore(opts, (store) => store.list());
      if (opts.json) {
        printJson(schedules);
        return;
      }
      if (schedules.length === 0 && unreadable.length === 0) {
        process.stdout.write('no schedules; add one with `errand schedule add "0 9 * * 1-5" "your goal"`\n');
        return;
      }
      process.stdout.write(table(schedules));
      if (unreadable.length) process.stderr.write(`errand: left out ${unreadable.length} schedule(s) this build cannot read: ${unreadable.join(', ')}\n`);
    });

  const change = (name: 'pause' | 'resume', description: string) =>
    schedule
      .command(name)
      .description(description)
      .argument('<id>', 'the schedule id (errand schedule ls)')
      .action(async (id: string, _o: unknown, cmd: Command) => {
        const opts = cmd.optsWithGlobals<GlobalOptions>();
        const record = await withStore(opts, (store) => store[name](id, { now: Date.now() }));
        if (opts.json) printJson(record);
        else if (record.state === 'paused') process.stdout.write(`${record.id}: paused (errand schedule resume ${record.id} to fire again)\n`);
        else process.stdout.write(`${record.id}: active, next fire ${formatFireTime(record.nextFireAt, record.timezone)}\n`);
      });
  change('pause', 'pause a schedule: no fires until resume (a paused schedule can still be triggered)');
  change('resume', 'resume a paused schedule from its next time after now (fires missed while paused are not caught up)');

  schedule
    .command('trigger')
    .description("fire a schedule now (paused or not), under its overlap policy; prints the agent it started. Needs a running host")
    .argument('<id>', 'the schedule id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions>();
      const fire = await withStore(opts, async (store, conn, target) => store.trigger(id, await createClient(conn, target.prefix), { now: Date.now }));
      if (opts.json) printJson({ ok: fire.outcome === 'started' || fire.outcome === 'existing', ...fire });
      else if (fire.agentId && (fire.outcome === 'started' || fire.outcome === 'existing')) process.stdout.write(`${fire.agentId}\n`);
      else process.stdout.write(`${id}: ${fire.outcome}: ${terminalSafe(fire.reason ?? '')}\n`);
      if (fire.outcome === 'refused' || fire.outcome === 'skipped-overlap') process.exitCode = ExitCode.Failed;
    });

  schedule
    .command('rm')
    .description('remove a schedule (agents it started go on)')
    .argument('<id>', 'the schedule id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GlobalOptions>();
      await withStore(opts, (store) => store.remove(id));
      if (opts.json) printJson({ ok: true, id });
      else process.stdout.write(`${id}: removed\n`);
    });
}

function table(schedules: ScheduleRecord[]): string {
  const rows = [
    ['ID', 'CRON', 'STATE', 'NEXT FIRE', 'LAST FIRE', 'OVERLAP', 'RUNS'],
    ...schedules.map((s) => [
      s.id,
      s.cron,
      s.state,
      s.state === 'paused' ? '- (paused)' : formatFireTime(s.nextFireAt, s.timezone),
      describeFire(s.lastFire, s.timezone),
      s.overlap,
      `${s.counts.started}${s.counts.skipped ? ` (${s.counts.skipped} skipped)` : ''}${s.counts.refused ? ` (${s.counts.refused} refused)` : ''}`,
    ]),
  ].map((r) => r.map((c) => terminalSafe(c)));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
