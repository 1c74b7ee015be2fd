// The shapes the API takes and returns, as zod schemas: requests are validated with them, and the
// OpenAPI document is generated from all of them.
import { z } from 'zod';
import { AGENT_STATUSES, messageSchemas } from '@errand/protocols';

export const AgentIdParams = z.object({ id: z.string().min(1).max(200).describe('the agent id') });

/** POST /api/agents: the client SDK's SubmitOptions and the goal; `submittedBy` is always the signed-in person. */
export const SubmitBody = messageSchemas['submit.request'].omit({ v: true, kind: true, submittedBy: true }).meta({ id: 'SubmitRequest' });

export const SubmitResponse = z.object({ agentId: z.string(), existing: z.boolean(), traceId: z.string() }).meta({ id: 'SubmitResponse' });

const listOf = z.union([z.string(), z.array(z.string())]);
export const ListQuery = z.object({
  status: listOf.optional().describe(`statuses, comma-separated: ${AGENT_STATUSES.join(', ')}`),
  label: listOf.optional().describe('key:value, repeated or comma-separated; every one must match'),
  agent: z.string().optional().describe('the agent definition (machine id), e.g. assistant'),
  q: z.string().max(500).optional().describe('text in the goal or the id (case-insensitive)'),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(500).optional().describe('nextCursor of the previous page'),
});

export const WaitingSchema = z
  .object({
    kind: z.enum(['approval', 'input', 'budget']),
    requestId: z.string(),
    since: z.number().describe('epoch ms'),
    deadline: z.number().optional().describe('epoch ms'),
    question: z.string().optional(),
    calls: z.array(z.object({ tool: z.string(), args: z.unknown() })).optional(),
    argsHash: z.string().optional(),
    summary: z.string().optional(),
  })
  .meta({ id: 'Waiting' });

const statusSchema = z.enum(AGENT_STATUSES);
/** Who did something: the protocol's principal (as a goal's `submittedBy` has it). */
const principalSchema = messageSchemas.goal.shape.submittedBy;
export const AgentSummarySchema = z
  .object({
    agentId: z.string(),
    agent: z.string(),
    goal: z.string(),
    status: statusSchema,
    state: z.unknown(),
    step: z.number(),
    labels: z.record(z.string(), z.string()),
    waiting: WaitingSchema.optional(),
    output: z.unknown().optional(),
    error: z.object({ code: z.string(), message: z.string() }).loose().optional(),
    children: z.record(z.string(), z.object({ agentId: z.string(), status: statusSchema })),
    parent: z.object({ agentId: z.string(), ref: z.string() }).optional(),
    submittedBy: principalSchema,
    control: z.object({ action: z.enum(['cancel', 'pause', 'resume']), by: principalSchema, reason: z.string().optional(), at: z.number() }).optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
    usage: z.object({ inputTokens: z.number(), outputTokens: z.number(), costUsd: z.number() }).optional(),
    budget: z.object({ maxSteps: z.number(), maxTokens: z.number(), maxCostUsd: z.number(), maxWallMs: z.number() }).partial().optional(),
  })
  .meta({ id: 'AgentSummary' });

export const ListResponse = z.object({ agents: z.array(AgentSummarySchema), nextCursor: z.string().optional() }).meta({ id: 'AgentList' });

export const AgentResponse = z
  .object({
    agent: AgentSummarySchema,
    record: z.object({
      timers: z.record(z.string(), z.object({ key: z.string(), dueAt: z.number(), type: z.string().optional() })),
      pending: z.record(z.string(), z.object({ kind: z.string(), at: z.number() })),
      approvals: z.array(z.object({ requestId: z.string(), argsHash: z.string(), calls: z.array(z.string()), requestedAt: z.number(), decision: z.string().optional(), by: z.unknown().optional(), decidedAt: z.number().optional() })),
      origin: z.object({ agentId: z.string(), step: z.number() }).optional(),
      parent: z.object({ agentId: z.string(), ref: z.string() }).optional(),
      trace: z.string().optional(),
    }),
  })
  .meta({ id: 'Agent' });

export const JournalResponse = z.object({ entries: z.array(z.looseObject({ step: z.number(), event: z.unknown(), state: z.unknown(), status: z.string() })) }).meta({ id: 'Journal' });

export const DecisionBody = z.object({
  requestId: z.string().min(1).describe('waiting.requestId of the agent'),
  argsHash: z.string().min(1).describe('waiting.argsHash: the exact arguments the person saw'),
});
export const DecisionResponse = z.object({ requestId: z.string() });

export const AnswerBody = z.object({ text: z.string().min(1).max(100_000), requestId: z.string().min(1).optional().describe('the question answered (waiting.requestId); refused if it is no longer open') });
export const TellBody = z.object({ text: z.string().min(1).max(100_000), interrupt: z.boolean().optional().describe('stop the step in flight') });
export const CancelBody = z.object({ reason: z.string().max(2_000).optional() });
export const EmptyBody = z.object({});
export const Accepted = z.object({ ok: z.literal(true) });

export const ReplayQuery = z.object({ step: z.coerce.number().int().min(1).optional().describe('stop after this step (no verification then)') });
export const ReplayResponse = z
  .object({
    agentId: z.string(),
    steps: z.array(z.object({ step: z.number(), event: z.unknown(), summary: z.string(), state: z.unknown(), status: z.string(), commands: z.array(z.unknown()), matches: z.boolean() })),
    verification: z.looseObject({ ok: z.boolean() }).optional(),
    firstDivergentStep: z.number().optional(),
  })
  .meta({ id: 'Replay' });

export const ForkBody = z.object({
  at: z.number().int().min(1).describe('the step to fork after'),
  model: z.string().min(1).optional(),
  system: z.string().max(100_000).optional(),
  event: z.looseObject({ type: z.string().min(1) }).optional().describe('a machine event applied as the fork\'s next step'),
});
export const ForkResponse = z.object({ agentId: z.string() });

export const DiffQuery = z.object({ a: z.string().min(1), b: z.string().min(1) });
export const DiffResponse = z.looseObject({ a: z.string(), b: z.string(), firstDivergentStep: z.number().optional(), rows: z.array(z.unknown()), cost: z.unknown() }).meta({ id: 'RunDiff' });

export const SessionResponse = z.object({ user: z.string(), csrf: z.string().describe('send as X-Errand-CSRF with cookie-authenticated POSTs') });

const after = z.coerce.number().int().min(0).optional().describe('resume after this event id (as Last-Event-ID does)');
export const EventsQuery = z.object({ after });
export const LogsQuery = z.object({
  service: z.string().regex(/^[A-Za-z0-9_-]+$/).optional().describe('host, planner, tool-runner, notifier, gateway'),
  agent: z.string().min(1).optional().describe('lines about this agent (and its readable child ids)'),
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).optional().describe('this level and above'),
  tail: z.coerce.number().int().min(0).max(10_000).default(200).describe('without a resume point: start this many stored lines back'),
  after,
});
