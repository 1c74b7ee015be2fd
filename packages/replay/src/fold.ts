import { createSubjects, DEFAULT_PREFIX, messageIds, stateValueOf, type AgentRecord, type AgentStatus, type Message } from '@errand/protocols';
import { replayJournaled, RuntimeError, RuntimeErrorCode, type AgentRegistry } from '@errand/core';
import { sameValue } from './canonical.js';
import { ReplayError, ReplayErrorCode } from './errors.js';

/** One entry of an agent's journal (`<prefix>.agent.<id>.ev.step`). */
export type JournalEntry = Message<'event.step'>;
export type CommandSummary = JournalEntry['commands'][number];
/** A command message as the step sent it (plan/tool/timer requests, child goals). */
export type IssuedCommand = { kind: string; [key: string]: unknown };

/** One step of a replay: what came in, what the replay computed, and what the journal says. */
export interface ReplayStep {
  readonly step: number;
  readonly inboxId: string;
  readonly at: number;
  readonly machine: { readonly id: string; readonly version: number };
  /** The event that came in (for step 1 the goal's `xstate.init` with the machine's input). */
  readonly event: { type: string; [key: string]: unknown };
  /** The state value after the step, replayed. */
  readonly state: unknown;
  readonly status: AgentStatus;
  /** XState's persisted snapshot after the step, replayed. */
  readonly snapshot: unknown;
  /** The commands the step sent, from the journal (nothing is sent by a replay). */
  readonly commands: readonly CommandSummary[];
  /** What the journal recorded after the step. */
  readonly journal: { readonly state: unknown; readonly status: AgentStatus };
  /** The replayed state value and status equal the journal's. */
  readonly matches: boolean;
}

export interface ReplayOptions {
  /** The machines, by id and version, that took the journal's steps. */
  registry: AgentRegistry;
  /** Subject prefix the commands' subjects are built with (they are never published). */
  prefix?: string;
  /** Stop after this step (`--step N`). Throws `ERR_NO_SUCH_STEP` when the journal lacks it. */
  stopAt?: number;
}

export interface ReplayResult {
  readonly agentId: string;
  readonly steps: readonly ReplayStep[];
  /** The record the replay reached (as the host would have written it, bookkeeping included). */
  readonly record: AgentRecord;
  /** The first step whose replayed state or status differs from the journal's. */
  readonly firstDivergence: { readonly step: number; readonly replayed: { state: unknown; status: AgentStatus }; readonly journal: { state: unknown; status: AgentStatus } } | undefined;
  /**
   * Commands still outstanding at the last replayed step (pending plan/tool requests, live timers,
   * goals of running children), as they were sent: what a fork from here re-issues.
   */
  readonly outstanding: readonly IssuedCommand[];
}

/**
 * The journal in step order with each step once. A re-published outbox after the duplicate window
 * leaves a step in the stream twice (both copies are identical), so entries are keyed by step.
 */
export function orderJournal(entries: readonly JournalEntry[]): JournalEntry[] {
  const byStep = new Map<number, JournalEntry>();
  for (const e of entries) if (!byStep.has(e.step)) byStep.set(e.step, e);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

const COMMAND_KINDS = new Set(['plan.request', 'tool.request', 'timer.request', 'goal']);

/**
 * Folds an agent's journal through its machine — the goal through XState's `initialTransition`
 * and every later event through `transition`, with the host's own step code (`replayJournaled`
 * of @errand/core), so a replay computes exactly what the host did. Nothing is published and no
 * side effect runs: results come from the journal. Throws {@link ReplayError}.
 */
export function replayJournal(entries: readonly JournalEntry[], options: ReplayOptions): ReplayResult {
  const journal = orderJournal(entries);
  const first = journal[0];
  if (!first) throw new ReplayError(ReplayErrorCode.EmptyJournal, 'the journal is empty: nothing to replay (was the agent removed by gc, or is the prefix wrong?)');
  const agentId = first.agentId;
  const subjects = createSubjects(options.prefix ?? DEFAULT_PREFIX);
  if (options.stopAt !== undefined && !journal.some((e) => e.step === options.stopAt)) {
    throw new ReplayError(
      ReplayErrorCode.NoSuchStep,
      `agent ${agentId} has no step ${options.stopAt} in its journal (it has steps ${first.step}–${journal.at(-1)!.step})`,
      { agentId, step: options.stopAt },
    );
  }

  let record: AgentRecord | undefined;
  let firstDivergence: ReplayResult['firstDivergence'];
  const steps: ReplayStep[] = [];
  const issued = new Map<string, IssuedCommand>();
  for (const entry of journal) {
    if (record && entry.step !== record.step + 1) {
      throw new ReplayError(ReplayErrorCode.JournalGap, `the journal of ${agentId} jumps from step ${record.step} to step ${entry.step}: steps are missing, so it cannot be replayed`, {
        agentId,
        step: entry.step,
      });
    }
    try {
      record = replayJournaled(record, entry, { agentId, inboxId: entry.inboxId, now: entry.at, subjects, registry: options.registry });
    } catch (err) {
      if (err instanceof RuntimeError && err.code === RuntimeErrorCode.MachineVersion) {
        throw new ReplayError(ReplayErrorCode.MachineVersion, err.message, { agentId, step: entry.step, cause: err });
      }
      throw err;
    }
    for (const o of record.outbox) if (COMMAND_KINDS.has(o.message.kind)) issued.set(o.msgId, o.message as IssuedCommand);
    const state = stateValueOf(record.snapshot);
    const matches = sameValue(state, entry.state) && record.status === entry.status;
    if (!matches && !firstDivergence) firstDivergence = { step: entry.step, replayed: { state, status: record.status }, journal: { state: entry.state, status: entry.status } };
    steps.push({
      step: entry.step,
      inboxId: entry.inboxId,
      at: entry.at,
      machine: entry.machine,
      event: entry.event,
      state,
      status: record.status,
      snapshot: record.snapshot,
      commands: entry.commands,
      journal: { state: entry.state, status: entry.status },
      matches,
    });
    if (entry.step === options.stopAt) break;
  }
  const r = record!;
  const outstanding: IssuedCommand[] = [];
  for (const key of Object.keys(r.pending)) {
    const c = issued.get(key);
    if (c) outstanding.push(c);
  }
  for (const t of Object.values(r.timers)) {
    const c = issued.get(t.key);
    if (c) outstanding.push(c);
  }
  for (const child of Object.values(r.children)) {
    if (child.status !== 'running') continue;
    const c = issued.get(messageIds.goal(child.agentId));
    if (c) outstanding.push(c);
  }
  return { agentId, steps, record: r, firstDivergence, outstanding };
}
