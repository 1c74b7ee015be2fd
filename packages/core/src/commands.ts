import { childAgentId, MESSAGE_VERSION, messageIds, TERMINAL_STATUSES, type EVENT_KIND_OF, type MessageInput } from '@errand/protocols';
import {
  ErrandAction,
  type CancelChildParams,
  type EmitParams,
  type EndWaitParams,
  type NotifyParams,
  type PlanParams,
  type SendParams,
  type SpawnParams,
  type ToolCallParams,
  type WaitParams,
} from './actions.js';
import { approvalEvidence, expireApprovalRequest, recordApprovalRequest } from './approvals.js';
import { endWait, noteUsage, startWait } from './waiting.js';
import type { Draft } from './draft.js';

/**
 * Actions → outbox entries: the machine's Errand actions (and XState's delayed raises and
 * cancels) become durable commands, and the runtime's own messages (cancelling children, telling
 * the parent, notifying of an end the machine never saw) are written here too. Nothing is sent:
 * the host publishes the outbox only after the step that wrote it is committed.
 */

/** An action as XState's pure transition returns it. */
export type Action = { type: string; params?: unknown };

/** Turns the machine's actions into outbox entries; returns what was wrong with any. */
export function compileActions(draft: Draft, actions: readonly Action[]): string[] {
  const problems: string[] = [];
  const { agentId, subjects, now } = draft.ctx;
  const record = draft.record;
  const step = record.step;
  const base = { v: MESSAGE_VERSION, agentId, step, at: now } as const;
  const note = (p: string | undefined) => p && problems.push(p);
  for (const action of actions) {
    const params = (action.params ?? {}) as Record<string, unknown>;
    switch (action.type) {
      case ErrandAction.Plan: {
        const p = params as unknown as PlanParams;
        const key = draft.key();
        note(draft.push(subjects.workPlan(), key, { ...base, kind: 'plan.request', key, ...p }));
        record.pending[key] = { kind: 'plan.request', at: now };
        break;
      }
      case ErrandAction.Tool: {
        // `approval` names a request; the machine never supplies evidence itself.
        const { approval: requestId, ...p } = params as unknown as ToolCallParams;
        const key = draft.key();
        if (safeSubject(() => subjects.workTool(p.tool), problems)) {
          const approval = approvalEvidence(record, typeof requestId === 'string' ? requestId : undefined, p.tool, p.args, now);
          note(draft.push(subjects.workTool(p.tool), key, { ...base, kind: 'tool.request', key, attempt: 1, ...p, ...(approval ? { approval } : {}) }));
          record.pending[key] = { kind: 'tool.request', at: now };
        }
        break;
      }
      case ErrandAction.Notify: {
        const p = params as unknown as NotifyParams;
        const key = draft.key();
        if (safeSubject(() => subjects.workNotify(p.channel), problems)) {
          note(draft.push(subjects.workNotify(p.channel), key, { ...base, kind: 'notify.request', key, ...p }));
        }
        break;
      }
      case ErrandAction.Emit: {
        const { kind, ...emitted } = params as unknown as EmitParams;
        const token = kind as (typeof EVENT_KIND_OF)[keyof typeof EVENT_KIND_OF];
        if (!['plan', 'tool', 'approval', 'usage'].includes(kind)) {
          problems.push(`errand.emit: kind must be plan, tool, approval or usage, got '${String(kind)}'`);
          break;
        }
        let rest: Record<string, unknown> = emitted;
        if (kind === 'approval') {
          const { calls, ...event } = emitted as Extract<EmitParams, { kind: 'approval' }>;
          rest = event;
          if (event.status === 'requested') {
            if (!Array.isArray(calls) || calls.some((c) => typeof (c as { tool?: unknown } | null)?.tool !== 'string')) {
              problems.push("errand.emit: an approval request must name the calls it asks about as calls: [{ tool, args }] ([] when it asks about no tool call)");
              break;
            }
            if (typeof event.requestId === 'string' && typeof event.argsHash === 'string') recordApprovalRequest(record, event.requestId, event.argsHash, calls, now);
          } else if (event.status === 'expired') {
            expireApprovalRequest(record, event.requestId, now);
          }
          // Decided, expired or refused: nobody is asked about it any more.
          if (event.status !== 'requested') endWait(record, event.requestId);
        } else if (kind === 'usage') {
          noteUsage(record, (emitted as Extract<EmitParams, { kind: 'usage' }>).total);
        }
        const key = draft.key();
        note(draft.push(subjects.agentEvent(agentId, token), key, { v: MESSAGE_VERSION, agentId, at: now, step, kind: `event.${kind}`, ...rest } as MessageInput));
        break;
      }
      case ErrandAction.Spawn: {
        const p = params as unknown as SpawnParams;
        if (typeof p.ref !== 'string' || p.ref.length === 0) {
          problems.push('errand.spawn: ref is required');
          break;
        }
        const childId = childAgentId(agentId, p.ref);
        const { ref, ...goal } = p;
        note(
          draft.push(subjects.agentIn(childId, 'goal'), messageIds.goal(childId), {
            v: MESSAGE_VERSION,
            kind: 'goal',
            agentId: childId,
            ...goal,
            parent: { agentId, ref },
            submittedBy: { id: agentId, channel: 'agent' },
            at: now,
          }),
        );
        record.children[ref] = { agentId: childId, status: 'running' };
        break;
      }
      case ErrandAction.CancelChild: {
        const p = params as unknown as CancelChildParams;
        const child = record.children[p.ref];
        if (!child) {
          problems.push(`errand.cancelChild: no child '${p.ref}'`);
          break;
        }
        if (!TERMINAL_STATUSES.has(child.status)) cancelChild(draft, child.agentId, p.reason ?? 'cancelled by its parent');
        child.status = 'cancelled';
        break;
      }
      case ErrandAction.Send: {
        const p = params as unknown as SendParams;
        const key = draft.key();
        if (safeSubject(() => subjects.agentIn(p.to, 'message'), problems)) {
          note(draft.push(subjects.agentIn(p.to, 'message'), key, { v: MESSAGE_VERSION, kind: 'agent.message', agentId: p.to, from: agentId, event: p.event, at: now }));
        }
        break;
      }
      case ErrandAction.Wait:
        // Bookkeeping only: nothing is published, no command key is taken.
        note(startWait(record, params as unknown as WaitParams, now));
        break;
      case ErrandAction.EndWait:
        endWait(record, (params as EndWaitParams).requestId);
        break;
      case 'xstate.raise': {
        // Only delayed raises reach us: XState handles immediate ones inside the transition.
        const p = params as { event: { type: string }; id?: string; delay?: number };
        if (typeof p.delay !== 'number') break;
        const key = draft.key();
        const timerId = p.id ?? key;
        const dueAt = now + Math.max(0, p.delay);
        record.timers[timerId] = { key, dueAt, type: p.event.type };
        note(draft.push(subjects.workTimer(), key, { ...base, kind: 'timer.request', key, timerId, action: 'start', dueAt, event: p.event }));
        break;
      }
      case 'xstate.cancel': {
        const p = params as { sendId: string };
        delete record.timers[p.sendId];
        break;
      }
      default:
        // Other actions (assign, log, inline functions) are not commands: the host runs no effects.
        break;
    }
  }
  return problems;
}

