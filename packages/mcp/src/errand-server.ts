import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { ClientError, createClient } from '@errand/client';
import type { ErrandConnection } from '@errand/nats';

/**
 * A tool's result: the object as `structuredContent` (checked against the tool's `outputSchema`)
 * and, for clients that read only text, the same object as JSON text.
 */
const structured = (value: Record<string, unknown>) => ({ content: [{ type: 'text' as const, text: JSON.stringify(value, null, 2) }], structuredContent: value });
const fail = (message: string) => ({ content: [{ type: 'text' as const, text: message }], isError: true });

/** Runs a tool body; a client error (no such agent, nothing pending…) becomes an MCP tool error. */
async function tool(body: () => Promise<Record<string, unknown>>) {
  try {
    return structured(await body());
  } catch (err) {
    if (err instanceof ClientError) return fail(err.message);
    throw err;
  }
}

// What the tools return (their `outputSchema`s). Objects a later version may add fields to are
// loose: a client that validates against the schema accepts the new fields.
const WaitingOutput = z.looseObject({
  kind: z.enum(['input', 'approval', 'budget']).describe('what the agent waits for a person to do: answer (input), or decide (approval, budget)'),
  requestId: z.string().describe('the request an answer or a decision names'),
  question: z.string().optional(),
  summary: z.string().optional(),
  calls: z.array(z.looseObject({ tool: z.string(), args: z.unknown() })).optional().describe('approval: the exact tool calls asked about'),
  argsHash: z.string().optional().describe('approval/budget: pass it to approve'),
  since: z.number().optional(),
  deadline: z.number().optional(),
});
const AgentOutput = z.looseObject({
  agentId: z.string(),
  agent: z.string(),
  goal: z.string(),
  status: z.string().describe('running, waiting, paused, done, failed or cancelled'),
  state: z.unknown(),
  step: z.number(),
  labels: z.record(z.string(), z.string()),
  waiting: WaitingOutput.optional(),
  output: z.unknown().optional(),
  error: z.looseObject({ code: z.string(), message: z.string() }).optional(),
  children: z.record(z.string(), z.looseObject({ agentId: z.string(), status: z.string() })),
  parent: z.looseObject({ agentId: z.string(), ref: z.string() }).optional(),
  usage: z.looseObject({ inputTokens: z.number(), outputTokens: z.number(), costUsd: z.number() }).optional(),
  budget: z.looseObject({}).optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const ListedAgent = z.looseObject({
  agentId: z.string(),
  agent: z.string(),
  goal: z.string(),
  status: z.string(),
  waiting: z.looseObject({ kind: z.enum(['input', 'approval', 'budget']), requestId: z.string(), question: z.string().optional(), summary: z.string().optional() }).optional(),
  updatedAt: z.string(),
});

/**
 * Errand as an MCP server: another agent or an MCP-capable app hands long work to Errand and checks
 * back later. Tools: `submit_goal`, `get_agent`, `list_agents`, `approve`, `answer`, `cancel`; each
 * declares an `outputSchema` and returns its result as `structuredContent` (and as JSON text).
 */
export async function createErrandMcpServer(conn: ErrandConnection, prefix: string): Promise<McpServer> {
  const client = await createClient(conn, prefix);
  const by = { id: 'mcp', channel: 'mcp' };
  const server = new McpServer({ name: 'errand', version: '0.1.0' });

  server.registerTool(
    'submit_goal',
    {
      description: 'Hand a goal to Errand. It runs in the background (minutes or days); returns the agent id to check back with get_agent.',
      inputSchema: {
        goal: z.string().min(1),
        agent: z.string().optional(),
        model: z.string().optional(),
        input: z.record(z.string(), z.unknown()).optional(),
        labels: z.record(z.string(), z.string()).optional(),
        maxCostUsd: z.number().positive().optional(),
      },
      outputSchema: { agentId: z.string() },
    },
    ({ goal, agent, model, input, labels, maxCostUsd }) =>
      tool(async () => {
        const { agentId } = await client.submit(goal, {
          ...(agent ? { agent } : {}),
          ...(model ? { model } : {}),
          ...(input ? { input } : {}),
          ...(labels ? { labels } : {}),
          ...(maxCostUsd ? { budget: { maxCostUsd } } : {}),
          submittedBy: by,
        });
        return { agentId };
      }),
  );
  server.registerTool(
    'get_agent',
    {
      description:
        'The state of an agent: status, and in `waiting` what it waits for a person to do — `kind` input (answer its `question` with answer), ' +
        'approval (decide on the exact tool `calls` with approve) or budget (decide on its `question` with approve) — with `requestId`, `argsHash` and `deadline`; its usage, budget, output or error.',
      inputSchema: { agentId: z.string() },
      outputSchema: AgentOutput,
      annotations: { readOnlyHint: true },
    },
    ({ agentId }) => tool(async () => ({ ...(await client.get(agentId)) })),
  );
  server.registerTool(
    'list_agents',
    {
      description: 'Agents, newest first (`agents`), optionally only those with a status (running, waiting, paused, done, failed, cancelled).',
      inputSchema: { status: z.string().optional(), limit: z.number().int().positive().max(200).optional() },
      outputSchema: { agents: z.array(ListedAgent) },
      annotations: { readOnlyHint: true },
    },
    ({ status, limit }) =>
      tool(async () => ({
        agents: (await client.list({ ...(status ? { status } : {}), limit: limit ?? 20 })).map(({ agentId, agent, goal, status: s, waiting, updatedAt }) => ({
          agentId,
          agent,
          goal,
          status: s,
          ...(waiting ? { waiting: { kind: waiting.kind, requestId: waiting.requestId, ...(waiting.question ? { question: waiting.question } : {}), ...(waiting.summary ? { summary: waiting.summary } : {}) } } : {}),
          updatedAt,
        })),
      })),
  );
  server.registerTool(
    'approve',
    {
      description:
        'Decide what an agent waits for approval of (get_agent: waiting of kind approval or budget). Pass the requestId and argsHash you were shown, ' +
        'so a decision never applies to other arguments (refused if they changed).',
      inputSchema: { agentId: z.string(), decision: z.enum(['approve', 'deny']), requestId: z.string().optional(), argsHash: z.string().optional() },
      outputSchema: { agentId: z.string(), decision: z.enum(['approve', 'deny']), requestId: z.string().describe('the request decided') },
    },
    ({ agentId, decision, requestId, argsHash }) => tool(async () => ({ agentId, decision, ...(await client.decide(agentId, decision, by, requestId, argsHash)) })),
  );
  server.registerTool(
    'answer',
    {
      description: "Answer an agent's question (get_agent: waiting of kind input), or tell a working agent something. Refused for an agent that has ended.",
      inputSchema: { agentId: z.string(), text: z.string().min(1), requestId: z.string().optional() },
      outputSchema: { agentId: z.string(), delivered: z.boolean() },
    },
    ({ agentId, text, requestId }) => tool(async () => (await client.answer(agentId, text, by, requestId ? { requestId } : {}), { agentId, delivered: true })),
  );
  server.registerTool(
    'cancel',
    {
      description: 'Cancel an agent (and its children).',
      inputSchema: { agentId: z.string(), reason: z.string().optional() },
      outputSchema: { agentId: z.string(), cancelled: z.boolean() },
      annotations: { destructiveHint: true },
    },
    ({ agentId, reason }) => tool(async () => (await client.control(agentId, 'cancel', by, reason), { agentId, cancelled: true })),
  );
  return server;
}
