import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { createClient, summarize } from '@errand/client';
import { connect } from '@errand/nats';
import { type AgentRecord, type ProgressEvent } from '@errand/protocols';
import { createServiceLogger } from '@errand/service';
import type { GlobalOptions } from '../context.js';
import { DEMO_FILES, DEMO_GOAL, DEMO_SCRIPT } from '../demo-script.js';
import { ExitCode } from '../exit-codes.js';
import { followAgent } from '../follow.js';
import { createLogger } from '../logger.js';
import { CliError, printJson } from '../output.js';
import { duration, formatLine, ProgressModel } from '../progress.js';
import { gatewayPort, loadGatewayToken, startStack } from '../stack.js';
import { loadDeploymentCredentials } from './up.js';
import { parsePort } from './options.js';

interface DemoOptions extends GlobalOptions {
  dataDir?: string;
  port: number;
  interactive?: boolean;
  approveAfter?: number;
  timeout: number;
  gatewayPort?: number;
}

const DEMO_PREFIX = 'demo';
/** On a terminal the approval waits this long, so there is time to approve it in the dashboard. */
const TTY_APPROVE_AFTER_S = 20;

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('see Errand work: an embedded nats-server, every service and a scripted model run one sample goal from start to finish')
    .option('--data-dir <dir>', 'keep the demo\'s NATS data and workspace here (default: a temporary folder, removed at the end)')
    .option('--port <port>', 'client port of the embedded server (0: any free port)', parsePort, 0)
    .option('-i, --interactive', 'you approve the file overwrite yourself (default: approved automatically once shown)')
    .option('--approve-after <seconds>', `without --interactive: how long the approval is shown (in the terminal and the dashboard) before the demo approves it itself (default ${TTY_APPROVE_AFTER_S} on a terminal, 1 otherwise)`, Number)
    .option('--gateway-port <port>', 'port of the dashboard on 127.0.0.1 (default 7878, or any free port when it is taken)', parsePort)
    .option('--timeout <seconds>', 'give up when the goal is not finished after this long', Number, 120)
    .addHelpText(
      'after',
      `
The sample goal asks the built-in assistant agent to compare two release notes and update a
summary. The agent plans (a task tree), reads two files at once, hits a wrong file name and
corrects itself, and asks before it overwrites summary.md. The model is scripted, so no API key or
network is needed; the rest — NATS, the host, planner, tool runner and notifier — is the real thing.
It ends with a summary and exits 0 when the goal was done, 1 otherwise. While it runs, the
dashboard shows it: open the printed "Dashboard:" link (it signs you in) to watch the task tree
grow and approve the overwrite from the browser (with --interactive, whichever answers first).

Examples:
  $ errand demo
  $ errand demo --interactive
  $ errand demo --data-dir ./demo-data --json`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<DemoOptions>();
      const approveAfter = opts.approveAfter ?? (process.stdout.isTTY && !opts.json ? TTY_APPROVE_AFTER_S : 1);
      if (!(approveAfter >= 0) || !(opts.timeout > 0)) throw new CliError(ExitCode.Usage, '--approve-after must be 0 or more seconds and --timeout more than 0 (see errand demo --help)');
      if (opts.interactive && !process.stdin.isTTY) throw new CliError(ExitCode.Usage, '--interactive needs a terminal to ask you in; run without it to approve automatically');
      const say = (line = '') => {
        if (!opts.json) process.stdout.write(`${line}\n`);
      };
      const temporary = opts.dataDir === undefined;
      const root = temporary ? await mkdtemp(join(tmpdir(), 'errand-demo-')) : resolve(opts.dataDir!);
      const workspace = join(root, 'workspace');
      for (const [path, text] of Object.entries(DEMO_FILES)) {
        await mkdir(dirname(join(workspace, path)), { recursive: true });
        await writeFile(join(workspace, path), text);
      }
      const level = opts.logLevel ?? 'error';
      const login = (await loadGatewayToken(join(root, 'nats')))!;
      const credentials = await loadDeploymentCredentials(join(root, 'creds'), DEMO_PREFIX);
      // A stack that cannot start (no nats-server, a port taken) leaves no temporary folder behind.
      const stack = await startStack({
        external: undefined,
        credentials,
        insecure: false,
        dataDir: join(root, 'nats'),
        port: opts.port,
        replicas: 1,
        prefix: DEMO_PREFIX,
        workspace,
        // The demo's model is always the script; real channels and keys stay out of it.
        env: { ...process.env, OPENAI_API_KEY: undefined, OPENAI_BASE_URL: undefined, ERRAND_NOTIFY_CHANNELS: undefined, ERRAND_DEFAULT_NOTIFY: undefined, ERRAND_CONFIG: undefined },
        script: DEMO_SCRIPT,
        serviceLogLevel: level,
        metricsPort: undefined,
        gateway: { port: await gatewayPort(opts.gatewayPort), ...login },
        logger: createLogger(level, 'demo'),
        serviceLogger: (service, l, redactor) => createServiceLogger(service, l, { stdout: !opts.json, redactor }),
        say: (line) => say(`  ${line}`),
      }).catch(async (err: unknown) => {
        if (temporary) await rm(root, { recursive: true, force: true });
        throw err;
      });
      const conn = await connect({ servers: stack.url, name: 'errand-demo', logger: createLogger(level, 'demo'), credsFile: credentials.credsFile('operator') });
      let record: AgentRecord | undefined;
      const started = Date.now();
      const approvals: string[] = [];
      try {
        const client = await createClient(conn, DEMO_PREFIX);
        const agentId = `demo-${Date.now().toString(36)}`;
        const model = new ProgressModel(agentId, client.subjects);
        say();
        say(`goal: ${DEMO_GOAL}`);
        say(`workspace: ${workspace}`);
        if (stack.dashboard) say(`Dashboard: ${stack.dashboard.loginUrl}  (the run, live, while the demo runs)`);
        say();
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), opts.timeout * 1000);
        const deciding = new Set<string>();
        /** Aborted once the run is followed to its end: a pending automatic decision stops waiting. */
        const ended = new AbortController();
        const decisions: Promise<void>[] = [];
        const follow = followAgent({
          conn,
          prefix: DEMO_PREFIX,
          model,
          live: true,
          signal: abort.signal,
          logger: createLogger(level, 'demo'),
          onEvent: (event: ProgressEvent, lines) => {
            for (const l of lines) say(`  ${formatLine(model, l)}`);
            if (event.kind === 'event.approval' && event.status === 'requested' && !deciding.has(event.requestId)) {
              deciding.add(event.requestId);
              decisions.push(decide(event.requestId).catch((err: unknown) => say(`  could not decide the approval: ${(err as Error).message}`)));
            }
          },
          onRecord: (_r, lines) => {
            for (const l of lines) say(`  ${formatLine(model, l)}`);
          },
        });
        /** Waits (up to `ms`) unless the run ends first: a decision made elsewhere needs no more waiting. */
        const pause = (ms: number) =>
          new Promise<void>((r) => {
            const t = setTimeout(r, ms);
            ended.signal.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
          });
        const decide = async (requestId: string) => {
          // Someone may decide first (in the dashboard): theirs is the decision.
          const decidedElsewhere = async () => {
            const settled = (await client.record(agentId))?.approvals?.find((a) => a.requestId === requestId && a.decision !== undefined);
            if (!settled) return false;
            const verb = settled.decision === 'approve' ? 'approved' : settled.decision === 'deny' ? 'denied' : settled.decision;
            approvals.push(`${requestId} ${verb} by ${settled.by?.name ?? settled.by?.id ?? 'someone'}`);
            return true;
          };
          let approve = true;
          if (opts.interactive) {
            const rl = createInterface({ input: process.stdin, output: process.stdout });
            // The question goes away when the run ends (decided in the dashboard meanwhile).
            const answer = await rl.question(`  approve ${requestId}? [Y/n] `, { signal: ended.signal }).catch(() => undefined);
            rl.close();
            if (answer === undefined) return void (await decidedElsewhere());
            approve = !/^n/i.test(answer.trim());
          } else {
            say(`  (approve it in the dashboard, or with: errand approve ${agentId} — the demo approves it itself in ${approveAfter} s; --interactive to decide here)`);
            await pause(approveAfter * 1000);
          }
          if ((await decidedElsewhere()) || ended.signal.aborted) return;
          try {
            await client.decide(agentId, approve ? 'approve' : 'deny', { id: process.env.USER ?? 'demo', channel: 'cli', name: 'the demo' }, requestId);
          } catch (err) {
            if (await decidedElsewhere()) return;
            throw err;
          }
          approvals.push(`${requestId} ${approve ? 'approved' : 'denied'}`);
        };
        await client.submit(DEMO_GOAL, { agentId, agent: 'assistant', tools: ['fs_list', 'fs_read', 'fs_write'], labels: { demo: 'true' } });
        await follow;
        ended.abort();
        await Promise.all(decisions);
        clearTimeout(timer);
        record = await client.record(agentId);
        if (abort.signal.aborted && record?.status !== 'done') {
          throw new CliError(ExitCode.Failed, `the demo goal did not finish within ${opts.timeout} s (last state: ${record ? `${record.status} at step ${record.step}` : 'no record'})`);
        }
        const s = record ? summarize(record) : undefined;
        const output = (record?.output ?? {}) as { answer?: string; usage?: { inputTokens: number; outputTokens: number; costUsd: number }; rounds?: number };
        const tools = [...model.agents.values()].flatMap((v) => v.tools);
        const summary = {
          ok: record?.status === 'done',
          agentId,
          status: record?.status,
          steps: record?.step,
          rounds: output.rounds,
          toolCalls: { ok: tools.filter((t) => t.status === 'ok').length, failed: tools.filter((t) => t.status === 'error').length },
          approvals,
          tokens: output.usage ? output.usage.inputTokens + output.usage.outputTokens : undefined,
          costUsd: output.usage?.costUsd,
          answer: output.answer,
          error: s?.error,
          seconds: Math.round((Date.now() - started) / 100) / 10,
          dashboard: stack.dashboard?.loginUrl,
        };
        if (opts.json) printJson(summary);
        else {
          say();
          say(`${summary.ok ? '✔ done' : `✘ ${summary.status}`} in ${duration(Date.now() - started)}: ${summary.steps} steps, ${summary.rounds ?? '?'} model rounds, ` +
            `${summary.toolCalls.ok} tool calls ok and ${summary.toolCalls.failed} failed (and corrected), ${approvals.length} approval(s), ${summary.tokens ?? 0} tokens`);
          for (const a of approvals) say(`approval: ${a}`);
          if (summary.answer) say(`answer: ${summary.answer}`);
          if (summary.error) say(`error: ${summary.error.message}`);
          say();
          say('Next: `errand up` runs all of this for your own goals (set OPENAI_API_KEY for a real model); see the README.');
        }
        process.exitCode = summary.ok ? ExitCode.Ok : ExitCode.Failed;
      } finally {
        await conn.close();
        await stack.stop();
        if (temporary) await rm(root, { recursive: true, force: true });
      }
    });
}
