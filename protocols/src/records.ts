import { Packr } from 'msgpackr';
import { z } from 'zod';
import { CodecError, CodecErrorCode } from './errors.js';
import { AGENT_STATUSES, BudgetSchema, ErrorInfoSchema, MachineEventSchema, messageSchemas, NotifyRuleSchema, PrincipalSchema, WaitingSchema, type MessageKind } from './messages.js';

// Defined with the messages (a fork's seed carries one); part of the record.
export { WaitingSchema };
import { isAgentId } from './subjects.js';

/**
 * The agent record: the value under the agent's id in the `errand_agents` bucket. It holds the
 * persisted statechart snapshot and the bookkeeping that makes a step exactly-once: the step
 * number, the ids of recently applied inbox messages, and the commands of the last step (the
 * outbox), which are re-published — never recomputed — when a step is seen again.
 */

/**
 * The record format this build writes, and the formats it reads. Format 2 may store an outbox
 * message's field as a reference to the snapshot's context (`outboxRefs`): a planner's request
 * carries the conversation the context already holds, and a record kept it twice.
 */
export const RECORD_FORMAT = 2;
export const READABLE_RECORD_FORMATS: readonly number[] = [1, 2];
/**
 * How many applied inbox message ids a record remembers. Redeliveries come within the consumer's
 * ack wait; results of commands are also de-duplicated by their key (see `pending`), timers by
 * theirs, so this list only has to cover human input and agent messages.
 */
export const APPLIED_IDS_KEPT = 256;
/** How many of the agent's approval requests a record remembers (the newest; one is open at a time in practice). */
export const APPROVALS_KEPT = 8;

const agentId = z.string().refine(isAgentId, { message: 'invalid agent id' });
const epochMs = z.number().int().nonnegative();

/**
 * An approval request of the agent's, as the runtime keeps it (not the machine): an `approval`
 * message is applied only when it names an open request and its exact `argsHash`, and a tool call
 * carries approval evidence only when it is one of `calls` of a request decided `approve`.
 */
export const ApprovalRecordSchema = z.object({
  requestId: z.string().min(1),
  /** The hash the person was shown (the machine's; the built-in agent's is `approvalHash(calls)`). */
  argsHash: z.string().min(1),
  /** `callHash(tool, args)` of each call the request asks about (none for a budget question). */
  calls: z.array(z.string()),
  requestedAt: epochMs,
  /** Absent while open. `expired`: the machine gave up waiting; no decision applies any more. */
  decision: z.enum(['approve', 'deny', 'expired']).optional(),
  by: PrincipalSchema.optional(),
  decidedAt: epochMs.optional(),
});
export type ApprovalRecord = z.infer<typeof ApprovalRecordSchema>;

export type Waiting = z.infer<typeof WaitingSchema>;

/** The totals of the agent's model usage, as the machine last reported them (`errand.emit` of kind `usage`). */
export const UsageTotalsSchema = z.object({
  inputTokens: z.number().int().nonnegative(),
  outputTokens: z.number().int().nonnegative(),
  costUsd: z.number().nonnegative(),
});
export type UsageTotals = z.infer<typeof UsageTotalsSchema>;

/** A command of the last step, kept until the next step replaces it. */
export const OutboxEntrySchema = z.object({
  subject: z.string().min(1),
  /** The `Nats-Msg-Id` it is published with; JetStream drops a repeat within the window. */
  msgId: z.string().min(1),
  /** The message itself (its `kind` says which schema). */
  message: z.looseObject({ kind: z.string() }),
  /** W3C trace context of the step that sent it, published as the `traceparent` header. */
  traceparent: z.string().optional(),
});
export type OutboxEntry = z.infer<typeof OutboxEntrySchema>;

