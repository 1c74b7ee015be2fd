import { formatUsd } from '@errand/protocols';
import type { CommandSummary } from './fold.js';

const clip = (s: string, n = 100) => {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
};
const short = (v: unknown, n = 100) => clip(typeof v === 'string' ? v : JSON.stringify(v) ?? 'undefined', n);

type Ev = { type: string; [key: string]: unknown };

/**
 * One line about a journaled event, in short form: the goal, the model's reply (its reasoning and
 * the tools it calls), a tool's result, a decision, a timer — what a person reading a replay needs.
 */
export function describeEvent(event: Ev): string {
  const e = event as Record<string, any>;
  switch (event.type) {
    case 'xstate.init': {
      const i = (e.input ?? {}) as Record<string, any>;
      return `goal: ${short(i.goal ?? '')}${i.model ? ` (model ${i.model})` : ''}${i.parent ? ` (child ${i.parent.ref} of ${i.parent.agentId})` : ''}`;
    }
    case 'errand.fork':
      return `fork of ${e.from?.agentId} at step ${e.from?.step} (${(e.reissue ?? []).length} command(s) re-issued)`;
    case 'plan.result': {
      if (e.error) return `model error ${e.error.code}: ${short(e.error.message)}${e.error.retryable ? ' (retryable)' : ''}`;
      const m = e.result?.message ?? {};
      const calls = ((m.toolCalls ?? m.tool_calls ?? []) as Array<{ name?: string; function?: { name: string }; arguments?: unknown }>).map(
        (c) => `${c.name ?? c.function?.name}(${short(c.arguments ?? '', 60)})`,
      );
      const usage = e.usage ? ` [${e.usage.inputTokens}+${e.usage.outputTokens} tok${e.usage.costUsd !== undefined ? `, ${formatUsd(Number(e.usage.costUsd))}` : ''}]` : '';
      const said = m.content ? `"${short(m.content, 80)}"` : '';
      return `model: ${[said, calls.length ? `calls ${calls.join(', ')}` : ''].filter(Boolean).join(' ') || '(empty reply)'}${usage}`;
    }
    case 'tool.result':
      return e.error
        ? `tool ${e.tool} ${e.callId}: error ${e.error.code}: ${short(e.error.message, 80)}${e.error.retryable ? ' (retryable)' : ''}`
        : `tool ${e.tool} ${e.callId}: ok ${short(e.result?.output, 80)}`;
    case 'approval':
      return `approval ${e.requestId}: ${e.decision}${e.by ? ` by ${e.by.id}` : ''}`;
    case 'input':
      return `input: ${short(e.text ?? '')}${e.by ? ` (from ${e.by.id})` : ''}`;
    case 'child.result':
      return `child ${e.childId} (${e.ref}): ${e.outcome}${e.error ? ` ${e.error.code}` : ''}`;
    case 'control.budget':
      return `budget changed: ${short(e.budget)}`;
    default: {
      const { type: _t, at: _a, ...rest } = e;
      return `${event.type}${Object.keys(rest).length ? ` ${short(rest, 80)}` : ''}`;
    }
  }
}

/** The commands of a step, in short form: `tool.request→weather, timer.request`. */
export function describeCommands(commands: readonly CommandSummary[]): string {
  return commands
    .map((c) => {
      if (c.kind === 'tool.request') return `tool.request→${c.subject.split('.').at(-1)}`;
      if (c.kind === 'goal' || c.kind === 'control' || c.kind === 'child.result' || c.kind === 'agent.message') return `${c.kind}→${c.subject.split('.').at(-3)}`;
      return c.kind;
    })
    .join(', ');
}
