import { readFile, writeFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import { agentModulesOf, DEFAULT_AGENT_MODULES, loadAgents } from '@errand/host';
import { formatUsd, INBOX_MESSAGE_KINDS, messageSchemas, type AgentRecord, type InboxMessage } from '@errand/protocols';
import {
  definitionHash,
  describeCommands,
  describeEvent,
  readExport,
  replayJournal,
  verifyReplay,
  type ReplayResult,
  type RunDiff,
  type Verification,
} from '@errand/replay';
import { createRegistry, machineEventOf, type AgentRegistry } from '@errand/core';
import { processRedactor } from '@errand/service';
import type { GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { CliError, printJson } from '../output.js';
import { cliErrorOf, withClient } from '../with-client.js';
import { terminalSafe } from '../terminal-safe.js';

/** The agent definitions replay folds through: the host's default modules, or ERRAND_AGENT_MODULES. */
async function loadRegistry(): Promise<AgentRegistry> {
  return createRegistry(await loadAgents(agentModulesOf(process.env)));
}

function parseStep(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a step is a whole number from 1 (see `errand replay <agentId>` for the steps).');
  return n;
}

const json = (v: unknown) => JSON.stringify(v);

/** The text of a replay: one block per step — the event, the state after, the commands it sent. */
function replayText(r: ReplayResult, showSnapshot: boolean): string {
  const first = r.steps[0]!;
  const lines = [`replay of ${r.agentId} (${first.machine.id}@${first.machine.version}, steps ${first.step}–${r.steps.at(-1)!.step})`];
  for (const s of r.steps) {
    lines.push(`step ${s.step}  ${describeEvent(s.event)}`);
    const commands = describeCommands(s.commands);
    lines.push(`        → ${json(s.state)} (${s.status})${commands ? `  sent: ${commands}` : ''}`);
    if (!s.matches) lines.push(`        ≠ the journal has ${json(s.journal.state)} (${s.journal.status})`);
  }
  if (showSnapshot) lines.push(`snapshot after step ${r.steps.at(-1)!.step}:`, JSON.stringify(r.record.snapshot, null, 2));
  return `${lines.join('\n')}\n`;
}

function verificationText(v: Verification, agentId: string): string {
  if (v.ok) return `verified: replaying ${agentId} gives the stored snapshot\n`;
  return `${[`verification failed: ${v.reason}`, ...(v.diff.length ? ['final snapshot (- stored, + replayed):', ...v.diff.map((d) => `  ${d}`)] : [])].join('\n')}\n`;
}

function replayJson(r: ReplayResult, verification: Verification | undefined, withSnapshot: boolean): unknown {
  return {
    ok: verification?.ok ?? true,
    agentId: r.agentId,
    steps: r.steps.map((s) => ({ step: s.step, event: s.event, summary: describeEvent(s.event), state: s.state, status: s.status, commands: s.commands, matches: s.matches })),
    ...(verification ? { verification } : {}),
    ...(r.firstDivergence ? { firstDivergentStep: r.firstDivergence.step } : {}),
    ...(withSnapshot ? { snapshot: r.record.snapshot } : {}),
  };
}

function diffText(d: RunDiff): string {
  const cost = (c: RunDiff['cost']['a']) =>
    `${c.steps} steps, ${c.modelCalls} model calls, ${c.inputTokens + c.outputTokens} tokens, ${formatUsd(c.costUsd)}, ${c.toolCalls} tool calls`;
  const lines = [`a: ${d.a}`, `b: ${d.b}`];
  if (d.firstDivergentStep === undefined) lines.push('the runs do not diverge');
  else lines.push(`first divergence at step ${d.firstDivergentStep}`);
  const side = (v: RunDiff['rows'][number]['a']) => (v ? `${v.event}\n       → ${json(v.state)} (${v.status})${v.commands ? `  sent: ${v.commands}` : ''}` : '(no such step)');
  for (const row of d.rows) lines.push(`step ${row.step}`, `  a: ${side(row.a)}`, `  b: ${side(row.b)}`);
  lines.push(`cost a: ${cost(d.cost.a)}`, `cost b: ${cost(d.cost.b)}`);
  return `${lines.join('\n')}\n`;
}

/** An edited event for `fork --event`: a machine event (`type`), a journal entry, or an inbox message. */
async function readEvent(file: string): Promise<{ type: string; [key: string]: unknown }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new CliError(ExitCode.Usage, `--event ${file}: ${(err as Error).message}; give a JSON file with an event ({"type":"tool.result",…}), e.g. the "event" of a step from \`errand replay <agentId> --json\``);
  }
  const o = raw as { type?: unknown; kind?: unknown; event?: unknown };
  if (typeof o?.type === 'string') return raw as { type: string };
  if (o?.kind === 'event.step' && typeof (o.event as { type?: unknown })?.type === 'string') return o.event as { type: string };
  if (typeof o?.kind === 'string' && (INBOX_MESSAGE_KINDS as readonly string[]).includes(o.kind)) {
    const check = messageSchemas[o.kind as InboxMessage['kind']].safeParse(raw);
    if (!check.success) throw new CliError(ExitCode.Usage, `--event ${file}: not a valid ${o.kind}: ${check.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join(', ')}`);
    return machineEventOf(check.data as InboxMessage);
  }
  throw new CliError(ExitCode.Usage, `--event ${file}: expected an event with a "type" (e.g. the "event" of a step from \`errand replay <agentId> --json\`), a journal entry or an inbox message`);
}

