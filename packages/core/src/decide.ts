import { TERMINAL_STATUSES, type AgentRecord, type InboxMessage, type Message } from '@errand/protocols';
import type { AgentInput } from './agent-definition.js';
import { Draft, startRecord } from './draft.js';
import { RuntimeError, RuntimeErrorCode } from './errors.js';
import { startFork } from './fork.js';
import type { MachineEvent, StepContext } from './record.js';
import { settle, settlementOf } from './settle.js';

/**
 * The pure half of a step: given the agent's record and one inbox message, decide the next record
 * and the commands it sends (its outbox). No I/O happens here; the executor persists the decision
 * with compare-and-set and only then publishes the outbox.
 */

export type Decision =
  | { readonly type: 'commit'; readonly record: AgentRecord; readonly created: boolean }
  /** Already applied: re-publish the record's outbox (consumers de-duplicate), never recompute. */
  | { readonly type: 'duplicate' }
  /**
   * Nothing to apply (a late timer, a message to a finished agent); ack it. `refused`: the message
   * tried something it may not (an approval nobody asked for, a reserved event from an agent) —
   * worth a warning in the log.
   */
  | { readonly type: 'ignore'; readonly reason: string; readonly refused?: boolean };

/** The event a machine sees for an inbox message. */
export function machineEventOf(message: InboxMessage): MachineEvent {
  switch (message.kind) {
    case 'plan.result':
      return { type: 'plan.result', key: message.key, ref: message.ref, result: message.result, error: message.error, usage: message.usage, at: message.at };
    case 'tool.result':
      return {
        type: 'tool.result',
        key: message.key,
        callId: message.callId,
        tool: message.tool,
        attempt: message.attempt,
        durationMs: message.durationMs,
        result: message.result,
        error: message.error,
        at: message.at,
      };
    case 'approval':
      return { type: 'approval', requestId: message.requestId, decision: message.decision, argsHash: message.argsHash, by: message.by, comment: message.comment, at: message.at };
    case 'input':
      return { type: 'input', requestId: message.requestId, text: message.text, interrupt: message.interrupt, by: message.by, at: message.at };
    case 'child.result':
      return { type: 'child.result', ref: message.ref, childId: message.childId, outcome: message.outcome, output: message.output, error: message.error, at: message.at };
    case 'agent.message':
      return { ...message.event, from: message.from };
    case 'timer.fired':
      return message.event;
    case 'control':
      return { type: 'control.budget', budget: message.budget, at: message.at };
    case 'goal':
      return { type: 'xstate.init' };
  }
}

/** Decides what one inbox message does to the agent. Throws {@link RuntimeError} when it cannot be applied here. */
export function decide(current: AgentRecord | undefined, message: InboxMessage, ctx: StepContext): Decision {
  if (current === undefined) {
    if (message.kind !== 'goal') {
      throw new RuntimeError(RuntimeErrorCode.AgentNotFound, `no agent '${ctx.agentId}' for a ${message.kind} message`, { agentId: ctx.agentId });
    }
    return { type: 'commit', record: start(message, ctx), created: true };
  }
  if (current.applied.includes(ctx.inboxId)) return { type: 'duplicate' };
  if (message.kind === 'goal') return { type: 'ignore', reason: 'a goal for an agent that already exists' };
  if (TERMINAL_STATUSES.has(current.status)) return { type: 'ignore', reason: `the agent is already ${current.status}` };

  const step = new Draft(current, ctx);
  if (message.kind === 'control') {
    // Who paused, resumed or cancelled the agent stays on its record and goes on the state event.
    const controlled = (action: 'cancel' | 'pause' | 'resume') => step.controlledBy({ action, ...(message.by ? { by: message.by } : {}), ...(message.reason ? { reason: message.reason } : {}), at: message.at });
    switch (message.action) {
      case 'cancel':
        controlled('cancel');
        step.cancel(message.reason ?? 'cancelled');
        return step.commit();
      case 'pause':
        if (current.status === 'paused') return { type: 'ignore', reason: 'already paused' };
        controlled('pause');
        step.setStatus('paused');
        return step.commit();
      case 'resume': {
        if (current.status !== 'paused') return { type: 'ignore', reason: 'not paused' };
        controlled('resume');
        step.resume();
        const deferred = step.record.deferred;
        step.record.deferred = [];
        // Deferred events were settled when they arrived.
        for (const d of deferred) if (!step.apply(d.event)) break;
        return step.commit();
      }
      case 'budget':
        break;
    }
  }
  const refusal = settle(step.record, settlementOf(message), true);
  if (refusal) return { type: 'ignore', ...refusal };
  const event = machineEventOf(message);
  if (current.status === 'paused') step.record.deferred.push({ id: ctx.inboxId, event });
  else step.apply(event);
  return step.commit();
}

function start(goal: Message<'goal'>, ctx: StepContext): AgentRecord {
  if (goal.fork) return startFork(goal, goal.fork, ctx);
  const def = ctx.registry.latest(goal.agent ?? ctx.registry.defaultAgent);
  const input: AgentInput = {
    agentId: ctx.agentId,
    goal: goal.goal,
    input: goal.input ?? {},
    labels: goal.labels ?? {},
    budget: goal.budget,
    model: goal.model,
    system: goal.system,
    tools: goal.tools,
    notify: goal.notify,
    parent: goal.parent,
    startedAt: goal.at,
  };
  return startRecord(ctx, def, input, {
    goal: goal.goal,
    labels: goal.labels,
    parent: goal.parent,
    submittedBy: goal.submittedBy,
    notify: goal.notify?.length ? goal.notify : undefined,
    budget: goal.budget && Object.keys(goal.budget).length ? goal.budget : undefined,
  });
}
