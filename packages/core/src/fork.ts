import { childAgentId, messageIds, type AgentRecord, type ForkSeed, type Message, type MessageInput } from '@errand/protocols';
import { Draft } from './draft.js';
import { emptyRecord, type StepContext } from './record.js';
import { settle, settlementOfJournaled } from './settle.js';
import { settleWaitStatus, startWait } from './waiting.js';

/** The machine event a fork's first journal entry carries: everything needed to rebuild it. */
export const FORK_EVENT = 'errand.fork';

/**
 * A fork (`errand fork`): the record starts at the original's step from its snapshot, re-issues
 * the commands outstanding there under the fork's id, and applies an edited event at once if one
 * was given. The first journal entry (step `from.step`) is a {@link FORK_EVENT} holding the seed,
 * so the fork's own journal replays without the original's.
 */
export function startFork(goal: Message<'goal'>, fork: ForkSeed, ctx: StepContext): AgentRecord {
  const draft = seedFork(goal, fork, ctx);
  if (goal.submittedBy) draft.record.submittedBy = goal.submittedBy;
  if (fork.event) {
    // An edited result names the original's command key; the fork's is the same key under its id.
    const from = `${fork.from.agentId}:`;
    const event = { ...fork.event };
    if (typeof event.key === 'string' && event.key.startsWith(from)) event.key = `${ctx.agentId}:${event.key.slice(from.length)}`;
    // The seed's journal entry says nothing about this event, so it is settled as a replay would.
    settle(draft.record, settlementOfJournaled(event, ctx.inboxId), false);
    draft.apply(event);
  }
  return draft.finishRecord(true);
}

/** The fork's record at its seed step (from a goal, or from the {@link FORK_EVENT} a replay reads). */
export function seedFork(goal: Pick<Message<'goal'>, 'goal' | 'labels' | 'notify'>, fork: ForkSeed, ctx: StepContext): Draft {
  const record: AgentRecord = {
    ...emptyRecord(ctx, fork.machine),
    step: fork.from.step,
    snapshot: fork.snapshot,
    goal: goal.goal,
    labels: goal.labels,
    notify: goal.notify?.length ? goal.notify : undefined,
    origin: { agentId: fork.from.agentId, step: fork.from.step },
  };
  const draft = new Draft(record, ctx);
  reissue(draft, fork.from.agentId, fork.reissue);
  if (fork.waiting) {
    // The fork waits for what the original waited for, asked anew: an approval request is
    // registered for the fork (the original's decisions are not the fork's), `since` is now.
    const { kind, requestId, deadline, question, calls, argsHash, summary } = fork.waiting;
    startWait(draft.record, { kind, requestId, question, calls, argsHash, summary, deadlineAt: deadline }, ctx.now);
    settleWaitStatus(draft.record);
  }
  const { event: _edited, ...seed } = fork;
  // The seed is journaled as this record's current step: no transition happens.
  draft.journal({ type: FORK_EVENT, ...seed, goal: goal.goal, ...(goal.labels ? { labels: goal.labels } : {}), ...(goal.notify?.length ? { notify: goal.notify } : {}) });
  return draft;
}

/**
 * Sends again, under the draft's agent id and fresh keys, the commands another agent (`fromId`)
 * had outstanding: plan and tool requests become pending here, timers live here, child goals
 * start children of this agent.
 */
function reissue(draft: Draft, fromId: string, commands: readonly Record<string, unknown>[]): void {
  const { agentId, subjects, now } = draft.ctx;
  const record = draft.record;
  const rekey = (key: unknown) => (typeof key === 'string' && key.startsWith(`${fromId}:`) ? `${agentId}:${key.slice(fromId.length + 1)}` : `${agentId}:fork:${String(key)}`);
  for (const c of commands) {
    switch (c.kind) {
      case 'plan.request':
      case 'tool.request': {
        const key = rekey(c.key);
        // Approval evidence is the original's: the fork has approved nothing, so it is dropped.
        const { approval: _evidence, ...command } = c;
        const message = { ...command, agentId, key } as MessageInput<'plan.request' | 'tool.request'>;
        const subject = message.kind === 'plan.request' ? subjects.workPlan() : subjects.workTool((message as { tool: string }).tool);
        draft.push(subject, key, message);
        record.pending[key] = { kind: message.kind, at: now };
        break;
      }
      case 'timer.request': {
        const key = rekey(c.key);
        const message = { ...c, agentId, key } as MessageInput<'timer.request'>;
        draft.push(subjects.workTimer(), key, message);
        const type = (c.event as { type?: unknown } | undefined)?.type;
        record.timers[String(c.timerId)] = { key, dueAt: Number(c.dueAt), ...(typeof type === 'string' ? { type } : {}) };
        break;
      }
      case 'goal': {
        const parent = c.parent as { ref: string } | undefined;
        if (!parent) break;
        const childId = childAgentId(agentId, parent.ref);
        draft.push(subjects.agentIn(childId, 'goal'), messageIds.goal(childId), { ...(c as MessageInput<'goal'>), agentId: childId, parent: { agentId, ref: parent.ref }, at: now });
        record.children[parent.ref] = { agentId: childId, status: 'running' };
        break;
      }
      default:
        break;
    }
  }
}
