import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startMockLlm, type MockStep } from '@errand/llm';
import { openBucket } from '@errand/nats';
import { resourceNames } from '@errand/protocols';
import { readCatalog } from '@errand/runtime';
import { createDeployment, startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

const notesServer = fileURLToPath(new URL('../fixtures/mcp-notes-server.mjs', import.meta.url));

let srv: TestServer;
let http: Server;
let httpUrl: string;
const httpCalls: string[] = [];

/** A real MCP server over Streamable HTTP (stateless), written with the SDK. */
function calculator(): McpServer {
  const server = new McpServer({ name: 'calc', version: '1.0.0' });
  server.registerTool('add', { description: 'Add two numbers', inputSchema: { a: z.number(), b: z.number() }, annotations: { readOnlyHint: true } }, async ({ a, b }, extra) => {
    httpCalls.push(String(extra._meta?.idempotencyKey));
    return { content: [{ type: 'text', text: String(a + b) }] };
  });
  return server;
}

beforeAll(async () => {
  srv = await startTestServer();
  http = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
    const server = calculator();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => void transport.close().then(() => server.close()));
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  httpUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
});
afterAll(async () => {
  http?.closeAllConnections();
  await new Promise<void>((r) => (http ? http.close(() => r()) : r()));
  await srv?.stop();
});

async function world(steps: MockStep[], files: { pidFile: string; notesLog: string }, notes: Record<string, unknown> = {}) {
  const mock = await startMockLlm({ steps });
  const config = join(tmpdir(), `errand-config-${uniquePrefix()}.json`);
  await writeFile(
    config,
    JSON.stringify({
      mcpServers: {
        notes: { command: process.execPath, args: [notesServer], env: { PID_FILE: files.pidFile, NOTES_LOG: files.notesLog }, ...notes },
        calc: { url: httpUrl },
      },
    }),
  );
  const d = await createDeployment(srv, { env: { OPENAI_BASE_URL: mock.url, ERRAND_MODEL: 'mock-1', ERRAND_CONFIG: config, ERRAND_TOOLS: '' } });
  await Promise.all([d.start('host'), d.start('planner'), d.start('tool-runner')]);
  return { d, mock, stop: async () => (await d.stopAll(), await mock.close()) };
}

const files = () => ({ pidFile: join(tmpdir(), `notes-${uniquePrefix()}.pid`), notesLog: join(tmpdir(), `notes-${uniquePrefix()}.log`) });

describe('tools from MCP servers', () => {
  it('an agent uses a tool of a stdio MCP server and one of an HTTP MCP server, end to end', async () => {
    const f = files();
    const w = await world(
      [
        { reply: { toolCalls: [{ name: 'notes__add_note', arguments: { text: 'buy milk' } }, { name: 'calc__add', arguments: { a: 2, b: 40 } }] } },
        { expect: { contains: ['noted: buy milk', '42'] }, reply: { content: 'Noted, and the sum is 42.' } },
      ],
      f,
    );
    try {
      const catalog = await readCatalog(await openBucket(w.d.conn, resourceNames(w.d.prefix).buckets.tools));
      const byName = Object.fromEntries(catalog.map((t) => [t.definition.name, t]));
      expect(byName.notes__add_note).toMatchObject({ source: 'mcp:notes', policy: 'auto', idempotent: true });
      expect(byName.notes__burn_notes).toMatchObject({ policy: 'ask', destructive: true });
      expect(byName.calc__add).toMatchObject({ source: 'mcp:calc', idempotent: true });

      const agentId = await w.d.submit({ goal: 'Note it and add' });
      expect((await w.d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'Noted, and the sum is 42.' });
      const log = await readFile(f.notesLog, 'utf8');
      expect(log).toMatch(new RegExp(`^add_note ${agentId}:\\d+:\\d+ buy milk$`, 'm'));
      expect(httpCalls.some((k) => k.startsWith(`${agentId}:`))).toBe(true);
      expect(w.mock.failures).toEqual([]);
    } finally {
      await w.stop();
    }
  });

  it('the MCP server process is killed mid-call: the runner reconnects, the call is retried and succeeds', async () => {
    const f = files();
    const w = await world(
      [
        { reply: { toolCalls: [{ name: 'notes__slow_note', arguments: { text: 'survive' } }] } },
        { expect: { contains: ['slowly noted: survive'] }, reply: { content: 'It survived.' } },
      ],
      f,
    );
    try {
      const agentId = await w.d.submit({ goal: 'Note it slowly', input: { settings: { backoffBaseMs: 200 } } });
      // Wait until the server has the call, then kill it.
      for (let i = 0; i < 200; i++) {
        const log = await readFile(f.notesLog, 'utf8').catch(() => '');
        if (log.includes('slow_note started')) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const pid = Number(await readFile(f.pidFile, 'utf8'));
      process.kill(pid, 'SIGKILL');
      expect((await w.d.waitForStatus(agentId, ['done', 'failed'])).output).toMatchObject({ answer: 'It survived.' });
      const starts = (await readFile(f.notesLog, 'utf8')).split('\n').filter((l) => l.startsWith('slow_note started'));
      expect(starts).toHaveLength(2);
      expect(starts[1]).not.toContain(`pid ${pid}`);
    } finally {
      await w.stop();
    }
  }, 60_000);

  it("follows a server's tools/list_changed, and offers only the allow-listed tools", async () => {
    const f = files();
    const w = await world(
      [
        { reply: { toolCalls: [{ name: 'notes__learn_trick', arguments: {} }] } },
        { expect: { contains: ['learnt a trick'] }, reply: { content: 'Learnt it.' } },
      ],
      f,
      { allowTools: ['add_note', 'learn_trick', 'trick'] },
    );
    try {
      const tools = await openBucket(w.d.conn, resourceNames(w.d.prefix).buckets.tools);
      const names = async () => (await readCatalog(tools)).filter((t) => t.source === 'mcp:notes' && t.runners.length).map((t) => t.definition.name).sort();
      expect(await names()).toEqual(['notes__add_note', 'notes__learn_trick']);
      const agentId = await w.d.submit({ goal: 'Learn something' });
      await w.d.waitForStatus(agentId, ['done', 'failed']);
      // The runner re-reads the list when told it changed, and serves (and lists) the new tool.
      const watch = await tools.watch({ key: 'tool.notes__trick' });
      for await (const e of watch) if (e.operation === 'PUT') break;
      watch.stop();
      const runner = (await readCatalog(tools)).find((t) => t.definition.name === 'notes__trick');
      expect(runner?.source).toBe('mcp:notes');
    } finally {
      await w.stop();
    }
  });
});
