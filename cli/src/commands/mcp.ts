import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { readBody, refuseTooLarge } from '@errand/http-body';
import { createErrandMcpServer } from '@errand/mcp';
import { connectTo, resolveTarget, type GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { createLogger } from '../logger.js';
import { CliError } from '../output.js';
import { parsePort } from './options.js';

interface McpOptions extends GlobalOptions {
  http?: number;
  host: string;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/** The largest MCP request body read (a JSON-RPC call; goals are far smaller). */
export const MAX_MCP_BODY_BYTES = 1024 * 1024;


/** Equal strings in time that does not depend on where they differ. */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Why a request may not use the server, or undefined. With ERRAND_MCP_TOKEN set it must carry
 * `Authorization: Bearer <token>`. A browser's request (it has an Origin) is let in only from the
 * server's own origin, so a web page cannot reach a local server through DNS rebinding.
 */
function refusal(headers: IncomingHttpHeaders, token: string | undefined, ownOrigins: readonly string[]): { status: number; message: string } | undefined {
  const origin = headers.origin;
  if (origin !== undefined && !ownOrigins.includes(origin)) return { status: 403, message: `requests from the origin ${origin} are not accepted` };
  if (token !== undefined) {
    const auth = headers.authorization ?? '';
    if (!auth.startsWith('Bearer ') || !sameSecret(auth.slice('Bearer '.length), token)) {
      return { status: 401, message: 'this Errand MCP server needs Authorization: Bearer <ERRAND_MCP_TOKEN>' };
    }
  }
  return undefined;
}

export function registerMcp(program: Command): void {
  program
    .command('mcp')
    .description('serve Errand as an MCP server (stdio, or Streamable HTTP with --http): submit_goal, get_agent, list_agents, approve, answer, cancel')
    .option('--http <port>', 'serve Streamable HTTP on <host>:<port>/mcp instead of stdio (0: any free port)', parsePort)
    .option('--host <address>', 'with --http: the address to listen on; other than loopback it needs ERRAND_MCP_TOKEN', '127.0.0.1')
    .addHelpText(
      'after',
      `
Over HTTP, set ERRAND_MCP_TOKEN to require \`Authorization: Bearer <token>\` on every request
(required when --host is not a loopback address). Requests from a browser page of another origin
are refused, and request bodies over 1 MiB are answered 413.

Examples:
  $ errand mcp                     # for an MCP client that starts it: {"command": "errand", "args": ["mcp"]}
  $ errand mcp --http 4020         # then point the client at http://127.0.0.1:4020/mcp
  $ ERRAND_MCP_TOKEN=$(openssl rand -hex 24) errand mcp --http 4020 --host 0.0.0.0`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<McpOptions>();
      const token = process.env.ERRAND_MCP_TOKEN || undefined;
      if (opts.http !== undefined && !LOOPBACK.has(opts.host) && token === undefined) {
        throw new CliError(ExitCode.Usage, `serving MCP on ${opts.host} would let anyone who reaches it submit goals and approve calls: set ERRAND_MCP_TOKEN, or leave --host at 127.0.0.1`);
      }
      const logger = createLogger(opts.logLevel ?? 'warn', 'mcp');
      const target = await resolveTarget(opts);
      const conn = await connectTo(target, logger, 'errand-mcp');
      if (opts.http === undefined) {
        // stdio: stdout belongs to the protocol; logs go to stderr.
        const server = await createErrandMcpServer(conn, target.prefix);
        await server.connect(new StdioServerTransport());
        await new Promise<void>((resolve) => {
          process.stdin.once('close', resolve);
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await server.close();
        await conn.close();
        return;
      }
      let ownOrigins: string[] = [];
      const http = createServer(async (req, res) => {
        if (!req.url?.startsWith('/mcp')) return void res.writeHead(404).end('Errand serves MCP at /mcp');
        const refused = refusal(req.headers, token, ownOrigins);
        if (refused) {
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (refused.status === 401) headers['www-authenticate'] = 'Bearer realm="errand"';
          return void res.writeHead(refused.status, headers).end(JSON.stringify({ error: refused.message }));
        }
        let raw: Buffer | undefined;
        try {
          raw = await readBody(req, MAX_MCP_BODY_BYTES);
        } catch {
          // The client went away mid-body: nobody to answer.
          return void res.destroy();
        }
        if (raw === undefined) return refuseTooLarge(req, res, { error: `the request body is larger than ${MAX_MCP_BODY_BYTES} bytes: send less` });
        let body: unknown;
        try {
          body = raw.length ? JSON.parse(raw.toString('utf8')) : undefined;
        } catch {
          return void res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"the body is not JSON"}');
        }
        // Stateless: a server and transport per request.
        const server = await createErrandMcpServer(conn, target.prefix);
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
        res.on('close', () => void transport.close().then(() => server.close()));
        await server.connect(transport);
        await transport.handleRequest(req, res, body);
      });
      await new Promise<void>((resolve) => http.listen(opts.http, opts.host, resolve));
      const port = (http.address() as AddressInfo).port;
      const shown = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
      ownOrigins = [`http://${shown}:${port}`, `http://localhost:${port}`, `http://127.0.0.1:${port}`];
      process.stdout.write(`Errand MCP server at http://${shown}:${port}/mcp${token ? ' (bearer token required)' : ''} (Ctrl-C to stop)\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await conn.close();
    });
}