interface ReplayCommandOptions extends GlobalOptions {
  verify?: boolean;
  step?: number;
  file?: string;
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description("replay an agent's journal through its machine (no side effect runs): each step's event, state after and commands")
    .argument('[agentId]', 'the agent (or --file)')
    .option('--verify', 'check the replayed final snapshot equals the stored one; exit 1 with a diff naming the first diverging step if not')
    .option('--step <n>', 'stop at step n and print the full snapshot there', parseStep)
    .option('--file <file>', 'replay an `errand export` file, without NATS')
    .addHelpText(
      'after',
      `
The machines come from the modules the host loads (ERRAND_AGENT_MODULES, default
${DEFAULT_AGENT_MODULES}); a journal written by a machine version they lack is refused with
the version to load.

Examples:
  $ errand replay a-mwv4snjw-a370a48e
  $ errand replay a-mwv4snjw-a370a48e --verify
  $ errand replay a-mwv4snjw-a370a48e --step 3 --json
  $ errand replay --file run.jsonl --verify`,
    )
    .action(async (agentId: string | undefined, _o: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<ReplayCommandOptions>();
      if (!agentId && !opts.file) throw new CliError(ExitCode.Usage, 'name an agent (errand replay <agentId>) or an export file (errand replay --file run.jsonl)');
      const registry = await loadRegistry();
      let result: ReplayResult;
      let stored: Pick<AgentRecord, 'step' | 'status' | 'snapshot'> | undefined;
      if (opts.file) {
        let text: string;
        try {
          text = await readFile(opts.file, 'utf8');
        } catch (err) {
          throw new CliError(ExitCode.NotFound, `cannot read ${opts.file}: ${(err as Error).message}`);
        }
        try {
          const run = readExport(text);
          if (agentId && agentId !== run.header.agentId) throw new CliError(ExitCode.Usage, `${opts.file} is an export of ${run.header.agentId}, not of ${agentId}`);
          const local = registry.find(run.header.machine.id, run.header.machine.version);
          if (local && run.header.definitionHash && definitionHash(local) !== run.header.definitionHash) {
            process.stderr.write(`errand: note: ${run.header.machine.id}@${run.header.machine.version} here is not the definition the export was written with (its hash differs); --verify tells whether that matters\n`);
          }
          result = replayJournal(run.journal, { registry, prefix: run.header.prefix, stopAt: opts.step });
          stored = run.checkpoints.at(-1);
        } catch (err) {
          throw cliErrorOf(err);
        }
      } else {
        const out = await withClient(cmd, (client) => client.replay(agentId!, { registry, stopAt: opts.step }));
        result = out.result;
        stored = out.record;
      }
      const verification = opts.verify && opts.step === undefined ? (stored ? verifyReplay(result, stored) : undefined) : undefined;
      if (opts.verify && opts.step === undefined && !stored) throw new CliError(ExitCode.NotFound, `there is no stored snapshot of ${result.agentId} to verify against (was its record removed?)`);
      if (opts.json) printJson(replayJson(result, verification, opts.step !== undefined));
      else {
        // Replayed events and states carry agents' text: shown, never obeyed by the terminal.
        process.stdout.write(terminalSafe(replayText(result, opts.step !== undefined), { multiline: true }));
        if (verification) process.stdout.write(terminalSafe(verificationText(verification, result.agentId), { multiline: true }));
      }
      if (verification && !verification.ok) {
        // The details are printed above; the exit status and this line are for scripts.
        process.exitCode = ExitCode.Failed;
        if (!opts.json) process.stderr.write(`errand: ${result.agentId} does not replay to its stored snapshot (first diverging step: ${verification.firstDivergentStep ?? 'none'})\n`);
      }
    });

