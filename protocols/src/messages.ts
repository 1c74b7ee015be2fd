import { z } from 'zod';
import { isAgentId } from './subjects.js';

/**
 * Message schemas: the only place a message shape is written. Every message carries `v` (the
 * schema version) and `kind` (globally unique, so any message decodes without context). Times are
 * epoch milliseconds; nothing is binary, so JSON and msgpack carry the same data.
 */

/** The message version this build writes and the newest it reads. */
export const MESSAGE_VERSION = 1;

const v = z.literal(MESSAGE_VERSION);
const epochMs = z.number().int().nonnegative();
const nonEmpty = z.string().min(1);
const agentId = z.string().refine(isAgentId, {
  message: "agent id must be 1-128 letters, digits, '_' or '-' (no '.', '*', '>' or whitespace)",
});
const token = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, "use only letters, digits, '_' and '-'");
/** An idempotency key: `<agentId>:<step>:<n>` for commands, unique per effect. */
const idempotencyKey = z.string().min(1).max(512);
const record = z.record(z.string(), z.unknown());

/** Who did something: a person or a process, and the channel it came through. */
export const PrincipalSchema = z.object({
  id: nonEmpty,
  channel: nonEmpty,
  name: z.string().optional(),
});
export type Principal = z.infer<typeof PrincipalSchema>;

/** A failure as data. `retryable` decides retries; never parse `message`. */
export const ErrorInfoSchema = z.object({
  code: nonEmpty,
  message: z.string(),
  retryable: z.boolean(),
  retryAfterMs: z.number().int().nonnegative().optional(),
  details: z.unknown().optional(),
});
export type ErrorInfo = z.infer<typeof ErrorInfoSchema>;

export const UsageSchema = z.object({
  model: nonEmpty,
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  /** Absent when the model has no price in the configured table. */
  costUsd: z.number().nonnegative().optional(),
});
export type Usage = z.infer<typeof UsageSchema>;

export const BudgetSchema = z.object({
  maxSteps: z.number().int().positive().optional(),
  maxTokens: z.number().int().positive().optional(),
  maxCostUsd: z.number().positive().optional(),
  maxWallMs: z.number().int().positive().optional(),
});
export type Budget = z.infer<typeof BudgetSchema>;

export const NOTIFY_TOPICS = ['done', 'failed', 'approval', 'input', 'budget', 'stuck', 'reminder', 'digest'] as const;
export const NotifyRuleSchema = z.object({
  channel: token,
  on: z.array(z.enum(NOTIFY_TOPICS)).min(1),
});
export type NotifyRule = z.infer<typeof NotifyRuleSchema>;

export const ToolCallSchema = z.object({
  id: nonEmpty,
  name: nonEmpty,
  /** The model's arguments, as the JSON text it produced (it may be invalid JSON: that is data too). */
  arguments: z.string(),
});
export type ToolCall = z.infer<typeof ToolCallSchema>;

export const ChatMessageSchema = z.object({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string().nullable(),
  toolCalls: z.array(ToolCallSchema).optional(),
  toolCallId: z.string().optional(),
  name: z.string().optional(),
});
export type ChatMessage = z.infer<typeof ChatMessageSchema>;

export const ToolDefinitionSchema = z.object({
  name: token,
  description: z.string(),
  /** JSON Schema of the arguments. */
  parameters: record,
});
export type ToolDefinition = z.infer<typeof ToolDefinitionSchema>;

/** The statuses of a task in the tree the model keeps with `update_plan`. */
export const TASK_STATUSES = ['pending', 'in_progress', 'done', 'failed', 'cancelled'] as const;
export interface Task {
  id: string;
  title: string;
  status: (typeof TASK_STATUSES)[number];
  children?: Task[] | undefined;
}
export const TaskSchema: z.ZodType<Task> = z.object({
  id: nonEmpty,
  title: z.string(),
  status: z.enum(TASK_STATUSES),
  get children() {
    return z.array(TaskSchema).optional();
  },
});

