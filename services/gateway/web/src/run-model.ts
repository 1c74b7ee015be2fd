import { agentOfSubject } from './format.js';
import type { AgentStatus, CommandSummary, ErrorInfo, ProgressEvent, Task, Usage } from './types.js';

// One agent and its descendants, folded from their progress events (the SSE stream of
// /api/agents/:id/events): the task tree with the tool calls and child agents nested under the
// plan item that was in progress at the step that started them, the steps, usage. Pure and
// mutable; the view re-renders on a version counter.
//
// A call or child belongs to the item in progress in the latest plan of a step at or before its
// own: a model that updates its plan and calls a tool in one reply means the call for the item it
// just started. Attributed by step, not by arrival, because a step's events may arrive in any order.
// With several items in progress at once, a call goes to the one whose title or id its arguments
// name (fs_read of notes/v1.md under the item "notes/v1.md"), else to the first.

export interface ToolCall {
  id: string;
  tool: string;
  /** `denied` / `expired`: a call a person said no to, or nobody decided on in time: it never ran. */
  status: 'requested' | 'ok' | 'error' | 'retrying' | 'cancelled' | 'denied' | 'expired';
  attempt: number;
  step: number;
  startedAt: number;
  durationMs?: number;
  error?: ErrorInfo;
}

export interface StepEntry {
  step: number;
  at: number;
  eventType: string;
  event: Record<string, unknown>;
  state: unknown;
  status: AgentStatus;
  commands: CommandSummary[];
}

export interface AgentNode {
  agentId: string;
  parentId?: string;
  /** The parent's step that started this child (its goal command), when seen. */
  spawnStep?: number;
  agent?: string;
  goal?: string;
  status?: AgentStatus;
  state?: unknown;
  tasks: Task[];
  /** Every plan the agent published, by step. */
  plans: { step: number; tasks: Task[] }[];
  /** When each plan item was first seen in progress (or done) and when it ended; `ran`: seen in progress. */
  taskTimes: Map<string, { start: number; end?: number; ran: boolean }>;
  /** The arguments (JSON text) of each tool call the model made, by call id (from the journal). */
  callArgs: Map<string, string>;
  /** The tool calls of each model answer (from the journal), by the step that took it. */
  modelCalls: { step: number; calls: { id: string; tool: string }[] }[];
  /** Approval requests seen, by id: which tools they ask about and when. */
  approvals: Map<string, { tools: string[]; at: number }>;
  tools: ToolCall[];
  children: string[];
  steps: StepEntry[];
  usage?: Usage;
  firstAt?: number;
  endAt?: number;
  output?: unknown;
  error?: ErrorInfo;
}

const TASK_DONE = new Set(['done', 'failed', 'cancelled']);
const AGENT_ENDED = new Set(['done', 'failed', 'cancelled']);

export class RunModel {
  readonly agents = new Map<string, AgentNode>();
  version = 0;

  constructor(readonly rootId: string) {
    this.node(rootId);
  }

  get root(): AgentNode {
    return this.agents.get(this.rootId)!;
  }

  node(agentId: string, parentId?: string): AgentNode {
    let n = this.agents.get(agentId);
    if (!n) {
      n = { agentId, tasks: [], plans: [], taskTimes: new Map(), callArgs: new Map(), modelCalls: [], approvals: new Map(), tools: [], children: [], steps: [] };
      this.agents.set(agentId, n);
      if (agentId !== this.rootId) this.adopt(parentId ?? this.rootId, n);
    } else if (parentId && n.parentId !== parentId && agentId !== this.rootId) {
      // Seen before its parent's step named it: move it under the right parent.
      const old = n.parentId ? this.agents.get(n.parentId) : undefined;
      if (old) old.children = old.children.filter((c) => c !== agentId);
      this.adopt(parentId, n);
    }
    return n;
  }

  private adopt(parentId: string, child: AgentNode): void {
    const parent = this.agents.get(parentId) ?? this.node(parentId);
    child.parentId = parentId;
    if (!parent.children.includes(child.agentId)) parent.children.push(child.agentId);
  }

  /** The plan item in progress at `step` of agent `n` for a call with these arguments (see the note at the top). */
  taskAt(n: AgentNode, step: number | undefined, args?: string): string | undefined {
    if (step === undefined) return undefined;
    let plan: Task[] | undefined;
    for (const p of n.plans) if (p.step <= step) plan = p.tasks;
    if (!plan) return undefined;
    const open = inProgress(plan);
    if (open.length > 1 && args) {
      const named = open.find((t) => (t.title.length > 2 && args.includes(t.title)) || (t.id.length > 2 && args.includes(t.id)));
      if (named) return named.id;
    }
    return open[0]?.id;
  }

