import { createHash } from 'node:crypto';
import { canonicalJson, formatUsd, MAX_GOAL_DEPTH, valueNestsDeeper, type Budget, type ChatMessage, type NotifyRule, type Task, type ToolCall } from '@errand/protocols';
import { BUILT_IN_NAMES, BuiltInTool } from './built-in-tools.js';
import type { AgentContext, CallState, PlanResultEvent, ToolResultEvent } from './context.js';
import { reflectionPrompt, strategyPrompt } from './prompts.js';
import type { AgentSettings } from './settings.js';

/** Pure functions of the context (and an event) that the chart's guards and actions share. */

/** How the agent writes an amount of dollars in what it says (budget questions, notifications). */
export type UsdFormat = (usd: number) => string;

/** To the cent, as `assistant@1`–`@3` wrote it (`$0.00` for small amounts): their journals replay to it. */
export const centsUsd: UsdFormat = (usd) => `$${usd.toFixed(2)}`;

/** With the digits a small amount needs (`$0.000061`), as `assistant@4` writes it. */
export const exactUsd: UsdFormat = formatUsd;

/** A deterministic number in [0, 1) from text: jitter that replays the same. */
function unit(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0) / 2 ** 32;
}

export function backoffDelay(s: AgentSettings, attempt: number, seed: string, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined) return Math.min(s.backoffMaxMs, retryAfterMs);
  const exp = Math.min(s.backoffMaxMs, s.backoffBaseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.5 + unit(seed) / 2));
}

export const canonical = canonicalJson;

export function parseArgs(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  let value: unknown;
  try {
    value = text.trim() === '' ? {} : JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `arguments are not valid JSON: ${(err as Error).message}` };
  }
  // Arguments travel inside messages and are hashed and shown: keep them within the wire's nesting limit.
  if (valueNestsDeeper(value, MAX_GOAL_DEPTH)) return { ok: false, error: `arguments nest deeper than ${MAX_GOAL_DEPTH} levels; flatten them` };
  return { ok: true, value };
}

