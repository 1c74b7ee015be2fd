import { initialTransition, transition, type AnyMachineSnapshot } from 'xstate';
import {
  APPLIED_IDS_KEPT,
  APPROVALS_KEPT,
  callHash,
  EVENT_KIND_OF,
  messageSchemas,
  MESSAGE_VERSION,
  RECORD_FORMAT,
  type AgentRecord,
  type AgentStatus,
  type ErrorInfo,
  type ForkSeed,
  type InboxMessage,
  type Message,
  type MessageInput,
  type MessageKind,
  type Principal,
  type Subjects,
} from '@errand/protocols';
import { ErrandAction, FAILURE_OUTPUT_KEY, type CancelChildParams, type EmitParams, type NotifyParams, type PlanParams, type SendParams, type SpawnParams, type ToolCallParams } from './actions.js';
import type { AgentDefinition, AgentInput, AgentRegistry } from './agent-definition.js';
import { RuntimeError, RuntimeErrorCode } from './errors.js';
import { childAgentId } from './ids.js';

/**
 * The pure half of a step: given the agent's record and one inbox message, decide the next record
 * and the commands it sends (its outbox). No I/O happens here; the executor persists the decision
 * with compare-and-set and only then publishes the outbox.
 */

export interface StepContext {
  readonly agentId: string;
  /** The inbox message's id (its Nats-Msg-Id, or stream and sequence). */
  readonly inboxId: string;
  readonly now: number;
  readonly subjects: Subjects;
  readonly registry: AgentRegistry;
}

export type Decision =
  | { readonly type: 'commit'; readonly record: AgentRecord; readonly created: boolean }
  /** Already applied: re-publish the record's outbox (consumers de-duplicate), never recompute. */
  | { readonly type: 'duplicate' }
  /**
   * Nothing to apply (a late timer, a message to a finished agent); ack it. `refused`: the message
   * tried something it may not (an approval nobody asked for, a reserved event from an agent) —
   * worth a warning in the log.
   */
  | { readonly type: 'ignore'; readonly reason: string; readonly refused?: boolean };

export const TERMINAL_STATUSES: ReadonlySet<AgentStatus> = new Set(['done', 'failed', 'cancelled']);

/** Event types only the runtime delivers (from their own inbox kinds); an `agent.message` may not carry them. */
const RESERVED_EVENT_TYPES: ReadonlySet<string> = new Set(['approval', 'input', 'plan.result', 'tool.result', 'child.result', 'timer.fired', 'goal']);
const RESERVED_EVENT_PREFIXES = ['control.', 'xstate.', 'errand.'] as const;

/**
 * Why an event another agent sent may not reach this agent's machine, or undefined when it may.
 * Reserved: the events of other inbox kinds (a person's approval or input, results of commands,
 * child outcomes), `control.*`, XState's and Errand's own (`xstate.*`, `errand.*`), and the events
 * of the agent's live durable timers (deadlines, retries, reminders), which only the timers fire.
 */
export function reservedEventReason(type: string, record: Pick<AgentRecord, 'timers'>): string | undefined {
  if (RESERVED_EVENT_TYPES.has(type) || RESERVED_EVENT_PREFIXES.some((p) => type.startsWith(p))) {
    return `an agent.message may not carry a '${type}' event: it is reserved for the runtime (approvals come only through the approval inbox)`;
  }
  if (Object.values(record.timers).some((t) => t.type === type)) {
    return `an agent.message may not carry a '${type}' event: the agent's own durable timer delivers it`;
  }
  return undefined;
}

