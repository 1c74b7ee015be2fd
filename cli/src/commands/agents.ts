import type { Command } from 'commander';
import { ClientError, ClientErrorCode, summarize, type AgentSummary } from '@errand/client';
import { formatUsd, TERMINAL_STATUSES, type AgentRecord, type Waiting } from '@errand/protocols';
import { printJson } from '../output.js';
import { terminalSafe } from '../terminal-safe.js';
import { withClient } from '../with-client.js';

const me = () => ({ id: process.env.USER || 'cli', channel: 'cli' });

/** `2030-01-01T12:00:00.000Z (in 4m)` / `(5s ago)`. */
function when(at: number, now: number): string {
  const s = Math.round((at - now) / 1000);
  const span = (n: number) => (n < 60 ? `${n}s` : n < 3600 ? `${Math.floor(n / 60)}m` : n < 86_400 ? `${Math.floor(n / 3600)}h` : `${Math.floor(n / 86_400)}d`);
  return `${new Date(at).toISOString()} (${s >= 0 ? `in ${span(s)}` : `${span(-s)} ago`})`;
}

/** What the agent waits for a person to do, in full: the question, or each tool with its exact arguments; the deadline; the command that answers. */
function describeWait(s: AgentSummary, w: Waiting, now: number): string[] {
  const lines: string[] = [];
  const deadline = w.deadline !== undefined ? `, deadline ${when(w.deadline, now)}` : '';
  const head = `waiting since ${when(w.since, now)}${deadline}`;
  if (w.kind === 'input') {
    lines.push(`${head} for an answer (${w.requestId}):`, `  ${w.question ?? w.summary ?? '(no question given)'}`, `  → errand answer ${s.agentId} "…"`);
  } else if (w.kind === 'budget') {
    lines.push(`${head} for a budget decision (${w.requestId}):`, `  ${w.question ?? w.summary ?? '(no question given)'}`, `  → errand approve ${s.agentId} | errand deny ${s.agentId}`);
  } else {
    lines.push(`${head} for approval (${w.requestId}) of ${w.calls?.length ?? 0} tool call${w.calls?.length === 1 ? '' : 's'}:`);
    for (const c of w.calls ?? []) {
      lines.push(`  ${c.tool}`, ...JSON.stringify(c.args ?? null, null, 2).split('\n').map((l) => `    ${l}`));
    }
    lines.push(`  → errand approve ${s.agentId} | errand deny ${s.agentId}`);
  }
  return lines;
}

