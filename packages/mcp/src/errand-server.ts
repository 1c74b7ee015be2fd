import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { openBucket, type ErrandConnection } from '@errand/nats';
import {
  createSubjects,
  decodeMessage,
  decodeRecord,
  encodeMessage,
  MESSAGE_VERSION,
  resourceNames,
  type AgentRecord,
  type Message,
} from '@errand/protocols';

/** What a person (or another agent) needs to know about an agent, from its record. */
export function agentSummary(r: AgentRecord) {
  const context = ((r.snapshot as { context?: Record<string, unknown> } | undefined)?.context ?? {}) as {
    question?: { requestId: string; text: string };
    approval?: { requestId: string; what: string };
  };
  return {
    agentId: r.agentId,
    agent: r.machine.id,
    goal: r.goal,
    status: r.status,
    state: (r.snapshot as { value?: unknown } | undefined)?.value ?? null,
    step: r.step,
    labels: r.labels ?? {},
    ...(context.question ? { waitingForAnswer: context.question } : {}),
    ...(context.approval ? { waitingForApproval: context.approval } : {}),
    ...(r.output !== undefined ? { output: r.output } : {}),
    ...(r.error ? { error: r.error } : {}),
    children: r.children,
    createdAt: new Date(r.createdAt).toISOString(),
    updatedAt: new Date(r.updatedAt).toISOString(),
  };
}

const json = (value: unknown) => ({ content: [{ type: 'text' as const, text: JSON.stringify(value, null, 2) }] });
const fail = (message: string) => ({ content: [{ type: 'text' as const, text: message }], isError: true });

/**
 * Errand as an MCP server: another agent or an MCP-capable app hands long work to Errand and checks
 * back later. Tools: `submit_goal`, `get_agent`, `list_agents`, `approve`, `answer`, `cancel`.
 */
export async function createErrandMcpServer(conn: ErrandConnection, prefix: string): Promise<McpServer> {
  const subjects = createSubjects(prefix);
  const agents = await openBucket(conn, resourceNames(prefix).buckets.agents);
  const by = { id: 'mcp', channel: 'mcp' };
  const record = async (agentId: string) => {
    const e = await agents.get(agentId).catch(() => null);
    return e && e.operation === 'PUT' ? decodeRecord(e.value) : undefined;
  };
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
    async ({ goal, agent, model, input, labels, maxCostUsd }) => {
      const request: Message<'submit.request'> = {
        v: MESSAGE_VERSION,
        kind: 'submit.request',
        goal,
        ...(agent ? { agent } : {}),
        ...(model ? { model } : {}),
        ...(input ? { input } : {}),
        ...(labels ? { labels } : {}),
        ...(maxCostUsd ? { budget: { maxCostUsd } } : {}),
        submittedBy: by,
      };
      try {
        const reply = await conn.nc.request(subjects.submit(), encodeMessage(request).data, { timeout: 10_000 });
        const answer = decodeMessage(reply.data, { contentType: reply.headers?.get('Content-Type'), expect: 'submit.reply' });
        return answer.agentId ? json({ agentId: answer.agentId }) : fail(`Errand refused the goal: ${answer.error?.message}`);
      } catch (err) {
        return fail(`no Errand host answered (${(err as Error).message}); is Errand running?`);
      }
    },
  );

  server.registerTool(
    'get_agent',
    { description: 'The state of an agent: status, what it waits for (an answer, an approval), its output or error.', inputSchema: { agentId: z.string() }, annotations: { readOnlyHint: true } },
    async ({ agentId }) => {
      const r = await record(agentId);
      return r ? json(agentSummary(r)) : fail(`no agent ${agentId}`);
    },
  );

  server.registerTool(
    'list_agents',
    {
      description: 'Agents, newest first, optionally only those with a status (running, waiting, paused, done, failed, cancelled).',
      inputSchema: { status: z.string().optional(), limit: z.number().int().positive().max(200).optional() },
      annotations: { readOnlyHint: true },
    },
    async ({ status, limit }) => {
      const out: ReturnType<typeof agentSummary>[] = [];
      const keys = await agents.keys();
      for await (const key of keys) {
        const r = await record(key);
        if (r && (!status || r.status === status)) out.push(agentSummary(r));
      }
      out.sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
      return json(out.slice(0, limit ?? 20).map(({ agentId, agent, goal, status: s, updatedAt }) => ({ agentId, agent, goal, status: s, updatedAt })));
    },
  );

  server.registerTool(
    'approve',
    {
      description: 'Decide what an agent waits for approval of (see get_agent: waitingForApproval).',
      inputSchema: { agentId: z.string(), decision: z.enum(['approve', 'deny']) },
    },
    async ({ agentId, decision }) => {
      const r = await record(agentId);
      const approval = (r?.snapshot as { context?: { approval?: { requestId: string; argsHash: string } } } | undefined)?.context?.approval;
      if (!r) return fail(`no agent ${agentId}`);
      if (!approval) return fail(`agent ${agentId} is not waiting for an approval`);
      const message: Message<'approval'> = { v: MESSAGE_VERSION, kind: 'approval', agentId, requestId: approval.requestId, argsHash: approval.argsHash, decision, by, at: Date.now() };
      await conn.js.publish(subjects.agentIn(agentId, 'approval'), encodeMessage(message).data);
      return json({ agentId, requestId: approval.requestId, decision });
    },
  );

  server.registerTool(
    'answer',
    { description: "Answer an agent's question, or tell a working agent something.", inputSchema: { agentId: z.string(), text: z.string().min(1) } },
    async ({ agentId, text }) => {
      const r = await record(agentId);
      if (!r) return fail(`no agent ${agentId}`);
      const question = (r.snapshot as { context?: { question?: { requestId: string } } }).context?.question;
      const message: Message<'input'> = { v: MESSAGE_VERSION, kind: 'input', agentId, text, ...(question ? { requestId: question.requestId } : {}), by, at: Date.now() };
      await conn.js.publish(subjects.agentIn(agentId, 'input'), encodeMessage(message).data);
      return json({ agentId, delivered: true });
    },
  );

  server.registerTool(
    'cancel',
    { description: 'Cancel an agent (and its children).', inputSchema: { agentId: z.string(), reason: z.string().optional() }, annotations: { destructiveHint: true } },
    async ({ agentId, reason }) => {
      if (!(await record(agentId))) return fail(`no agent ${agentId}`);
      const message: Message<'control'> = { v: MESSAGE_VERSION, kind: 'control', agentId, action: 'cancel', ...(reason ? { reason } : {}), by, at: Date.now() };
      await conn.js.publish(subjects.agentIn(agentId, 'control'), encodeMessage(message).data);
      return json({ agentId, cancelled: true });
    },
  );
  return server;
}
