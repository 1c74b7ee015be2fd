import { headers, openBucket, type ErrandConnection, type KV } from '@errand/nats';
import { newTraceparent, TRACEPARENT, traceIdOf } from '@errand/telemetry';
import {
  createSubjects,
  decodeMessage,
  decodeRecord,
  encodeMessage,
  ErrandError,
  MESSAGE_VERSION,
  resourceNames,
  type AgentRecord,
  type Message,
  type Principal,
  type Subjects,
} from '@errand/protocols';

export const ClientErrorCode = {
  NotFound: 'ERR_AGENT_NOT_FOUND',
  NothingPending: 'ERR_NOTHING_PENDING',
  Refused: 'ERR_REFUSED',
  NoHost: 'ERR_NO_HOST',
} as const;

export class ClientError extends ErrandError {
  /** For `ERR_REFUSED`: the host's own error code (`ERR_UNKNOWN_AGENT`, `ERR_INVALID`…). */
  readonly reason: string | undefined;

  constructor(code: (typeof ClientErrorCode)[keyof typeof ClientErrorCode], message: string, agentId?: string, reason?: string) {
    super(code, message, { agentId });
    this.name = 'ClientError';
    this.reason = reason;
  }
}

/** What a person (or another agent) needs to know about an agent, from its record. */
export interface AgentSummary {
  agentId: string;
  agent: string;
  goal: string;
  status: AgentRecord['status'];
  state: unknown;
  step: number;
  labels: Record<string, string>;
  waitingForAnswer?: { requestId: string; text: string };
  waitingForApproval?: { requestId: string; argsHash: string; what: string };
  output?: unknown;
  error?: AgentRecord['error'];
  children: AgentRecord['children'];
  createdAt: string;
  updatedAt: string;
}

