// The tool-runner service as a definition: `main.ts` runs it as a process, `errand up` beside the others.
import { mkdir } from 'node:fs/promises';
import { connectMcpServer, loadErrandConfig, type McpToolSource } from '@errand/mcp';
import { ConfigError, type ServiceDefinition } from '@errand/service';
import { startToolRunner } from '@errand/tool-runner';
import { fsTools, httpFetchTool, probeShellSandbox, shellTool, type ShellOptions, type Tool } from '@errand/tools';
import { parseConfig, type ToolRunnerConfig } from './config.js';

export const toolRunnerService: ServiceDefinition<ToolRunnerConfig> = {
  name: 'errand-tool-runner',
  parseConfig,
  logLevel: (c) => c.logLevel,
  connect: (c) => c.connect,
  start: async ({ config, conn, logger, redactor }) => {
    await mkdir(config.workspace, { recursive: true });
    const shell: ShellOptions = {
      allowCommands: config.shellAllow,
      cwd: config.workspace,
      timeoutMs: 120_000,
      maxOutputBytes: 64 * 1024,
      network: config.shellNetwork,
      env: config.shellEnv,
      ...(config.shellBwrap ? { bwrapPath: config.shellBwrap } : {}),
    };
    if (config.tools.includes('shell')) {
      // Said once at start; without the sandbox every shell call is refused, never run bare.
      const probe = await probeShellSandbox(shell);
      if (!probe.ok) logger.error({ reason: probe.reason, detail: probe.detail }, 'the shell sandbox is unavailable: every shell call will be refused (install bubblewrap)');
    }
    const builtIn: Tool[] = [
      ...fsTools({ root: config.workspace, maxReadBytes: 512 * 1024, maxWriteBytes: 512 * 1024 }),
      httpFetchTool({ allowHosts: config.httpAllow, maxBytes: 512 * 1024, timeoutMs: 30_000, maxRedirects: 5 }),
      ...(config.shellAllow.length ? [shellTool(shell)] : []),
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
      stopGraceMs: config.stopGraceMs,
      logger,
      verify: config.verify,
      redactor,
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
