import type { Command } from 'commander';
import type { AgentSummary } from '@errand/client';
import { printJson } from '../output.js';
import { terminalSafe } from '../terminal-safe.js';
import { withClient } from '../with-client.js';

const me = () => ({ id: process.env.USER || 'cli', channel: 'cli' });

function describe(s: AgentSummary): string {
  const lines = [
    `${s.agentId}  ${s.status}  (${s.agent}, step ${s.step}, state ${JSON.stringify(s.state)})`,
    `goal: ${s.goal}`,
  ];
  if (s.waitingForApproval) lines.push(`waiting for approval ${s.waitingForApproval.requestId}: ${s.waitingForApproval.what}   → errand approve ${s.agentId} | errand deny ${s.agentId}`);
  if (s.waitingForAnswer) lines.push(`waiting for an answer: ${s.waitingForAnswer.text}   → errand answer ${s.agentId} "…"`);
  if (s.output !== undefined) lines.push(`output: ${JSON.stringify(s.output)}`);
  if (s.error) lines.push(`error: ${s.error.code}: ${s.error.message}`);
  for (const [ref, c] of Object.entries(s.children)) lines.push(`child ${ref}: ${c.agentId} ${c.status}`);
  lines.push(`created ${s.createdAt}, updated ${s.updatedAt}`);
  return `${lines.join('\n')}\n`;
}

export function registerAgentCommands(program: Command): void {
  program
    .command('show')
    .description('what an agent is doing: status, state, what it waits for, output or error')
    .argument('<agentId>')
    .addHelpText('after', '\nExamples:\n  $ errand show a-mwv4snjw-a370a48e\n  $ errand show a-mwv4snjw-a370a48e --json')
    .action((agentId: string, _o: unknown, cmd: Command) =>
      withClient(cmd, async (client, opts) => {
        const s = await client.get(agentId);
        if (opts.json) printJson(s);
        // The goal, questions, output and errors are agents' text: line breaks kept, control shown escaped.
        else process.stdout.write(terminalSafe(describe(s), { multiline: true }));
      }),
    );

  for (const decision of ['approve', 'deny'] as const) {
    program
      .command(decision)
      .description(`${decision} what an agent waits for approval of (the request it shows, with its exact arguments)`)
      .argument('<agentId>')
      .argument('[requestId]', 'the request to decide (default: the one pending)')
      .addHelpText('after', `\nExample:\n  $ errand ${decision} a-mwv4snjw-a370a48e`)
      .action((agentId: string, requestId: string | undefined, _o: unknown, cmd: Command) =>
        withClient(cmd, async (client, opts) => {
          const r = await client.decide(agentId, decision, me(), requestId);
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