export const AGENT_STATUSES = ['running', 'waiting', 'paused', 'done', 'failed', 'cancelled'] as const;
/**
 * What an agent may wait for a person to do (`record.waiting.kind`): decide on tool calls
 * (`approval`), answer a question (`input`), or decide whether to go on past a budget (`budget`).
 */
export const WAIT_KINDS = ['approval', 'input', 'budget'] as const;
export type WaitKind = (typeof WAIT_KINDS)[number];
export type AgentStatus = (typeof AGENT_STATUSES)[number];
/** The statuses an agent never leaves: it has finished, one way or another. */
export const TERMINAL_STATUSES: ReadonlySet<AgentStatus> = new Set<AgentStatus>(['done', 'failed', 'cancelled']);

/** An XState event: a `type` and any payload. */
export const MachineEventSchema = z.looseObject({ type: nonEmpty });

/** Exactly one of `result` / `error` is present. */
function oneOutcome(m: { result?: unknown; error?: unknown }): boolean {
  return (m.result === undefined) !== (m.error === undefined);
}
const oneOutcomeMessage = { message: 'exactly one of result or error must be present' };

// ---------------------------------------------------------------------------------------------
// Inbox: errand.agent.<id>.in.<kind>

const goalFields = {
  goal: z.string().min(1).max(100_000),
  /** The agent definition to run; the host's default when absent. */
  agent: token.optional(),
  model: z.string().optional(),
  /** A system prompt for agents that talk to a model. */
  system: z.string().max(100_000).optional(),
  tools: z.array(token).optional(),
  input: record.optional(),
  labels: z.record(z.string(), z.string()).optional(),
  budget: BudgetSchema.optional(),
  notify: z.array(NotifyRuleSchema).optional(),
};

/**
 * What the agent waits for a person to do, machine-independent: set by the runtime from the
 * machine's `errand.wait` action and cleared by it (docs/agents.md, "Waiting for a person"). While
 * it is set (and the agent is neither paused nor ended) the record's status is `waiting`.
 */
export const WaitingSchema = z.object({
  kind: z.enum(WAIT_KINDS),
  /** The request a decision or an answer names (`requestId` of the `approval` / `input` message). */
  requestId: z.string().min(1),
  /** When the agent began waiting for this request (a repeated wait for the same request keeps it). */
  since: epochMs,
  /** When the machine stops waiting (it expires, escalates or gives up), when it says. */
  deadline: epochMs.optional(),
  /** What the person is asked, in words (input and budget waits). */
  question: z.string().optional(),
  /** The exact tool calls an approval is asked for, arguments as the tool would get them. */
  calls: z.array(z.object({ tool: z.string().min(1), args: z.unknown() })).optional(),
  /** The hash a decision must name (approval and budget waits): a decision about other arguments is refused. */
  argsHash: z.string().min(1).optional(),
  /** A one-line summary for lists and notifications. */
  summary: z.string().optional(),
});
/** What a fork starts from: see {@link GoalMessageSchema} `fork` and docs/replay.md. */
export const ForkSeedSchema = z.object({
  from: z.object({ agentId, step: z.number().int().nonnegative() }),
  /** The machine that wrote `snapshot`. */
  machine: z.object({ id: token, version: z.number().int().nonnegative() }),
  /** XState's persisted snapshot after step `from.step`. */
  snapshot: z.unknown(),
  /**
   * Commands still outstanding at that step (plan/tool requests, timers, child goals), as the
   * original sent them; the host re-issues them under the fork's id so the fork continues.
   */
  reissue: z.array(z.looseObject({ kind: nonEmpty })).default([]),
  /** An event applied at once as the fork's next step (a human-edited result, say). */
  event: MachineEventSchema.optional(),
  /**
   * What the original waited for a person to do at that step (`record.waiting`): the fork waits
   * for it too (and, for an approval, asks it again: the original's decisions do not carry over).
   */
  waiting: WaitingSchema.optional(),
});
export type ForkSeed = z.infer<typeof ForkSeedSchema>;