function describe(s: AgentSummary, timers: AgentRecord['timers'] | undefined, now: number): string {
  const lines = [
    `${s.agentId}  ${s.status}  (${s.agent}, step ${s.step}, state ${JSON.stringify(s.state)})`,
    `goal: ${s.goal}`,
  ];
  if (s.parent) lines.push(`parent: ${s.parent.agentId} (as ${s.parent.ref})`);
  if (s.submittedBy) lines.push(`started by ${s.submittedBy.name ?? s.submittedBy.id} (${s.submittedBy.channel})`);
  const ended = TERMINAL_STATUSES.has(s.status);
  if (s.waiting && !ended) lines.push(...describeWait(s, s.waiting, now));
  if (s.status === 'paused') lines.push(`paused: what arrives waits until \`errand resume ${s.agentId}\``);
  // An agent that waits on nothing but a timer (a sleeper, a back-off) says when it moves on.
  const due = !ended && timers ? Object.entries(timers).sort(([, a], [, b]) => a.dueAt - b.dueAt) : [];
  if (due.length > 0 && !s.waiting) {
    const [id, t] = due[0]!;
    lines.push(`next timer: ${id} ${when(t.dueAt, now)}${due.length > 1 ? ` (+${due.length - 1} more)` : ''}`);
  }
  if (s.usage) lines.push(`usage: ${s.usage.inputTokens} in + ${s.usage.outputTokens} out tokens, ${formatUsd(s.usage.costUsd)}${s.budget?.maxCostUsd !== undefined ? ` of ${formatUsd(s.budget.maxCostUsd)}` : ''}`);
  if (s.budget) lines.push(`budget: ${Object.entries(s.budget).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (s.output !== undefined) lines.push(`output: ${JSON.stringify(s.output)}`);
  if (s.error) lines.push(`error: ${s.error.code}: ${s.error.message}`);
  // Who paused or cancelled it (a person, as the host attributed the message; a parent agent).
  const by = s.control?.by;
  if (by && ((s.status === 'cancelled' && s.control?.action === 'cancel') || (s.status === 'paused' && s.control?.action === 'pause'))) lines.push(`${s.status} by ${by.name ?? by.id} (${by.channel})`);
  for (const [ref, c] of Object.entries(s.children)) lines.push(`child ${ref}: ${c.agentId} ${c.status}`);
  lines.push(`created ${s.createdAt}, updated ${s.updatedAt}`);
  return `${lines.join('\n')}\n`;
}

export function registerAgentCommands(program: Command): void {
  program
    .command('show')
    .description('what an agent is doing: status, state, what it waits for (the question, or each tool call with its exact arguments, and the deadline), its next timer, usage, output or error')
    .argument('<agentId>')
    .addHelpText('after', '\nExamples:\n  $ errand show a-mwv4snjw-a370a48e\n  $ errand show a-mwv4snjw-a370a48e --json')
    .action((agentId: string, _o: unknown, cmd: Command) =>
      withClient(cmd, async (client, opts) => {
        const r = await client.record(agentId);
        if (!r) throw new ClientError(ClientErrorCode.NotFound, `no agent ${agentId}`, agentId);
        const s = summarize(r);
        if (opts.json) printJson(s);
        // The goal, questions, arguments, output and errors are agents' text: line breaks kept, control shown escaped.
        else process.stdout.write(terminalSafe(describe(s, r.timers, Date.now()), { multiline: true }));
      }),
    );

  for (const decision of ['approve', 'deny'] as const) {
    program
      .command(decision)
      .description(`${decision} what an agent waits for approval of (the request it shows, with its exact arguments)`)
      .argument('<agentId>')
      .argument('[requestId]', 'the request to decide (default: the one pending)')
      .option('--args-hash <hash>', 'decide only if the agent still asks about these arguments (the argsHash `errand show --json` printed)')
      .addHelpText('after', `\nExample:\n  $ errand ${decision} a-mwv4snjw-a370a48e`)
      .action((agentId: string, requestId: string | undefined, o: { argsHash?: string }, cmd: Command) =>
        withClient(cmd, async (client, opts) => {
          const r = await client.decide(agentId, decision, me(), requestId, o.argsHash);
          if (opts.json) printJson({ ok: true, agentId, decision, ...r });
          else process.stdout.write(`${decision === 'approve' ? 'approved' : 'denied'} ${r.requestId} of ${agentId}\n`);
        }),
      );
  }

  for (const [name, description, interrupt] of [
    ['answer', "answer the question an agent asked", false],
    ['tell', 'tell a working agent something; it reads it at its next planning step (--interrupt: at once)', true],
  ] as const) {
    const c = program
      .command(name)
      .description(description)
      .argument('<agentId>')
      .argument('<text...>');
    if (interrupt) c.option('--interrupt', 'stop the step in flight and plan again with this message');
    c.addHelpText('after', `\nExample:\n  $ errand ${name} a-mwv4snjw-a370a48e "use the staging database"`).action((agentId: string, words: string[], _o: unknown, cmd: Command) =>
      withClient(cmd, async (client, opts) => {
        await client.answer(agentId, words.join(' '), me(), { interrupt: cmd.opts<{ interrupt?: boolean }>().interrupt ?? false });
        if (opts.json) printJson({ ok: true, agentId });
        else process.stdout.write(`sent to ${agentId}\n`);
      }),
    );
  }

  for (const action of ['cancel', 'pause', 'resume'] as const) {
    program
      .command(action)
      .description({ cancel: 'cancel an agent (and its children)', pause: 'pause an agent: what arrives waits until resume', resume: 'resume a paused agent' }[action])
      .argument('<agentId>')
      .option('--reason <text>', 'why (recorded with the agent)')
      .addHelpText('after', `\nExample:\n  $ errand ${action} a-mwv4snjw-a370a48e`)
      .action((agentId: string, o: { reason?: string }, cmd: Command) =>
        withClient(cmd, async (client, opts) => {
          await client.control(agentId, action, me(), o.reason);
          if (opts.json) printJson({ ok: true, agentId, action });
          else process.stdout.write(`${action} sent to ${agentId}\n`);
        }),
      );
  }
}