  /** The item a tool call of `n` sits under. */
  taskOfCall(n: AgentNode, call: ToolCall): string | undefined {
    return this.taskAt(n, call.step, n.callArgs.get(call.id));
  }

  /** The item of its parent a child sits under (a child's id is `<parent>-<call id>` while short enough). */
  taskOfChild(child: AgentNode): string | undefined {
    const parent = child.parentId ? this.agents.get(child.parentId) : undefined;
    if (!parent) return undefined;
    const ref = child.agentId.startsWith(`${parent.agentId}-`) ? child.agentId.slice(parent.agentId.length + 1) : undefined;
    return this.taskAt(parent, child.spawnStep, ref ? parent.callArgs.get(ref) : undefined);
  }

  /** Children the parent's record lists (`children: { ref: { agentId, status } }`). */
  addChildren(parentId: string, children: Record<string, { agentId: string; status: AgentStatus }>): void {
    for (const c of Object.values(children)) {
      const n = this.node(c.agentId, parentId);
      n.status ??= c.status;
    }
    this.version++;
  }

  apply(e: ProgressEvent): void {
    const n = this.node(e.agentId);
    n.firstAt ??= e.at;
    switch (e.kind) {
      case 'event.step': {
        n.status = e.status;
        n.state = e.state;
        n.agent ??= e.machine.id;
        if (e.event.type === 'xstate.init') {
          const goal = (e.event.input as { goal?: unknown } | undefined)?.goal;
          if (typeof goal === 'string') n.goal ??= goal;
        }
        if (e.event.type === 'plan.result') {
          const message = (e.event.result as { message?: { toolCalls?: { id?: unknown; name?: unknown; arguments?: unknown }[] } } | undefined)?.message;
          const calls: { id: string; tool: string }[] = [];
          for (const c of message?.toolCalls ?? []) {
            if (typeof c.id !== 'string') continue;
            n.callArgs.set(c.id, typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments ?? ''));
            if (typeof c.name === 'string') calls.push({ id: c.id, tool: c.name });
          }
          if (calls.length && !n.modelCalls.some((m) => m.step === e.step)) {
            n.modelCalls.push({ step: e.step, calls });
            n.modelCalls.sort((a, b) => a.step - b.step);
          }
        }
        if (!n.steps.some((s) => s.step === e.step)) {
          n.steps.push({ step: e.step, at: e.at, eventType: e.event.type, event: e.event, state: e.state, status: e.status, commands: e.commands });
          n.steps.sort((a, b) => a.step - b.step);
        }
        for (const c of e.commands) {
          if (c.kind !== 'goal') continue;
          const child = agentOfSubject(c.subject);
          if (child && child !== e.agentId) {
            const c = this.node(child, e.agentId);
            c.spawnStep ??= e.step;
            c.firstAt ??= e.at;
          }
        }
        if (AGENT_ENDED.has(e.status)) n.endAt ??= e.at;
        break;
      }
      case 'event.state':
        n.status = e.status;
        n.state = e.state;
        if (AGENT_ENDED.has(e.status)) n.endAt ??= e.at;
        break;
      case 'event.plan':
        n.tasks = e.tasks;
        n.plans.push({ step: e.step, tasks: e.tasks });
        n.plans.sort((a, b) => a.step - b.step);
        // An item's time runs from when it was first seen in progress to when it ended; one that
        // went from pending to done in one update has no time of its own (see taskSpan).
        walk(e.tasks, (t) => {
          const times = n.taskTimes.get(t.id);
          if (t.status === 'pending') n.taskTimes.delete(t.id);
          else if (!times) n.taskTimes.set(t.id, { start: e.at, ran: t.status === 'in_progress', ...(TASK_DONE.has(t.status) ? { end: e.at } : {}) });
          else if (TASK_DONE.has(t.status)) times.end ??= e.at;
          else {
            delete times.end;
            times.ran = true;
          }
        });
        break;
      case 'event.tool': {
        let call = n.tools.find((t) => t.id === e.callId);
        if (!call) {
          call = { id: e.callId, tool: e.tool, status: e.status, attempt: e.attempt, step: e.step, startedAt: e.at };
          n.tools.push(call);
        }
        if (e.status === 'requested') {
          call.startedAt = e.at;
          delete call.durationMs;
          delete call.error;
        }
        call.status = e.status;
        call.attempt = e.attempt;
        if (e.durationMs !== undefined) call.durationMs = e.durationMs;
        if (e.error) call.error = e.error;
        break;
      }
      case 'event.usage':
        n.usage = e.total;
        break;
      case 'event.done':
        n.status = 'done';
        n.endAt ??= e.at;
        if (e.output !== undefined) n.output = e.output;
        break;
      case 'event.failed':
        n.status = 'failed';
        n.endAt ??= e.at;
        n.error = e.error;
        break;
      case 'event.approval':
        this.approval(n, e);
        break;
    }
    this.version++;
  }

  /**
   * A request for tool calls that a person denied, or nobody decided on in time: its calls never
   * ran, so no tool event tells of them; they join the tree as `denied` / `expired`. They are the
   * latest model answer's calls of the tools asked about that have no tool event (a later step's
   * events come after an earlier step's, so the answer and the request are known by now).
   */
  private approval(n: AgentNode, e: Extract<ProgressEvent, { kind: 'event.approval' }>): void {
    if (e.status === 'requested') {
      if (e.tool && e.tool !== 'budget') n.approvals.set(e.requestId, { tools: e.tool.split(', '), at: e.at });
      return;
    }
    const asked = n.approvals.get(e.requestId);
    if (!asked || (e.status !== 'denied' && e.status !== 'expired')) return;
    n.approvals.delete(e.requestId);
    const answer = n.modelCalls.filter((m) => m.calls.some((c) => asked.tools.includes(c.tool))).at(-1);
    for (const c of answer?.calls ?? []) {
      if (!asked.tools.includes(c.tool) || n.tools.some((t) => t.id === c.id)) continue;
      const by = e.by ? `${e.by.name ?? e.by.id}` : undefined;
      const message = e.status === 'denied' ? `denied${by ? ` by ${by}` : ''}: it did not run` : 'nobody decided in time: it did not run';
      n.tools.push({ id: c.id, tool: c.tool, status: e.status, attempt: 1, step: answer!.step, startedAt: asked.at, durationMs: Math.max(0, e.at - asked.at), error: { code: e.status === 'denied' ? 'ERR_DENIED' : 'ERR_EXPIRED', message, retryable: false } });
    }
  }

  /** Tokens and cost of the agent and its descendants. */
  totals(): Usage {
    const t: Usage = { inputTokens: 0, outputTokens: 0, costUsd: 0 };
    for (const n of this.agents.values()) {
      if (!n.usage) continue;
      t.inputTokens += n.usage.inputTokens;
      t.outputTokens += n.usage.outputTokens;
      t.costUsd += n.usage.costUsd;
    }
    return t;
  }
}

