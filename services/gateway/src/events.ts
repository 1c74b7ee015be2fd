// The streams behind the gateway's server-sent events: stored messages of ERRAND_EVENTS or
// ERRAND_LOGS from a stream sequence on, then live ones, through one ordered consumer per
// connection (so the ids a connection sees only grow), pulled a few at a time (so a slow client
// holds back its own consumer, not the gateway's memory), and closed when the client goes away.
import { DeliverPolicy, type ErrandConnection, type JsMsg } from '@errand/nats';
import { createSubjects, decodeMessage, Header, resourceNames, type AgentRecord, type ProgressEvent, type Redactor } from '@errand/protocols';

/** One SSE message: `id` is the stream sequence. */
export interface StreamItem {
  id: number;
  event: string;
  data: unknown;
}

/** How many messages a connection's consumer holds before the client has taken them. */
export const MAX_BUFFERED = 64;

export interface TailOptions {
  conn: ErrandConnection;
  stream: string;
  filterSubjects: string[];
  /** The first sequence to deliver. */
  startSeq: number;
  signal: AbortSignal;
}

/** Every message of `stream` on the subjects, from `startSeq` on, until `signal` aborts. */
export async function* tail(options: TailOptions): AsyncGenerator<JsMsg> {
  if (options.signal.aborted) return;
  // One subject as a string: servers before 2.10 take a single filter only.
  const filters = options.filterSubjects.length === 1 ? options.filterSubjects[0]! : options.filterSubjects;
  const consumer = await options.conn.js.consumers.get(options.stream, {
    filter_subjects: filters,
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: Math.max(1, options.startSeq),
  });
  const messages = await consumer.consume({ max_messages: MAX_BUFFERED });
  const close = () => void messages.close();
  options.signal.addEventListener('abort', close, { once: true });
  try {
    for await (const m of messages) {
      if (options.signal.aborted) break;
      yield m;
    }
  } finally {
    options.signal.removeEventListener('abort', close);
    await messages.close();
    // Gone now, not after the server's inactivity threshold: a dashboard reconnects often.
    await consumer.delete().catch(() => {});
  }
}

/** The sequence the next message of `stream` will get. */
export async function nextSeq(conn: ErrandConnection, stream: string): Promise<number> {
  const info = await (await conn.jsm()).streams.info(stream);
  return info.state.last_seq + 1;
}

