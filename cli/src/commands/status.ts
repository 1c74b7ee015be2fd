import { InvalidArgumentError, type Command } from 'commander';
import { systemStatus, type ConsumerBacklog, type SystemStatus } from '@errand/client';
import { NatsErrorCode, type ErrandConnection } from '@errand/nats';
import { connectTo, resolveTarget, type GlobalOptions, type Target } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { createLogger } from '../logger.js';
import { CliError, printJson } from '../output.js';
import { terminalSafe } from '../terminal-safe.js';

interface StatusOptions extends GlobalOptions {
  sampleMs: number;
}

/**
 * Something `errand status` found wrong. `degraded` makes the exit status 1 (a promise is at risk:
 * a stream without its replicas or leader, no host); a `warning` is printed but leaves it 0.
 */
export interface Problem {
  severity: 'degraded' | 'warning';
  /** What is wrong, naming the stream, consumer or service. */
  what: string;
  /** What to do about it. */
  fix: string;
}

/** A consumer whose backlog grew between the two samples. */
export interface BacklogGrowth {
  stream: string;
  name: string;
  from: number;
  to: number;
  overMs: number;
}

/** What `errand status --json` prints: the {@link SystemStatus} and its assessment. */
export interface StatusReport extends SystemStatus {
  healthy: boolean;
  problems: Problem[];
  growing: BacklogGrowth[];
}

function parseMs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 60_000) throw new InvalidArgumentError('must be milliseconds from 0 to 60000.');
  return n;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      "the deployment's health: servers and cluster peers, JetStream usage, each stream and bucket with its replicas, leader and lag, consumer backlogs and redeliveries, the services alive with their versions; problems first, with what to do. Exit 0 healthy, 1 degraded",
    )
    .option('--sample-ms <ms>', 'read the consumer backlogs again after this long to see which grow (0: read once)', parseMs, 1000)
    .addHelpText(
      'after',
      `
Degraded (exit 1): a stream or bucket with fewer current replicas than configured or no leader,
one that cannot be read, an unprovisioned prefix, no errand-host alive. Warnings (exit 0): the
server's durability warning (nats-server < 2.10), one replica in a cluster, no planner or
tool-runner, a growing backlog, dead letters. See docs/scaling.md for what to watch.

Examples:
  $ errand status
  $ errand status --json | jq '.resources[] | {name, replicas, leader, current}'
  $ NATS_URL=nats://n1:4222,nats://n2:4222,nats://n3:4222 errand status`,
    )
    .action(async (_o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<StatusOptions>();
      const target = await resolveTarget(opts);
      const conn = await connectTo(target, createLogger(opts.logLevel ?? 'error')).catch((err: unknown) => {
        throw unreachable(target, err);
      });
      try {
        const status = await systemStatus(conn, { prefix: target.prefix });
        const growing = opts.sampleMs > 0 ? await backlogGrowth(conn, status.consumers, opts.sampleMs) : [];
        const problems = assess(status, growing, target.prefix);
        const report: StatusReport = { healthy: !problems.some((p) => p.severity === 'degraded'), problems, growing, ...status };
        if (opts.json) printJson(report);
        else process.stdout.write(render(report, target));
        if (!report.healthy) process.exitCode = ExitCode.Failed;
      } finally {
        await conn.close();
      }
    });
}

function unreachable(target: Target, err: unknown): unknown {
  if ((err as { code?: string }).code !== NatsErrorCode.ConnectFailed) return err;
  const where = `no NATS server answers at ${target.servers} (from ${target.source})`;
  return new CliError(ExitCode.Unavailable, `${where}: start \`errand up\` or set NATS_URL (or --server) to your cluster's servers`, { cause: err });
}

