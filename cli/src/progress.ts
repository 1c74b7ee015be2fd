import { summarize } from '@errand/client';
import { formatUsd, stateValueOf, TERMINAL_STATUSES, type AgentRecord, type AgentStatus, type ErrorInfo, type ProgressEvent, type Subjects, type Task, type Waiting } from '@errand/protocols';
import { terminalSafe } from './terminal-safe.js';

/**
 * What `errand watch` and `errand submit --wait` know about an agent tree, folded from its records
 * and progress events, and the two ways of showing it: one line per event (logs, pipes) and a tree
 * redrawn in place (terminals). Pure: the I/O is in `follow.ts`.
 *
 * The record is the truth about now (status, state, step, what it waits for); events are the
 * history (task tree, tool calls, usage, the journal). A late watcher replays the events from the
 * stream after reading the record, so status never comes from an event once a record was seen.
 */

export function isTerminal(status: AgentStatus | undefined): boolean {
  return status !== undefined && TERMINAL_STATUSES.has(status);
}

export type ToolCallStatus = 'requested' | 'ok' | 'error' | 'retrying' | 'cancelled';

export interface ToolCallView {
  /** The call id of `event.tool`, or the command key for calls seen only in the journal. */
  id: string;
  tool: string;
  status: ToolCallStatus;
  attempt: number;
  step: number;
  /** When the current attempt was asked for. */
  startedAt: number;
  durationMs?: number;
  error?: ErrorInfo;
}

export interface AgentView {
  agentId: string;
  parentId?: string;
  /** '' for the watched agent; the path of refs (`child-1/child-2`) for its descendants. */
  label: string;
  /** The agent definition (machine id). */
  agent?: string;
  goal?: string;
  record?: AgentRecord;
  /** The status the parent's record gives this child (ahead of the child's own when it was cancelled). */
  statusFromParent?: AgentStatus;
  /** From `event.state` / `event.step`, used only until a record was seen. */
  eventStatus?: AgentStatus;
  eventState?: unknown;
  step: number;
  lastStep?: { step: number; event: string; at: number };
  tasks: Task[];
  tools: ToolCallView[];
  /** The machine publishes `event.tool` itself; otherwise tool calls are read from the journal. */
  emitsToolEvents: boolean;
  usage?: { inputTokens: number; outputTokens: number; costUsd: number };
  children: string[];
  createdAt?: number;
  /** The last time something happened (record update or event). */
  lastAt?: number;
  /** Pending requests already announced in line mode. */
  announced: Set<string>;
}

/** A line of the line log: when, whose, what. */
export interface ProgressLine {
  at: number;
  agentId: string;
  text: string;
}

export function statusOf(v: AgentView): AgentStatus | undefined {
  const own = v.record?.status ?? v.eventStatus;
  if (v.statusFromParent && isTerminal(v.statusFromParent) && !isTerminal(own)) return v.statusFromParent;
  return own;
}

function stateOf(v: AgentView): unknown {
  return v.record ? stateValueOf(v.record.snapshot) : v.eventState;
}

/** An XState state value as people read it: `acting`, `parent.child`, `a.x, b.y`. */
export function stateText(value: unknown): string {
  if (value === undefined || value === null) return '-';
  if (typeof value === 'string') return value;
  if (typeof value !== 'object') return String(value);
  return Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => (v && typeof v === 'object' && Object.keys(v).length > 1 ? `${k}.(${stateText(v)})` : `${k}.${stateText(v)}`))
    .join(', ');
}

export class ProgressModel {
  readonly agents = new Map<string, AgentView>();

  constructor(
    readonly rootId: string,
    private readonly subjects: Subjects,
  ) {
    this.agents.set(rootId, newView(rootId, '', undefined));
  }

  get root(): AgentView {
    return this.agents.get(this.rootId)!;
  }

