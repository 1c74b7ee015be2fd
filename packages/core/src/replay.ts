import type { AgentRecord, ForkSeed, Message } from '@errand/protocols';
import type { AgentInput } from './agent-definition.js';
import { Draft, startRecord } from './draft.js';
import { RuntimeError, RuntimeErrorCode } from './errors.js';
import { FORK_EVENT, seedFork } from './fork.js';
import type { MachineEvent, StepContext } from './record.js';
import { settle, settlementOfJournaled } from './settle.js';

/** One entry of an agent's journal (`event.step`), as far as replaying it needs. */
export interface JournaledStep {
  readonly step: number;
  readonly inboxId: string;
  readonly machine: { readonly id: string; readonly version: number };
  readonly event: MachineEvent;
  /** When the host took the step (the `at` of the journal entry): the step's `now`. */
  readonly at: number;
}

/**
 * Replays one journal entry exactly as the host computed it: the goal's `xstate.init` (its input
 * is journaled) through `initialTransition`, a fork seed, or any other event through `transition`
 * — with the same bookkeeping (pending commands, timers, children) and the same outbox. Pure;
 * `ctx.now` should be the entry's `at` and `ctx.inboxId` its `inboxId`. Throws
 * {@link RuntimeError} `ERR_MACHINE_VERSION` when the registry lacks the journaled machine version.
 */
export function replayJournaled(current: AgentRecord | undefined, entry: JournaledStep, ctx: StepContext): AgentRecord {
  const { id, version } = entry.machine;
  const def = ctx.registry.find(id, version);
  if (!def) {
    const known = ctx.registry.has(id) ? `${id}@${ctx.registry.list().filter((d) => d.id === id).map((d) => d.version).join(', @')}` : `no '${id}' at all`;
    throw new RuntimeError(
      RuntimeErrorCode.MachineVersion,
      `step ${entry.step} of agent ${ctx.agentId} was taken by machine ${id}@${version}, which is not registered here (have ${known}); ` +
        `load the module that defines ${id}@${version} (ERRAND_AGENT_MODULES) to replay it`,
      { agentId: ctx.agentId },
    );
  }
  if (entry.event.type === FORK_EVENT) {
    const seed = entry.event as unknown as ForkSeed & { goal?: string; labels?: Record<string, string>; notify?: Message<'goal'>['notify'] };
    return seedFork({ goal: seed.goal ?? '', labels: seed.labels, notify: seed.notify }, { ...seed, reissue: seed.reissue ?? [] }, ctx).finishRecord(true);
  }
  if (current === undefined) {
    if (entry.event.type !== 'xstate.init') {
      throw new RuntimeError(RuntimeErrorCode.AgentNotFound, `the journal of ${ctx.agentId} starts at step ${entry.step} with '${entry.event.type}', not with its goal or a fork`, { agentId: ctx.agentId });
    }
    const input = entry.event.input as AgentInput;
    return startRecord(ctx, def, input, {
      goal: input.goal,
      labels: Object.keys(input.labels ?? {}).length ? input.labels : undefined,
      parent: input.parent,
      notify: input.notify?.length ? [...input.notify] : undefined,
      budget: input.budget && Object.keys(input.budget).length ? { ...input.budget } : undefined,
    });
  }
  const draft = new Draft(current, ctx);
  settle(draft.record, settlementOfJournaled(entry.event, ctx.inboxId), false);
  draft.apply(entry.event);
  return draft.finishRecord();
}
