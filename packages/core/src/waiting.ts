import { BudgetSchema, TERMINAL_STATUSES, UsageTotalsSchema, WaitingSchema, type AgentRecord, type Waiting } from '@errand/protocols';
import type { WaitParams } from './actions.js';
import { recordApprovalRequest } from './approvals.js';
import type { MachineEvent } from './record.js';

/**
 * `record.waiting`: what the agent waits for a person to do, kept by the runtime from the
 * machine's `errand.wait` / `errand.endWait` and the events that answer it, so that every reader
 * (client, CLI, MCP, notifier, dashboard) learns it without knowing the machine. The rules are
 * those of {@link WaitParams}; they run on the live step and on replay alike (both go through
 * `Draft`), so a replayed record waits for exactly what the host's did.
 */

/** Sets the wait a machine asks for; returns what is wrong with its params instead, changing nothing. */
export function startWait(record: AgentRecord, params: WaitParams, now: number): string | undefined {
  const p = (params ?? {}) as Partial<WaitParams>;
  const previous = record.waiting;
  const same = previous !== undefined && previous.requestId === p.requestId && previous.kind === p.kind;
  const candidate: Waiting = {
    kind: p.kind as Waiting['kind'],
    requestId: p.requestId as string,
    since: same ? previous.since : now,
    ...(p.deadlineAt !== undefined ? { deadline: p.deadlineAt } : typeof p.deadlineInMs === 'number' ? { deadline: now + Math.max(0, Math.round(p.deadlineInMs)) } : {}),
    ...(p.question !== undefined ? { question: p.question } : {}),
    ...(p.calls !== undefined ? { calls: p.calls.map((c) => ({ tool: c?.tool, args: c?.args })) } : {}),
    ...(p.argsHash !== undefined ? { argsHash: p.argsHash } : {}),
    ...(p.summary !== undefined ? { summary: p.summary } : {}),
  };
  const check = WaitingSchema.safeParse(candidate);
  if (!check.success) return `errand.wait: ${check.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`).join(', ')}`;
  const waiting = check.data;
  if (waiting.kind !== 'input' && waiting.argsHash === undefined) {
    return `errand.wait: ${waiting.kind === 'approval' ? 'an' : 'a'} ${waiting.kind} wait needs the argsHash a decision must name`;
  }
  if (waiting.kind === 'approval' && (waiting.calls === undefined || waiting.calls.length === 0)) {
    return 'errand.wait: an approval wait names the calls it asks about as calls: [{ tool, args }] (a question about no call is a budget or input wait)';
  }
  if (waiting.kind !== 'input') {
    // The same request the runtime keeps for `errand.emit` of an approval `requested`: one list,
    // whichever of the two a machine uses (the built-in agent uses both in one step).
    const open = record.approvals?.find((a) => a.requestId === waiting.requestId && a.argsHash === waiting.argsHash && a.decision === undefined);
    if (!open) recordApprovalRequest(record, waiting.requestId, waiting.argsHash!, waiting.calls ?? [], now);
  }
  record.waiting = waiting;
  return undefined;
}

/** Ends the wait (only the one for `requestId`, when given). */
export function endWait(record: AgentRecord, requestId?: unknown): void {
  if (record.waiting === undefined) return;
  if (requestId !== undefined && record.waiting.requestId !== requestId) return;
  delete record.waiting;
}

/**
 * Clears the wait an event answers, before the machine sees the event: a person's decision on
 * the request, an answer to the question (one that names no question too), new limits for a
 * budget question. Events another agent sent (`from`) answer nothing.
 */
export function answerWait(record: AgentRecord, event: MachineEvent): void {
  const w = record.waiting;
  if (w === undefined || event.from !== undefined) return;
  switch (event.type) {
    case 'approval':
      if (w.kind !== 'input' && event.requestId === w.requestId && (w.argsHash === undefined || event.argsHash === w.argsHash)) delete record.waiting;
      break;
    case 'input':
      if (w.kind === 'input' && (event.requestId === undefined || event.requestId === w.requestId)) delete record.waiting;
      break;
    case 'control.budget':
      if (w.kind === 'budget') delete record.waiting;
      break;
    default:
      break;
  }
}

/**
 * The record's status from its wait: `waiting` while it waits for a person, `running` otherwise.
 * An ended agent forgets what it waited for; a paused one keeps it and stays `paused`.
 */
export function settleWaitStatus(record: AgentRecord): void {
  if (TERMINAL_STATUSES.has(record.status)) {
    delete record.waiting;
    return;
  }
  if (record.status === 'paused') return;
  record.status = record.waiting ? 'waiting' : 'running';
}

/** Keeps the totals of a machine's `usage` report (cost rounded to 1e-10 $, so no float noise shows). */
export function noteUsage(record: AgentRecord, total: unknown): void {
  const t = UsageTotalsSchema.safeParse(total);
  if (t.success) record.usage = { ...t.data, costUsd: Math.round(t.data.costUsd * 1e10) / 1e10 };
}

/** Merges the limits of a person's `control budget` into the record's budget (as the built-in agent does into its own). */
export function noteBudget(record: AgentRecord, event: MachineEvent): void {
  if (event.type !== 'control.budget' || event.from !== undefined) return;
  const b = BudgetSchema.safeParse(event.budget);
  if (b.success) record.budget = { ...(record.budget ?? {}), ...b.data };
}
