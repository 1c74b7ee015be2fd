// The agent definitions replay and fork fold through: the modules a host registers
// (ERRAND_AGENT_MODULES, by default the built-in agent and the examples), as `errand replay` loads them.
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRegistry, type AgentDefinition, type AgentRegistry } from '@errand/core';

export async function loadRegistry(specifiers: readonly string[]): Promise<AgentRegistry> {
  const all: AgentDefinition[] = [];
  for (const spec of specifiers) {
    const target = spec.startsWith('.') || isAbsolute(spec) ? pathToFileURL(resolve(spec)).href : spec;
    const mod = (await import(target)) as { agents?: readonly AgentDefinition[] };
    if (!Array.isArray(mod.agents)) throw new Error(`ERRAND_AGENT_MODULES: '${spec}' has no 'agents' export (an array of defineAgent(...) results)`);
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