/** The event a machine sees for an inbox message. */
export function machineEventOf(message: InboxMessage): { type: string; [key: string]: unknown } {
  switch (message.kind) {
    case 'plan.result':
      return { type: 'plan.result', key: message.key, ref: message.ref, result: message.result, error: message.error, usage: message.usage, at: message.at };
    case 'tool.result':
      return {
        type: 'tool.result',
        key: message.key,
        callId: message.callId,
        tool: message.tool,
        attempt: message.attempt,
        durationMs: message.durationMs,
        result: message.result,
        error: message.error,
        at: message.at,
      };
    case 'approval':
      return { type: 'approval', requestId: message.requestId, decision: message.decision, argsHash: message.argsHash, by: message.by, comment: message.comment, at: message.at };
    case 'input':
      return { type: 'input', requestId: message.requestId, text: message.text, interrupt: message.interrupt, by: message.by, at: message.at };
    case 'child.result':
      return { type: 'child.result', ref: message.ref, childId: message.childId, outcome: message.outcome, output: message.output, error: message.error, at: message.at };
    case 'agent.message':
      return { ...message.event, from: message.from };
    case 'timer.fired':
      return message.event;
    case 'control':
      return { type: 'control.budget', budget: message.budget, at: message.at };
    case 'goal':
      return { type: 'xstate.init' };
  }
}

/** Decides what one inbox message does to the agent. Throws {@link RuntimeError} when it cannot be applied here. */
export function decide(current: AgentRecord | undefined, message: InboxMessage, ctx: StepContext): Decision {
  if (current === undefined) {
    if (message.kind !== 'goal') {
      throw new RuntimeError(RuntimeErrorCode.AgentNotFound, `no agent '${ctx.agentId}' for a ${message.kind} message`, { agentId: ctx.agentId });
    }
    return { type: 'commit', record: start(message, ctx), created: true };
  }
  if (current.applied.includes(ctx.inboxId)) return { type: 'duplicate' };
  if (message.kind === 'goal') return { type: 'ignore', reason: 'a goal for an agent that already exists' };
  if (TERMINAL_STATUSES.has(current.status)) return { type: 'ignore', reason: `the agent is already ${current.status}` };

  const step = new Draft(current, ctx);
  if (message.kind === 'control') {
    switch (message.action) {
      case 'cancel':
        step.cancel(message.reason ?? 'cancelled');
        return step.commit();
      case 'pause':
        if (current.status === 'paused') return { type: 'ignore', reason: 'already paused' };
        step.setStatus('paused');
        return step.commit();
      case 'resume': {
        if (current.status !== 'paused') return { type: 'ignore', reason: 'not paused' };
        step.setStatus('running');
        const deferred = step.record.deferred;
        step.record.deferred = [];
        for (const d of deferred) if (!step.apply(d.id, d.event)) break;
        return step.commit();
      }
      case 'budget':
        break;
    }
  }
  if (message.kind === 'timer.fired') {
    const timer = step.record.timers[message.timerId];
    if (timer === undefined || timer.key !== message.key) return { type: 'ignore', reason: 'the timer was cancelled or superseded' };
    delete step.record.timers[message.timerId];
  }
  if (message.kind === 'plan.result' || message.kind === 'tool.result') {
    // Results are matched to the command that asked for them: a repeat (re-published after the
    // duplicate window) or a stray result finds no pending command and changes nothing.
    if (step.record.pending[message.key] === undefined) return { type: 'ignore', reason: 'no command is waiting for this result' };
    delete step.record.pending[message.key];
  }
  if (message.kind === 'agent.message') {
    const reserved = reservedEventReason(message.event.type, step.record);
    if (reserved) return { type: 'ignore', reason: reserved, refused: true };
  }
  if (message.kind === 'approval') {
    // A decision applies only to a request the agent made and that is still open, about exactly
    // the arguments the person was shown; anything else never reaches the machine.
    const open = step.record.approvals?.find((a) => a.requestId === message.requestId);
    if (!open) return { type: 'ignore', reason: `the agent has no approval request '${message.requestId}'`, refused: true };
    if (open.decision) return { type: 'ignore', reason: `approval request '${message.requestId}' is already ${open.decision === 'expired' ? 'expired' : 'decided'}` };
    if (open.argsHash !== message.argsHash) {
      return { type: 'ignore', reason: `the argsHash does not match approval request '${message.requestId}': the decision was about other arguments`, refused: true };
    }
  }
  if (message.kind === 'child.result') {
    const child = step.record.children[message.ref];
    if (child === undefined || child.agentId !== message.childId) return { type: 'ignore', reason: 'not a child of this agent' };
    if (TERMINAL_STATUSES.has(child.status)) return { type: 'ignore', reason: `child ${message.childId} already ended (${child.status})` };
    child.status = message.outcome;
  }
  const event = machineEventOf(message);
  if (current.status === 'paused') step.record.deferred.push({ id: ctx.inboxId, event });
  else step.apply(ctx.inboxId, event);
  return step.commit();
}

