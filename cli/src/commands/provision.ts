import type { Command } from 'commander';
import { provision, type ProvisionReport } from '@errand/nats';
import { resourceSpecs } from '@errand/protocols';
import { connectTo, resolveTarget, type GlobalOptions } from '../context.js';
import { createLogger } from '../logger.js';
import { printJson } from '../output.js';
import { parseReplicas } from './options.js';

interface ProvisionCommandOptions extends GlobalOptions {
  replicas: number;
  dryRun?: boolean;
}

export function registerProvision(program: Command): void {
  program
    .command('provision')
    .description('create or update every Errand stream and KV bucket; safe to run again at any time')
    .option('--replicas <n>', 'JetStream replicas (1 on one server, 3 or 5 in a cluster)', parseReplicas, 1)
    .option('--dry-run', 'report what would change without changing it')
    .addHelpText(
      'after',
      `
Examples:
  $ errand provision                         # against NATS_URL or a running \`errand up\`
  $ errand provision --dry-run --json        # what would change, machine-readable
  $ NATS_URL=nats://n1:4222 errand provision --replicas 3`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<ProvisionCommandOptions>();
      const logger = createLogger(opts.logLevel ?? 'error');
      const target = await resolveTarget(opts);
      const conn = await connectTo(target, logger, 'errand-cli', 'admin');
      try {
        const report = await provision(conn, {
          specs: resourceSpecs({ prefix: target.prefix, replicas: opts.replicas }),
          logger,
          dryRun: opts.dryRun ?? false,
        });
        if (opts.json) printJson({ ok: true, server: target.servers, prefix: target.prefix, ...report });
        else process.stdout.write(formatReport(report, target.servers));
      } finally {
        await conn.close();
      }
    });
}

/** The report as a person reads it: one line per resource, the changed fields under it. */
export function formatReport(report: ProvisionReport, server: string): string {
  const lines = [`${report.dryRun ? 'would provision' : 'provisioned'} on ${server}:`];
  for (const item of report.items) {
    const verb = report.dryRun && item.action !== 'unchanged' ? `would be ${item.action}` : item.action;
    lines.push(`  ${item.kind.padEnd(12)} ${item.name.padEnd(28)} ${verb}`);
    for (const c of item.changes) lines.push(`      ${c.field}: ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`);
  }
  lines.push(report.changed ? '' : 'everything was already up to date', '');
  return lines.filter((l, i, all) => l !== '' || i === all.length - 1).join('\n');
}
