// `errand mcp` as an MCP client sees it: every tool declares an outputSchema and answers with
// structuredContent (#17: results were JSON text only), which the official client checks.
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';

const cli = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url));

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

type Result = { content: { type: string; text: string }[]; structuredContent?: Record<string, unknown>; isError?: boolean };

/** The result's structuredContent, which must be what its text says. */
function structured(r: unknown): Record<string, unknown> {
  const result = r as Result;
  expect(result.isError, result.content[0]?.text).toBeFalsy();
  expect(result.structuredContent).toBeDefined();
  expect(JSON.parse(result.content[0]!.text)).toEqual(result.structuredContent);
  return result.structuredContent!;
}

describe('errand mcp results', () => {
  it('every tool has an outputSchema and returns structuredContent matching it; errors stay text', async () => {
    const client = new Client({ name: 'structured-test', version: '1.0.0' });
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [cli, 'mcp'], env: { ...(process.env as Record<string, string>), ...d.env('operator') }, stderr: 'ignore' }));
    try {
      const { tools } = await client.listTools();
      expect(tools.filter((t) => t.outputSchema?.type !== 'object').map((t) => t.name)).toEqual([]);
      expect(tools.find((t) => t.name === 'list_agents')!.outputSchema).toMatchObject({ properties: { agents: { type: 'array' } }, required: ['agents'] });

      // The client validates each structuredContent against the tool's outputSchema (it would throw).
      const { agentId } = structured(await client.callTool({ name: 'submit_goal', arguments: { goal: 'count', agent: 'tally', input: { expect: 2 } } })) as { agentId: string };
      expect(agentId).toMatch(/^a-/);
      expect(structured(await client.callTool({ name: 'answer', arguments: { agentId, text: '2' } }))).toEqual({ agentId, delivered: true });
      await d.waitForRecord(agentId, (r) => r.step >= 2);
      expect(structured(await client.callTool({ name: 'get_agent', arguments: { agentId } }))).toMatchObject({ agentId, agent: 'tally', status: 'running', step: 2, labels: {}, children: {} });
      expect(structured(await client.callTool({ name: 'list_agents', arguments: { status: 'running' } }))).toEqual({ agents: [expect.objectContaining({ agentId, agent: 'tally', status: 'running' })] });
      expect(structured(await client.callTool({ name: 'cancel', arguments: { agentId } }))).toEqual({ agentId, cancelled: true });
      await d.waitForStatus(agentId, ['cancelled']);

      const refused = (await client.callTool({ name: 'approve', arguments: { agentId, decision: 'approve' } })) as Result;
      expect(refused.isError).toBe(true);
      expect(refused.structuredContent).toBeUndefined();
      expect(refused.content[0]!.text).toMatch(/is not waiting for an approval/);
    } finally {
      await client.close();
    }
  }, 60_000);
});
