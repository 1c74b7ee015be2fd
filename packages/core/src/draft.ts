import { createActor, type AnyActorScope, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';
import { APPLIED_IDS_KEPT, messageIds, messageSchemas, MESSAGE_VERSION, stateValueOf, TERMINAL_STATUSES, type AgentRecord, type AgentStatus, type ErrorInfo, type EVENT_KIND_OF, type MessageInput, type MessageKind, type Principal } from '@errand/protocols';
import { FAILURE_OUTPUT_KEY } from './actions.js';
import type { AgentDefinition, AgentInput } from './agent-definition.js';
import { settleApproval } from './approvals.js';
import { compileActions, notifyUnseen, stopChildren, tellParent, type Action } from './commands.js';
import type { Decision } from './decide.js';
import { RuntimeError, RuntimeErrorCode } from './errors.js';
import { emptyRecord, type MachineEvent, type StepContext } from './record.js';
import { answerWait, noteBudget, settleWaitStatus } from './waiting.js';

/**
 * One step's working copy of the record and its bookkeeping: step numbers, command keys, status
 * changes, the journal entry of each step, and how the agent ends. The live step (`decide`),
 * replay (`replayJournaled`) and forks all write records through it.
 */
export class Draft {
  readonly record: AgentRecord;
  private readonly statusBefore: AgentStatus;
  /** Who gave the pause, resume or cancel this commit applies (named on its state event). */
  private statusBy: Principal | undefined;
  private def: AgentDefinition | undefined;
  /** The next command key's number within the current step. */
  private n = 0;

  constructor(
    current: AgentRecord,
    readonly ctx: StepContext,
    def?: AgentDefinition,
  ) {
    this.record = workingCopy(current);
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

  /** Records a pause, resume or cancel and who gave it; the state event of this commit names them. */
  controlledBy(control: NonNullable<AgentRecord['control']>): void {
    this.record.control = control;
    this.statusBy = control.by;
  }

  setStatus(status: AgentStatus): void {
    this.record.status = status;
  }

  /** Resumes a paused agent: `waiting` when it still waits for a person, `running` otherwise. */
  resume(): void {
    this.record.status = 'running';
    settleWaitStatus(this.record);
  }

  /** Publishes `event.state` (once per commit, when the status changed). */
  private announce(status: AgentStatus): void {
    if (this.record.outbox.some((e) => e.message.kind === 'event.state')) return;
    // Keyed by the inbox message: a pause applies no step, so the step number is not unique here.
    const by = this.statusBy ? { by: this.statusBy } : {};
    this.event('state', { kind: 'event.state', step: this.record.step, state: stateValueOf(this.record.snapshot), status, ...by }, messageIds.stateEvent(this.ctx.agentId, this.ctx.inboxId));
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
      [next, actions] = machineStep(def.machine, (machine, scope) => machine.getInitialSnapshot(scope, input));
    } catch (err) {
      this.failUnseen(machineError(err, 'starting the machine'));
      this.journal({ type: 'xstate.init', input });
      return;
    }
    this.afterTransition(def, next, actions, { type: 'xstate.init', input });
  }

  /** Applies one event as a step; returns false when the agent stopped (failed or finished). */
  apply(event: MachineEvent): boolean {
    const def = this.definition();
    this.beginStep();
    settleApproval(this.record, event, this.ctx.now);
    answerWait(this.record, event);
    noteBudget(this.record, event);
    let next: AnyMachineSnapshot;
    let actions: Action[];
    try {
      const restored = def.machine.resolveState(this.record.snapshot as never);
      [next, actions] = machineStep(def.machine, (machine, scope) => machine.transition(restored, event as never, scope));
    } catch (err) {
      this.failUnseen(machineError(err, `handling '${event.type}'`));
      this.journal(event);
      return false;
    }
    this.afterTransition(def, next, actions, event);
    return !TERMINAL_STATUSES.has(this.record.status);
  }

  cancel(reason: string): void {
    this.record.status = 'cancelled';
    this.record.timers = {};
    this.record.pending = {};
    this.record.deferred = [];
    this.record.error = { code: 'ERR_CANCELLED', message: reason, retryable: false };
    settleWaitStatus(this.record);
    stopChildren(this, reason);
    tellParent(this, 'cancelled');
    notifyUnseen(this);
  }

  private afterTransition(def: AgentDefinition, next: AnyMachineSnapshot, actions: Action[], event: MachineEvent): void {
    if (next.status === 'error') {
      this.failUnseen(machineError(next.error, `handling '${event.type}'`));
      this.journal(event);
      return;
    }
    this.record.snapshot = def.machine.getPersistedSnapshot(next);
    const problems = compileActions(this, actions);
    if (problems.length > 0) {
      this.failUnseen({ code: RuntimeErrorCode.MachineError, message: `invalid command: ${problems.join('; ')}`, retryable: false });
    } else if (next.status === 'done' && isFailureOutput(next.output)) {
      this.fail(next.output[FAILURE_OUTPUT_KEY]);
    } else if (next.status === 'done') {
      this.record.status = 'done';
      this.record.output = next.output;
      this.record.timers = {};
      this.record.pending = {};
      stopChildren(this, 'the parent finished');
      this.event('done', { kind: 'event.done', output: next.output });
      tellParent(this, 'done');
    }
    settleWaitStatus(this.record);
    this.journal(event);
  }

  /** Fails the agent for a reason the machine never saw (it threw, or asked for an invalid command), and says so. */
  private failUnseen(error: ErrorInfo): void {
    this.fail(error);
    notifyUnseen(this);
  }

  private fail(error: ErrorInfo): void {
    this.record.status = 'failed';
    this.record.error = error;
    settleWaitStatus(this.record);
    this.record.timers = {};
    this.record.pending = {};
    stopChildren(this, 'the parent failed');
    this.event('failed', { kind: 'event.failed', error });
    tellParent(this, 'failed');
  }

  private definition(): AgentDefinition {
    if (this.def) return this.def;
    const { id, version } = this.record.machine;
    const exact = this.ctx.registry.find(id, version);
    if (exact) return (this.def = exact);
    const latest = this.ctx.registry.latest(id);
    if (latest.version > version) {
      // A migration may change what it is given: it gets a copy, never the snapshot the cached record shares.
      let snapshot = structuredClone(this.record.snapshot);
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

  // --- the outbox -----------------------------------------------------------------------------

  /** The next command key of this step: `<agentId>:<step>:<n>`. */
  key(): string {
    return messageIds.command(this.ctx.agentId, this.record.step, this.n++);
  }

  /** Adds a message to the outbox; returns what is wrong with it instead when it fails its schema. */
  push<K extends MessageKind>(subject: string, msgId: string, message: MessageInput<K>): string | undefined {
    const check = messageSchemas[message.kind as K].safeParse(message);
    if (!check.success) return `${message.kind}: ${check.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join(', ')}`;
    this.record.outbox.push({ subject, msgId, message: message as AgentRecord['outbox'][number]['message'] });
    return undefined;
  }

  private event(
    token: (typeof EVENT_KIND_OF)[keyof typeof EVENT_KIND_OF],
    body: Record<string, unknown> & { kind: string },
    msgId = messageIds.event(this.ctx.agentId, this.record.step, token),
  ): void {
    const subject = this.ctx.subjects.agentEvent(this.ctx.agentId, token);
    const message = { v: MESSAGE_VERSION, agentId: this.ctx.agentId, at: this.ctx.now, ...body } as MessageInput;
    // The journal entry and the state change of every step are built here from parts already
    // checked (the inbox message at the edge, the record): not parsed again each step.
    if (token === 'step' || token === 'state') this.record.outbox.push({ subject, msgId, message: message as AgentRecord['outbox'][number]['message'] });
    else this.push(subject, msgId, message);
  }

  /** Journals the current step: the event that came in, the state it reached, the commands it sent. */
  journal(event: MachineEvent): void {
    const r = this.record;
    this.event('step', {
      kind: 'event.step',
      step: r.step,
      inboxId: this.ctx.inboxId,
      machine: r.machine,
      event,
      state: stateValueOf(r.snapshot),
      status: r.status,
      commands: r.outbox
        .filter((e) => !e.message.kind.startsWith('event.'))
        .map((e) => ({ kind: e.message.kind as never, key: e.msgId, subject: e.subject })),
    });
  }
}

/**
 * A new agent's first step: its record (from `about`, what the goal said) and the machine started
 * with `input`. The live goal and its replay from the journal both start here.
 */
export function startRecord(
  ctx: StepContext,
  def: AgentDefinition,
  input: AgentInput,
  about: Pick<AgentRecord, 'goal' | 'labels' | 'parent' | 'submittedBy' | 'notify' | 'budget'>,
): AgentRecord {
  const record: AgentRecord = { ...emptyRecord(ctx, def), ...about };
  const draft = new Draft(record, ctx, def);
  draft.init(input);
  return draft.finishRecord(true);
}

/**
 * The record a step may change, without a deep copy of it each step: the containers a step
 * mutates (pending commands, timers, children, approvals, deferred events) are copied one level
 * deep; the snapshot is shared, since a step replaces it whole and XState never mutates one (a
 * machine must not mutate its context in place: `assign` makes a new one); so are `waiting`,
 * `usage` and `budget`, which a step replaces whole too. The outbox starts empty.
 */
function workingCopy(current: AgentRecord): AgentRecord {
  const children: AgentRecord['children'] = {};
  for (const [ref, child] of Object.entries(current.children)) children[ref] = { ...child };
  return {
    ...current,
    children,
    timers: { ...current.timers },
    pending: { ...current.pending },
    deferred: [...current.deferred],
    outbox: [],
    ...(current.approvals ? { approvals: current.approvals.map((a) => ({ ...a })) } : {}),
  };
}

/**
 * XState's `transition` and `initialTransition`, without their cost per call: each builds an inert
 * actor for the machine, and building one computes the machine's initial snapshot — the context
 * factory runs (with no input: a factory that reads `input.x` throws, to be caught) on every step.
 * Here the inert actor is built once per machine and its scope reused; only the action collector
 * is new per call. Errand machines do not invoke or spawn XState actors (their children are
 * agents, started by commands), so nothing registers in the shared scope's system.
 */
const inertActors = new WeakMap<AnyStateMachine, AnyActorScope['self']>();

function machineStep(machine: AnyStateMachine, run: (machine: AnyStateMachine, scope: AnyActorScope) => AnyMachineSnapshot): [AnyMachineSnapshot, Action[]] {
  let self = inertActors.get(machine);
  if (!self) inertActors.set(machine, (self = createActor(machine)));
  const actions: Action[] = [];
  const scope: AnyActorScope = {
    self,
    system: self.system,
    id: '',
    sessionId: '',
    logger: () => {},
    defer: () => {},
    stopChild: () => {},
    emit: () => {},
    actionExecutor: (action) => void actions.push(action as Action),
  };
  return [run(machine, scope), actions];
}

function isFailureOutput(output: unknown): output is { [FAILURE_OUTPUT_KEY]: ErrorInfo } {
  const e = (output as Record<string, unknown> | null | undefined)?.[FAILURE_OUTPUT_KEY] as ErrorInfo | undefined;
  return typeof e === 'object' && e !== null && typeof e.code === 'string' && typeof e.message === 'string';
}

function machineError(err: unknown, doing: string): ErrorInfo {
  const message = err instanceof Error ? err.message : String(err);
  return { code: RuntimeErrorCode.MachineError, message: `the machine threw while ${doing}: ${message}`, retryable: false };
}