export const GoalMessageSchema = z.object({
  v,
  kind: z.literal('goal'),
  agentId,
  ...goalFields,
  /** Set when a parent agent delegated this goal. */
  parent: z.object({ agentId, ref: nonEmpty }).optional(),
  submittedBy: PrincipalSchema.optional(),
  /**
   * Set by `errand fork`: start from another agent's snapshot at a step (obtained by replaying its
   * journal) instead of from the machine's initial state. Optional; older hosts ignore it.
   */
  fork: ForkSeedSchema.optional(),
  at: epochMs,
});

export const PlanResultMessageSchema = z
  .object({
    v,
    kind: z.literal('plan.result'),
    agentId,
    /** The idempotency key of the plan command this answers. */
    key: idempotencyKey,
    /** The command's `ref`, echoed: how a machine tells the answer it waits for from a stale one. */
    ref: z.string().optional(),
    result: z
      .object({
        message: ChatMessageSchema,
        finishReason: z.string(),
      })
      .optional(),
    error: ErrorInfoSchema.optional(),
    usage: UsageSchema.optional(),
    at: epochMs,
  })
  .refine(oneOutcome, oneOutcomeMessage);

export const ToolResultMessageSchema = z
  .object({
    v,
    kind: z.literal('tool.result'),
    agentId,
    key: idempotencyKey,
    callId: nonEmpty,
    tool: token,
    attempt: z.number().int().positive(),
    durationMs: z.number().nonnegative(),
    result: z
      .object({
        /** Absent when the tool returned nothing. */
        output: z.unknown().optional(),
        /** The output was cut to fit; `ref` points at the whole of it in the object store. */
        truncated: z.boolean().optional(),
        ref: z.string().optional(),
      })
      .optional(),
    error: ErrorInfoSchema.optional(),
    at: epochMs,
  })
  .refine(oneOutcome, oneOutcomeMessage);

export const ApprovalMessageSchema = z.object({
  v,
  kind: z.literal('approval'),
  agentId,
  requestId: nonEmpty,
  decision: z.enum(['approve', 'deny']),
  /** Hash of the exact arguments the human was shown; a decision about other arguments is refused. */
  argsHash: nonEmpty,
  by: PrincipalSchema,
  comment: z.string().optional(),
  at: epochMs,
});

export const InputMessageSchema = z.object({
  v,
  kind: z.literal('input'),
  agentId,
  /** The question being answered; absent for a message the human volunteers (`errand tell`). */
  requestId: z.string().optional(),
  text: z.string().min(1).max(100_000),
  /** Stop the work in flight and re-plan with this message. */
  interrupt: z.boolean().optional(),
  by: PrincipalSchema,
  at: epochMs,
});

export const TimerFiredMessageSchema = z.object({
  v,
  kind: z.literal('timer.fired'),
  agentId,
  key: idempotencyKey,
  timerId: nonEmpty,
  /** The machine event the timer delivers. */
  event: MachineEventSchema,
  dueAt: epochMs,
  firedAt: epochMs,
});

export const CONTROL_ACTIONS = ['cancel', 'pause', 'resume', 'budget'] as const;
export const ControlMessageSchema = z.object({
  v,
  kind: z.literal('control'),
  agentId,
  action: z.enum(CONTROL_ACTIONS),
  reason: z.string().optional(),
  /** For `budget`: the new limits. */
  budget: BudgetSchema.optional(),
  by: PrincipalSchema.optional(),
  at: epochMs,
}).refine((m) => (m.action === 'budget') === (m.budget !== undefined), {
  message: "budget must be present exactly when action is 'budget'",
});