export function cancelChild(draft: Draft, childId: string, reason: string): void {
  draft.push(draft.ctx.subjects.agentIn(childId, 'control'), messageIds.cancelChild(childId), {
    v: MESSAGE_VERSION,
    kind: 'control',
    agentId: childId,
    action: 'cancel',
    reason,
    by: { id: draft.ctx.agentId, channel: 'agent' },
    at: draft.ctx.now,
  });
}

/** Cancels every child still running (the agent ended). */
export function stopChildren(draft: Draft, reason: string): void {
  for (const child of Object.values(draft.record.children)) {
    if (TERMINAL_STATUSES.has(child.status)) continue;
    cancelChild(draft, child.agentId, reason);
    child.status = 'cancelled';
  }
}

/** Tells the parent agent, if any, how this one ended. */
export function tellParent(draft: Draft, outcome: 'done' | 'failed' | 'cancelled'): void {
  const { record, ctx } = draft;
  const parent = record.parent;
  if (!parent) return;
  draft.push(ctx.subjects.agentIn(parent.agentId, 'child'), messageIds.childResult(ctx.agentId), {
    v: MESSAGE_VERSION,
    kind: 'child.result',
    agentId: parent.agentId,
    childId: ctx.agentId,
    ref: parent.ref,
    outcome,
    output: outcome === 'done' ? record.output : undefined,
    error: outcome === 'done' ? undefined : record.error,
    at: ctx.now,
  });
}

/**
 * Tells the goal's `failed` notification rules of an end the machine never saw — a cancel, a
 * machine that threw or asked for an invalid command — so it could not notify anyone itself.
 * Keys name the step and the channel: a cancel takes no step of its own.
 */
export function notifyUnseen(draft: Draft): void {
  const { record: r, ctx } = draft;
  const error = r.error;
  if (!error) return;
  const what = r.status === 'cancelled' ? 'was cancelled' : 'failed';
  for (const rule of r.notify ?? []) {
    if (!rule.on.includes('failed')) continue;
    const key = messageIds.notice(ctx.agentId, r.step, r.status, rule.channel);
    draft.push(ctx.subjects.workNotify(rule.channel), key, {
      v: MESSAGE_VERSION,
      kind: 'notify.request',
      agentId: ctx.agentId,
      key,
      step: r.step,
      channel: rule.channel,
      topic: 'failed',
      title: `Agent ${ctx.agentId} ${what}`,
      text: `${error.message}\nGoal: ${r.goal}`,
      at: ctx.now,
    } as MessageInput<'notify.request'>);
  }
}

function safeSubject(build: () => string, problems: string[]): boolean {
  try {
    build();
    return true;
  } catch (err) {
    problems.push((err as Error).message);
    return false;
  }
}
