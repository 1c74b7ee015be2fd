// Errand's MCP tools read what an agent waits for from its record (`waiting`), whatever its
// machine: here the `reviewer` example, a custom machine that asks approval of one exact call.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveErrandMcpHttp } from '@errand/mcp';
import { approvalHash } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';

let srv: TestServer;
let d: Deployment;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
  await d.start('host');
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
});

type Result = { content: { type: string; text: string }[]; isError?: boolean };
const text = (r: unknown) => (r as Result).content[0]!.text;
const data = (r: unknown) => JSON.parse(text(r)) as Record<string, unknown>;

describe('errand mcp and record.waiting', () => {
  it('get_agent and list_agents show the exact call an agent waits for approval of; approve refuses other arguments; answer refuses an ended agent', async () => {
    const serving = await serveErrandMcpHttp({ conn: d.conn, prefix: d.prefix, port: 0 });
    const client = new Client({ name: 'waiting-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(serving.url)));
    try {
      const call = { tool: 'fs_write', args: { path: 'notes.txt', content: 'hi' } };
      const submitted = await client.callTool({ name: 'submit_goal', arguments: { goal: 'write a note', agent: 'reviewer', input: call } });
      const agentId = data(submitted).agentId as string;
      await d.waitForStatus(agentId, ['waiting']);

      const agent = data(await client.callTool({ name: 'get_agent', arguments: { agentId } }));
      expect(agent).toMatchObject({ status: 'waiting', waiting: { kind: 'approval', requestId: 'review-1', calls: [call], argsHash: approvalHash([call]) } });
      const listed = (data(await client.callTool({ name: 'list_agents', arguments: { status: 'waiting' } })) as { agents: unknown[] }).agents;
      expect(listed).toEqual([expect.objectContaining({ agentId, status: 'waiting', waiting: { kind: 'approval', requestId: 'review-1', summary: 'run fs_write' } })]);

      const other = await client.callTool({ name: 'approve', arguments: { agentId, decision: 'approve', requestId: 'review-1', argsHash: approvalHash([{ ...call, args: { path: 'other.txt' } }]) } });
      expect(other.isError).toBe(true);
      expect(text(other)).toMatch(/about other arguments than the ones you decided on/);
      const denied = data(await client.callTool({ name: 'approve', arguments: { agentId, decision: 'deny', requestId: 'review-1', argsHash: approvalHash([call]) } }));
      expect(denied).toEqual({ agentId, decision: 'deny', requestId: 'review-1' });
      expect(await d.waitForStatus(agentId, ['done', 'failed'])).toMatchObject({ status: 'done', output: { ran: false } });

      const late = await client.callTool({ name: 'answer', arguments: { agentId, text: 'too late' } });
      expect(late.isError).toBe(true);
      expect(text(late)).toBe(`agent ${agentId} has finished: nothing to answer or tell any more (errand show ${agentId})`);
    } finally {
      await client.close();
      await serving.close();
    }
  });
});