  /** Adds a child under its parent; false when it was known. */
  addChild(parentId: string, childId: string): boolean {
    if (this.agents.has(childId)) return false;
    const parent = this.agents.get(parentId);
    if (!parent) return false;
    // Child ids are `<parent>-<ref>` while short enough (a hash beyond that).
    const ref = childId.startsWith(`${parentId}-`) ? childId.slice(parentId.length + 1) : childId;
    this.agents.set(childId, newView(childId, parent.label ? `${parent.label}/${ref}` : ref, parentId));
    parent.children.push(childId);
    return true;
  }

  /** Folds in a record; returns the lines worth a log line (a question or approval that appeared). */
  applyRecord(r: AgentRecord): ProgressLine[] {
    const v = this.agents.get(r.agentId);
    if (!v) return [];
    v.record = r;
    v.agent = r.machine.id;
    v.goal = r.goal;
    v.step = Math.max(v.step, r.step);
    v.createdAt = r.createdAt;
    v.lastAt = Math.max(v.lastAt ?? 0, r.updatedAt);
    for (const child of Object.values(r.children)) {
      this.addChild(r.agentId, child.agentId);
      const c = this.agents.get(child.agentId);
      if (c) c.statusFromParent = child.status;
    }
    const lines: ProgressLine[] = [];
    if (isTerminal(r.status)) return lines;
    const s = summarize(r);
    const note = (key: string, text: string) => {
      if (v.announced.has(key)) return;
      v.announced.add(key);
      lines.push({ at: r.updatedAt, agentId: r.agentId, text });
    };
    if (s.waiting) note(`w:${s.waiting.requestId}`, `waiting for ${waitText(s.waiting)}   → ${waitHint(r.agentId, s.waiting)}`);
    return lines;
  }

  /** Folds in a progress event; returns its line(s) for the line log. */
  applyEvent(e: ProgressEvent): ProgressLine[] {
    const v = this.agents.get(e.agentId);
    if (!v) return [];
    v.lastAt = Math.max(v.lastAt ?? 0, e.at);
    const out: ProgressLine[] = [];
    const line = (text: string) => out.push({ at: e.at, agentId: e.agentId, text });
    switch (e.kind) {
      case 'event.step': {
        v.step = Math.max(v.step, e.step);
        v.lastStep = { step: e.step, event: e.event.type, at: e.at };
        v.eventStatus = e.status;
        v.eventState = e.state;
        v.agent ??= e.machine.id;
        if (e.event.type === 'xstate.init') {
          const goal = (e.event.input as { goal?: unknown } | undefined)?.goal;
          if (typeof goal === 'string') v.goal ??= goal;
        }
        v.createdAt ??= e.at;
        line(`step ${e.step}  ${e.event.type}  → ${stateText(e.state)} (${e.status})`);
        if (!v.emitsToolEvents) this.journalToolCalls(v, e, line);
        for (const c of e.commands) {
          if (c.kind !== 'goal') continue;
          const target = parseSafe(this.subjects, c.subject);
          if (target?.type === 'agent.in' && target.agentId !== e.agentId) this.addChild(e.agentId, target.agentId);
        }
        break;
      }
      case 'event.state':
        v.eventStatus = e.status;
        v.eventState = e.state;
        line(`status ${e.status}`);
        break;
      case 'event.plan':
        v.tasks = e.tasks;
        line(`step ${e.step}  plan  ${inlineTasks(e.tasks)}`);
        break;
      case 'event.tool': {
        v.emitsToolEvents = true;
        let call = v.tools.find((t) => t.id === e.callId);
        if (!call) {
          call = { id: e.callId, tool: e.tool, status: e.status, attempt: e.attempt, step: e.step, startedAt: e.at };
          v.tools.push(call);
        }
        if (e.status === 'requested') {
          call.startedAt = e.at;
          call.step = e.step;
          delete call.durationMs;
          delete call.error;
        }
        call.status = e.status;
        call.attempt = e.attempt;
        if (e.durationMs !== undefined) call.durationMs = e.durationMs;
        if (e.error) call.error = e.error;
        line(`step ${e.step}  ${toolText(call)}`);
        break;
      }
      case 'event.approval':
        line(
          `approval ${e.requestId} ${e.status}${e.tool ? ` (${e.tool})` : ''}${e.by ? ` by ${e.by.name ?? e.by.id}` : ''}${e.reason ? `: ${e.reason}` : ''}`,
        );
        break;
      case 'event.usage':
        v.usage = e.total;
        line(
          `step ${e.step}  usage ${e.usage.model} ${e.usage.inputTokens}+${e.usage.outputTokens} tokens${e.usage.costUsd !== undefined ? ` ${money(e.usage.costUsd)}` : ''}` +
            ` (total ${count(e.total.inputTokens + e.total.outputTokens)} tokens ${money(e.total.costUsd)})`,
        );
        break;
      case 'event.done':
        v.eventStatus = 'done';
        line(`done: ${JSON.stringify(e.output ?? null)}`);
        break;
      case 'event.failed':
        v.eventStatus = 'failed';
        line(`failed: ${e.error.code}: ${e.error.message}`);
        break;
    }
    return out;
  }