  program
    .command('export')
    .description('write an agent as a self-contained JSON-lines file (journal, definition hash, stored snapshot) that `errand replay --file` replays offline; secrets are redacted')
    .argument('<agentId>')
    .option('-o, --output <file>', 'write to this file (default: stdout)')
    .addHelpText('after', '\nExamples:\n  $ errand export a-mwv4snjw-a370a48e -o run.jsonl\n  $ errand replay --file run.jsonl --verify')
    .action((agentId: string, o: { output?: string }, cmd: Command) =>
      withClient(cmd, async (client, opts) => {
        // The secrets this environment knows (OPENAI_API_KEY…) are removed as well as the usual formats.
        const text = await client.export(agentId, { registry: await loadRegistry(), redactor: processRedactor(process.env) });
        const steps = readExport(text).journal.length;
        if (o.output) {
          await writeFile(o.output, text);
          if (opts.json) printJson({ ok: true, agentId, file: o.output, steps });
          else process.stderr.write(`exported ${steps} steps of ${agentId} to ${o.output}\n`);
        } else process.stdout.write(text);
      }),
    );

  program
    .command('fork')
    .description('start a new agent from an agent\'s snapshot at a step (the original is untouched), optionally with another model, system prompt or an edited event')
    .argument('<agentId>')
    .requiredOption('--at <step>', 'the step to fork at (see `errand replay <agentId>`)', parseStep)
    .option('--model <model>', 'another model for the fork')
    .option('--system <text>', 'another system prompt for the fork')
    .option('--event <file>', 'a JSON event applied as the fork\'s next step instead of the original\'s (e.g. a corrected tool.result)')
    .option('--id <forkId>', 'the new agent\'s id (default: a fresh one)')
    .addHelpText(
      'after',
      `
Commands still outstanding at that step (model calls, tool calls, timers, children) are sent again
for the fork; the command an --event answers is not.

Examples:
  $ errand fork a-mwv4snjw-a370a48e --at 4 --model gpt-4.1
  $ errand replay a-mwv4snjw-a370a48e --step 5 --json | jq '.steps[-1].event' > result.json   # edit it
  $ errand fork a-mwv4snjw-a370a48e --at 4 --event result.json
  $ errand diff a-mwv4snjw-a370a48e <forkId>`,
    )
    .action((agentId: string, o: { at: number; model?: string; system?: string; event?: string; id?: string }, cmd: Command) =>
      withClient(cmd, async (client, opts) => {
        const event = o.event ? await readEvent(o.event) : undefined;
        const r = await client.fork(agentId, {
          registry: await loadRegistry(),
          at: o.at,
          ...(o.model !== undefined ? { model: o.model } : {}),
          ...(o.system !== undefined ? { system: o.system } : {}),
          ...(event ? { event } : {}),
          ...(o.id ? { forkId: o.id } : {}),
        });
        if (opts.json) printJson({ ok: true, agentId: r.agentId, from: { agentId, step: o.at } });
        else process.stdout.write(`${r.agentId}\n`);
      }),
    );

  program
    .command('diff')
    .description('two runs side by side from the step where they diverge: events, states, tool calls, cost')
    .argument('<a>', 'an agent id')
    .argument('<b>', 'another agent id (a fork of a, say)')
    .addHelpText('after', '\nExamples:\n  $ errand diff a-mwv4snjw-a370a48e a-mwv5abcd-1f2e3d4c\n  $ errand diff a-mwv4snjw-a370a48e a-mwv5abcd-1f2e3d4c --json')
    .action((a: string, b: string, _o: unknown, cmd: Command) =>
      withClient(cmd, async (client, opts) => {
        const d = await client.diff(a, b);
        if (opts.json) printJson({ ok: true, ...d });
        else process.stdout.write(terminalSafe(diffText(d), { multiline: true }));
      }),
    );
}
