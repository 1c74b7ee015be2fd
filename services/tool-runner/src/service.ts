// The tool-runner service as a definition: `main.ts` runs it as a process, `errand up` beside the others.
import { mkdir } from 'node:fs/promises';
import { connectMcpServer, loadErrandConfig, type McpToolSource } from '@errand/mcp';
import { ConfigError, type ServiceDefinition } from '@errand/service';
import { startToolRunner } from '@errand/tool-runner';
import { fsTools, httpFetchTool, shellTool, type Tool } from '@errand/tools';
import { parseConfig, type ToolRunnerConfig } from './config.js';

export const toolRunnerService: ServiceDefinition<ToolRunnerConfig> = {
  name: 'errand-tool-runner',
  parseConfig,
  logLevel: (c) => c.logLevel,
  connect: (c) => c.connect,
  start: async ({ config, conn, logger }) => {
    await mkdir(config.workspace, { recursive: true });
    const builtIn: Tool[] = [
      ...fsTools({ root: config.workspace, maxReadBytes: 512 * 1024, maxWriteBytes: 512 * 1024 }),
      httpFetchTool({ allowHosts: config.httpAllow, maxBytes: 512 * 1024, timeoutMs: 30_000, maxRedirects: 5 }),
      ...(config.shellAllow.length ? [shellTool({ allowCommands: config.shellAllow, cwd: config.workspace, timeoutMs: 120_000, maxOutputBytes: 64 * 1024 })] : []),
    ].filter((t) => config.tools.includes(t.definition.name));

    const mcp: McpToolSource[] = [];
    if (config.configFile) {
      const file = await loadErrandConfig(config.configFile).catch((err: Error) => {
        throw new ConfigError(`ERRAND_CONFIG: ${err.message}`);
      });
      for (const [name, server] of Object.entries(file.mcpServers)) mcp.push(await connectMcpServer(name, server, { logger }));
    }
    const all = () => [...builtIn, ...mcp.flatMap((m) => m.tools())];
    const sources = () => Object.fromEntries(mcp.flatMap((m) => m.tools().map((t) => [t.definition.name, `mcp:${m.server}`])));
    const runner = await startToolRunner({
      conn,
      prefix: config.prefix,
      tools: all(),
      sources: sources(),
      settings: config.settings,
      concurrency: config.concurrency,
      ackWaitMs: config.ackWaitMs,
      logger,
      ...(config.runnerId ? { runnerId: config.runnerId } : {}),
    });
    for (const m of mcp) m.onChange(() => void runner.update(all(), sources()).catch((err: unknown) => logger.error({ err, server: m.server }, 'could not serve the changed tool list')));
    return {
      async stop() {
        await runner.stop();
        await Promise.all(mcp.map((m) => m.close()));
      },
    };
  },
};