  /** Tool calls of machines that do not publish `event.tool`: requests from the step's commands, outcomes from its event. */
  private journalToolCalls(v: AgentView, e: Extract<ProgressEvent, { kind: 'event.step' }>, line: (text: string) => void): void {
    const ev = e.event as { type: string; key?: unknown; durationMs?: unknown; error?: ErrorInfo };
    if (ev.type === 'tool.result' && typeof ev.key === 'string') {
      const call = v.tools.find((t) => t.id === ev.key);
      if (call) {
        call.status = ev.error ? 'error' : 'ok';
        if (typeof ev.durationMs === 'number') call.durationMs = ev.durationMs;
        if (ev.error) call.error = ev.error;
        line(`step ${e.step}  ${toolText(call)}`);
      }
    }
    for (const c of e.commands) {
      if (c.kind !== 'tool.request' || v.tools.some((t) => t.id === c.key)) continue;
      const target = parseSafe(this.subjects, c.subject);
      const call: ToolCallView = { id: c.key, tool: target?.type === 'work.tool' ? target.tool : '?', status: 'requested', attempt: 1, step: e.step, startedAt: e.at };
      v.tools.push(call);
      line(`step ${e.step}  ${toolText(call)}`);
    }
  }

  /** Tokens and cost of the whole tree. */
  totals(): { tokens: number; costUsd: number; withChildren: boolean } {
    let tokens = 0;
    let costUsd = 0;
    let withChildren = false;
    for (const v of this.agents.values()) {
      if (!v.usage) continue;
      tokens += v.usage.inputTokens + v.usage.outputTokens;
      costUsd += v.usage.costUsd;
      if (v.agentId !== this.rootId) withChildren = true;
    }
    return { tokens, costUsd, withChildren };
  }
}

function newView(agentId: string, label: string, parentId: string | undefined): AgentView {
  return { agentId, label, ...(parentId ? { parentId } : {}), step: 0, tasks: [], tools: [], emitsToolEvents: false, children: [], announced: new Set() };
}

function parseSafe(subjects: Subjects, subject: string): ReturnType<Subjects['parse']> | undefined {
  try {
    return subjects.parse(subject);
  } catch {
    return undefined;
  }
}

export const answerHint = (agentId: string) => `errand answer ${agentId} "…"`;
export const approveHint = (agentId: string) => `errand approve ${agentId} | errand deny ${agentId}`;
/** The command that answers what the agent waits for. */
export const waitHint = (agentId: string, w: Waiting) => (w.kind === 'input' ? answerHint(agentId) : approveHint(agentId));
/** What the agent waits for, on one line: `an answer: <question>`, `approval: tool(args)`, `a budget decision: <question>`. */
export function waitText(w: Waiting): string {
  if (w.kind === 'input') return `an answer: ${oneLine(w.question ?? w.summary ?? w.requestId)}`;
  if (w.kind === 'budget') return `a budget decision: ${oneLine(w.question ?? w.summary ?? w.requestId)}`;
  return `approval: ${oneLine(w.summary ?? (w.calls ?? []).map((c) => `${c.tool}(${JSON.stringify(c.args)})`).join('; '))}`;
}