/** The sequence of the first message on `subject`, or undefined when there is none. */
async function firstSeq(conn: ErrandConnection, stream: string, subject: string): Promise<number | undefined> {
  const consumer = await conn.js.consumers.get(stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
  try {
    if ((await consumer.info(true)).num_pending === 0) return undefined;
    const m = await consumer.next({ expires: 5_000 });
    return m?.seq;
  } finally {
    await consumer.delete().catch(() => {});
  }
}

function decodeEvent(m: JsMsg): ProgressEvent | undefined {
  try {
    return decodeMessage(m.data, { contentType: m.headers?.get(Header.ContentType) }) as ProgressEvent;
  } catch {
    return undefined; // not ours to judge: hosts publish what they validated
  }
}

const agentOfSubject = (subject: string, prefix: string): string | undefined => {
  // <prefix>.agent.<id>.ev.<kind>
  const rest = subject.slice(prefix.length + '.agent.'.length);
  const dot = rest.indexOf('.');
  return dot > 0 ? rest.slice(0, dot) : undefined;
};

export interface TreeOptions {
  conn: ErrandConnection;
  prefix: string;
  rootId: string;
  /** Deliver events with a sequence above this; from the agent's first event when undefined. */
  after: number | undefined;
  record(agentId: string): Promise<AgentRecord | undefined>;
  redactor: Redactor;
  signal: AbortSignal;
}

/**
 * The events of an agent and of every descendant, in stream order. A descendant is known by its
 * record's `parent` chain: a host writes a child's record before the child's first event, so an
 * event is judged when it arrives, and a child spawned at any time is in the stream from its first
 * event on. Each agent is looked up once per connection.
 */
export async function* agentTreeEvents(options: TreeOptions): AsyncGenerator<StreamItem> {
  const { conn, prefix, rootId } = options;
  const subjects = createSubjects(prefix);
  const stream = resourceNames(prefix).streams.events;
  let start: number;
  if (options.after !== undefined) start = options.after + 1;
  else {
    // Read the end first: if the agent has no event yet, its first one comes after it.
    const end = await nextSeq(conn, stream);
    start = (await firstSeq(conn, stream, subjects.agentEventAll(rootId))) ?? end;
  }
  const member = new Map<string, boolean>([[rootId, true]]);
  const members = new Set<string>([rootId]);
  // A child's id is `<parent>-<ref>`, or `c-<hash>` when that would be too long (childAgentId):
  // any other id is no descendant, and needs no lookup.
  const mayDescend = (agentId: string) => agentId.startsWith('c-') || [...members].some((m) => agentId.startsWith(`${m}-`));
  const isMember = async (agentId: string, depth = 0): Promise<boolean> => {
    const known = member.get(agentId);
    if (known !== undefined) return known;
    let result = false;
    if (depth < 64 && mayDescend(agentId)) {
      const parent = (await options.record(agentId).catch(() => undefined))?.parent?.agentId;
      result = parent !== undefined && (await isMember(parent, depth + 1));
    }
    member.set(agentId, result);
    if (result) members.add(agentId);
    return result;
  };
  for await (const m of tail({ conn, stream, filterSubjects: [subjects.agentEventAll()], startSeq: start, signal: options.signal })) {
    const agentId = agentOfSubject(m.subject, prefix);
    if (!agentId || !(await isMember(agentId))) continue;
    const event = decodeEvent(m);
    if (!event) continue;
    yield { id: m.seq, event: event.kind, data: options.redactor.redactDeep({ ...event, agentId }) };
  }
}

/** Every agent's `event.state`, `event.done` and `event.failed`, after `after` (or from now). */
export async function* allAgentsEvents(options: { conn: ErrandConnection; prefix: string; after: number | undefined; redactor: Redactor; signal: AbortSignal }): AsyncGenerator<StreamItem> {
  const subjects = createSubjects(options.prefix);
  const stream = resourceNames(options.prefix).streams.events;
  const start = options.after !== undefined ? options.after + 1 : await nextSeq(options.conn, stream);
  const kinds = ['state', 'done', 'failed'] as const;
  // Before 2.10 a consumer has one filter: every event then, and the others skipped here.
  const filterSubjects = options.conn.features.consumerMultipleFilters ? kinds.map((k) => subjects.agentEventAll(undefined, k)) : [subjects.agentEventAll()];
  const wanted = new Set<string>(kinds.map((k) => `event.${k}`));
  for await (const m of tail({ conn: options.conn, stream, filterSubjects, startSeq: start, signal: options.signal })) {
    const kind = m.subject.slice(m.subject.lastIndexOf('.ev.') + 4);
    if (!wanted.has(`event.${kind}`)) continue;
    const event = decodeEvent(m);
    if (!event) continue;
    const agentId = agentOfSubject(m.subject, options.prefix);
    yield { id: m.seq, event: event.kind, data: options.redactor.redactDeep({ ...event, ...(agentId ? { agentId } : {}) }) };
  }
}

export const LOG_LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

export interface LogFilter {
  service?: string;
  /** Lines about this agent or its readable children (`<id>-<ref>`). */
  agent?: string;
  level?: number;
}

/** Shipped log lines (ERRAND_LOGS), after `after`, or the last `tail` stored lines on. */
export async function* logLines(options: { conn: ErrandConnection; prefix: string; after: number | undefined; tail: number; filter: LogFilter; redactor: Redactor; signal: AbortSignal }): AsyncGenerator<StreamItem> {
  const subjects = createSubjects(options.prefix);
  const stream = resourceNames(options.prefix).streams.logs;
  const start = options.after !== undefined ? options.after + 1 : Math.max(1, (await nextSeq(options.conn, stream)) - options.tail);
  const { agent, level } = options.filter;
  for await (const m of tail({ conn: options.conn, stream, filterSubjects: [subjects.logs(options.filter.service)], startSeq: start, signal: options.signal })) {
    let line: Record<string, unknown>;
    try {
      const parsed = JSON.parse(new TextDecoder().decode(m.data)) as unknown;
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) continue;
      line = parsed as Record<string, unknown>;
    } catch {
      continue;
    }
    if (level !== undefined && (typeof line.level !== 'number' || line.level < level)) continue;
    if (agent !== undefined) {
      const id = line.agentId;
      if (typeof id !== 'string' || (id !== agent && !id.startsWith(`${agent}-`))) continue;
    }
    if (typeof line.service !== 'string') line.service = m.subject.slice(m.subject.lastIndexOf('.') + 1);
    yield { id: m.seq, event: 'log', data: options.redactor.redactDeep(line) };
  }
}