export const ChildResultMessageSchema = z.object({
  v,
  kind: z.literal('child.result'),
  /** The parent that receives it. */
  agentId,
  childId: agentId,
  ref: nonEmpty,
  outcome: z.enum(['done', 'failed', 'cancelled']),
  output: z.unknown().optional(),
  /** Present exactly when the outcome is `failed`. */
  error: ErrorInfoSchema.optional(),
  at: epochMs,
}).refine((m) => (m.outcome === 'failed') === (m.error !== undefined), {
  message: "error must be present exactly when outcome is 'failed'",
});

/** An event one agent sends another (actors messaging actors). */
export const AgentMessageSchema = z.object({
  v,
  kind: z.literal('agent.message'),
  /** The recipient. */
  agentId,
  from: agentId,
  /** Delivered to the recipient's machine as is. */
  event: MachineEventSchema,
  at: epochMs,
});

// ---------------------------------------------------------------------------------------------
// Work: errand.work.*

const commandFields = {
  v,
  /** Idempotency key; services remember completed keys and answer a repeat with the stored result. */
  key: idempotencyKey,
  agentId,
  /** The agent step that issued the command. */
  step: z.number().int().nonnegative(),
  at: epochMs,
};

export const PlanRequestSchema = z.object({
  ...commandFields,
  kind: z.literal('plan.request'),
  /** The machine's own name for this request, echoed in the result. */
  ref: z.string().optional(),
  /** The agent's labels: the planner charges the call to each label's daily spend. */
  labels: z.record(z.string(), z.string()).optional(),
  /** A person allowed this call although a label's daily cost cap is reached. */
  overDailyCap: z.boolean().optional(),
  model: z.string().optional(),
  messages: z.array(ChatMessageSchema).min(1),
  tools: z.array(ToolDefinitionSchema),
  temperature: z.number().min(0).max(2).optional(),
  maxOutputTokens: z.number().int().positive().optional(),
});

export const ToolRequestSchema = z.object({
  ...commandFields,
  kind: z.literal('tool.request'),
  callId: nonEmpty,
  tool: token,
  args: z.unknown(),
  attempt: z.number().int().positive(),
  timeoutMs: z.number().int().positive().optional(),
  /**
   * Set by the host only when a person approved exactly this call (a request of the agent's that
   * was decided `approve` and names this tool with these arguments). The tool-runner runs an `ask`
   * tool only with it, on a validly signed command, and only when `argsHash` equals
   * `callHash(tool, args)` of the arguments it is about to run.
   */
  approval: z
    .object({
      requestId: nonEmpty,
      /** `callHash(tool, args)` of this call. */
      argsHash: nonEmpty,
      by: PrincipalSchema,
      at: epochMs,
    })
    .optional(),
});

export const NotifyRequestSchema = z.object({
  ...commandFields,
  kind: z.literal('notify.request'),
  channel: token,
  topic: z.enum(NOTIFY_TOPICS),
  title: z.string(),
  text: z.string(),
  link: z.string().optional(),
  approval: z
    .object({
      requestId: nonEmpty,
      argsHash: nonEmpty,
      tool: z.string(),
      summary: z.string(),
      deadlineAt: epochMs.optional(),
    })
    .optional(),
});

export const TimerRequestSchema = z.object({
  ...commandFields,
  kind: z.literal('timer.request'),
  timerId: nonEmpty,
  action: z.enum(['start', 'cancel']),
  dueAt: epochMs,
  event: MachineEventSchema,
});

// ---------------------------------------------------------------------------------------------
// Events: errand.agent.<id>.ev.<kind>

const eventFields = { v, agentId, at: epochMs };

export const CommandSummarySchema = z.object({
  kind: z.enum(['plan.request', 'tool.request', 'notify.request', 'timer.request', 'goal', 'control', 'child.result', 'agent.message']),
  key: idempotencyKey,
  subject: nonEmpty,
});