export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more characters cut]`;
}

export function size(messages: readonly ChatMessage[]): number {
  return messages.reduce((n, m) => n + (m.content?.length ?? 0) + (m.toolCalls ? JSON.stringify(m.toolCalls).length : 0), 0);
}

/**
 * Keeps the system prompt, the goal and the newest messages; the middle becomes one note. The kept
 * tail never starts with a tool result, so every tool call keeps its answer.
 */
export function compact(messages: readonly ChatMessage[], keepRecent: number): ChatMessage[] {
  const head = messages.slice(0, 2);
  let start = Math.max(2, messages.length - keepRecent);
  while (start < messages.length && messages[start]!.role === 'tool') start++;
  if (start <= 2) return [...messages];
  return [...head, { role: 'user', content: `[${start - 2} earlier messages were compacted to save context.]` }, ...messages.slice(start)];
}

export function overBudget(c: AgentContext, usd: UsdFormat = centsUsd): { what: string; exceeded: (keyof Budget)[] } | undefined {
  const b = c.budget;
  const parts: string[] = [];
  const exceeded: (keyof Budget)[] = [];
  if (b.maxSteps !== undefined && c.rounds >= b.maxSteps) (parts.push(`${c.rounds} of ${b.maxSteps} steps`), exceeded.push('maxSteps'));
  const tokens = c.usage.inputTokens + c.usage.outputTokens;
  if (b.maxTokens !== undefined && tokens >= b.maxTokens) (parts.push(`${tokens} of ${b.maxTokens} tokens`), exceeded.push('maxTokens'));
  if (b.maxCostUsd !== undefined && c.usage.costUsd >= b.maxCostUsd) {
    parts.push(`spent ${usd(c.usage.costUsd)} of ${usd(b.maxCostUsd)}`);
    exceeded.push('maxCostUsd');
  }
  const wall = c.now - c.startedAt;
  if (b.maxWallMs !== undefined && wall >= b.maxWallMs) (parts.push(`ran ${Math.round(wall / 1000)} s of ${Math.round(b.maxWallMs / 1000)} s`), exceeded.push('maxWallMs'));
  return parts.length ? { what: parts.join(', '), exceeded } : undefined;
}

export function notifyActions(
  c: AgentContext,
  topic: NotifyRule['on'][number],
  title: string,
  text: string,
  approval?: { requestId: string; argsHash: string; tool: string; summary: string },
  usd: UsdFormat = centsUsd,
) {
  // Every message says what the goal is and what it has cost so far.
  const full = `${text}\n\nGoal: ${clip(c.goal, 200)} · spent ${usd(c.usage.costUsd)} so far`;
  return c.notify
    .filter((r) => r.on.includes(topic))
    .map((r) => ({ type: 'errand.notify' as const, params: { channel: r.channel, topic, title, text: full, ...(approval ? { approval } : {}) } }));
}

/** The event's time when it is later than what the agent knew: the clock only moves forward. */
export function tellTime(c: AgentContext, e: { at?: number }): number {
  return typeof e.at === 'number' && e.at > c.now ? e.at : c.now;
}

export function toolMessages(calls: readonly CallState[]): ChatMessage[] {
  return calls.map((x) => ({ role: 'tool', toolCallId: x.id, name: x.tool, content: x.content ?? `ERROR: no result (${x.status})` }));
}

/** Tasks as the model wrote them, made valid for the wire (unknown statuses become `pending`). */
export function normalizeTasks(tasks: readonly Task[]): Task[] {
  const map: Record<string, Task['status']> = { pending: 'pending', in_progress: 'in_progress', active: 'in_progress', done: 'done', failed: 'failed', blocked: 'failed', cancelled: 'cancelled' };
  return tasks.map((t) => ({
    id: String(t.id),
    title: String(t.title ?? ''),
    status: map[String(t.status)] ?? 'pending',
    ...(Array.isArray(t.children) ? { children: normalizeTasks(t.children) } : {}),
  }));
}

export function keepLast<T>(record: Record<string, T>, n: number): Record<string, T> {
  return Object.fromEntries(Object.entries(record).slice(-n));
}

export function duration(e: ToolResultEvent): { durationMs?: number } {
  return typeof e.durationMs === 'number' ? { durationMs: e.durationMs } : {};
}

/** What a model reply (a `plan.result` without an error) asks for, read against the context it found. */
export interface Reply {
  message: ChatMessage;
  toolCalls: ToolCall[];
  /** The call (`tool:canonical args`) repeated `loopRepeats` times counting this reply, if any. */
  repeated: string | undefined;
  /** The signatures of the latest calls, this reply's included. */
  recent: string[];
}

export function readReply(c: AgentContext, e: PlanResultEvent): Reply {
  const message = e.result!.message;
  const toolCalls: ToolCall[] = message.toolCalls ?? [];
  // Loop detection: the same call again and again.
  const signatures = toolCalls.map((t) => `${t.name}:${canonical(parseArgs(t.arguments).ok ? (parseArgs(t.arguments) as { value: unknown }).value : t.arguments)}`);
  const repeated = signatures.find((sig) => c.recent.filter((r) => r === sig).length + 1 >= c.settings.loopRepeats);
  return { message, toolCalls, repeated, recent: [...c.recent, ...signatures].slice(-20) };
}

/** The tool named in a repeated call's signature. */
export function repeatedTool(signature: string): string {
  return signature.slice(0, signature.indexOf(':'));
}

/** The calls of a reply: parsed, checked against the catalog, and marked for approval where a policy says so. */
export function roundCalls(c: AgentContext, toolCalls: readonly ToolCall[]): CallState[] {
  return toolCalls.map((t) => {
    const parsed = parseArgs(t.arguments);
    const kind: CallState['kind'] =
      t.name === BuiltInTool.Delegate ? 'delegate' : t.name === BuiltInTool.AskHuman ? 'human' : BUILT_IN_NAMES.has(t.name) ? 'builtin' : 'tool';
    if (!parsed.ok) return { id: t.id, tool: t.name, args: null, argsText: t.arguments, kind, status: 'error', attempts: 0, content: `ERROR: ${parsed.error}` };
    if (kind === 'tool' && !c.toolDefs.some((d) => d.name === t.name)) {
      return { id: t.id, tool: t.name, args: parsed.value, argsText: t.arguments, kind, status: 'error', attempts: 0, content: `ERROR: there is no tool named ${t.name}` };
    }
    const askIf = c.toolAskIfArgs[t.name];
    const argsAsk =
      askIf !== undefined && typeof parsed.value === 'object' && parsed.value !== null && Object.entries(askIf).every(([k, v]) => (parsed.value as Record<string, unknown>)[k] === v);
    const ask = kind === 'tool' && (c.toolPolicies[t.name] === 'ask' || argsAsk);
    return { id: t.id, tool: t.name, args: parsed.value, argsText: t.arguments, kind, status: ask ? 'approval' : 'running', attempts: 1 };
  });
}

/** How a round that has every outcome counts: failures in a row, rounds without progress, notes for the model. */
export interface RoundOutcome {
  failedRounds: number;
  idleRounds: number;
  notes: string[];
  reflections: number;
  /** Idle for `idleRoundsLimit` rounds. */
  stuck: boolean;
}

export function roundOutcome(c: AgentContext): RoundOutcome {
  const external = c.calls.filter((x) => x.kind === 'tool' || x.kind === 'delegate');
  const progressed = external.some((x) => x.status === 'ok');
  const allFailed = external.length > 0 && external.every((x) => x.status === 'error');
  const failedRounds = allFailed ? c.failedRounds + 1 : 0;
  const idleRounds = progressed ? 0 : c.idleRounds + 1;
  const notes = [...c.notes];
  if (failedRounds > 0 && failedRounds % c.settings.strategyAfterFailures === 0) notes.push(strategyPrompt(failedRounds));
  let reflections = c.reflections;
  const stuck = idleRounds >= c.settings.idleRoundsLimit;
  if (stuck && reflections < 1) {
    notes.push(reflectionPrompt(`${idleRounds} rounds have brought no new result`));
    reflections += 1;
  } else if (stuck) {
    reflections += 1;
  }
  return { failedRounds, idleRounds, notes, reflections, stuck };
}