// --- words and numbers ------------------------------------------------------------------------

const TASK_ICON: Record<Task['status'], string> = { pending: '○', in_progress: '▸', done: '✓', failed: '✗', cancelled: '⊘' };
const TOOL_ICON: Record<ToolCallStatus, string> = { requested: '▸', ok: '✓', error: '✗', retrying: '↻', cancelled: '⊘' };
const AGENT_ICON: Record<AgentStatus, string> = { running: '▸', waiting: '?', paused: '‖', done: '✓', failed: '✗', cancelled: '⊘' };

function inlineTasks(tasks: readonly Task[]): string {
  if (tasks.length === 0) return '(no tasks)';
  return tasks.map((t) => `${TASK_ICON[t.status]} ${t.title}${t.children?.length ? ` (${inlineTasks(t.children)})` : ''}`).join(' · ');
}

function toolText(call: ToolCallView): string {
  const status = call.status === 'requested' ? (call.attempt > 1 ? `requested (attempt ${call.attempt})` : 'requested') : call.status;
  const took = call.durationMs !== undefined && (call.status === 'ok' || call.status === 'error') ? ` ${duration(call.durationMs)}` : '';
  const why = call.error ? `: ${call.error.code}: ${call.error.message}` : '';
  return `tool ${call.tool} ${status}${took}${why}`;
}

