import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createErrandMcpServer } from '@errand/mcp';
import { connectTo, resolveTarget, type GlobalOptions } from '../context.js';
import { createLogger } from '../logger.js';
import { parsePort } from './options.js';

interface McpOptions extends GlobalOptions {
  http?: number;
}

export function registerMcp(program: Command): void {
  program
    .command('mcp')
    .description('serve Errand as an MCP server (stdio, or Streamable HTTP with --http): submit_goal, get_agent, list_agents, approve, answer, cancel')
    .option('--http <port>', 'serve Streamable HTTP on 127.0.0.1:<port>/mcp instead of stdio (0: any free port)', parsePort)
    .addHelpText(
      'after',
      `
Examples:
  $ errand mcp                     # for an MCP client that starts it: {"command": "errand", "args": ["mcp"]}
  $ errand mcp --http 4020         # then point the client at http://127.0.0.1:4020/mcp`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<McpOptions>();
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
      const http = createServer(async (req, res) => {
        if (!req.url?.startsWith('/mcp')) return void res.writeHead(404).end('Errand serves MCP at /mcp');
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        let body: unknown;
        try {
          body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined;
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
      await new Promise<void>((resolve) => http.listen(opts.http, '127.0.0.1', resolve));
      process.stdout.write(`Errand MCP server at http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp (Ctrl-C to stop)\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await conn.close();
    });
}
