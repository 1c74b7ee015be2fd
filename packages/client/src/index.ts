import { openBucket, prepareMessage, publishMessage, readAllRecords, readRecord, type ErrandConnection, type KV, type PreparedMessage } from '@errand/nats';
import { newTraceparent, traceIdOf } from '@errand/telemetry';
import {
  CodecError,
  createSubjects,
  decodeMessage,
  ErrandError,
  ErrorCode,
  Header,
  isEndingEvent,
  MAX_GOAL_DEPTH,
  MESSAGE_VERSION,
  messageIds,
  newAgentId,
  resourceNames,
  stateValueOf,
  TERMINAL_STATUSES,
  valueNestsDeeper,
  type AgentRecord,
  type Budget,
  type Message,
  type Principal,
  type ProgressEvent,
  type Redactor,
  type Subjects,
  type UsageTotals,
  type Waiting,
} from '@errand/protocols';
import {
  diffRuns,
  forkOrigin,
  forkSeed,
  orderJournal,
  replayJournal,
  verifyReplay,
  withOrigin,
  writeExport,
  type ForkOptions,
  type JournalEntry,
  type ReplayResult,
  type RunDiff,
  type Verification,
} from '@errand/replay';
import type { AgentRegistry } from '@errand/core';

export const ClientErrorCode = {
  NotFound: 'ERR_AGENT_NOT_FOUND',
  /** A decision or an answer for a request the agent is not waiting for (or it waits for nothing). */
  NothingPending: 'ERR_NOTHING_PENDING',
  /** A decision about other arguments than those the agent waits for approval of (`argsHash` differs). */
  ArgsChanged: 'ERR_ARGS_CHANGED',
  /** An answer, a message or a control for an agent that has ended (done, failed or cancelled). */
  AgentEnded: 'ERR_AGENT_ENDED',
  Refused: 'ERR_REFUSED',
  NoHost: 'ERR_NO_HOST',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

export class ClientError extends ErrandError {
  /** For `ERR_REFUSED`: the host's own error code (`ERR_UNKNOWN_AGENT`, `ERR_INVALID`…). */
  readonly reason: string | undefined;

  constructor(code: ClientErrorCode, message: string, agentId?: string, reason?: string) {
    super(code, message, { agentId });
    this.name = 'ClientError';
    this.reason = reason;
  }
}

/**
 * What a person (or another agent) needs to know about an agent, from its record alone — never
 * from its machine's context, so it reads the same for every agent definition.
 */
export interface AgentSummary {
  agentId: string;
  agent: string;
  goal: string;
  status: AgentRecord['status'];
  state: unknown;
  step: number;
  labels: Record<string, string>;
  /** What it waits for a person to do (`record.waiting`): an approval of exact tool calls, an answer, a budget decision. */
  waiting?: Waiting;
  /** The last pause, resume or cancel it took, and who gave it (`record.control`). */
  control?: AgentRecord['control'];
  output?: unknown;
  error?: AgentRecord['error'];
  children: AgentRecord['children'];
  /** The agent that delegated this one, and its name for it. */
  parent?: { agentId: string; ref: string };
  /** Who started it, as its host attributed the goal (`record.submittedBy`); absent in older records. */
  submittedBy?: Principal;
  /** Its model usage so far, as its machine last reported it. */
  usage?: UsageTotals;
  /** The goal's budget (with any limits set since by `control budget`). */
  budget?: Budget;
  createdAt: string;
  updatedAt: string;
}

export function summarize(r: AgentRecord): AgentSummary {
  return {
    agentId: r.agentId,
    agent: r.machine.id,
    goal: r.goal,
    status: r.status,
    state: stateValueOf(r.snapshot),
    step: r.step,
    labels: r.labels ?? {},
    ...(r.waiting ? { waiting: r.waiting } : {}),
    ...(r.control ? { control: r.control } : {}),
    ...(r.output !== undefined ? { output: r.output } : {}),
    ...(r.error ? { error: r.error } : {}),
    children: r.children,
    ...(r.parent ? { parent: r.parent } : {}),
    ...(r.submittedBy ? { submittedBy: r.submittedBy } : {}),
    ...(r.usage ? { usage: r.usage } : {}),
    ...(r.budget ? { budget: r.budget } : {}),
    createdAt: new Date(r.createdAt).toISOString(),
    updatedAt: new Date(r.updatedAt).toISOString(),
  };
}

/** Which agents {@link ErrandClient.list} returns. */
export interface ListFilter {
  /** One status, or any of several. */
  status?: string | readonly string[];
  /** Every label given must be on the agent, with that value. */
  labels?: Record<string, string>;
  /** The agent definition (machine id), e.g. `sleeper`. */
  agent?: string;
  /** At most this many (default 50). */
  limit?: number;
}

export type SubmitOptions = Omit<Message<'submit.request'>, 'v' | 'kind' | 'goal'>;

/** How `submit` retries: at most `attempts` tries, none started after `withinMs`, each awaiting its answer `answerTimeoutMs`. */
export const SUBMIT_RETRY = { attempts: 5, withinMs: 15_000, answerTimeoutMs: 5_000, firstBackoffMs: 250, maxBackoffMs: 2_000 } as const;

/** Why a submit try failed: no answer (a timeout, the connection lost meanwhile, or no host subscribed at all), or a refusal with its code. */
export type SubmitFailure = { noAnswer: 'timeout' | 'disconnected' | 'no-responders' | 'other' } | { refusedWith: string | undefined };

/**
 * Whether a failed submit try is sent again (after `tries` tries, `elapsedMs` since the first): an
 * answer lost to a timeout or a dropped connection, or a refusal the host marks passing
 * (`ERR_UNAVAILABLE`) — never a refusal of the goal itself, nor a request no host is subscribed to.
 */
export function retrySubmit(failure: SubmitFailure, tries: number, elapsedMs: number): boolean {
  if (tries >= SUBMIT_RETRY.attempts || elapsedMs >= SUBMIT_RETRY.withinMs) return false;
  if ('noAnswer' in failure) return failure.noAnswer === 'timeout' || failure.noAnswer === 'disconnected';
  return failure.refusedWith === ErrorCode.Unavailable;
}

/** The wait before the next try after `tries` tries: doubling from 250 ms to at most 2 s, with jitter (half to all of it). */
export function submitBackoffMs(tries: number, random: () => number = Math.random): number {
  const base = Math.min(SUBMIT_RETRY.maxBackoffMs, SUBMIT_RETRY.firstBackoffMs * 2 ** (tries - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}

function noAnswerKind(err: unknown): 'timeout' | 'disconnected' | 'no-responders' | 'other' {
  const e = err as { name?: string; message?: string; cause?: { name?: string } } | undefined;
  if (e?.name === 'TimeoutError' || e?.cause?.name === 'TimeoutError') return 'timeout';
  if (e?.name === 'NoResponders' || e?.cause?.name === 'NoResponders') return 'no-responders';
  if (e?.name === 'RequestError' && /disconnected/.test(e.message ?? '')) return 'disconnected';
  return 'other';
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * How long a command to an agent (`decide`, `answer`, `control`, `get`) waits for the record of an
 * agent whose goal is in its inbox but not applied yet — one sent right after the submit was
 * answered. Hosts apply a goal within milliseconds; a backlog can take longer.
 */
export const RECORD_WAIT_MS = 10_000;

/** The Errand client: everything a user does to agents, over NATS. */
export interface ErrandClient {
  readonly subjects: Subjects;
  /**
   * Hands a goal to a host; resolves with the agent id and the id of the trace the agent's work
   * joins (`traceparent` continues one of yours). Throws `ERR_NO_HOST` or `ERR_REFUSED`.
   * Always sent under an agent id (a new one unless `options.agentId`); a try that got no answer in
   * time, or a refusal marked passing (`ERR_UNAVAILABLE`), is sent again under the same id — see
   * {@link SUBMIT_RETRY} — so one call starts at most one agent.
   */
  submit(goal: string, options?: SubmitOptions, trace?: { traceparent?: string }): Promise<{ agentId: string; existing: boolean; traceId: string }>;
  /**
   * The agent's record, or undefined. `get`, `decide`, `answer` and `control` find an agent whose
   * submit was just answered even before a host has written its record: they wait for it while its
   * goal is in the inbox (up to {@link RECORD_WAIT_MS}; then `ERR_NO_HOST`).
   */
  record(agentId: string): Promise<AgentRecord | undefined>;
  /**
   * The agent's record, waited for while its goal is in the inbox (an agent whose submit was just
   * answered). Throws `ERR_AGENT_NOT_FOUND` when there is no such agent, `ERR_NO_HOST` when no host
   * took its goal up within {@link RECORD_WAIT_MS}.
   */
  find(agentId: string): Promise<AgentRecord>;
  get(agentId: string): Promise<AgentSummary>;
  /** Agents matching every part of `filter`, most recently updated first. Records this build cannot read are left out. */
  list(filter?: ListFilter): Promise<AgentSummary[]>;
  /**
   * Decides the approval (or budget question) the agent waits for, `record.waiting`: the decision
   * names its request and the hash of the exact arguments it shows. With `requestId`, only that
   * request; with `argsHash`, only those arguments (the ones the person was shown). Throws
   * `ERR_NOTHING_PENDING` when the agent waits for no decision or for another request,
   * `ERR_ARGS_CHANGED` when it waits for a decision about other arguments, `ERR_AGENT_NOT_FOUND`.
   */
  decide(agentId: string, decision: 'approve' | 'deny', by: Principal, requestId?: string, argsHash?: string): Promise<{ requestId: string }>;
  /**
   * Answers the agent's question (`record.waiting` of kind `input`, or `requestId`), or tells a
   * working agent something (`interrupt` stops the step in flight). Throws `ERR_AGENT_ENDED` for an
   * agent that has ended, `ERR_NOTHING_PENDING` when `requestId` is not the question it waits for.
   */
  answer(agentId: string, text: string, by: Principal, options?: { interrupt?: boolean; requestId?: string }): Promise<void>;
  /** Cancels, pauses or resumes the agent. Throws `ERR_AGENT_ENDED` for an agent that has ended. */
  control(agentId: string, action: 'cancel' | 'pause' | 'resume', by: Principal, reason?: string): Promise<void>;
  /**
   * The agent's progress events (`event.step`, `.state`, `.plan`, `.tool`, `.approval`, `.usage`,
   * `.done`, `.failed`), msgpack or JSON as each one's `Content-Type` says: every one stored so
   * far, then each new one, ending with the agent's ending event (`event.done`, `event.failed`, or
   * the `event.state` that says `cancelled`: hosts publish it last), or when `signal` aborts. Events
   * of the agent itself; a child agent is watched by its own id (the parent's record lists them).
   * Throws `ERR_AGENT_NOT_FOUND` for an agent with neither record nor events.
   */
  watch(agentId: string, options?: { signal?: AbortSignal; settleMs?: number }): AsyncIterable<ProgressEvent>;
  /** The agent's journal, in step order, each step once. Throws `ERR_AGENT_NOT_FOUND` when there is neither journal nor record. */
  journal(agentId: string): Promise<JournalEntry[]>;
  /**
   * Replays the agent's journal through the machines of `registry` (nothing runs, nothing is
   * published) and, unless stopped early at `stopAt`, verifies the result against the stored record.
   * Throws `ReplayError` of @errand/replay.
   */
  replay(agentId: string, options: { registry: AgentRegistry; stopAt?: number }): Promise<{ result: ReplayResult; record: AgentRecord | undefined; verification: Verification | undefined }>;
  /**
   * Starts a new agent from the agent's snapshot at step `at` (by replay), re-issuing the commands
   * outstanding there, with the overrides of `options`. The original is not touched. Resolves with
   * the new agent's id; a host picks the fork up like any goal.
   */
  fork(agentId: string, options: ForkOptions & { registry: AgentRegistry; at: number; forkId?: string; submittedBy?: Principal }): Promise<{ agentId: string }>;
  /** A self-contained, redacted JSON-lines export of the agent (see @errand/replay `writeExport`); `redactor` adds the caller's own secrets. */
  export(agentId: string, options?: { registry?: AgentRegistry; redactor?: Redactor }): Promise<string>;
  /** Two runs side by side from the step where they diverge (a fork's shared steps come from its origin). */
  diff(a: string, b: string): Promise<RunDiff>;
}

export async function createClient(conn: ErrandConnection, prefix: string): Promise<ErrandClient> {
  /** Proves this connection's identity sent a message's bytes (hosts record who decided from it, not from `by`). */
  const prover = conn.identity;
  const subjects = createSubjects(prefix);
  const agentsBucket = resourceNames(prefix).buckets.agents;
  const agents: KV = await openBucket(conn, agentsBucket);
  // An unreachable bucket reads as no record; an unreadable record is an error.
  const record = (agentId: string) =>
    readRecord(agents, agentId).catch((err: unknown) => {
      if (err instanceof CodecError) throw err;
      return undefined;
    });
  const inboxStream = resourceNames(prefix).streams.inbox;
  /**
   * Whether the agent's goal sits in its inbox, not applied yet: a submit is answered once the goal
   * is published, and a host writes the record when it applies it. The inbox is a work queue, so
   * the goal leaves it once applied. Unreadable (no permission, no stream): not known to be there.
   */
  const goalPending = async (agentId: string): Promise<boolean> => {
    try {
      return (await (await conn.jsm()).streams.getMessage(inboxStream, { last_by_subj: subjects.agentIn(agentId, 'goal') })) !== null;
    } catch {
      return false;
    }
  };
  /** The record once a host has written it, watched for up to `withinMs`; undefined if none came. */
  const recordWithin = async (agentId: string, withinMs: number): Promise<AgentRecord | undefined> => {
    const watcher = await agents.watch({ key: agentId });
    const timer = setTimeout(() => watcher.stop(), withinMs);
    try {
      for await (const entry of watcher) {
        if (entry.operation !== 'PUT') continue;
        const r = await record(agentId);
        if (r) return r;
      }
      return undefined;
    } finally {
      clearTimeout(timer);
      watcher.stop();
    }
  };
  /**
   * The agent's record. An agent whose goal is in its inbox but not yet applied (a command sent
   * right after its submit was answered) is waited for, up to {@link RECORD_WAIT_MS}: throws
   * `ERR_NO_HOST` when no host took it up by then, `ERR_AGENT_NOT_FOUND` when there is no such agent.
   */
  const must = async (agentId: string) => {
    const r = (await record(agentId)) ?? ((await goalPending(agentId)) ? await recordWithin(agentId, RECORD_WAIT_MS) : await record(agentId));
    if (r) return r;
    if (await goalPending(agentId)) {
      throw new ClientError(
        ClientErrorCode.NoHost,
        `agent ${agentId} was submitted but no host has started it: its goal has waited in the inbox for over ${RECORD_WAIT_MS / 1000} s (is a host running? errand status)`,
        agentId,
      );
    }
    throw new ClientError(ClientErrorCode.NotFound, `no agent ${agentId}`, agentId);
  };
  /** The record of an agent that has not ended; throws `ERR_AGENT_ENDED` (saying how it ended) or `ERR_AGENT_NOT_FOUND`. */
  const mustBeLive = async (agentId: string, doing: string) => {
    const r = await must(agentId);
    if (TERMINAL_STATUSES.has(r.status)) {
      throw new ClientError(ClientErrorCode.AgentEnded, `agent ${agentId} has ${endedWord(r)}: nothing to ${doing} any more (errand show ${agentId})`, agentId);
    }
    return r;
  };
  const eventsStream = resourceNames(prefix).streams.events;
  const readJournal = async (agentId: string): Promise<JournalEntry[]> => {
    const consumer = await conn.js.consumers.get(eventsStream, { filter_subjects: subjects.agentEvent(agentId, 'step') });
    const backlog = (await consumer.info(true)).num_pending;
    const out: JournalEntry[] = [];
    if (backlog === 0) return out;
    const messages = await consumer.consume();
    const timer = setTimeout(() => void messages.close(), 30_000);
    try {
      for await (const m of messages) {
        out.push(decodeMessage(m.data, { contentType: m.headers?.get(Header.ContentType), expect: 'event.step' }));
        if (out.length >= backlog) break;
      }
    } finally {
      clearTimeout(timer);
      await messages.close();
    }
    return orderJournal(out);
  };
  async function* watch(agentId: string, options: { signal?: AbortSignal; settleMs?: number } = {}): AsyncGenerator<ProgressEvent> {
    const consumer = await conn.js.consumers.get(eventsStream, { filter_subjects: subjects.agentEventAll(agentId) });
    // Nothing yet but its goal in the inbox: an agent just submitted, whose events are coming.
    // Asked in the order an agent goes through them — goal in the inbox, then its record, then the
    // goal acked and gone — so a host taking it up between two questions cannot hide it.
    if (!(await goalPending(agentId)) && !(await record(agentId)) && (await consumer.info(true)).num_pending === 0) {
      throw new ClientError(ClientErrorCode.NotFound, `no agent ${agentId}`, agentId);
    }
    const messages = await consumer.consume();
    const close = () => void messages.close();
    options.signal?.addEventListener('abort', close, { once: true });
    // The end: the ending event once the stream is caught up (hosts publish it after the rest of
    // its step, and nothing after it). A terminal status without it (a state or step event of the
    // last step) waits `settleMs` for the ending event to come.
    const settleMs = options.settleMs ?? 500;
    let settle: NodeJS.Timeout | undefined;
    let ended = false;
    try {
      for await (const m of messages) {
        clearTimeout(settle);
        if (options.signal?.aborted) break; // messages already pulled are not handed out after an abort
        let event: ProgressEvent;
        try {
          event = decodeMessage(m.data, { contentType: m.headers?.get(Header.ContentType) }) as ProgressEvent;
        } catch {
          continue; // not ours to judge: hosts publish what they validated
        }
        const last = isEndingEvent(event);
        if (last || ((event.kind === 'event.state' || event.kind === 'event.step') && TERMINAL_STATUSES.has(event.status))) ended = true;
        yield event;
        if (last && m.info.pending === 0) break;
        if (ended && m.info.pending === 0) settle = setTimeout(close, settleMs);
      }
    } finally {
      clearTimeout(settle);
      options.signal?.removeEventListener('abort', close);
      await messages.close();
    }
  }
  const journal = async (agentId: string): Promise<JournalEntry[]> => {
    // A record is committed before its step's journal entry is published: wait briefly for it.
    for (let attempt = 0; ; attempt++) {
      const [entries, r] = await Promise.all([readJournal(agentId), record(agentId)]);
      if (entries.length === 0 && !r) throw new ClientError(ClientErrorCode.NotFound, `no agent ${agentId} (no record and no journal)`, agentId);
      if (!r || (entries.at(-1)?.step ?? 0) >= r.step || attempt >= 20) return entries;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  /** A fork's journal with its origin's shared steps in front (recursively). */
  const fullJournal = async (agentId: string, depth = 0): Promise<JournalEntry[]> => {
    const own = await journal(agentId);
    const from = forkOrigin(own);
    if (!from || depth > 16) return own;
    return withOrigin(own, await fullJournal(from.agentId, depth + 1).catch(() => []));
  };
  return {
    subjects,
    journal,
    watch,
    async replay(agentId, options) {
      const entries = await journal(agentId);
      const r = await record(agentId);
      const result = replayJournal(entries, { registry: options.registry, prefix, stopAt: options.stopAt });
      const verification = options.stopAt === undefined && r ? verifyReplay(result, r) : undefined;
      return { result, record: r, verification };
    },
    async fork(agentId, options) {
      const original = await must(agentId);
      const result = replayJournal(await journal(agentId), { registry: options.registry, prefix, stopAt: options.at });
      const seed = forkSeed(result, options);
      const forkId = options.forkId ?? newAgentId(Date.now());
      const message: Message<'goal'> = {
        v: MESSAGE_VERSION,
        kind: 'goal',
        agentId: forkId,
        goal: original.goal,
        agent: seed.machine.id,
        ...(original.labels ? { labels: original.labels } : {}),
        fork: seed,
        // Believed only from a relay (the gateway, for its signed-in person); anyone else's fork is
        // recorded as the identity that proved sending it.
        ...(options.submittedBy ? { submittedBy: options.submittedBy } : {}),
        at: Date.now(),
      };
      await publishMessage(conn, subjects.agentIn(forkId, 'goal'), message, { msgId: messageIds.goal(forkId), prover });
      return { agentId: forkId };
    },
    async export(agentId, options = {}) {
      const entries = await journal(agentId);
      const r = await record(agentId);
      const machine = r?.machine ?? entries.at(-1)?.machine;
      const definition = machine ? options.registry?.find(machine.id, machine.version) : undefined;
      return writeExport({ agentId, prefix, journal: entries, record: r, definition, ...(options.redactor ? { redactor: options.redactor } : {}) });
    },
    async diff(a, b) {
      const [ja, jb] = await Promise.all([fullJournal(a), fullJournal(b)]);
      return diffRuns({ agentId: a, journal: ja }, { agentId: b, journal: jb });
    },
    async submit(goal, options = {}, trace = {}) {
      // Always under an agent id, so a try whose answer was lost can be sent again safely.
      const agentId = options.agentId ?? newAgentId(Date.now());
      const request: Message<'submit.request'> = { v: MESSAGE_VERSION, kind: 'submit.request', goal, ...options, agentId };
      // The host would refuse it; say so before encoding walks it.
      if (valueNestsDeeper(request, MAX_GOAL_DEPTH)) {
        throw new ClientError(ClientErrorCode.Refused, `the goal nests deeper than ${MAX_GOAL_DEPTH} levels of objects and arrays; flatten its input`, options.agentId, 'ERR_INVALID');
      }
      const traceparent = trace.traceparent ?? newTraceparent();
      let prepared: PreparedMessage;
      try {
        prepared = prepareMessage(request, { traceparent, prover: conn.identity });
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        throw new ClientError(ClientErrorCode.Refused, `the goal cannot be sent: ${err.message}`, options.agentId, err.code);
      }
      // Tries that got no answer, or a refusal the host marks passing (ERR_UNAVAILABLE), are sent
      // again, the same bytes under the same agent id, so however many reach a host one agent starts.
      const started = Date.now();
      let answer: Message<'submit.reply'> | undefined;
      for (let tries = 1; ; tries++) {
        const left = SUBMIT_RETRY.withinMs - (Date.now() - started);
        let failure: SubmitFailure;
        try {
          const reply = await conn.nc.request(subjects.submit(), prepared.data, { timeout: Math.max(500, Math.min(SUBMIT_RETRY.answerTimeoutMs, left)), ...(prepared.headers ? { headers: prepared.headers } : {}) });
          answer = decodeMessage(reply.data, { contentType: reply.headers?.get(Header.ContentType), expect: 'submit.reply' });
          if (answer.agentId) break;
          failure = { refusedWith: answer.error?.code };
        } catch (err) {
          if (err instanceof CodecError) throw err;
          failure = { noAnswer: noAnswerKind(err) };
          if (!retrySubmit(failure, tries, Date.now() - started)) {
            throw new ClientError(ClientErrorCode.NoHost, `no Errand host answered on ${subjects.submit()} (${(err as Error).message}${tries > 1 ? `; ${tries} tries` : ''}); start one with \`errand up\` or the host service`, agentId);
          }
          await sleep(submitBackoffMs(tries));
          continue;
        }
        if (!retrySubmit(failure, tries, Date.now() - started)) break;
        await sleep(submitBackoffMs(tries));
      }
      if (!answer.agentId) throw new ClientError(ClientErrorCode.Refused, `the host refused the goal: ${answer.error?.message}`, undefined, answer.error?.code);
      // An id this call made up is known to no one else: 'existing' can only mean an earlier try got through.
      const existing = options.agentId === undefined ? false : (answer.existing ?? false);
      return { agentId: answer.agentId, existing, traceId: answer.traceId ?? traceIdOf(traceparent) ?? '' };
    },
    record,
    find: must,
    get: async (agentId) => summarize(await must(agentId)),
    async list(filter = {}) {
      const statuses = filter.status === undefined ? undefined : typeof filter.status === 'string' ? [filter.status] : filter.status;
      const labels = Object.entries(filter.labels ?? {});
      const out: AgentSummary[] = [];
      // Every record in one pass of the bucket, not a get per key; one this build cannot read is left out.
      for (const { record: r } of await readAllRecords(conn, agentsBucket)) {
        if (statuses?.length && !statuses.includes(r.status)) continue;
        if (filter.agent && r.machine.id !== filter.agent) continue;
        if (labels.some(([k, v]) => r.labels?.[k] !== v)) continue;
        out.push(summarize(r));
      }
      out.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
      return out.slice(0, filter.limit ?? 50);
    },
    async decide(agentId, decision, by, requestId, argsHash) {
      const r = await must(agentId);
      const pending = decidable(r, requestId);
      if (!pending) {
        const what = requestId ? `approval ${requestId}` : 'an approval';
        const now = r.waiting?.kind === 'input' ? ` (it waits for an answer to a question, not a decision)` : TERMINAL_STATUSES.has(r.status) ? ` (it has ${endedWord(r)})` : '';
        throw new ClientError(ClientErrorCode.NothingPending, `agent ${agentId} is not waiting for ${what}${now}`, agentId);
      }
      if (argsHash !== undefined && argsHash !== pending.argsHash) {
        throw new ClientError(
          ClientErrorCode.ArgsChanged,
          `agent ${agentId} waits for a decision on request ${pending.requestId} about other arguments than the ones you decided on (argsHash ${argsHash}, now ${pending.argsHash}); look at them again (errand show ${agentId}) and decide on those`,
          agentId,
        );
      }
      const message: Message<'approval'> = { v: MESSAGE_VERSION, kind: 'approval', agentId, requestId: pending.requestId, argsHash: pending.argsHash, decision, by, at: Date.now() };
      await publishMessage(conn, subjects.agentIn(agentId, 'approval'), message, { prover });
      return { requestId: pending.requestId };
    },
    async answer(agentId, text, by, options = {}) {
      const r = await mustBeLive(agentId, 'answer or tell');
      const waiting = r.waiting?.kind === 'input' ? r.waiting : undefined;
      if (options.requestId !== undefined && options.requestId !== waiting?.requestId) {
        throw new ClientError(ClientErrorCode.NothingPending, `agent ${agentId} is not waiting for an answer to ${options.requestId}${waiting ? ` (it asks ${waiting.requestId})` : ''}`, agentId);
      }
      const message: Message<'input'> = {
        v: MESSAGE_VERSION, kind: 'input', agentId, text, ...(waiting ? { requestId: waiting.requestId } : {}), ...(options.interrupt ? { interrupt: true } : {}), by, at: Date.now(),
      };
      await publishMessage(conn, subjects.agentIn(agentId, 'input'), message, { prover });
    },
    async control(agentId, action, by, reason) {
      await mustBeLive(agentId, action);
      const message: Message<'control'> = { v: MESSAGE_VERSION, kind: 'control', agentId, action, ...(reason ? { reason } : {}), by, at: Date.now() };
      await publishMessage(conn, subjects.agentIn(agentId, 'control'), message, { prover });
    },
  };
}

/** How an ended agent ended, in words. */
function endedWord(r: AgentRecord): string {
  return r.status === 'done' ? 'finished' : r.status === 'failed' ? `failed${r.error ? ` (${r.error.message})` : ''}` : 'been cancelled';
}

/**
 * The request a decision goes to: the approval or budget question the agent waits for
 * (`record.waiting`), when `requestId` names it or is left out. An agent an older machine runs
 * says nothing of what it waits for: a request it keeps open in `record.approvals` (the runtime's
 * own list) may still be decided by naming it.
 */
function decidable(r: AgentRecord, requestId: string | undefined): { requestId: string; argsHash: string } | undefined {
  if (TERMINAL_STATUSES.has(r.status)) return undefined;
  const w = r.waiting;
  if (w) return w.kind !== 'input' && w.argsHash !== undefined && (requestId === undefined || requestId === w.requestId) ? { requestId: w.requestId, argsHash: w.argsHash } : undefined;
  if (requestId === undefined) return undefined;
  const open = r.approvals?.find((a) => a.requestId === requestId && a.decision === undefined);
  return open ? { requestId: open.requestId, argsHash: open.argsHash } : undefined;
}
export {
  discoverServices,
  systemStatus,
  type ConsumerBacklog,
  type DeadLetterEntry,
  type JetStreamUsage,
  type PeerHealth,
  type ReplicaHealth,
  type ResourceHealth,
  type ServiceInstance,
  type SystemStatus,
  type SystemStatusOptions,
} from './system.js';
