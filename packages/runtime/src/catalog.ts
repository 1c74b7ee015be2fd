import { CatalogRunnerSchema, CatalogToolSchema, type CatalogTool } from '@errand/protocols';
import type { JetStreamClient, KV } from '@errand/nats';

type JetStreamManager = Awaited<ReturnType<JetStreamClient['jetstreamManager']>>;
import type { ToolDefinition, ToolPolicyName } from '@errand/protocols';

export interface LiveTool extends CatalogTool {
  /** Runners that heartbeat and serve it. */
  runners: string[];
}

/**
 * How long a runner whose heartbeats stopped still counts as serving its tools (or three of its
 * intervals, when longer). A runner riding out a node restart or a leader election misses a few
 * heartbeats; a goal submitted meanwhile must not lose its tools — their commands wait durably in
 * the work stream until a runner takes them.
 */
export const RUNNER_GRACE_MS = 60_000;

/**
 * The catalog's tools, each with the live runners that serve it (heartbeat within
 * {@link RUNNER_GRACE_MS}, or three intervals when longer).
 * With `fromLeader`, each entry is read through the stream's leader (the JetStream API's message
 * get) instead of a direct get, which on a replicated bucket (allow_direct) any replica may answer,
 * one that lags included: a tool registered a moment ago is then seen.
 */
export async function readCatalog(kv: KV, now = Date.now(), fromLeader?: JetStreamManager): Promise<LiveTool[]> {
  const tools = new Map<string, LiveTool>();
  const runners: { id: string; tools: string[] }[] = [];
  const leaderGet = fromLeader ? await leaderReader(kv, fromLeader) : undefined;
  const keys = await kv.keys();
  for await (const key of keys) {
    let value: unknown;
    if (leaderGet) {
      const e = await leaderGet(key);
      if (e === undefined) continue;
      value = e;
    } else {
      const e = await kv.get(key);
      if (!e || e.operation !== 'PUT') continue;
      value = e.json();
    }
    try {
      if (key.startsWith('tool.')) {
        const t = CatalogToolSchema.parse(value);
        tools.set(t.definition.name, { ...t, runners: [] });
      } else if (key.startsWith('runner.')) {
        const r = CatalogRunnerSchema.parse(value);
        if (now - r.heartbeatAt <= Math.max(3 * r.heartbeatMs, RUNNER_GRACE_MS)) runners.push({ id: r.runnerId, tools: r.tools });
      }
    } catch {
      // an entry that does not parse is not a tool anyone can use
    }
  }
  for (const r of runners) for (const name of r.tools) tools.get(name)?.runners.push(r.id);
  return [...tools.values()];
}

/** Reads a key's value (parsed JSON) through the stream leader; undefined when deleted or absent. */
async function leaderReader(kv: KV, jsm: JetStreamManager): Promise<(key: string) => Promise<unknown>> {
  const status = await kv.status();
  const stream = status.streamInfo.config.name;
  return async (key) => {
    const m = await jsm.streams.getMessage(stream, { last_by_subj: `$KV.${status.bucket}.${key}` });
    if (!m) return undefined; // none (the key was purged since it was listed)
    const op = m.header?.get('KV-Operation');
    if (op === 'DEL' || op === 'PURGE') return undefined;
    try {
      return m.json();
    } catch {
      return undefined;
    }
  };
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