function start(goal: Message<'goal'>, ctx: StepContext): AgentRecord {
  if (goal.fork) return startFork(goal, goal.fork, ctx);
  const def = ctx.registry.latest(goal.agent ?? ctx.registry.defaultAgent);
  const input: AgentInput = {
    agentId: ctx.agentId,
    goal: goal.goal,
    input: goal.input ?? {},
    labels: goal.labels ?? {},
    budget: goal.budget,
    model: goal.model,
    system: goal.system,
    tools: goal.tools,
    notify: goal.notify,
    parent: goal.parent,
    startedAt: goal.at,
  };
  const record: AgentRecord = { ...emptyRecord(ctx, def), goal: goal.goal, labels: goal.labels, parent: goal.parent, notify: goal.notify?.length ? goal.notify : undefined };
  const step = new Draft(record, ctx, def);
  step.init(input);
  return step.finishRecord(true);
}

/** The machine event a fork's first journal entry carries: everything needed to rebuild it. */
export const FORK_EVENT = 'errand.fork';

/**
 * A fork (`errand fork`): the record starts at the original's step from its snapshot, re-issues
 * the commands outstanding there under the fork's id, and applies an edited event at once if one
 * was given. The first journal entry (step `from.step`) is a {@link FORK_EVENT} holding the seed,
 * so the fork's own journal replays without the original's.
 */
function startFork(goal: Message<'goal'>, fork: ForkSeed, ctx: StepContext): AgentRecord {
  const draft = seedFork(goal, fork, ctx);
  if (fork.event) {
    // An edited result names the original's command key; the fork's is the same key under its id.
    const from = `${fork.from.agentId}:`;
    const event = { ...fork.event };
    if (typeof event.key === 'string' && event.key.startsWith(from)) event.key = `${ctx.agentId}:${event.key.slice(from.length)}`;
    settleJournaled(draft.record, event, ctx.inboxId);
    draft.apply(ctx.inboxId, event);
  }
  return draft.finishRecord(true);
}

function seedFork(goal: Pick<Message<'goal'>, 'goal' | 'labels' | 'notify'>, fork: ForkSeed, ctx: StepContext): Draft {
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
  draft.reissue(fork.from.agentId, fork.reissue);
  const { event: _edited, ...seed } = fork;
  draft.journalFork({ type: FORK_EVENT, ...seed, goal: goal.goal, ...(goal.labels ? { labels: goal.labels } : {}), ...(goal.notify?.length ? { notify: goal.notify } : {}) });
  return draft;
}

function emptyRecord(ctx: StepContext, machine: { id: string; version: number }): AgentRecord {
  return {
    format: RECORD_FORMAT,
    agentId: ctx.agentId,
    machine: { id: machine.id, version: machine.version },
    status: 'running',
    step: 0,
    snapshot: undefined,
    goal: '',
    children: {},
    timers: {},
    pending: {},
    applied: [],
    outbox: [],
    deferred: [],
    createdAt: ctx.now,
    updatedAt: ctx.now,
  };
}

