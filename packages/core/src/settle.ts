import { TERMINAL_STATUSES, timerKeyOfMessageId, type AgentRecord, type AgentStatus, type InboxMessage } from '@errand/protocols';
import { approvalRefusal } from './approvals.js';
import type { MachineEvent } from './record.js';

/**
 * The bookkeeping an inbox message does to the record before its event reaches the machine — the
 * one path shared by the live step (`decide`, from the arriving message) and replay
 * (`replayJournaled`, from the journaled event): a result ends its pending command, a timer's
 * firing forgets the timer, a child's outcome is written on the child.
 */
export type Settlement =
  /** A `plan.result` / `tool.result`: answers the pending command `key`. */
  | { readonly kind: 'result'; readonly key: string }
  /** A timer fired: the one under `timerId` with `key` (or, from a journal, whichever has `key`). */
  | { readonly kind: 'timer'; readonly key: string; readonly timerId?: string }
  | { readonly kind: 'child'; readonly ref: string; readonly childId: unknown; readonly outcome: AgentStatus }
  | { readonly kind: 'approval'; readonly requestId: string; readonly argsHash: string }
  /** An event another agent sent. */
  | { readonly kind: 'message'; readonly type: string }
  | { readonly kind: 'none' };

/** Why a message does not reach the machine; `refused`: it tried something it may not. */
export interface Refusal {
  readonly reason: string;
  readonly refused?: boolean;
}

/** What an arriving inbox message settles. */
export function settlementOf(message: InboxMessage): Settlement {
  switch (message.kind) {
    case 'plan.result':
    case 'tool.result':
      return { kind: 'result', key: message.key };
    case 'timer.fired':
      return { kind: 'timer', key: message.key, timerId: message.timerId };
    case 'child.result':
      return { kind: 'child', ref: message.ref, childId: message.childId, outcome: message.outcome };
    case 'approval':
      return { kind: 'approval', requestId: message.requestId, argsHash: message.argsHash };
    case 'agent.message':
      return { kind: 'message', type: message.event.type };
    default:
      return { kind: 'none' };
  }
}

/**
 * What a journaled step settled, from its machine event and inbox id alone: a timer's firing is
 * known by its inbox id (`timer:<key>`), results and child outcomes by their event.
 */
export function settlementOfJournaled(event: MachineEvent, inboxId: string): Settlement {
  const timerKey = timerKeyOfMessageId(inboxId);
  if (timerKey !== undefined) return { kind: 'timer', key: timerKey };
  if ((event.type === 'plan.result' || event.type === 'tool.result') && typeof event.key === 'string') return { kind: 'result', key: event.key };
  if (event.type === 'child.result' && typeof event.ref === 'string' && typeof event.outcome === 'string') {
    return { kind: 'child', ref: event.ref, childId: event.childId, outcome: event.outcome as AgentStatus };
  }
  return { kind: 'none' };
}

/**
 * Settles `s` in `record` (mutating it). `checked` (a message arriving): refuse, changing nothing,
 * what does not match the record — a result no command waits for, a cancelled or superseded
 * timer, a stranger's or an ended child's outcome, a decision on no open request, a reserved event
 * from another agent. Unchecked (a journaled step: the host already applied it): settle what the
 * record has and refuse nothing.
 */
export function settle(record: AgentRecord, s: Settlement, checked: boolean): Refusal | undefined {
  switch (s.kind) {
    case 'result':
      // Results are matched to the command that asked for them: a repeat (re-published after the
      // duplicate window) or a stray result finds no pending command and changes nothing.
      if (checked && record.pending[s.key] === undefined) return { reason: 'no command is waiting for this result' };
      delete record.pending[s.key];
      return undefined;
    case 'timer': {
      const ids = s.timerId !== undefined ? (record.timers[s.timerId]?.key === s.key ? [s.timerId] : []) : Object.keys(record.timers).filter((id) => record.timers[id]!.key === s.key);
      if (checked && ids.length === 0) return { reason: 'the timer was cancelled or superseded' };
      for (const id of ids) delete record.timers[id];
      return undefined;
    }
    case 'child': {
      const child = record.children[s.ref];
      if (checked) {
        if (child === undefined || child.agentId !== s.childId) return { reason: 'not a child of this agent' };
        if (TERMINAL_STATUSES.has(child.status)) return { reason: `child ${String(s.childId)} already ended (${child.status})` };
      }
      if (child) child.status = s.outcome;
      return undefined;
    }
    case 'approval':
      return checked ? approvalRefusal(record, s.requestId, s.argsHash) : undefined;
    case 'message': {
      const reason = checked ? reservedEventReason(s.type, record) : undefined;
      return reason ? { reason, refused: true } : undefined;
    }
    case 'none':
      return undefined;
  }
}

/** Event types only the runtime delivers (from their own inbox kinds); an `agent.message` may not carry them. */
const RESERVED_EVENT_TYPES: ReadonlySet<string> = new Set(['approval', 'input', 'plan.result', 'tool.result', 'child.result', 'timer.fired', 'goal']);
const RESERVED_EVENT_PREFIXES = ['control.', 'xstate.', 'errand.'] as const;

/**
 * Why an event another agent sent may not reach this agent's machine, or undefined when it may.
 * Reserved: the events of other inbox kinds (a person's approval or input, results of commands,
 * child outcomes), `control.*`, XState's and Errand's own (`xstate.*`, `errand.*`), and the events
 * of the agent's live durable timers (deadlines, retries, reminders), which only the timers fire.
 */
export function reservedEventReason(type: string, record: Pick<AgentRecord, 'timers'>): string | undefined {
  if (RESERVED_EVENT_TYPES.has(type) || RESERVED_EVENT_PREFIXES.some((p) => type.startsWith(p))) {
    return `an agent.message may not carry a '${type}' event: it is reserved for the runtime (approvals come only through the approval inbox)`;
  }
  if (Object.values(record.timers).some((t) => t.type === type)) {
    return `an agent.message may not carry a '${type}' event: the agent's own durable timer delivers it`;
  }
  return undefined;
}
