import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { ClientError, createClient } from '@errand/client';
import type { ErrandConnection } from '@errand/nats';

const json = (value: unknown) => ({ content: [{ type: 'text' as const, text: JSON.stringify(value, null, 2) }] });
const fail = (message: string) => ({ content: [{ type: 'text' as const, text: message }], isError: true });

/** Runs a tool body; a client error (no such agent, nothing pending…) becomes an MCP tool error. */
async function tool<T>(body: () => Promise<T>) {
  try {
    return json(await body());
  } catch (err) {
    if (err instanceof ClientError) return fail(err.message);
    throw err;
  }
}

/**
 * Errand as an MCP server: another agent or an MCP-capable app hands long work to Errand and checks
 * back later. Tools: `submit_goal`, `get_agent`, `list_agents`, `approve`, `answer`, `cancel`.
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
      annotations: { readOnlyHint: true },
    },
    ({ agentId }) => tool(() => client.get(agentId)),
  );
  server.registerTool(
    'list_agents',
    {
      description: 'Agents, newest first, optionally only those with a status (running, waiting, paused, done, failed, cancelled).',
      inputSchema: { status: z.string().optional(), limit: z.number().int().positive().max(200).optional() },
      annotations: { readOnlyHint: true },
    },
    ({ status, limit }) =>
      tool(async () =>
        (await client.list({ ...(status ? { status } : {}), limit: limit ?? 20 })).map(({ agentId, agent, goal, status: s, waiting, updatedAt }) => ({
          agentId,
          agent,
          goal,
          status: s,
          ...(waiting ? { waiting: { kind: waiting.kind, requestId: waiting.requestId, ...(waiting.question ? { question: waiting.question } : {}), ...(waiting.summary ? { summary: waiting.summary } : {}) } } : {}),
          updatedAt,
        })),
      ),
  );
  server.registerTool(
    'approve',
    {
      description:
        'Decide what an agent waits for approval of (get_agent: waiting of kind approval or budget). Pass the requestId and argsHash you were shown, ' +
        'so a decision never applies to other arguments (refused if they changed).',
      inputSchema: { agentId: z.string(), decision: z.enum(['approve', 'deny']), requestId: z.string().optional(), argsHash: z.string().optional() },
    },
    ({ agentId, decision, requestId, argsHash }) => tool(async () => ({ agentId, decision, ...(await client.decide(agentId, decision, by, requestId, argsHash)) })),
  );
  server.registerTool(
    'answer',
    {
      description: "Answer an agent's question (get_agent: waiting of kind input), or tell a working agent something. Refused for an agent that has ended.",
      inputSchema: { agentId: z.string(), text: z.string().min(1), requestId: z.string().optional() },
    },
    ({ agentId, text, requestId }) => tool(async () => (await client.answer(agentId, text, by, requestId ? { requestId } : {}), { agentId, delivered: true })),
  );
  server.registerTool(
    'cancel',
    { description: 'Cancel an agent (and its children).', inputSchema: { agentId: z.string(), reason: z.string().optional() }, annotations: { destructiveHint: true } },
    ({ agentId, reason }) => tool(async () => (await client.control(agentId, 'cancel', by, reason), { agentId, cancelled: true })),
  );
  return server;
}