/** One entry of an agent's journal (`event.step`), as far as replaying it needs. */
export interface JournaledStep {
  readonly step: number;
  readonly inboxId: string;
  readonly machine: { readonly id: string; readonly version: number };
  readonly event: { type: string; [key: string]: unknown };
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
  if (!ctx.registry.find(id, version)) {
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
    const def = ctx.registry.find(id, version)!;
    const input = entry.event.input as AgentInput;
    const record: AgentRecord = {
      ...emptyRecord(ctx, def),
      goal: input.goal,
      labels: Object.keys(input.labels ?? {}).length ? input.labels : undefined,
      parent: input.parent,
      notify: input.notify?.length ? [...input.notify] : undefined,
    };
    const draft = new Draft(record, ctx, def);
    draft.init(input);
    return draft.finishRecord(true);
  }
  const draft = new Draft(current, ctx);
  settleJournaled(draft.record, entry.event, ctx.inboxId);
  draft.apply(ctx.inboxId, entry.event);
  return draft.finishRecord();
}

/** The bookkeeping `decide` does before applying a message, from the machine event alone. */
function settleJournaled(record: AgentRecord, event: { type: string; [key: string]: unknown }, inboxId: string): void {
  if ((event.type === 'plan.result' || event.type === 'tool.result') && typeof event.key === 'string') delete record.pending[event.key];
  if (event.type === 'child.result' && typeof event.ref === 'string') {
    const child = record.children[event.ref];
    if (child && typeof event.outcome === 'string') child.status = event.outcome as AgentStatus;
  }
  if (inboxId.startsWith('timer:')) {
    const key = inboxId.slice('timer:'.length);
    for (const [timerId, t] of Object.entries(record.timers)) if (t.key === key) delete record.timers[timerId];
  }
}

type Action = { type: string; params?: unknown };

/** One step's working copy of the record. */
class Draft {
  readonly record: AgentRecord;
  private readonly statusBefore: AgentStatus;
  private def: AgentDefinition | undefined;

  constructor(
    current: AgentRecord,
    private readonly ctx: StepContext,
    def?: AgentDefinition,
  ) {
    this.record = structuredClone(current);
    this.record.outbox = [];
    this.record.updatedAt = ctx.now;
    this.statusBefore = current.status;
    this.def = def;
  }

  commit(): Decision {
    return { type: 'commit', record: this.finishRecord(), created: false };
  }

  finishRecord(created = false): AgentRecord {
    const r = this.record;
    r.applied = [...r.applied, this.ctx.inboxId].slice(-APPLIED_IDS_KEPT);
    if (created || r.status !== this.statusBefore) this.announce(r.status);
    return r;
  }

  setStatus(status: AgentStatus): void {
    this.record.status = status;
  }

  /** Publishes `event.state` (once per commit, when the status changed). */
  private announce(status: AgentStatus): void {
    if (this.record.outbox.some((e) => e.message.kind === 'event.state')) return;
    // Keyed by the inbox message: a pause applies no step, so the step number is not unique here.
    this.event('state', { kind: 'event.state', step: this.record.step, state: stateValue(this.record.snapshot), status }, `${this.ctx.agentId}:${this.ctx.inboxId}:ev.state`);
  }

  /**
   * A new step. Keys are numbered per step (not per commit: a resume applies several steps in one),
   * so a replay that applies one journaled step at a time computes the same keys.
   */
  private beginStep(): void {
    this.record.step += 1;
    this.n = 0;
  }

  init(input: AgentInput): void {
    const def = this.definition();
    this.beginStep();
    let next: AnyMachineSnapshot;
    let actions: Action[];
    try {
      [next, actions] = initialTransition(def.machine, input) as [AnyMachineSnapshot, Action[]];
    } catch (err) {
      this.failUnseen(machineError(err, 'starting the machine'));
      this.journal({ type: 'xstate.init', input });
      return;
    }
    this.afterTransition(def, next, actions, { type: 'xstate.init', input });
  }

  /** Applies one event; returns false when the agent stopped (failed or finished). */
  apply(_id: string, event: { type: string; [key: string]: unknown }): boolean {
    const def = this.definition();
    this.beginStep();
    this.settleApproval(event);
    let next: AnyMachineSnapshot;
    let actions: Action[];
    try {
      const restored = def.machine.resolveState(this.record.snapshot as never);
      [next, actions] = transition(def.machine, restored, event as never) as [AnyMachineSnapshot, Action[]];
    } catch (err) {
      this.failUnseen(machineError(err, `handling '${event.type}'`));
      this.journal(event);
      return false;
    }
    this.afterTransition(def, next, actions, event);
    return !TERMINAL_STATUSES.has(this.record.status);
  }