export function walk(tasks: readonly Task[], f: (t: Task) => void): void {
  for (const t of tasks) {
    f(t);
    if (t.children) walk(t.children, f);
  }
}

/** The deepest plan items in progress, top down: an item in progress stands for itself unless some of its children are. */
export function inProgress(tasks: readonly Task[]): Task[] {
  const out: Task[] = [];
  for (const t of tasks) {
    const inner = t.children ? inProgress(t.children) : [];
    if (inner.length) out.push(...inner);
    else if (t.status === 'in_progress') out.push(t);
  }
  return out;
}

/**
 * How long an item took or has been taking: from the first of it and its children seen in
 * progress to its end (`now` while it is in progress); undefined for an item never in progress.
 */
export function taskSpan(n: AgentNode, task: Task, now: number): number | undefined {
  let start: number | undefined;
  walk([task], (t) => {
    const times = n.taskTimes.get(t.id);
    if (times?.ran) start = start === undefined ? times.start : Math.min(start, times.start);
  });
  if (start === undefined) return undefined;
  const own = n.taskTimes.get(task.id);
  const end = TASK_DONE.has(task.status) ? (own?.end ?? start) : task.status === 'in_progress' ? now : undefined;
  return end === undefined ? undefined : Math.max(0, end - start);
}

/** Whether a task id appears in the tree (calls under an item the plan dropped go to the agent level). */
export function hasTask(tasks: readonly Task[], id: string | undefined): boolean {
  if (!id) return false;
  let found = false;
  walk(tasks, (t) => {
    if (t.id === id) found = true;
  });
  return found;
}
