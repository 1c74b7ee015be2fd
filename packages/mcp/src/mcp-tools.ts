import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { silentLogger, type Logger } from '@errand/protocols';
import { ToolError, type Tool, type ToolPolicy } from '@errand/tools';
import type { McpServerConfig } from './config.js';

const DEFAULT_TIMEOUT_MS = 10 * 60_000;

/** The catalog name of a server's tool: `<server>__<tool>` (function names allow no dots). */
export function namespacedToolName(server: string, tool: string): string {
  return `${server}__${tool}`.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
}

/** The tools of one MCP server, kept connected. */
export interface McpToolSource {
  readonly server: string;
  /** The server's tools, as Errand tools (allow-list applied). */
  tools(): Tool[];
  /** Called when the server says its tool list changed (after the list is read again). */
  onChange(listener: (tools: Tool[]) => void): void;
  close(): Promise<void>;
}

/**
 * Connects to an MCP server (stdio or Streamable HTTP) and exposes its tools. Each call carries its
 * idempotency key in `_meta`; a call that fails because the server went away is reported as a
 * retryable error, and the next call reconnects (starting a stdio server again). A stdio server's
 * environment is its config's `env` plus HOME, LOGNAME, PATH, SHELL, TERM and USER of this process
 * (the SDK's `getDefaultEnvironment()`), never the rest of the runner's environment.
 */
export async function connectMcpServer(server: string, config: McpServerConfig, options: { logger?: Logger } = {}): Promise<McpToolSource> {
  const log = (options.logger ?? silentLogger).child({ component: 'mcp', server });
  let client: Client | undefined;
  let connecting: Promise<Client> | undefined;
  let current: Tool[] = [];
  const listeners: ((tools: Tool[]) => void)[] = [];
  let closed = false;

  const connect = (): Promise<Client> =>
    (connecting ??= (async () => {
      const c = new Client({ name: 'errand-tool-runner', version: '0.1.0' });
      // Only the env the config names: the SDK adds its getDefaultEnvironment() (HOME, LOGNAME, PATH,
      // SHELL, TERM, USER of this process) and nothing else, so the runner's secrets stay here.
      const transport = config.command
        ? new StdioClientTransport({ command: config.command, args: config.args ?? [], env: { ...config.env }, ...(config.cwd ? { cwd: config.cwd } : {}), stderr: 'ignore' })
        : new StreamableHTTPClientTransport(new URL(config.url!), { requestInit: { headers: config.headers ?? {} } });
      c.onclose = () => {
        if (client === c) client = undefined;
        connecting = undefined;
        if (!closed) log.warn({}, 'MCP server connection closed; the next call reconnects');
      };
      await c.connect(transport);
      c.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
        await refresh(c).catch((err: unknown) => log.warn({ err }, 'could not re-read the tool list'));
        for (const l of listeners) l(current);
      });
      client = c;
      log.info({}, 'connected to MCP server');
      return c;
    })().catch((err: unknown) => {
      connecting = undefined;
      throw err;
    }));

  const refresh = async (c: Client): Promise<void> => {
    const { tools } = await c.listTools();
    current = tools
      .filter((t) => !config.allowTools || config.allowTools.includes(t.name))
      .map((t): Tool => {
        const hints = t.annotations ?? {};
        const policy: ToolPolicy = config.policies?.[t.name] ?? (hints.destructiveHint ? 'ask' : 'auto');
        return {
          definition: { name: namespacedToolName(server, t.name), description: t.description ?? t.title ?? t.name, parameters: t.inputSchema as Record<string, unknown> },
          idempotent: hints.idempotentHint === true || hints.readOnlyHint === true,
          destructive: hints.destructiveHint === true,
          defaultPolicy: policy,
          timeoutMs: config.toolTimeouts?.[t.name] ?? config.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          run: (args, { signal, key }) => call(t.name, args, signal, key, config.toolTimeouts?.[t.name] ?? config.timeoutMs ?? DEFAULT_TIMEOUT_MS),
        };
      });
  };

  const call = async (tool: string, args: unknown, signal: AbortSignal, key: string, timeoutMs: number): Promise<unknown> => {
    let c: Client;
    try {
      c = client ?? (await connect());
    } catch (err) {
      throw new ToolError('ERR_MCP_UNAVAILABLE', `cannot reach MCP server ${server}: ${(err as Error).message}`, true);
    }
    let result;
    try {
      result = await c.callTool({ name: tool, arguments: (args ?? {}) as Record<string, unknown>, _meta: { idempotencyKey: key } }, undefined, { signal, timeout: timeoutMs });
    } catch (err) {
      if (signal.aborted) throw err;
      // The server went away (or never answered): worth trying again once it is back.
      throw new ToolError('ERR_MCP_CALL', `MCP server ${server} did not complete ${tool}: ${(err as Error).message}`, true);
    }
    const text = (result.content as { type: string; text?: string }[] | undefined)?.filter((p) => p.type === 'text').map((p) => p.text ?? '').join('\n') ?? '';
    if (result.isError) throw new ToolError('ERR_MCP_TOOL', text || `${tool} failed`);
    return result.structuredContent ?? text;
  };

  await refresh(await connect());
  return {
    server,
    tools: () => current,
    onChange: (l) => listeners.push(l),
    async close() {
      closed = true;
      await client?.close().catch(() => {});
    },
  };
}
