// The tool-runner service as a definition: `main.ts` runs it as a process, `errand up` beside the others.
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { loadToolModules } from '@errand/function-tools/internal';
import { connectMcpServer, loadErrandConfig, type McpToolSource } from '@errand/mcp';
import { ConfigError, resolveModuleFrom, type ServiceDefinition } from '@errand/service';
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

    // Tools written as functions: ERRAND_TOOL_MODULES (from the working folder), then the config
    // file's `toolModules` (from its folder). Loaded before any MCP server starts: a bad module
    // stops the runner at once, saying which and why.
    const functionTools: { specifier: string; tools: readonly Tool[] }[] = [];
    const fromFile = config.configFile ? await toolModulesOf(config.configFile) : [];
    try {
      functionTools.push(...(await loadToolModules(config.toolModules, { base: process.cwd(), resolvePackage: resolveModuleFrom })));
      functionTools.push(...(await loadToolModules(fromFile, { base: dirname(config.configFile ?? '.'), resolvePackage: resolveModuleFrom })));
    } catch (err) {
      const from = config.toolModules.length && !fromFile.length ? 'ERRAND_TOOL_MODULES' : fromFile.length && !config.toolModules.length ? 'ERRAND_CONFIG toolModules' : 'tool modules';
      throw new ConfigError(`${from}: ${(err as Error).message}`);
    }
    const named = new Map<string, string>(builtIn.map((t) => [t.definition.name, 'a built-in tool']));
    for (const m of functionTools) {
      for (const t of m.tools) {
        const other = named.get(t.definition.name);
        if (other) throw new ConfigError(`tool ${t.definition.name} of ${m.specifier} has the name of ${other}; tool names must be unique (rename it, or leave the built-in out of ERRAND_TOOLS)`);
        named.set(t.definition.name, `the tool module ${m.specifier}`);
      }
    }

    const mcp: McpToolSource[] = [];
    if (config.configFile) {
      const file = await loadErrandConfig(config.configFile).catch((err: Error) => {
        throw new ConfigError(`ERRAND_CONFIG: ${err.message}`);
      });
      for (const [name, server] of Object.entries(file.mcpServers)) mcp.push(await connectMcpServer(name, server, { logger }));
    }
    // An MCP tool may take a name only once it is free (its server can change its list later):
    // one that collides with a built-in or function tool is left out, and said so.
    const mcpTools = () =>
      mcp.flatMap((m) =>
        m.tools().filter((t) => {
          const other = named.get(t.definition.name);
          if (other) logger.error({ server: m.server, tool: t.definition.name }, `MCP tool ${t.definition.name} of ${m.server} is not served: it has the name of ${other}`);
          return !other;
        }),
      );
    const all = () => [...builtIn, ...functionTools.flatMap((m) => m.tools), ...mcpTools()];
    const sources = () => ({
      ...Object.fromEntries(functionTools.flatMap((m) => m.tools.map((t) => [t.definition.name, `function:${m.specifier}`]))),
      ...Object.fromEntries(mcp.flatMap((m) => m.tools().filter((t) => !named.has(t.definition.name)).map((t) => [t.definition.name, `mcp:${m.server}`]))),
    });
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

/**
 * The config file's `toolModules`: paths (from the file's folder) or package names of modules of
 * function tools. The MCP part of the file is read by @errand/mcp; this reads only this key.
 */
async function toolModulesOf(file: string): Promise<string[]> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`ERRAND_CONFIG: cannot read the config file ${file}: ${(err as Error).message}`);
  }
  const modules = (raw as { toolModules?: unknown } | null)?.toolModules;
  if (modules === undefined) return [];
  if (!Array.isArray(modules) || modules.some((m) => typeof m !== 'string' || !m.trim())) {
    throw new ConfigError(`ERRAND_CONFIG: config file ${file}: toolModules must be a list of module paths or package names, like ["./dist/my-tools.js"]`);
  }
  return modules as string[];
}