export function summarize(r: AgentRecord): AgentSummary {
  const context = ((r.snapshot as { context?: Record<string, unknown> } | undefined)?.context ?? {}) as {
    question?: { requestId: string; text: string };
    approval?: { requestId: string; argsHash: string; what: string };
  };
  return {
    agentId: r.agentId,
    agent: r.machine.id,
    goal: r.goal,
    status: r.status,
    state: (r.snapshot as { value?: unknown } | undefined)?.value ?? null,
    step: r.step,
    labels: r.labels ?? {},
    ...(context.question ? { waitingForAnswer: { requestId: context.question.requestId, text: context.question.text } } : {}),
    ...(context.approval ? { waitingForApproval: { requestId: context.approval.requestId, argsHash: context.approval.argsHash, what: context.approval.what } } : {}),
    ...(r.output !== undefined ? { output: r.output } : {}),
    ...(r.error ? { error: r.error } : {}),
    children: r.children,
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

/** The Errand client: everything a user does to agents, over NATS. */
export interface ErrandClient {
  readonly subjects: Subjects;
  /**
   * Hands a goal to a host; resolves with the agent id and the id of the trace the agent's work
   * joins (`traceparent` continues one of yours). Throws `ERR_NO_HOST` or `ERR_REFUSED`.
   */
  submit(goal: string, options?: SubmitOptions, trace?: { traceparent?: string }): Promise<{ agentId: string; existing: boolean; traceId: string }>;
  /** The agent's record, or undefined. */
  record(agentId: string): Promise<AgentRecord | undefined>;
  get(agentId: string): Promise<AgentSummary>;
  /** Agents matching every part of `filter`, most recently updated first. Records this build cannot read are left out. */
  list(filter?: ListFilter): Promise<AgentSummary[]>;
  /** Decides the approval the agent waits for (the exact request and arguments it shows). */
  decide(agentId: string, decision: 'approve' | 'deny', by: Principal, requestId?: string): Promise<{ requestId: string }>;
  /** Answers the agent's question, or tells a working agent something (`interrupt` stops the step in flight). */
  answer(agentId: string, text: string, by: Principal, options?: { interrupt?: boolean }): Promise<void>;
  control(agentId: string, action: 'cancel' | 'pause' | 'resume', by: Principal, reason?: string): Promise<void>;
}

export async function createClient(conn: ErrandConnection, prefix: string): Promise<ErrandClient> {
  const subjects = createSubjects(prefix);
  const agents: KV = await openBucket(conn, resourceNames(prefix).buckets.agents);
  const record = async (agentId: string) => {
    const e = await agents.get(agentId).catch(() => null);
    return e && e.operation === 'PUT' ? decodeRecord(e.value) : undefined;
  };
  const must = async (agentId: string) => {
    const r = await record(agentId);
    if (!r) throw new ClientError(ClientErrorCode.NotFound, `no agent ${agentId}`, agentId);
    return r;
  };
  return {
    subjects,
    async submit(goal, options = {}, trace = {}) {
      const request: Message<'submit.request'> = { v: MESSAGE_VERSION, kind: 'submit.request', goal, ...options };
      const traceparent = trace.traceparent ?? newTraceparent();
      const h = headers();
      h.set(TRACEPARENT, traceparent);
      let reply;
      try {
        reply = await conn.nc.request(subjects.submit(), encodeMessage(request).data, { timeout: 10_000, headers: h });
      } catch (err) {
        throw new ClientError(ClientErrorCode.NoHost, `no Errand host answered on ${subjects.submit()} (${(err as Error).message}); start one with \`errand up\` or the host service`);
      }
      const answer = decodeMessage(reply.data, { contentType: reply.headers?.get('Content-Type'), expect: 'submit.reply' });
      if (!answer.agentId) throw new ClientError(ClientErrorCode.Refused, `the host refused the goal: ${answer.error?.message}`, undefined, answer.error?.code);
      return { agentId: answer.agentId, existing: answer.existing ?? false, traceId: traceIdOf(traceparent) ?? '' };
    },
    record,
    get: async (agentId) => summarize(await must(agentId)),
    async list(filter = {}) {
      const statuses = filter.status === undefined ? undefined : typeof filter.status === 'string' ? [filter.status] : filter.status;
      const labels = Object.entries(filter.labels ?? {});
      const out: AgentSummary[] = [];
      const keys = await agents.keys();
      for await (const key of keys) {
        const r = await record(key).catch(() => undefined);
        if (!r) continue;
        if (statuses?.length && !statuses.includes(r.status)) continue;
        if (filter.agent && r.machine.id !== filter.agent) continue;
        if (labels.some(([k, v]) => r.labels?.[k] !== v)) continue;
        out.push(summarize(r));
      }
      out.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
      return out.slice(0, filter.limit ?? 50);
    },
    async decide(agentId, decision, by, requestId) {
      const pending = summarize(await must(agentId)).waitingForApproval;
      if (!pending || (requestId && requestId !== pending.requestId)) {
        throw new ClientError(ClientErrorCode.NothingPending, `agent ${agentId} is not waiting for ${requestId ? `approval ${requestId}` : 'an approval'}`, agentId);
      }
      const message: Message<'approval'> = { v: MESSAGE_VERSION, kind: 'approval', agentId, requestId: pending.requestId, argsHash: pending.argsHash, decision, by, at: Date.now() };
      await conn.js.publish(subjects.agentIn(agentId, 'approval'), encodeMessage(message).data);
      return { requestId: pending.requestId };
    },
    async answer(agentId, text, by, options = {}) {
      const question = summarize(await must(agentId)).waitingForAnswer;
      const message: Message<'input'> = {
        v: MESSAGE_VERSION, kind: 'input', agentId, text, ...(question ? { requestId: question.requestId } : {}), ...(options.interrupt ? { interrupt: true } : {}), by, at: Date.now(),
      };
      await conn.js.publish(subjects.agentIn(agentId, 'input'), encodeMessage(message).data);
    },
    async control(agentId, action, by, reason) {
      await must(agentId);
      const message: Message<'control'> = { v: MESSAGE_VERSION, kind: 'control', agentId, action, ...(reason ? { reason } : {}), by, at: Date.now() };
      await conn.js.publish(subjects.agentIn(agentId, 'control'), encodeMessage(message).data);
    },
  };
}
