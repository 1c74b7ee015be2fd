import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { readBody, refuseTooLarge } from '@errand/http-body';
import type { ErrandConnection } from '@errand/nats';
import { ErrandError } from '@errand/protocols';
import { createErrandMcpServer } from './errand-server.js';

/** The largest MCP request body read (a JSON-RPC call; goals are far smaller). */
export const MAX_MCP_BODY_BYTES = 1024 * 1024;

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export const ErrandMcpServeErrorCode = {
  /** Serving on an address other than loopback without a bearer token. */
  TokenRequired: 'ERR_MCP_TOKEN_REQUIRED',
} as const;
export type ErrandMcpServeErrorCode = (typeof ErrandMcpServeErrorCode)[keyof typeof ErrandMcpServeErrorCode];

/** Errand's MCP server cannot be served as asked. */
export class ErrandMcpServeError extends ErrandError {
  declare readonly code: ErrandMcpServeErrorCode;

  constructor(code: ErrandMcpServeErrorCode, message: string) {
    super(code, message);
    this.name = 'ErrandMcpServeError';
  }
}

/**
 * Refuses to expose the server beyond loopback without a token: whoever reaches it could submit
 * goals and approve calls. Throws {@link ErrandMcpServeError} `ERR_MCP_TOKEN_REQUIRED`.
 */
export function assertMcpHttpExposure(host: string, token: string | undefined): void {
  if (!LOOPBACK.has(host) && token === undefined) {
    throw new ErrandMcpServeError(ErrandMcpServeErrorCode.TokenRequired, `serving MCP on ${host} without a bearer token would let anyone who reaches it submit goals and approve calls`);
  }
}

/** Equal strings in time that does not depend on where they differ. */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Why a request may not use the server, or undefined. With a token it must carry
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

export interface ErrandMcpStdioOptions {
  /** Where requests come from; default process.stdin. */
  stdin?: Readable;
  /** Where answers go (and nothing else may); default process.stdout. */
  stdout?: Writable;
}

/** A running Errand MCP server. Closing it leaves the NATS connection open: the caller owns that. */
export interface ErrandMcpServing {
  close(): Promise<void>;
}

/**
 * Serves Errand's MCP tools over stdio, for an MCP client that starts the process. It answers
 * until closed; when to close (stdin ended, a signal) is the caller's decision.
 */
export async function serveErrandMcpStdio(conn: ErrandConnection, prefix: string, options: ErrandMcpStdioOptions = {}): Promise<ErrandMcpServing> {
  const server = await createErrandMcpServer(conn, prefix);
  await server.connect(new StdioServerTransport(options.stdin, options.stdout));
  return { close: () => server.close() };
}

export interface ErrandMcpHttpOptions {
  conn: ErrandConnection;
  prefix: string;
  /** The port to listen on; 0 for any free one. */
  port: number;
  /** The address to listen on; default 127.0.0.1. Other than loopback it needs `token`. */
  host?: string;
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string | undefined;
  /** Request bodies larger than this are answered 413; default {@link MAX_MCP_BODY_BYTES}. */
  maxBodyBytes?: number;
}

export interface ErrandMcpHttpServer extends ErrandMcpServing {
  /** Where MCP is served: `http://<host>:<port>/mcp`. */
  readonly url: string;
  readonly port: number;
}

/**
 * Serves Errand's MCP tools over Streamable HTTP at `/mcp`, stateless (a server and transport per
 * request). Guarantees: with a token, a request without the right bearer token is answered 401;
 * a browser request from another origin 403; a body over `maxBodyBytes` 413 before it is read
 * whole; a body that is not JSON 400. Throws {@link ErrandMcpServeError} `ERR_MCP_TOKEN_REQUIRED`
 * for a non-loopback host without a token, before it listens.
 */
export async function serveErrandMcpHttp(options: ErrandMcpHttpOptions): Promise<ErrandMcpHttpServer> {
  const { conn, prefix, port: wanted, token } = options;
  const host = options.host ?? '127.0.0.1';
  const maxBodyBytes = options.maxBodyBytes ?? MAX_MCP_BODY_BYTES;
  assertMcpHttpExposure(host, token);
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
      raw = await readBody(req, maxBodyBytes);
    } catch {
      // The client went away mid-body: nobody to answer.
      return void res.destroy();
    }
    if (raw === undefined) return refuseTooLarge(req, res, { error: `the request body is larger than ${maxBodyBytes} bytes: send less` });
    let body: unknown;
    try {
      body = raw.length ? JSON.parse(raw.toString('utf8')) : undefined;
    } catch {
      return void res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"the body is not JSON"}');
    }
    // Stateless: a server and transport per request.
    const server = await createErrandMcpServer(conn, prefix);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => void transport.close().then(() => server.close()));
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  });
  await new Promise<void>((resolve) => http.listen(wanted, host, resolve));
  const port = (http.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  ownOrigins = [`http://${shown}:${port}`, `http://localhost:${port}`, `http://127.0.0.1:${port}`];
  return {
    url: `http://${shown}:${port}/mcp`,
    port,
    close: async () => {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