/** Reads each consumer's backlog again after `ms` and returns those that grew. */
async function backlogGrowth(conn: ErrandConnection, before: ConsumerBacklog[], ms: number): Promise<BacklogGrowth[]> {
  if (before.length === 0) return [];
  const started = Date.now();
  await new Promise((r) => setTimeout(r, ms));
  const jsm = await conn.jsm();
  const out: BacklogGrowth[] = [];
  for (const c of before) {
    const info = await jsm.consumers.info(c.stream, c.name).catch(() => undefined);
    if (info && info.num_pending > c.pending) out.push({ stream: c.stream, name: c.name, from: c.pending, to: info.num_pending, overMs: Date.now() - started });
  }
  return out;
}

/** The problems in a status, the degraded ones first; pure. */
export function assess(s: SystemStatus, growing: BacklogGrowth[], prefix: string): Problem[] {
  const out: Problem[] = [];
  const clustered = s.server.cluster !== undefined || s.peers.length > 1;
  if (s.resources.length === 0) {
    out.push({ severity: 'degraded', what: `nothing is provisioned for prefix '${prefix}'`, fix: `run \`errand provision --prefix ${prefix}${clustered ? ' --replicas 3' : ''}\` (or check --prefix / ERRAND_PREFIX)` });
  }
  for (const r of s.resources) {
    if (r.error) {
      out.push({ severity: 'degraded', what: `${r.name} could not be read: ${r.error}`, fix: 'a leader election may be under way; run `errand status` again in a few seconds, and start any stopped nats-server' });
      continue;
    }
    if (!r.leader) {
      out.push({ severity: 'degraded', what: `${r.name} has no leader`, fix: `fewer than a majority of its ${r.replicas} servers are up: start the stopped nats-servers; it elects a leader by itself` });
    } else if (r.current < r.replicas) {
      const behind = r.followers.filter((f) => !f.current || f.offline).map((f) => `${f.name}${f.offline ? ' offline' : ` ${f.lag} behind`}`);
      out.push({
        severity: 'degraded',
        what: `${r.name}: ${r.current} of ${r.replicas} replicas current${behind.length ? ` (${behind.join(', ')})` : ''}`,
        fix: 'start or reconnect that nats-server; the replica catches up by itself (one more node lost and writes stop)',
      });
    }
    if (clustered && r.replicas === 1) {
      out.push({ severity: 'warning', what: `${r.name} has 1 replica in a cluster: losing its server loses it`, fix: `run \`errand provision --prefix ${prefix} --replicas 3\`` });
    }
  }
  const alive = (name: string) => (s.replicas[name] ?? 0) > 0;
  if (!alive('errand-host')) {
    out.push({ severity: 'degraded', what: 'no errand-host is alive: no agent progresses', fix: 'start one: `errand worker host`, the errand-host systemd unit or Deployment, or `errand up`' });
  }
  for (const name of ['errand-planner', 'errand-tool-runner']) {
    if (!alive(name)) out.push({ severity: 'warning', what: `no ${name} is alive: its commands wait in the work stream`, fix: `start one: \`errand worker ${name.replace(/^errand-/, '')}\` or the ${name} unit/Deployment` });
  }
  for (const g of growing) {
    out.push({ severity: 'warning', what: `the backlog of ${g.name} (${g.stream}) grew from ${g.from} to ${g.to} in ${(g.overMs / 1000).toFixed(1)} s`, fix: 'if it keeps growing, add workers of that kind (docs/scaling.md) or check that they are alive and not failing' });
  }
  if (s.dlq.length > 0) {
    out.push({ severity: 'warning', what: `${s.dlq.length}${s.dlq.length >= 20 ? '+' : ''} dead letters (newest: ${s.dlq[0]!.origin}: ${s.dlq[0]!.reason})`, fix: 'read them with `errand status --json` (.dlq) and fix their cause; they are not retried' });
  }
  if (s.server.durabilityWarning) {
    out.push({ severity: 'warning', what: s.server.durabilityWarning, fix: 'run nats-server >= 2.10.23 with `sync_interval: always` (docs/scaling.md)' });
  }
  return out.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'degraded' ? -1 : 1));
}

