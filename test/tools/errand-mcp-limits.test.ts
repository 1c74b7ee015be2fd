import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeployment, startProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));

let srv: TestServer;
let d: Deployment;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv);
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
});

/** A body sent in chunks with no Content-Length, so only counting what arrives can catch it. */
const chunked = (bytes: number) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      const piece = new TextEncoder().encode(' '.repeat(64 * 1024));
      for (let sent = 0; sent < bytes; sent += piece.length) c.enqueue(piece);
      c.close();
    },
  });

describe('errand mcp --http: request body limit', () => {
  it('answers 413 to a body over 1 MiB, declared or chunked, and still serves MCP afterwards', async () => {
    const p = startProcess(process.execPath, [cli, 'mcp', '--http', '0'], { env: { ...process.env, ...d.env('operator') } });
    try {
      const url = /(http:\/\/\S+\/mcp)/.exec(await p.waitForLine(/Errand MCP server at/))![1]!;
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
      const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'submit_goal', arguments: { goal: 'x'.repeat(2 * 1024 * 1024) } } });
      const declared = await fetch(url, { method: 'POST', headers, body: big });
      expect(declared.status).toBe(413);
      expect(await declared.json()).toEqual({ error: 'the request body is larger than 1048576 bytes: send less' });
      const streamed = await fetch(url, { method: 'POST', headers, body: chunked(8 * 1024 * 1024), duplex: 'half' } as RequestInit);
      expect(streamed.status).toBe(413);

      // The server is alive and serves a real client.
      const client = new Client({ name: 'test-client', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(url)));
      try {
        const { tools } = await client.listTools();
        expect(tools.map((t) => t.name)).toContain('submit_goal');
      } finally {
        await client.close();
      }
    } finally {
      p.signal('SIGINT');
      expect((await p.exited).code).toBe(0);
    }
  });
});
