import { InvalidArgumentError, Option, type Command } from 'commander';
import { collectGarbage, DEFAULT_RETENTION_MS, DURATION_FORMAT, parseDuration, type GcProgress } from '@errand/runtime';
import { connectTo, resolveTarget, type GlobalOptions } from '../context.js';
import { createLogger } from '../logger.js';
import { printJson } from '../output.js';

interface GcCommandOptions extends GlobalOptions {
  olderThan: number;
  dryRun?: boolean;
}

/** How often a long sweep reports how far it got (on stderr). */
const PROGRESS_EVERY_MS = 2000;

function parseOlderThan(value: string): number {
  try {
    return parseDuration(value);
  } catch {
    throw new InvalidArgumentError(`expected ${DURATION_FORMAT}; e.g. --older-than 7d (0: every finished agent).`);
  }
}

export function registerGc(program: Command): void {
  program
    .command('gc')
    .description('remove finished agents (record, journal, inbox, large results) that ended longer ago than --older-than; running agents are never touched')
    .addOption(
      new Option('--older-than <duration>', "remove agents that ended longer ago than this: '30d', '12h', '45m', '90s' or milliseconds (0: every finished agent)")
        .argParser(parseOlderThan)
        .default(DEFAULT_RETENTION_MS, '30d'),
    )
    .option('--dry-run', 'list what would be removed; remove nothing')
    .addHelpText(
      'after',
      `
An agent is removed when it is done, failed or cancelled, ended longer ago than --older-than, its
parent (if any) has ended or is gone, and none of its children is still running. Hosts do this by
themselves every hour for agents older than ERRAND_RETENTION (default 30d).

Examples:
  $ errand gc                          # finished agents older than 30 days
  $ errand gc --older-than 7d --dry-run
  $ errand gc --older-than 0 --json    # every finished agent, as JSON`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<GcCommandOptions>();
      const target = await resolveTarget(opts);
      const conn = await connectTo(target, createLogger(opts.logLevel ?? 'error'), 'errand-cli', 'admin');
      // Ctrl-C stops between agents and still reports what was removed.
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      process.once('SIGINT', onSignal);
      let latest: GcProgress = { scanned: 0, removed: 0 };
      const ticker = setInterval(() => {
        process.stderr.write(`gc: ${latest.scanned} agents read, ${latest.removed} removed so far …\n`);
      }, PROGRESS_EVERY_MS);
      ticker.unref();
      try {
        const r = await collectGarbage({
          conn,
          prefix: target.prefix,
          olderThanMs: opts.olderThan,
          dryRun: opts.dryRun ?? false,
          signal: abort.signal,
          onProgress: (p) => (latest = p),
        });
        const dryRun = opts.dryRun ?? false;
        if (opts.json) {
          printJson({ ok: true, dryRun, scanned: r.scanned, removed: r.removed, kept: r.kept, ...(abort.signal.aborted ? { interrupted: true } : {}) });
          return;
        }
        if (dryRun) for (const id of r.removed) process.stdout.write(`${id}\n`);
        const n = r.removed.length;
        process.stdout.write(
          `${dryRun ? 'would remove' : 'removed'} ${n} finished agent${n === 1 ? '' : 's'} (scanned ${r.scanned}; ${r.kept} still running or recent)` +
            `${abort.signal.aborted ? ' — interrupted before the end' : ''}\n`,
        );
      } finally {
        clearInterval(ticker);
        process.off('SIGINT', onSignal);
        await conn.close();
      }
    });
}
