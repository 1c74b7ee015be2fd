import type { Command } from 'commander';
import { assertMcpHttpExposure, ErrandMcpServeError, ErrandMcpServeErrorCode, serveErrandMcpHttp, serveErrandMcpStdio } from '@errand/mcp';
import { connectTo, resolveTarget, type GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import { createLogger } from '../logger.js';
import { CliError } from '../output.js';
import { parsePort } from './options.js';

interface McpOptions extends GlobalOptions {
  http?: number;
  host: string;
}

/** Resolves on the first SIGINT or SIGTERM (or when stdin closes, with `stdin`). */
function stopSignal(stdin = false): Promise<void> {
  return new Promise<void>((resolve) => {
    if (stdin) process.stdin.once('close', resolve);
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
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
      if (opts.http !== undefined) {
        try {
          assertMcpHttpExposure(opts.host, token);
        } catch (err) {
          if (err instanceof ErrandMcpServeError && err.code === ErrandMcpServeErrorCode.TokenRequired) {
            throw new CliError(ExitCode.Usage, `serving MCP on ${opts.host} would let anyone who reaches it submit goals and approve calls: set ERRAND_MCP_TOKEN, or leave --host at 127.0.0.1`);
          }
          throw err;
        }
      }
      const logger = createLogger(opts.logLevel ?? 'warn', 'mcp');
      const target = await resolveTarget(opts);
      const conn = await connectTo(target, logger, 'errand-mcp');
      if (opts.http === undefined) {
        // stdio: stdout belongs to the protocol; logs go to stderr.
        const serving = await serveErrandMcpStdio(conn, target.prefix, { stdin: process.stdin, stdout: process.stdout });
        await stopSignal(true);
        await serving.close();
        await conn.close();
        return;
      }
      const serving = await serveErrandMcpHttp({ conn, prefix: target.prefix, port: opts.http, host: opts.host, token });
      process.stdout.write(`Errand MCP server at ${serving.url}${token ? ' (bearer token required)' : ''} (Ctrl-C to stop)\n`);
      await stopSignal();
      await serving.close();
      await conn.close();
    });
}
