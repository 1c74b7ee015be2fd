import { TERMINAL_STATUSES, type ForkSeed } from '@errand/protocols';
import { ReplayError, ReplayErrorCode } from './errors.js';
import type { IssuedCommand, ReplayResult } from './fold.js';

export interface ForkOptions {
  /** Another model for the fork's model calls (agents that keep `model` in their context, like the built-in one). */
  model?: string;
  /** Another system prompt (agents whose history starts with a system message, like the built-in one). */
  system?: string;
  /**
   * An event applied at once as the fork's next step, e.g. a corrected `tool.result`. The command
   * it answers (same `key`, or same `callId` for a tool result) is not re-issued.
   */
  event?: { type: string; [key: string]: unknown };
}

type ChatMessage = { role: string; content?: unknown };

function withSystem(messages: unknown, system: string): unknown {
  if (!Array.isArray(messages) || (messages[0] as ChatMessage | undefined)?.role !== 'system') return messages;
  return [{ ...(messages[0] as ChatMessage), content: system }, ...messages.slice(1)];
}

/**
 * The seed of a fork from a replay stopped at the fork's step (`replayJournal(…, { stopAt })`):
 * the snapshot there, the commands outstanding there (to be re-issued), and the overrides.
 */
export function forkSeed(replay: ReplayResult, options: ForkOptions = {}): ForkSeed {
  const last = replay.steps.at(-1)!;
  // A step where it waited for a person is as good a start as one where it ran: only an ended agent cannot go on.
  if (TERMINAL_STATUSES.has(replay.record.status)) {
    const lastRunning = [...replay.steps].reverse().find((s) => !TERMINAL_STATUSES.has(s.status));
    throw new ReplayError(
      ReplayErrorCode.CannotFork,
      `agent ${replay.agentId} had already ended (${replay.record.status}) at step ${last.step}: nothing would continue; fork at an earlier step${lastRunning ? ` (the last running one is ${lastRunning.step})` : ''}`,
      { agentId: replay.agentId, step: last.step },
    );
  }
  let snapshot = structuredClone(replay.record.snapshot) as { context?: Record<string, unknown> } | undefined;
  let reissue: IssuedCommand[] = replay.outstanding.map((c) => structuredClone(c));
  const edited = options.event;
  if (edited) {
    reissue = reissue.filter((c) => {
      if (typeof edited.key === 'string' && c.key === edited.key) return false;
      if (edited.type === 'tool.result' && c.kind === 'tool.request' && typeof edited.callId === 'string' && c.callId === edited.callId) return false;
      if (edited.type === 'plan.result' && c.kind === 'plan.request' && edited.key === undefined) return false;
      return true;
    });
  }
  if (snapshot?.context && (options.model !== undefined || options.system !== undefined)) {
    const context = { ...snapshot.context };
    if (options.model !== undefined) context.model = options.model;
    if (options.system !== undefined) context.messages = withSystem(context.messages, options.system);
    snapshot = { ...snapshot, context };
    reissue = reissue.map((c) =>
      c.kind !== 'plan.request'
        ? c
        : { ...c, ...(options.model !== undefined ? { model: options.model } : {}), ...(options.system !== undefined ? { messages: withSystem(c.messages, options.system) } : {}) },
    );
  }
  return {
    from: { agentId: replay.agentId, step: last.step },
    machine: { id: replay.record.machine.id, version: replay.record.machine.version },
    snapshot,
    reissue,
    ...(edited ? { event: edited } : {}),
    // What it waited for a person to do there: the fork waits for it too (asked anew).
    ...(replay.record.waiting ? { waiting: structuredClone(replay.record.waiting) } : {}),
  };
}
