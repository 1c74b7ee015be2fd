import { createHash, randomBytes } from 'node:crypto';

/**
 * Every id and key Errand writes on the wire or into a bucket is built here, so a convention has
 * one home: agent ids, the `Nats-Msg-Id` of each kind of message (JetStream drops a repeat within
 * the duplicate window, and the host remembers applied inbox ids), and the keys of the effects
 * bucket. Everything built here is a single NATS subject token or a valid KV key where it has to be.
 */

/**
 * A new agent id: `a-` + milliseconds in base 36 + 8 random hex digits. Ids sort roughly by
 * creation time, and are single subject tokens and valid KV keys.
 */
export function newAgentId(now = Date.now()): string {
  return `a-${now.toString(36)}-${randomBytes(4).toString('hex')}`;
}

const MAX_READABLE_CHILD_ID = 100;

/**
 * The id of the child a parent spawns under `ref`: deterministic, so re-publishing the parent's
 * outbox after a crash addresses the same child. Readable (`<parent>-<ref>`) while short enough;
 * a hash of both beyond that.
 */
export function childAgentId(parentId: string, ref: string): string {
  const readable = `${parentId}-${ref}`;
  if (readable.length <= MAX_READABLE_CHILD_ID && /^[A-Za-z0-9_-]+$/.test(ref)) return readable;
  return `c-${createHash('sha256').update(`${parentId}\n${ref}`).digest('hex').slice(0, 32)}`;
}

const TIMER_PREFIX = 'timer:';

/** The `Nats-Msg-Id` of each kind of Errand message. */
export const messageIds = {
  /** A goal for `agentId` (intake, delegation to a child, fork): one goal per agent. */
  goal: (agentId: string): string => `goal:${agentId}`,
  /** A step's command or event, its idempotency key: `<agentId>:<step>:<n>`. */
  command: (agentId: string, step: number, n: number): string => `${agentId}:${step}:${n}`,
  /** The notification a notify rule sends when the agent reaches `status` at `step`. */
  notice: (agentId: string, step: number, status: string, channel: string): string => `${agentId}:${step}:${status}-${channel}`,
  /** A progress event of a step (`ev.<token>`), keyed by the step. */
  event: (agentId: string, step: number, token: string): string => `${agentId}:${step}:ev.${token}`,
  /** The state event of a step that applied no transition, keyed by the inbox message. */
  stateEvent: (agentId: string, inboxId: string): string => `${agentId}:${inboxId}:ev.state`,
  /** A worker's result of the command with idempotency key `commandKey`. */
  result: (commandKey: string): string => `result:${commandKey}`,
  /** A durable timer's firing, by the timer's key. */
  timerFired: (timerKey: string): string => `${TIMER_PREFIX}${timerKey}`,
  /** A parent's cancel of its child. */
  cancelChild: (childId: string): string => `cancel:${childId}`,
  /** A child's outcome, sent to its parent. */
  childResult: (childId: string): string => `child:${childId}`,
  /** A dead letter of the message at `stream`/`seq`, so a crash before the ack does not double it. */
  deadLetter: (origin: string, stream: string, seq: number): string => `dlq:${origin}:${stream}:${seq}`,
} as const;

/** The timer key of a `timerFired` message id; undefined for any other id. */
export function timerKeyOfMessageId(messageId: string): string | undefined {
  return messageId.startsWith(TIMER_PREFIX) ? messageId.slice(TIMER_PREFIX.length) : undefined;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The effects-bucket key for an idempotency key (KV keys allow no ':'). */
export function effectKey(commandKey: string): string {
  const dotted = commandKey.replaceAll(':', '.');
  return /^[-/_=.a-zA-Z0-9]+$/.test(dotted) && !dotted.startsWith('.') && !dotted.endsWith('.') && !dotted.includes('..')
    ? dotted
    : `h.${sha256(commandKey)}`;
}

/** The keys of the `errand_effects` bucket besides completed commands ({@link effectKey}). */
export const effectKeys = {
  /** A completed command's stored result. */
  completed: effectKey,
  /** A non-idempotent tool call was started (so a repeat after a crash is not run again blindly). */
  started: (commandKey: string): string => `started.${effectKey(commandKey)}`,
  /** A notification is being sent (so a crash mid-send is not sent twice blindly). */
  sending: (commandKey: string): string => `sending.${effectKey(commandKey)}`,
  /** A channel's digest for a period was sent. */
  digest: (channel: string, period: string): string => `digest.${channel}.${period}`,
  /** Where a Telegram button leads: the channel is part of it, so a button only works where it was sent. */
  telegramApproval: (channel: string, callbackId: string): string => `tg.${channel}.${callbackId}`,
  /** A label's model spend on a day (the label hashed: labels are free text). */
  spend: (label: string, day: string): string => `spend.${sha256(label).slice(0, 32)}.${day}`,
  /** A goal's claim while intake publishes it. */
  intakeClaim: (agentId: string): string => `intake.${agentId}`,
} as const;
