import { FORK_EVENT } from '@errand/core';
import { roundUsd, type AgentStatus } from '@errand/protocols';
import { canonical, sameValue } from './canonical.js';
import { describeCommands, describeEvent } from './describe.js';
import { orderJournal, type JournalEntry } from './fold.js';

/** The agent and step a fork's journal starts from, or undefined for an agent that is no fork. */
export function forkOrigin(entries: readonly JournalEntry[]): { agentId: string; step: number } | undefined {
  const first = orderJournal(entries)[0];
  if (first?.event.type !== FORK_EVENT) return undefined;
  return (first.event as unknown as { from: { agentId: string; step: number } }).from;
}

/**
 * A fork's journal with the steps it shares with its origin put in front: the origin's steps up to
 * and including the fork step, then the fork's own. `origin` is the origin's (itself expanded)
 * journal.
 */
export function withOrigin(entries: readonly JournalEntry[], origin: readonly JournalEntry[]): JournalEntry[] {
  const from = forkOrigin(entries);
  if (!from) return orderJournal(entries);
  const own = orderJournal(entries).filter((e) => e.step > from.step);
  return [...orderJournal(origin).filter((e) => e.step <= from.step), ...own];
}

/** One run's step, as the diff shows it. */
export interface StepView {
  readonly step: number;
  readonly event: string;
  readonly state: unknown;
  readonly status: AgentStatus;
  readonly commands: string;
}

export interface RunCost {
  readonly modelCalls: number;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly costUsd: number;
  readonly toolCalls: number;
  readonly steps: number;
}

export interface RunDiff {
  readonly a: string;
  readonly b: string;
  /** The first step at which the runs differ (event, state, status or commands); undefined when they are the same. */
  readonly firstDivergentStep: number | undefined;
  /** Both runs side by side from the first divergent step on. */
  readonly rows: readonly { readonly step: number; readonly a: StepView | undefined; readonly b: StepView | undefined }[];
  readonly cost: { readonly a: RunCost; readonly b: RunCost };
}

/** Volatile fields (times, keys, durations) and the agents' own ids say nothing about the path a run took. */
function normalizedEvent(event: Record<string, unknown>, agentId: string): unknown {
  const strip = (v: unknown): unknown => {
    if (typeof v === 'string') return v.split(agentId).join('<agent>');
    if (Array.isArray(v)) return v.map(strip);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) if (!['at', 'key', 'durationMs', 'startedAt', 'now'].includes(k)) out[k] = strip(x);
      return out;
    }
    return v;
  };
  return canonical(strip(event));
}

function view(e: JournalEntry): StepView {
  return { step: e.step, event: describeEvent(e.event), state: e.state, status: e.status, commands: describeCommands(e.commands) };
}

function costOf(entries: readonly JournalEntry[]): RunCost {
  let modelCalls = 0, inputTokens = 0, outputTokens = 0, costUsd = 0, toolCalls = 0;
  for (const e of entries) {
    const usage = e.event.type === 'plan.result' ? (e.event.usage as { inputTokens?: number; outputTokens?: number; costUsd?: number } | undefined) : undefined;
    if (e.event.type === 'plan.result') modelCalls++;
    inputTokens += usage?.inputTokens ?? 0;
    outputTokens += usage?.outputTokens ?? 0;
    costUsd += usage?.costUsd ?? 0;
    toolCalls += e.commands.filter((c) => c.kind === 'tool.request').length;
  }
  return { modelCalls, inputTokens, outputTokens, costUsd: roundUsd(costUsd), toolCalls, steps: entries.length };
}

/**
 * Two runs side by side from the step where they diverge. Give forks their origin's steps first
 * ({@link withOrigin}) so that both journals start at step 1.
 */
export function diffRuns(a: { agentId: string; journal: readonly JournalEntry[] }, b: { agentId: string; journal: readonly JournalEntry[] }): RunDiff {
  const ja = orderJournal(a.journal);
  const jb = orderJournal(b.journal);
  const byStepB = new Map(jb.map((e) => [e.step, e]));
  const byStepA = new Map(ja.map((e) => [e.step, e]));
  const steps = [...new Set([...ja.map((e) => e.step), ...jb.map((e) => e.step)])].sort((x, y) => x - y);
  let first: number | undefined;
  for (const s of steps) {
    const x = byStepA.get(s);
    const y = byStepB.get(s);
    const same =
      x !== undefined &&
      y !== undefined &&
      sameValue(normalizedEvent(x.event, x.agentId), normalizedEvent(y.event, y.agentId)) &&
      sameValue(x.state, y.state) &&
      x.status === y.status &&
      describeCommands(x.commands) === describeCommands(y.commands);
    if (!same) {
      first = s;
      break;
    }
  }
  const rows = first === undefined ? [] : steps.filter((s) => s >= first).map((s) => ({ step: s, a: byStepA.get(s) && view(byStepA.get(s)!), b: byStepB.get(s) && view(byStepB.get(s)!) }));
  return { a: a.agentId, b: b.agentId, firstDivergentStep: first, rows, cost: { a: costOf(ja), b: costOf(jb) } };
}