export const AgentRecordSchema = z.object({
  format: z.number().int(),
  agentId,
  /** The machine that wrote the snapshot; another version needs a migration. */
  machine: z.object({ id: z.string().min(1), version: z.number().int().nonnegative() }),
  status: z.enum(AGENT_STATUSES),
  /** Steps applied so far (a step is one event through the machine). */
  step: z.number().int().nonnegative(),
  /** XState's persisted snapshot. */
  snapshot: z.unknown(),
  goal: z.string(),
  labels: z.record(z.string(), z.string()).optional(),
  parent: z.object({ agentId, ref: z.string().min(1) }).optional(),
  /**
   * Who started it, as its host attributed the goal: the submitter's proven identity (or the person
   * a relay vouched for), the parent agent (channel `agent`) for a child, or `unverified` with what
   * an unproved goal claimed. Absent in older records.
   */
  submittedBy: PrincipalSchema.optional(),
  /** For a fork (`errand fork`): the agent and step it was forked from. Absent in older records. */
  origin: z.object({ agentId, step: z.number().int().nonnegative() }).optional(),
  /** The goal's notification rules: the runtime tells them of ends the machine never saw (a cancel, a machine error). */
  notify: z.array(NotifyRuleSchema).optional(),
  /** The W3C `traceparent` the goal arrived with: the agent's trace, for messages that carry none. */
  trace: z.string().optional(),
  /** Children by the parent's reference for them. */
  children: z.record(z.string(), z.object({ agentId, status: z.enum(AGENT_STATUSES) })),
  /** Live timers by XState send id; a firing whose key differs was cancelled or superseded. */
  timers: z.record(z.string(), z.object({ key: z.string().min(1), dueAt: epochMs, /** The event it delivers (absent in older records). */ type: z.string().optional() })),
  /** Plan and tool commands still waiting for their result, by idempotency key. */
  pending: z.record(z.string(), z.object({ kind: z.enum(['plan.request', 'tool.request']), at: epochMs })),
  /** The agent's latest approval requests, oldest first (at most {@link APPROVALS_KEPT}). Absent in older records. */
  approvals: z.array(ApprovalRecordSchema).optional(),
  /** Ids of recently applied inbox messages, newest last. */
  applied: z.array(z.string()),
  outbox: z.array(OutboxEntrySchema),
  /** Events that arrived while paused, applied in order on resume. */
  deferred: z.array(z.object({ id: z.string(), event: MachineEventSchema })),
  /** What the agent waits for a person to do; absent when it waits for nobody (and in older records). */
  waiting: WaitingSchema.optional(),
  /** The totals of the machine's last `usage` report. Absent before one (and in older records). */
  usage: UsageTotalsSchema.optional(),
  /** The goal's budget, with the limits of any `control budget` merged in. Absent when the goal had none. */
  budget: BudgetSchema.optional(),
  output: z.unknown().optional(),
  error: ErrorInfoSchema.optional(),
  /**
   * The last pause, resume or cancel the agent took, and who gave it (a person through the CLI,
   * the dashboard or chat, as the host attributed the message; a parent agent for its children).
   * Absent before one (and in older records).
   */
  control: z.object({ action: z.enum(['cancel', 'pause', 'resume']), by: PrincipalSchema.optional(), reason: z.string().optional(), at: epochMs }).optional(),
  createdAt: epochMs,
  updatedAt: epochMs,
});
export type AgentRecord = z.infer<typeof AgentRecordSchema>;

/**
 * The record as stored: an outbox message's field that is the very array a field of the
 * snapshot's context holds is left out of the message and named here instead, so the value is
 * stored once. {@link decodeRecord} puts it back; nothing else sees this form.
 */
const StoredRecordSchema = AgentRecordSchema.extend({
  outboxRefs: z
    .array(z.object({ entry: z.number().int().nonnegative(), field: z.string().min(1), context: z.string().min(1) }))
    .optional(),
});
type OutboxRef = NonNullable<z.infer<typeof StoredRecordSchema>['outboxRefs']>[number];

function contextOf(snapshot: unknown): Record<string, unknown> | undefined {
  const context = (snapshot as { context?: unknown } | null | undefined)?.context;
  return context !== null && typeof context === 'object' && !Array.isArray(context) ? (context as Record<string, unknown>) : undefined;
}