function bytes(n: number): string {
  if (n < 0) return 'unlimited';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map((c) => terminalSafe(String(c))))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => `  ${r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]!))).join('  ')}`.trimEnd()).join('\n');
}

function render(r: StatusReport, target: Target): string {
  const lines: string[] = [];
  const degraded = r.problems.filter((p) => p.severity === 'degraded').length;
  const warnings = r.problems.length - degraded;
  lines.push(
    `${r.healthy ? 'healthy' : 'DEGRADED'}: prefix ${terminalSafe(target.prefix)} on ${terminalSafe(target.servers)}${r.problems.length ? ` — ${degraded} problem${degraded === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''}`,
  );
  for (const p of r.problems) lines.push(`  ${p.severity === 'degraded' ? '✗' : '!'} ${terminalSafe(p.what)}`, `      → ${terminalSafe(p.fix)}`);
  const srv = r.server;
  lines.push(
    '',
    `server: nats-server ${terminalSafe(srv.version)}${srv.name ? ` (${terminalSafe(srv.name)})` : ''}${srv.cluster ? `, cluster ${terminalSafe(srv.cluster.name)} with ${srv.cluster.peers.length} JetStream peers` : ', not clustered'}, JetStream ${srv.jetstream ? 'on' : 'OFF'}`,
  );
  if (r.jetstream) {
    const j = r.jetstream;
    lines.push(`jetstream: storage ${bytes(j.storage)} of ${bytes(j.limits.maxStorage)}, memory ${bytes(j.memory)} of ${bytes(j.limits.maxMemory)}, ${j.streams} streams, ${j.consumers} consumers, API errors ${j.api.errors} of ${j.api.total}`);
  }
  if (r.peers.length) {
    lines.push('', 'peers', table(['NAME', 'LEADS', 'FOLLOWS', 'CURRENT', 'LAG', 'ACTIVE'], r.peers.map((p) => [p.name, p.leads, p.follows, p.offline ? 'offline' : p.current ? 'yes' : 'no', p.lag, `${(p.activeMs / 1000).toFixed(1)}s`])));
  }
  if (r.resources.length) {
    lines.push(
      '',
      'streams and buckets',
      table(
        ['KIND', 'NAME', 'REPLICAS', 'LEADER', 'LAG', 'MESSAGES', 'BYTES'],
        r.resources.map((x) => [x.kind, x.name, x.error ? 'unreadable' : `${x.current}/${x.replicas}`, x.leader ?? '—', Math.max(0, ...x.followers.map((f) => f.lag)), x.messages, bytes(x.bytes)]),
      ),
    );
  }
  if (r.consumers.length) {
    const grew = new Set(r.growing.map((g) => `${g.stream}/${g.name}`));
    lines.push('', 'consumers', table(['STREAM', 'NAME', 'PENDING', 'ACK PENDING', 'REDELIVERED'], r.consumers.map((c) => [c.stream, c.name, `${c.pending}${grew.has(`${c.stream}/${c.name}`) ? ' ↑' : ''}`, c.ackPending, c.redelivered])));
  }
  const names = Object.keys(r.replicas).sort();
  lines.push('', 'services');
  if (names.length === 0) lines.push('  none answered service discovery');
  else {
    lines.push(
      table(
        ['NAME', 'REPLICAS', 'VERSIONS', 'HOSTS'],
        names.map((n) => {
          const of = r.services.filter((s) => s.name === n);
          return [n, r.replicas[n]!, [...new Set(of.map((s) => s.version))].join(','), [...new Set(of.map((s) => s.host ?? '?'))].join(',')];
        }),
      ),
    );
  }
  if (r.dlq.length) lines.push('', `dead letters: ${r.dlq.length}${r.dlq.length >= 20 ? '+' : ''} (newest ${r.dlq[0]!.at})`);
  return `${lines.join('\n')}\n`;
}
