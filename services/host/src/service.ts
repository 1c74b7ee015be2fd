// The host service as a definition: `main.ts` runs it as a process, `errand up` beside the others.
import { writeSync } from 'node:fs';
import { createRegistry, type AgentDefinition } from '@errand/core';
import { startHost, type CrashPoint } from '@errand/runtime';
import { ConfigError, importModule, ModuleImportError, type ServiceDefinition } from '@errand/service';
import { parseConfig, type HostConfig } from './config.js';

/**
 * Imports the `agents` export of each module: a path (relative to `cwd`), or a package name found
 * from `cwd` (its node_modules or a parent folder's) and else among Errand's own dependencies.
 * Throws {@link ConfigError} naming ERRAND_AGENT_MODULES when one cannot be found or has no agents.
 */
export async function loadAgents(specifiers: readonly string[], cwd: string = process.cwd()): Promise<AgentDefinition[]> {
  const all: AgentDefinition[] = [];
  for (const spec of specifiers) {
    let mod: { agents?: readonly AgentDefinition[] };
    try {
      mod = await importModule(spec, { cwd, fallback: (s) => import(s) });
    } catch (err) {
      if (err instanceof ModuleImportError) throw new ConfigError(`ERRAND_AGENT_MODULES: ${err.message}`);
      throw err;
    }
    if (!Array.isArray(mod.agents)) throw new ConfigError(`ERRAND_AGENT_MODULES: '${spec}' has no 'agents' export (an array of defineAgent(...) results)`);
    all.push(...mod.agents);
  }
  return all;
}

/** SIGKILLs the process the n-th time it reaches the configured crash point. */
function crashHook(crashAt: HostConfig['crashAt']): (point: CrashPoint) => void {
  let reached = 0;
  return (point) => {
    if (crashAt?.point !== point || ++reached < crashAt.nth) return;
    // Written synchronously: the process dies on the next line, with anything buffered.
    writeSync(2, `errand-host: crash point ${point} reached (ERRAND_CRASH_AT): SIGKILL\n`);
    process.kill(process.pid, 'SIGKILL');
  };
}

export const hostService: ServiceDefinition<HostConfig> = {
  name: 'errand-host',
  parseConfig,
  logLevel: (c) => c.logLevel,
  connect: (c) => c.connect,
  start: async ({ config, conn, logger, redactor }) =>
    startHost({
      ...config.settings,
      conn,
      registry: createRegistry(await loadAgents(config.agentModules), { defaultAgent: config.defaultAgent }),
      logger,
      crash: crashHook(config.crashAt),
      redactor,
      signer: config.signer,
      verifier: config.verifier,
    }),
};
