// The agent definitions replay and fork fold through: the modules a host registers
// (ERRAND_AGENT_MODULES, by default the built-in agent and the examples), as `errand replay` loads them.
import { importModule, ModuleImportError } from '@errand/service';
import { createRegistry, type AgentDefinition, type AgentRegistry } from '@errand/core';
import { ErrandError } from '@errand/protocols';
import { GatewayErrorCode } from './errors.js';

/** ERRAND_AGENT_MODULES names a module that cannot be loaded, or one without agents: replay and fork cannot run. */
export class AgentModulesError extends ErrandError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(GatewayErrorCode.AgentModules, message, options);
    this.name = 'AgentModulesError';
  }
}

/** The agents of each module: a path (relative to `cwd`), or a package found from `cwd` and else among Errand's own dependencies. */
export async function loadRegistry(specifiers: readonly string[], cwd: string = process.cwd()): Promise<AgentRegistry> {
  const all: AgentDefinition[] = [];
  for (const spec of specifiers) {
    let mod: { agents?: readonly AgentDefinition[] };
    try {
      mod = await importModule(spec, { cwd, fallback: (s) => import(s) });
    } catch (err) {
      if (err instanceof ModuleImportError) throw new AgentModulesError(`ERRAND_AGENT_MODULES: ${err.message}`, { cause: err });
      throw new AgentModulesError(`ERRAND_AGENT_MODULES: '${spec}' failed to load: ${(err as Error).message}`, { cause: err });
    }
    if (!Array.isArray(mod.agents)) throw new AgentModulesError(`ERRAND_AGENT_MODULES: '${spec}' has no 'agents' export (an array of defineAgent(...) results)`);
    all.push(...mod.agents);
  }
  return createRegistry(all);
}

/** Loads once, on first use (a failed load is tried again next time). */
export function lazyRegistry(specifiers: readonly string[]): () => Promise<AgentRegistry> {
  let loading: Promise<AgentRegistry> | undefined;
  return () => {
    loading ??= loadRegistry(specifiers).catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };
}