/** The journal: one per committed step; replay folds `event` through the machine to reach `state`. */
export const StepEventSchema = z.object({
  ...eventFields,
  kind: z.literal('event.step'),
  step: z.number().int().nonnegative(),
  /** The inbox message that caused the step (its Nats-Msg-Id or stream sequence). */
  inboxId: nonEmpty,
  machine: z.object({ id: token, version: z.number().int().nonnegative() }),
  event: MachineEventSchema,
  /** The state value after the step. */
  state: z.unknown(),
  status: z.enum(AGENT_STATUSES),
  commands: z.array(CommandSummarySchema),
});

export const StateEventSchema = z.object({
  ...eventFields,
  kind: z.literal('event.state'),
  step: z.number().int().nonnegative(),
  state: z.unknown(),
  status: z.enum(AGENT_STATUSES),
  /** Who changed the status, when a pause, resume or cancel did (see the record's `control`). */
  by: PrincipalSchema.optional(),
});

export const TaskTreeEventSchema = z.object({
  ...eventFields,
  kind: z.literal('event.plan'),
  step: z.number().int().nonnegative(),
  tasks: z.array(TaskSchema),
});

export const ToolEventSchema = z.object({
  ...eventFields,
  kind: z.literal('event.tool'),
  step: z.number().int().nonnegative(),
  callId: nonEmpty,
  tool: token,
  status: z.enum(['requested', 'ok', 'error', 'retrying', 'cancelled']),
  attempt: z.number().int().positive(),
  durationMs: z.number().nonnegative().optional(),
  error: ErrorInfoSchema.optional(),
});

export const ApprovalEventSchema = z.object({
  ...eventFields,
  kind: z.literal('event.approval'),
  requestId: nonEmpty,
  status: z.enum(['requested', 'approved', 'denied', 'expired', 'refused']),
  tool: z.string().optional(),
  argsHash: nonEmpty,
  by: PrincipalSchema.optional(),
  reason: z.string().optional(),
});

export const UsageEventSchema = z.object({
  ...eventFields,
  kind: z.literal('event.usage'),
  step: z.number().int().nonnegative(),
  usage: UsageSchema,
  total: z.object({
    inputTokens: z.number().int().nonnegative(),
    outputTokens: z.number().int().nonnegative(),
    costUsd: z.number().nonnegative(),
  }),
});

export const DoneEventSchema = z.object({
  ...eventFields,
  kind: z.literal('event.done'),
  output: z.unknown().optional(),
  summary: z.string().optional(),
});

export const FailedEventSchema = z.object({
  ...eventFields,
  kind: z.literal('event.failed'),
  error: ErrorInfoSchema,
});

// ---------------------------------------------------------------------------------------------
// Goal intake: errand.submit (core request/reply)

/**
 * A goal from any NATS client. `v` and `kind` may be left out so that
 * `nats req errand.submit '{"goal":"…"}'` works; the codec fills them in.
 */
export const SubmitRequestSchema = z.object({
  v: v.default(MESSAGE_VERSION),
  kind: z.literal('submit.request').default('submit.request'),
  /** Choose the id yourself to make the submit idempotent; one is assigned otherwise. */
  agentId: agentId.optional(),
  ...goalFields,
  submittedBy: PrincipalSchema.optional(),
});

export const SubmitReplySchema = z
  .object({
    v,
    kind: z.literal('submit.reply'),
    agentId: agentId.optional(),
    /** True when `agentId` was given and that agent already existed: nothing new was started. */
    existing: z.boolean().optional(),
    /** The id of the agent's trace: the submitter's, or for an agent that existed, the one it began with. */
    traceId: z.string().optional(),
    error: z.object({ code: nonEmpty, message: z.string() }).optional(),
  })
  .refine((m) => (m.agentId === undefined) !== (m.error === undefined), {
    message: 'exactly one of agentId or error must be present',
  });

// ---------------------------------------------------------------------------------------------
// Schedules: errand.work.schedule.<id> (stream ERRAND_WORK)

