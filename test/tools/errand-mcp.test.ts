import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeployment, runProcess, startProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));

let srv: TestServer;
let d: Deployment;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv);
  await d.start('host');
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
});

const text = (r: unknown) => ((r as { content: { text: string }[] }).content[0]?.text ?? '');
const data = (r: unknown) => JSON.parse(text(r)) as Record<string, unknown>;

describe('errand mcp', () => {
  it('an MCP client submits a goal over stdio and reads its result; cancels another', async () => {
    const client = new Client({ name: 'test-client', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({ command: process.execPath, args: [cli, 'mcp'], env: { ...(process.env as Record<string, string>), ...d.env('operator') }, stderr: 'ignore' }),
    );
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(['answer', 'approve', 'cancel', 'get_agent', 'list_agents', 'submit_goal']);

      const submitted = data(await client.callTool({ name: 'submit_goal', arguments: { goal: 'nap briefly', agent: 'sleeper', input: { delayMs: 200 } } }));
      const agentId = submitted.agentId as string;
      expect(agentId).toMatch(/^a-/);
      await d.waitForStatus(agentId, ['done']);
      expect(data(await client.callTool({ name: 'get_agent', arguments: { agentId } }))).toMatchObject({
        agentId,
        status: 'done',
        output: { reminders: 0, sleptMs: 200 },
      });

      const long = data(await client.callTool({ name: 'submit_goal', arguments: { goal: 'nap for long', agent: 'sleeper', input: { delayMs: 600_000 } } })).agentId as string;
      await d.waitForStatus(long, ['running']);
      const listed = (data(await client.callTool({ name: 'list_agents', arguments: { status: 'running' } })) as { agents: { agentId: string }[] }).agents;
      expect(listed.map((a) => a.agentId)).toContain(long);
      await client.callTool({ name: 'cancel', arguments: { agentId: long, reason: 'changed plans' } });
      expect((await d.waitForStatus(long, ['cancelled'])).error?.message).toBe('changed plans');

      const missing = await client.callTool({ name: 'get_agent', arguments: { agentId: 'no-such-agent' } });
      expect(missing.isError).toBe(true);
      expect(text(missing)).toBe('no agent no-such-agent');
    } finally {
      await client.close();
    }
  });

  it('serves Streamable HTTP with --http', async () => {
    const p = startProcess(process.execPath, [cli, 'mcp', '--http', '0'], { env: { ...process.env, ...d.env('operator') } });
    const url = /(http:\/\/\S+\/mcp)/.exec(await p.waitForLine(/Errand MCP server at/))![1]!;
    const client = new Client({ name: 'test-client', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url)));
    try {
      const agentId = data(await client.callTool({ name: 'submit_goal', arguments: { goal: 'count', agent: 'tally', input: { expect: 1 } } })).agentId as string;
      await d.waitForStatus(agentId, ['running']);
      await client.callTool({ name: 'answer', arguments: { agentId, text: '41' } });
      await d.waitForStatus(agentId, ['done']);
      expect(data(await client.callTool({ name: 'get_agent', arguments: { agentId } }))).toMatchObject({ output: { sum: 41 } });
    } finally {
      await client.close();
      p.signal('SIGINT');
      expect((await p.exited).code).toBe(0);
    }
  });

  it('over HTTP with ERRAND_MCP_TOKEN: no token or a wrong one is refused (401), a foreign origin too (403); the token lets a client in', async () => {
    const p = startProcess(process.execPath, [cli, 'mcp', '--http', '0'], { env: { ...process.env, ...d.env('operator'), ERRAND_MCP_TOKEN: 'let-me-in-0123456789' } });
    const url = /(http:\/\/\S+\/mcp)/.exec(await p.waitForLine(/Errand MCP server at .*bearer token required/))![1]!;
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } };
    const post = (headers: Record<string, string>) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(init) });
    try {
      const none = await post({});
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(await none.json()).toEqual({ error: expect.stringContaining('ERRAND_MCP_TOKEN') });
      expect((await post({ authorization: 'Bearer wrong' })).status).toBe(401);
      expect((await post({ authorization: 'Bearer let-me-in-0123456789', origin: 'http://evil.example' })).status).toBe(403);

      const client = new Client({ name: 'test-client', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: 'Bearer let-me-in-0123456789' } } }));
      try {
        const tools = await client.listTools();
        expect(tools.tools.map((t) => t.name)).toContain('submit_goal');
      } finally {
        await client.close();
      }
    } finally {
      p.signal('SIGINT');
      expect((await p.exited).code).toBe(0);
    }
  });

  it('refuses to listen beyond loopback without a token, and says what to set', async () => {
    const r = await runProcess(process.execPath, [cli, 'mcp', '--http', '0', '--host', '0.0.0.0'], { env: { ...process.env, ...d.env('operator'), ERRAND_MCP_TOKEN: '' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/set ERRAND_MCP_TOKEN/);
  });
});