  /**
   * Records a person's decision on the agent's open request. Done where the event is applied (not
   * where the message arrives), so replaying the journal, and a decision deferred while paused,
   * keep the same bookkeeping. Events from other agents (`from`) never decide anything.
   */
  private settleApproval(event: { type: string; [key: string]: unknown }): void {
    if (event.type !== 'approval' || event.from !== undefined) return;
    const open = this.record.approvals?.find((a) => a.requestId === event.requestId && a.argsHash === event.argsHash && a.decision === undefined);
    if (!open || (event.decision !== 'approve' && event.decision !== 'deny')) return;
    open.decision = event.decision;
    if (event.by !== undefined) open.by = event.by as Principal;
    open.decidedAt = this.ctx.now;
  }

  /** Keeps an approval request the machine asks (replacing an older one of the same id), bounded. */
  private recordApprovalRequest(requestId: string, argsHash: string, calls: readonly { tool: string; args: unknown }[]): void {
    const kept = (this.record.approvals ?? []).filter((a) => a.requestId !== requestId);
    kept.push({ requestId, argsHash, calls: calls.map((c) => callHash(c.tool, c.args)), requestedAt: this.ctx.now });
    this.record.approvals = kept.slice(-APPROVALS_KEPT);
  }

  /**
   * The evidence a tool command carries: only when the machine names a request that a person
   * approved and that asked about exactly this call.
   */
  private approvalEvidence(requestId: string | undefined, tool: string, args: unknown): Message<'tool.request'>['approval'] {
    if (requestId === undefined) return undefined;
    const approved = this.record.approvals?.find((a) => a.requestId === requestId && a.decision === 'approve');
    const argsHash = callHash(tool, args);
    if (!approved || !approved.calls.includes(argsHash)) return undefined;
    return { requestId, argsHash, by: approved.by ?? { id: 'unknown', channel: 'unknown' }, at: approved.decidedAt ?? this.ctx.now };
  }

  /** Journals the fork's seed as this record's current step (no transition happens). */
  journalFork(event: Record<string, unknown> & { type: string }): void {
    this.journal(event);
  }

