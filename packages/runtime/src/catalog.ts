import { CatalogRunnerSchema, CatalogToolSchema, type CatalogTool } from '@errand/protocols';
import type { KV } from '@errand/nats';
import type { ToolDefinition, ToolPolicyName } from '@errand/protocols';

export interface LiveTool extends CatalogTool {
  /** Runners that heartbeat and serve it. */
  runners: string[];
}

/** The catalog's tools, each with the live runners that serve it (heartbeat within three intervals). */
export async function readCatalog(kv: KV, now = Date.now()): Promise<LiveTool[]> {
  const tools = new Map<string, LiveTool>();
  const runners: { id: string; tools: string[] }[] = [];
  const keys = await kv.keys();
  for await (const key of keys) {
    const e = await kv.get(key);
    if (!e || e.operation !== 'PUT') continue;
    try {
      if (key.startsWith('tool.')) {
        const t = CatalogToolSchema.parse(e.json());
        tools.set(t.definition.name, { ...t, runners: [] });
      } else if (key.startsWith('runner.')) {
        const r = CatalogRunnerSchema.parse(e.json());
        if (now - r.heartbeatAt <= 3 * r.heartbeatMs) runners.push({ id: r.runnerId, tools: r.tools });
      }
    } catch {
      // an entry that does not parse is not a tool anyone can use
    }
  }
  for (const r of runners) for (const name of r.tools) tools.get(name)?.runners.push(r.id);
  return [...tools.values()];
}

/**
 * The tools a goal gets: live, not denied, and among `allowed` when the goal names tools. `ask`
 * tools are listed in `policies` so the agent asks a person before each call.
 */
export function toolsForGoal(
  catalog: readonly LiveTool[],
  allowed: readonly string[] | undefined,
  overrides: Readonly<Record<string, ToolPolicyName>> = {},
): { definitions: ToolDefinition[]; policies: Record<string, ToolPolicyName>; timeouts: Record<string, number>; askIfArgs: Record<string, Record<string, unknown>> } {
  // A goal may make a tool stricter than the catalog says, never looser: the operator's word holds.
  const rank = { auto: 0, ask: 1, deny: 2 } as const;
  const policyOf = (t: LiveTool): ToolPolicyName => {
    const wanted = overrides[t.definition.name];
    return wanted !== undefined && rank[wanted] > rank[t.policy] ? wanted : t.policy;
  };
  const usable = catalog.filter((t) => t.runners.length > 0 && policyOf(t) !== 'deny' && (!allowed || allowed.includes(t.definition.name)));
  return {
    definitions: usable.map((t) => t.definition),
    policies: Object.fromEntries(usable.filter((t) => policyOf(t) !== 'auto').map((t) => [t.definition.name, policyOf(t)])),
    timeouts: Object.fromEntries(usable.map((t) => [t.definition.name, t.timeoutMs])),
    askIfArgs: Object.fromEntries(usable.filter((t) => t.askIfArgs).map((t) => [t.definition.name, t.askIfArgs!])),
  };
}