/** `12 ms`, `3.4 s`, `4m05s`, `2h03m`, `3d04h`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}

/** `$0.42`, `$0.000061` (formatUsd: the digits a small amount needs). */
function money(usd: number): string {
  return formatUsd(usd);
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** `12:01:03` in local time. */
export function clock(at: number): string {
  return new Date(at).toTimeString().slice(0, 8);
}

/** A line of the line log: `12:01:03 [child-1] step 4  tool fs_read ok 12 ms`. */
export function formatLine(model: ProgressModel, l: ProgressLine): string {
  const label = model.agents.get(l.agentId)?.label;
  return terminalSafe(`${clock(l.at)} ${label ? `[${label}] ` : ''}${l.text}`);
}

// --- the tree ---------------------------------------------------------------------------------

export interface FrameOptions {
  /** Terminal columns: every line is cut to fit, so none wraps and the redraw count stays right. */
  width: number;
  /** Terminal rows: long sections are shortened (with "… n more") so the frame never scrolls. */
  height: number;
  now: number;
}

/** A part of the frame that may be shortened: `head` keeps its first lines, `tail` its last. */
interface Section {
  lines: string[];
  keep: 'all' | 'head' | 'tail';
  indent: string;
  shown: number;
}

/** The live tree of an agent and its children, as terminal lines. */
export function renderFrame(model: ProgressModel, o: FrameOptions): string[] {
  const sections: Section[] = [];
  const add = (lines: string[], keep: Section['keep'] = 'all', indent = '') => {
    if (lines.length) sections.push({ lines, keep, indent, shown: lines.length });
  };
  const root = model.root;
  const totals = model.totals();
  const cost = totals.tokens || totals.costUsd ? ` · ${count(totals.tokens)} tokens · ${money(totals.costUsd)}${totals.withChildren ? ' (with children)' : ''}` : '';
  add([`${headline(root, o.now, root.agentId)}${cost}`]);
  if (root.goal !== undefined) add([`  goal: ${oneLine(root.goal)}`]);
  agentBody(model, root, o.now, '  ', add);
  if (root.children.length) {
    add(['  children:']);
    const lines: string[] = [];
    for (const id of root.children) childLines(model, model.agents.get(id)!, o.now, '    ', lines);
    add(lines, 'head');
  }
  fit(sections, Math.max(4, o.height - 1));
  const out: string[] = [];
  for (const s of sections) {
    const hidden = s.lines.length - s.shown;
    if (s.keep === 'tail' && hidden > 0) out.push(`${s.indent}… ${hidden} earlier`);
    out.push(...(s.keep === 'tail' ? s.lines.slice(hidden) : s.lines.slice(0, s.shown)));
    if (s.keep !== 'tail' && hidden > 0) out.push(`${s.indent}… ${hidden} more`);
  }
  return out.map((l) => cut(terminalSafe(l), o.width));
}

/** Shortens the longest shortenable section, one line at a time, until the frame fits. */
function fit(sections: Section[], max: number): void {
  const size = () => sections.reduce((n, s) => n + s.shown + (s.shown < s.lines.length ? 1 : 0), 0);
  while (size() > max) {
    const candidates = sections.filter((s) => s.keep !== 'all' && s.shown > 1);
    if (!candidates.length) return;
    const longest = candidates.reduce((a, b) => (b.shown > a.shown ? b : a));
    longest.shown -= longest.shown === longest.lines.length ? 2 : 1;
    longest.shown = Math.max(1, longest.shown);
  }
}

function headline(v: AgentView, now: number, name: string): string {
  const status = statusOf(v);
  const parts = [
    `${status ? AGENT_ICON[status] : '·'} ${name}`,
    v.agent ?? '?',
    status ?? 'unknown',
    `state ${stateText(stateOf(v))}`,
    `step ${v.step}`,
  ];
  if (v.createdAt !== undefined) parts.push(duration((isTerminal(status) ? (v.lastAt ?? now) : now) - v.createdAt));
  return parts.join(' · ');
}

/** Tasks, the step in flight, what the agent waits for, tool calls, and the outcome. */
function agentBody(model: ProgressModel, v: AgentView, now: number, indent: string, add: (lines: string[], keep?: Section['keep'], indent?: string) => void): void {
  const status = statusOf(v);
  if (v.tasks.length) {
    add([`${indent}tasks:`]);
    add(treeLines(v.tasks, `${indent}  `), 'head', `${indent}  `);
  }
  if (!isTerminal(status)) {
    const flight = inFlight(model, v, now);
    if (flight) add([`${indent}now: ${flight}`]);
    const s = v.record ? summarize(v.record) : undefined;
    if (s?.waiting) add([`${indent}? waits for ${waitText(s.waiting)}   → ${waitHint(v.agentId, s.waiting)}`]);
  }
  if (v.tools.length) {
    add([`${indent}tools:`]);
    const width = Math.min(24, Math.max(...v.tools.map((t) => t.tool.length)));
    add(
      v.tools.map((t) => `${indent}  ${toolRow(t, width, now)}`),
      'tail',
      `${indent}  `,
    );
  }
  const r = v.record;
  if (status === 'done' && r) add([`${indent}output: ${oneLine(JSON.stringify(r.output ?? null))}`]);
  if ((status === 'failed' || status === 'cancelled') && r?.error) add([`${indent}error: ${r.error.code}: ${oneLine(r.error.message)}`]);
}

function toolRow(t: ToolCallView, width: number, now: number): string {
  const status = t.status === 'requested' ? 'running' : t.status;
  const took = t.status === 'requested' || t.status === 'retrying' ? duration(now - t.startedAt) : t.durationMs !== undefined ? duration(t.durationMs) : '';
  const extra = [`step ${t.step}`, ...(t.attempt > 1 ? [`attempt ${t.attempt}`] : []), ...(t.error ? [`${t.error.code}: ${oneLine(t.error.message)}`] : [])];
  return `${TOOL_ICON[t.status]} ${t.tool.padEnd(width)}  ${status.padEnd(9)} ${took.padStart(8)}  ${extra.join('  ')}`;
}

/** The step in flight: what the last step was and what the agent waits for now. */
function inFlight(model: ProgressModel, v: AgentView, now: number): string {
  const r = v.record;
  const status = statusOf(v);
  const parts: string[] = [];
  if (v.lastStep) parts.push(`step ${v.lastStep.step} (${v.lastStep.event}, ${duration(now - v.lastStep.at)} ago)`);
  if (status === 'paused') {
    parts.push('paused: what arrives waits until `errand resume`');
    return parts.join(' · ');
  }
  const waits: string[] = [];
  if (r) {
    const pending = Object.values(r.pending);
    if (pending.some((p) => p.kind === 'plan.request')) waits.push('the model');
    const tools = pending.filter((p) => p.kind === 'tool.request').length;
    if (tools) {
      const names = v.tools.filter((t) => t.status === 'requested').map((t) => t.tool);
      waits.push(`${tools} tool call${tools > 1 ? 's' : ''}${names.length ? ` (${[...new Set(names)].join(', ')})` : ''}`);
    }
    const running = v.children.filter((id) => !isTerminal(statusOf(model.agents.get(id)!))).length;
    if (running) waits.push(`${running} child agent${running > 1 ? 's' : ''}`);
    const s = summarize(r);
    if (s.waiting) waits.push({ input: 'an answer', approval: 'an approval', budget: 'a budget decision' }[s.waiting.kind]);
    // Timers also guard the waits above (deadlines, reminders): they matter when nothing else is awaited.
    const timers = Object.entries(r.timers).sort(([, a], [, b]) => a.dueAt - b.dueAt);
    if (!waits.length && timers.length) {
      const [id, t] = timers[0]!;
      waits.push(`timer ${id} in ${duration(Math.max(0, t.dueAt - now))}${timers.length > 1 ? ` (+${timers.length - 1} more)` : ''}`);
    }
  }
  if (waits.length) parts.push(`waiting for ${waits.join(', ')}`);
  return parts.join(' · ');
}

function childLines(model: ProgressModel, v: AgentView, now: number, indent: string, out: string[]): void {
  const name = v.label === v.agentId ? v.label : `${v.label} (${v.agentId})`;
  const cost = v.usage ? ` · ${money(v.usage.costUsd)}` : '';
  out.push(`${indent}${headline(v, now, name)}${cost}${v.goal !== undefined ? ` · ${oneLine(v.goal)}` : ''}`);
  const add = (lines: string[]) => out.push(...lines);
  agentBody(model, v, now, `${indent}  `, add);
  for (const id of v.children) childLines(model, model.agents.get(id)!, now, `${indent}  `, out);
}

function treeLines(tasks: readonly Task[], indent: string): string[] {
  return tasks.flatMap((t) => [`${indent}${TASK_ICON[t.status]} ${oneLine(t.title)}`, ...(t.children?.length ? treeLines(t.children, `${indent}  `) : [])]);
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** Cuts a line to `width - 1` characters (the last column is left free: some terminals wrap on it). */
function cut(line: string, width: number): string {
  const chars = [...line];
  const max = Math.max(10, width - 1);
  return chars.length <= max ? line : `${chars.slice(0, max - 1).join('')}…`;
}

// --- drawing in place -------------------------------------------------------------------------

/** ANSI sequences the live tree uses (exported for tests). */
export const Ansi = {
  hideCursor: '\x1b[?25l',
  showCursor: '\x1b[?25h',
  up: (n: number) => `\x1b[${n}A`,
  /** Erase from the cursor to the end of the screen. */
  clearDown: '\x1b[J',
  clearScreen: '\x1b[2J\x1b[H',
} as const;

/**
 * Redraws a block of lines in place: moves the cursor up over the last frame, erases it, writes
 * the new one. Lines must fit the terminal's width (see {@link renderFrame}), or wrapped lines
 * would make the count wrong.
 */
export class LiveFrame {
  private drawn = 0;

  constructor(private readonly write: (s: string) => void) {}

  draw(lines: readonly string[]): void {
    const back = this.drawn > 0 ? `\r${Ansi.up(this.drawn)}` : '';
    this.write(`${back}${Ansi.clearDown}${lines.map((l) => `${l}\n`).join('')}`);
    this.drawn = lines.length;
  }

  /** After a resize the old frame may have wrapped: start again on a clear screen. */
  reset(): void {
    this.write(Ansi.clearScreen);
    this.drawn = 0;
  }
}
