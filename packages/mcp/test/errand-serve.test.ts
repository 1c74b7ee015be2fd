// Errand as an MCP server, at the package level: serveErrandMcpHttp's refusals (exposure without a
// token, wrong path, missing or wrong bearer token, a foreign origin, a body too large or not JSON)
// and a real MCP client over HTTP and over stdio streams. test/tools/errand-mcp*.test.ts run the
// same through `errand mcp` against a running deployment.
import { PassThrough } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertMcpHttpExposure, ErrandMcpServeError, ErrandMcpServeErrorCode, serveErrandMcpHttp, serveErrandMcpStdio } from '@errand/mcp';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';

const TOOLS = ['answer', 'approve', 'cancel', 'get_agent', 'list_agents', 'submit_goal'];

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

describe('assertMcpHttpExposure', () => {
  it('refuses an address other than loopback without a token, with a stable code', () => {
    const refused = (() => {
      try {
        assertMcpHttpExposure('0.0.0.0', undefined);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(refused).toBeInstanceOf(ErrandMcpServeError);
    expect((refused as ErrandMcpServeError).code).toBe(ErrandMcpServeErrorCode.TokenRequired);
    for (const host of ['127.0.0.1', '::1', 'localhost']) expect(() => assertMcpHttpExposure(host, undefined)).not.toThrow();
    expect(() => assertMcpHttpExposure('0.0.0.0', 'a-token')).not.toThrow();
  });

  it('serveErrandMcpHttp refuses the same before it listens', async () => {
    await expect(serveErrandMcpHttp({ conn: d.conn, prefix: d.prefix, port: 0, host: '0.0.0.0' })).rejects.toMatchObject({ code: 'ERR_MCP_TOKEN_REQUIRED' });
  });
});

describe('serveErrandMcpHttp', () => {
  it('answers only /mcp, only with the bearer token, only from its own origin, only JSON bodies up to the limit; serves a real client; stops on close', async () => {
    const token = 'package-level-token-0123456789';
    const serving = await serveErrandMcpHttp({ conn: d.conn, prefix: d.prefix, port: 0, token, maxBodyBytes: 4096 });
    const { url, port } = serving;
    expect(url).toBe(`http://127.0.0.1:${port}/mcp`);
    try {
      const post = (headers: Record<string, string>, body = '{}', at = url) =>
        fetch(at, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body });
      const bearer = { authorization: `Bearer ${token}` };

      expect((await post(bearer, '{}', `http://127.0.0.1:${port}/other`)).status).toBe(404);
      const none = await post({});
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="errand"');
      expect(await none.json()).toEqual({ error: 'this Errand MCP server needs Authorization: Bearer <ERRAND_MCP_TOKEN>' });
      expect((await post({ authorization: 'Bearer wrong' })).status).toBe(401);
      const foreign = await post({ ...bearer, origin: 'http://evil.example' });
      expect(foreign.status).toBe(403);
      expect(await foreign.json()).toEqual({ error: 'requests from the origin http://evil.example are not accepted' });
      const notJson = await post(bearer, 'not json');
      expect(notJson.status).toBe(400);
      expect(await notJson.json()).toEqual({ error: 'the body is not JSON' });
      const big = await post(bearer, JSON.stringify({ pad: 'x'.repeat(8192) }));
      expect(big.status).toBe(413);
      expect(await big.json()).toEqual({ error: 'the request body is larger than 4096 bytes: send less' });

      // Its own origin with the token is served, by a real MCP client.
      const client = new Client({ name: 'package-test', version: '1.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { ...bearer, origin: `http://127.0.0.1:${port}` } } }));
      try {
        expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(TOOLS);
      } finally {
        await client.close();
      }
    } finally {
      await serving.close();
    }
    await expect(fetch(url, { method: 'POST', body: '{}' })).rejects.toThrow();
  });
});

describe('serveErrandMcpStdio', () => {
  it("answers JSON-RPC lines on the streams it is given, not on the process's own", async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const lines: unknown[] = [];
    let buffered = '';
    const waiters: Array<() => void> = [];
    stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buffered.slice(0, nl)));
        buffered = buffered.slice(nl + 1);
        waiters.splice(0).forEach((w) => w());
      }
    });
    const nextLine = async (n: number) => {
      while (lines.length < n) await new Promise<void>((resolve) => waiters.push(resolve));
      return lines[n - 1] as { id: number; result: Record<string, unknown> };
    };
    const send = (message: unknown) => stdin.write(`${JSON.stringify(message)}\n`);

    const serving = await serveErrandMcpStdio(d.conn, d.prefix, { stdin, stdout });
    send({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'package-test', version: '1.0.0' } } });
    const init = await nextLine(1);
    expect(init.id).toBe(1);
    expect(init.result.serverInfo).toMatchObject({ name: 'errand' });
    send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    send({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    const listed = await nextLine(2);
    expect(listed.id).toBe(2);
    expect((listed.result.tools as Array<{ name: string }>).map((t) => t.name).sort()).toEqual(TOOLS);
    await serving.close();
  });
});