/** The stored form of a record: see {@link StoredRecordSchema}. */
function storedForm(record: AgentRecord): AgentRecord & { outboxRefs?: OutboxRef[] } {
  const context = record.outbox.length > 0 ? contextOf(record.snapshot) : undefined;
  const named = new Map<unknown, string>();
  for (const key of context ? Object.keys(context) : []) {
    const value = context![key];
    if (Array.isArray(value) && value.length > 0 && !named.has(value)) named.set(value, key);
  }
  if (named.size === 0) return { ...record, format: RECORD_FORMAT };
  const refs: OutboxRef[] = [];
  const outbox = record.outbox.map((entry, i) => {
    let message: Record<string, unknown> | undefined;
    for (const field of Object.keys(entry.message)) {
      const key = named.get((entry.message as Record<string, unknown>)[field]);
      if (key === undefined) continue;
      message ??= { ...entry.message };
      delete message[field];
      refs.push({ entry: i, field, context: key });
    }
    return message ? { ...entry, message: message as typeof entry.message } : entry;
  });
  return refs.length > 0 ? { ...record, format: RECORD_FORMAT, outbox, outboxRefs: refs } : { ...record, format: RECORD_FORMAT };
}

const packr = new Packr({ useRecords: false, skipValues: [undefined], int64AsType: 'number', mapsAsObjects: true } as ConstructorParameters<
  typeof Packr
>[0]);

/**
 * The encoding of every agent record: KV entries carry no headers, so a record's format is fixed
 * rather than named per entry — always msgpack (a standard map: its first byte is 0x80–0x8f, 0xde
 * or 0xdf, never the `{` a JSON body starts with), whatever format the deployment's events use,
 * with the record layout's number in its `format` field. A reader in any language decodes it with
 * its msgpack library and checks `format` (see docs/protocol.md).
 */
export const RECORD_CONTENT_TYPE = 'application/msgpack';

/** Encodes a record as {@link RECORD_CONTENT_TYPE} (see there). */
export function encodeRecord(record: AgentRecord): Uint8Array {
  return packr.pack(storedForm(record));
}

/**
 * Reads a record. Throws {@link CodecError}: `ERR_UNDECODABLE`, `ERR_UNSUPPORTED_VERSION` for a
 * format this build cannot read (written by a newer Errand), `ERR_INVALID`.
 */
export function decodeRecord(data: Uint8Array): AgentRecord {
  let body: unknown;
  try {
    body = packr.unpack(data);
  } catch (cause) {
    throw new CodecError(CodecErrorCode.Undecodable, `agent record is not valid msgpack: ${(cause as Error).message}`, { cause });
  }
  const format = (body as { format?: unknown } | null)?.format;
  const id = (body as { agentId?: unknown } | null)?.agentId;
  const agent = isAgentId(id) ? id : undefined;
  if (typeof format !== 'number' || !READABLE_RECORD_FORMATS.includes(format)) {
    throw new CodecError(
      CodecErrorCode.UnsupportedVersion,
      `agent record format ${String(format)} cannot be read by this Errand (reads ${READABLE_RECORD_FORMATS.join(', ')}); upgrade it`,
      { agentId: agent },
    );
  }
  const parsed = StoredRecordSchema.safeParse(body);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(record)'}: ${i.message}`);
    throw new CodecError(CodecErrorCode.Invalid, `invalid agent record: ${issues.join('; ')}`, { agentId: agent, issues });
  }
  const { outboxRefs, ...record } = parsed.data;
  const context = contextOf(record.snapshot);
  for (const ref of outboxRefs ?? []) {
    const value = context?.[ref.context];
    const entry = record.outbox[ref.entry];
    if (!entry || !Array.isArray(value)) {
      const issue = `outboxRefs: entry ${ref.entry}'s ${ref.field} refers to context.${ref.context}, which the record does not hold`;
      throw new CodecError(CodecErrorCode.Invalid, `invalid agent record: ${issue}`, { agentId: agent, issues: [issue] });
    }
    (entry.message as Record<string, unknown>)[ref.field] = value;
  }
  return record;
}

/** True when `kind` names a message schema (for outbox entries). */
export function isMessageKind(kind: string): kind is MessageKind {
  return Object.hasOwn(messageSchemas, kind);
}

/**
 * The statechart state value of a persisted snapshot (`'planning'`, `{ acting: 'tools' }` …), or
 * null when the snapshot has none.
 */
export function stateValueOf(snapshot: unknown): unknown {
  return (snapshot as { value?: unknown } | undefined)?.value ?? null;
}