  /**
   * Sends again, under this agent's id and fresh keys, the commands another agent (`fromId`) had
   * outstanding: plan and tool requests become pending here, timers live here, child goals start
   * children of this agent.
   */
  reissue(fromId: string, commands: readonly Record<string, unknown>[]): void {
    const { agentId, subjects } = this.ctx;
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
          this.push(subject, key, message);
          this.record.pending[key] = { kind: message.kind, at: this.ctx.now };
          break;
        }
        case 'timer.request': {
          const key = rekey(c.key);
          const message = { ...c, agentId, key } as MessageInput<'timer.request'>;
          this.push(subjects.workTimer(), key, message);
          const type = (c.event as { type?: unknown } | undefined)?.type;
          this.record.timers[String(c.timerId)] = { key, dueAt: Number(c.dueAt), ...(typeof type === 'string' ? { type } : {}) };
          break;
        }
        case 'goal': {
          const parent = c.parent as { ref: string } | undefined;
          if (!parent) break;
          const childId = childAgentId(agentId, parent.ref);
          this.push(subjects.agentIn(childId, 'goal'), `goal:${childId}`, { ...(c as MessageInput<'goal'>), agentId: childId, parent: { agentId, ref: parent.ref }, at: this.ctx.now });
          this.record.children[parent.ref] = { agentId: childId, status: 'running' };
          break;
        }
        default:
          break;
      }
    }
  }

  cancel(reason: string): void {
    this.record.status = 'cancelled';
    this.record.timers = {};
    this.record.pending = {};
    this.record.deferred = [];
    this.record.error = { code: 'ERR_CANCELLED', message: reason, retryable: false };
    this.stopChildren(reason);
    this.tellParent('cancelled');
    this.notifyUnseen();
  }

  /**
   * Tells the goal's `failed` notification rules of an end the machine never saw — a cancel, a
   * machine that threw or asked for an invalid command — so it could not notify anyone itself.
   * Keys name the step and the channel: a cancel takes no step of its own.
   */
  private notifyUnseen(): void {
    const r = this.record;
    const error = r.error;
    if (!error) return;
    const what = r.status === 'cancelled' ? 'was cancelled' : 'failed';
    for (const rule of r.notify ?? []) {
      if (!rule.on.includes('failed')) continue;
      const key = `${this.ctx.agentId}:${r.step}:${r.status}-${rule.channel}`;
      this.push(this.ctx.subjects.workNotify(rule.channel), key, {
        v: MESSAGE_VERSION,
        kind: 'notify.request',
        agentId: this.ctx.agentId,
        key,
        step: r.step,
        channel: rule.channel,
        topic: 'failed',
        title: `Agent ${this.ctx.agentId} ${what}`,
        text: `${error.message}\nGoal: ${r.goal}`,
        at: this.ctx.now,
      } as MessageInput<'notify.request'>);
    }
  }

  private afterTransition(def: AgentDefinition, next: AnyMachineSnapshot, actions: Action[], event: Record<string, unknown> & { type: string }): void {
    if (next.status === 'error') {
      this.failUnseen(machineError(next.error, `handling '${event.type}'`));
      this.journal(event);
      return;
    }
    this.record.snapshot = def.machine.getPersistedSnapshot(next);
    const problems = this.commands(actions);
    if (problems.length > 0) {
      this.failUnseen({ code: RuntimeErrorCode.MachineError, message: `invalid command: ${problems.join('; ')}`, retryable: false });
    } else if (next.status === 'done' && isFailureOutput(next.output)) {
      this.fail(next.output[FAILURE_OUTPUT_KEY]);
    } else if (next.status === 'done') {
      this.record.status = 'done';
      this.record.output = next.output;
      this.record.timers = {};
      this.record.pending = {};
      this.stopChildren('the parent finished');
      this.event('done', { kind: 'event.done', output: next.output });
      this.tellParent('done');
    }
    this.journal(event);
  }

  /** Fails the agent for a reason the machine never saw (it threw, or asked for an invalid command), and says so. */
  private failUnseen(error: ErrorInfo): void {
    this.fail(error);
    this.notifyUnseen();
  }

  private fail(error: ErrorInfo): void {
    this.record.status = 'failed';
    this.record.error = error;
    this.record.timers = {};
    this.record.pending = {};
    this.stopChildren('the parent failed');
    this.event('failed', { kind: 'event.failed', error });
    this.tellParent('failed');
  }

  private definition(): AgentDefinition {
    if (this.def) return this.def;
    const { id, version } = this.record.machine;
    const exact = this.ctx.registry.find(id, version);
    if (exact) return (this.def = exact);
    const latest = this.ctx.registry.latest(id);
    if (latest.version > version) {
      let snapshot = this.record.snapshot;
      for (let v = version; v < latest.version; v++) {
        const migrate = latest.migrations[v];
        if (!migrate) {
          throw new RuntimeError(
            RuntimeErrorCode.MachineVersion,
            `agent ${this.ctx.agentId} was written by machine ${id}@${version}; this host runs ${id}@${latest.version} and has no migration from ${v}. ` +
              `Register a migration for ${v} in defineAgent({ migrations }) or keep ${id}@${version} registered`,
            { agentId: this.ctx.agentId },
          );
        }
        snapshot = migrate(snapshot);
      }
      this.record.snapshot = snapshot;
      this.record.machine = { id, version: latest.version };
      return (this.def = latest);
    }
    throw new RuntimeError(
      RuntimeErrorCode.MachineVersion,
      `agent ${this.ctx.agentId} was written by machine ${id}@${version}, newer than this host's ${id}@${latest.version}; run a host with the newer version`,
      { agentId: this.ctx.agentId },
    );
  }

  // --- commands -------------------------------------------------------------------------------

  private n = 0;
  private key(): string {
    return `${this.ctx.agentId}:${this.record.step}:${this.n++}`;
  }

  private push<K extends MessageKind>(subject: string, msgId: string, message: MessageInput<K>): string | undefined {
    const check = messageSchemas[message.kind as K].safeParse(message);
    if (!check.success) return `${message.kind}: ${check.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join(', ')}`;
    this.record.outbox.push({ subject, msgId, message: message as AgentRecord['outbox'][number]['message'] });
    return undefined;
  }

  private event(
    token: (typeof EVENT_KIND_OF)[keyof typeof EVENT_KIND_OF],
    body: Record<string, unknown> & { kind: string },
    msgId = `${this.ctx.agentId}:${this.record.step}:ev.${token}`,
  ): void {
    this.push(this.ctx.subjects.agentEvent(this.ctx.agentId, token), msgId, {
      v: MESSAGE_VERSION,
      agentId: this.ctx.agentId,
      at: this.ctx.now,
      ...body,
    } as MessageInput);
  }

  private journal(event: Record<string, unknown> & { type: string }): void {
    const r = this.record;
    this.event('step', {
      kind: 'event.step',
      step: r.step,
      inboxId: this.ctx.inboxId,
      machine: r.machine,
      event,
      state: stateValue(r.snapshot),
      status: r.status,
      commands: r.outbox
        .filter((e) => !e.message.kind.startsWith('event.'))
        .map((e) => ({ kind: e.message.kind as never, key: e.msgId, subject: e.subject })),
    });
  }

  /** Turns the machine's actions into outbox entries; returns what was wrong with any. */
  private commands(actions: Action[]): string[] {
    const problems: string[] = [];
    const { agentId, subjects, now } = this.ctx;
    const step = this.record.step;
    const base = { v: MESSAGE_VERSION, agentId, step, at: now } as const;
    const note = (p: string | undefined) => p && problems.push(p);
    for (const action of actions) {
      const params = (action.params ?? {}) as Record<string, unknown>;
      switch (action.type) {
        case ErrandAction.Plan: {
          const p = params as unknown as PlanParams;
          const key = this.key();
          note(this.push(subjects.workPlan(), key, { ...base, kind: 'plan.request', key, ...p }));
          this.record.pending[key] = { kind: 'plan.request', at: now };
          break;
        }
        case ErrandAction.Tool: {
          // `approval` names a request; the machine never supplies evidence itself.
          const { approval: requestId, ...p } = params as unknown as ToolCallParams;
          const key = this.key();
          if (safeSubject(() => subjects.workTool(p.tool), problems)) {
            const approval = this.approvalEvidence(typeof requestId === 'string' ? requestId : undefined, p.tool, p.args);
            note(this.push(subjects.workTool(p.tool), key, { ...base, kind: 'tool.request', key, attempt: 1, ...p, ...(approval ? { approval } : {}) }));
            this.record.pending[key] = { kind: 'tool.request', at: now };
          }
          break;
        }
        case ErrandAction.Notify: {
          const p = params as unknown as NotifyParams;
          const key = this.key();
          if (safeSubject(() => subjects.workNotify(p.channel), problems)) {
            note(this.push(subjects.workNotify(p.channel), key, { ...base, kind: 'notify.request', key, ...p }));
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
              if (typeof event.requestId === 'string' && typeof event.argsHash === 'string') this.recordApprovalRequest(event.requestId, event.argsHash, calls);
            } else if (event.status === 'expired') {
              const open = this.record.approvals?.find((a) => a.requestId === event.requestId && a.decision === undefined);
              if (open) (open.decision = 'expired'), (open.decidedAt = now);
            }
          }
          const key = this.key();
          note(this.push(subjects.agentEvent(agentId, token), key, { v: MESSAGE_VERSION, agentId, at: now, step, kind: `event.${kind}`, ...rest } as MessageInput));
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
            this.push(subjects.agentIn(childId, 'goal'), `goal:${childId}`, {
              v: MESSAGE_VERSION,
              kind: 'goal',
              agentId: childId,
              ...goal,
              parent: { agentId, ref },
              submittedBy: { id: agentId, channel: 'agent' },
              at: now,
            }),
          );
          this.record.children[ref] = { agentId: childId, status: 'running' };
          break;
        }
        case ErrandAction.CancelChild: {
          const p = params as unknown as CancelChildParams;
          const child = this.record.children[p.ref];
          if (!child) {
            problems.push(`errand.cancelChild: no child '${p.ref}'`);
            break;
          }
          if (!TERMINAL_STATUSES.has(child.status)) this.cancelChild(child.agentId, p.reason ?? 'cancelled by its parent');
          child.status = 'cancelled';
          break;
        }
        case ErrandAction.Send: {
          const p = params as unknown as SendParams;
          const key = this.key();
          if (safeSubject(() => subjects.agentIn(p.to, 'message'), problems)) {
            note(this.push(subjects.agentIn(p.to, 'message'), key, { v: MESSAGE_VERSION, kind: 'agent.message', agentId: p.to, from: agentId, event: p.event, at: now }));
          }
          break;
        }
        case 'xstate.raise': {
          // Only delayed raises reach us: XState handles immediate ones inside the transition.
          const p = params as { event: { type: string }; id?: string; delay?: number };
          if (typeof p.delay !== 'number') break;
          const key = this.key();
          const timerId = p.id ?? key;
          const dueAt = now + Math.max(0, p.delay);
          this.record.timers[timerId] = { key, dueAt, type: p.event.type };
          note(this.push(subjects.workTimer(), key, { ...base, kind: 'timer.request', key, timerId, action: 'start', dueAt, event: p.event }));
          break;
        }
        case 'xstate.cancel': {
          const p = params as { sendId: string };
          delete this.record.timers[p.sendId];
          break;
        }
        default:
          // Other actions (assign, log, inline functions) are not commands: the host runs no effects.
          break;
      }
    }
    return problems;
  }

  private cancelChild(childId: string, reason: string): void {
    this.push(this.ctx.subjects.agentIn(childId, 'control'), `cancel:${childId}`, {
      v: MESSAGE_VERSION,
      kind: 'control',
      agentId: childId,
      action: 'cancel',
      reason,
      by: { id: this.ctx.agentId, channel: 'agent' },
      at: this.ctx.now,
    });
  }

  private stopChildren(reason: string): void {
    for (const child of Object.values(this.record.children)) {
      if (TERMINAL_STATUSES.has(child.status)) continue;
      this.cancelChild(child.agentId, reason);
      child.status = 'cancelled';
    }
  }

  private tellParent(outcome: 'done' | 'failed' | 'cancelled'): void {
    const parent = this.record.parent;
    if (!parent) return;
    this.push(this.ctx.subjects.agentIn(parent.agentId, 'child'), `child:${this.ctx.agentId}`, {
      v: MESSAGE_VERSION,
      kind: 'child.result',
      agentId: parent.agentId,
      childId: this.ctx.agentId,
      ref: parent.ref,
      outcome,
      output: outcome === 'done' ? this.record.output : undefined,
      error: outcome === 'done' ? undefined : this.record.error,
      at: this.ctx.now,
    });
  }
}

function isFailureOutput(output: unknown): output is { [FAILURE_OUTPUT_KEY]: ErrorInfo } {
  const e = (output as Record<string, unknown> | null | undefined)?.[FAILURE_OUTPUT_KEY] as ErrorInfo | undefined;
  return typeof e === 'object' && e !== null && typeof e.code === 'string' && typeof e.message === 'string';
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

function stateValue(snapshot: unknown): unknown {
  return (snapshot as { value?: unknown } | undefined)?.value ?? null;
}

function machineError(err: unknown, doing: string): ErrorInfo {
  const message = err instanceof Error ? err.message : String(err);
  return { code: RuntimeErrorCode.MachineError, message: `the machine threw while ${doing}: ${message}`, retryable: false };
}