/**
 * A schedule's durable timer: one per schedule, for its next fire. Hosts hold it back (a delayed
 * redelivery) until `fireAt`, then fire the schedule and arm the next tick. A tick whose
 * `generation` or `fireAt` no longer matches the schedule's record is stale and dropped.
 */
export const ScheduleTickMessageSchema = z.object({
  v,
  kind: z.literal('schedule.tick'),
  scheduleId: token,
  /** The schedule's generation (bumped by resume) this tick was armed for. */
  generation: z.number().int().nonnegative(),
  /** The fire time (epoch ms) this tick is for. */
  fireAt: epochMs,
  at: epochMs,
});

/** Every message kind Errand sends, by its `kind`. */
export const messageSchemas = {
  goal: GoalMessageSchema,
  'plan.result': PlanResultMessageSchema,
  'tool.result': ToolResultMessageSchema,
  approval: ApprovalMessageSchema,
  input: InputMessageSchema,
  'timer.fired': TimerFiredMessageSchema,
  control: ControlMessageSchema,
  'child.result': ChildResultMessageSchema,
  'agent.message': AgentMessageSchema,
  'plan.request': PlanRequestSchema,
  'tool.request': ToolRequestSchema,
  'notify.request': NotifyRequestSchema,
  'timer.request': TimerRequestSchema,
  'event.step': StepEventSchema,
  'event.state': StateEventSchema,
  'event.plan': TaskTreeEventSchema,
  'event.tool': ToolEventSchema,
  'event.approval': ApprovalEventSchema,
  'event.usage': UsageEventSchema,
  'event.done': DoneEventSchema,
  'event.failed': FailedEventSchema,
  'submit.request': SubmitRequestSchema,
  'submit.reply': SubmitReplySchema,
  'schedule.tick': ScheduleTickMessageSchema,
} as const;

export type MessageKind = keyof typeof messageSchemas;
/** A decoded, validated message of `kind` K. */
export type Message<K extends MessageKind = MessageKind> = { [P in K]: z.output<(typeof messageSchemas)[P]> }[K];
/** What you may hand to the encoder for kind K (defaults may be omitted). */
export type MessageInput<K extends MessageKind = MessageKind> = { [P in K]: z.input<(typeof messageSchemas)[P]> }[K];

export const MESSAGE_KINDS = Object.keys(messageSchemas) as MessageKind[];

/** The inbox subject token for each message kind an agent receives. */
export const INBOX_KIND_OF = {
  goal: 'goal',
  'plan.result': 'plan',
  'tool.result': 'tool',
  approval: 'approval',
  input: 'input',
  'timer.fired': 'timer',
  control: 'control',
  'child.result': 'child',
  'agent.message': 'message',
} as const satisfies Partial<Record<MessageKind, string>>;
export type InboxMessage = Message<keyof typeof INBOX_KIND_OF>;
export const INBOX_MESSAGE_KINDS = Object.keys(INBOX_KIND_OF) as (keyof typeof INBOX_KIND_OF)[];

/** The event subject token for each progress event. */
export const EVENT_KIND_OF = {
  'event.step': 'step',
  'event.state': 'state',
  'event.plan': 'plan',
  'event.tool': 'tool',
  'event.approval': 'approval',
  'event.usage': 'usage',
  'event.done': 'done',
  'event.failed': 'failed',
} as const satisfies Partial<Record<MessageKind, string>>;
export type ProgressEvent = Message<keyof typeof EVENT_KIND_OF>;
export const EVENT_MESSAGE_KINDS = Object.keys(EVENT_KIND_OF) as (keyof typeof EVENT_KIND_OF)[];

export type WorkCommand = Message<'plan.request' | 'tool.request' | 'notify.request' | 'timer.request'>;
export const WORK_MESSAGE_KINDS = ['plan.request', 'tool.request', 'notify.request', 'timer.request'] as const;
