import type { AnyStateMachine } from 'xstate';
import { assertToken, type Budget, type NotifyRule } from '@errand/protocols';
import { RuntimeError, RuntimeErrorCode } from './errors.js';

/** What every agent machine receives as `input` when its goal arrives. */
export interface AgentInput {
  readonly agentId: string;
  readonly goal: string;
  /** Free-form input from the submitter. */
  readonly input: Readonly<Record<string, unknown>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly budget?: Budget | undefined;
  readonly model?: string | undefined;
  readonly system?: string | undefined;
  readonly tools?: readonly string[] | undefined;
  readonly notify?: readonly NotifyRule[] | undefined;
  readonly parent?: { readonly agentId: string; readonly ref: string } | undefined;
  /** When the goal was submitted (epoch ms): the start of the wall-clock budget. */
  readonly startedAt: number;
}

/** Turns a snapshot persisted by version `from` into one that version `from + 1` can read. */
export type SnapshotMigration = (persisted: unknown) => unknown;

/**
 * A statechart the host can run. Its actions follow the command conventions (see `actions.ts`);
 * `after` / delayed `raise` become durable timers; final states finish the agent with `output`.
 */
export interface AgentDefinition {
  readonly id: string;
  /** Bump it whenever a persisted snapshot of the old machine would not fit the new one. */
  readonly version: number;
  readonly machine: AnyStateMachine;
  readonly description: string;
  /** Migrations by the version they migrate *from*; a chain N → N+1 → … reaches this version. */
  readonly migrations: Readonly<Record<number, SnapshotMigration>>;
}

export interface AgentDefinitionOptions {
  id: string;
  version: number;
  machine: AnyStateMachine;
  description?: string;
  migrations?: Readonly<Record<number, SnapshotMigration>>;
}

/** Declares an agent. Throws {@link RuntimeError} `ERR_INVALID_DEFINITION` for a bad id or version. */
export function defineAgent(options: AgentDefinitionOptions): AgentDefinition {
  try {
    assertToken(options.id, 'agent definition id');
  } catch (cause) {
    throw new RuntimeError(RuntimeErrorCode.InvalidDefinition, (cause as Error).message, { cause });
  }
  if (!Number.isInteger(options.version) || options.version < 0) {
    throw new RuntimeError(RuntimeErrorCode.InvalidDefinition, `agent '${options.id}': version must be a whole number, got ${options.version}`);
  }
  return {
    id: options.id,
    version: options.version,
    machine: options.machine,
    description: options.description ?? '',
    migrations: options.migrations ?? {},
  };
}

/** The agents a host can run, by id and version. */
export interface AgentRegistry {
  /** The id used when a goal names none. */
  readonly defaultAgent: string;
  /** The newest version of `id`; throws `ERR_UNKNOWN_AGENT`. */
  latest(id: string): AgentDefinition;
  /** Exactly `id@version`, if registered. */
  find(id: string, version: number): AgentDefinition | undefined;
  has(id: string): boolean;
  list(): readonly AgentDefinition[];
}

/**
 * A registry of `definitions`; several versions of one id may be registered so that agents started
 * on an old version finish on it. `defaultAgent` defaults to the first definition's id.
 */
export function createRegistry(definitions: readonly AgentDefinition[], options: { defaultAgent?: string } = {}): AgentRegistry {
  const byId = new Map<string, AgentDefinition[]>();
  for (const d of definitions) {
    const versions = byId.get(d.id) ?? [];
    if (versions.some((v) => v.version === d.version)) {
      throw new RuntimeError(RuntimeErrorCode.InvalidDefinition, `agent '${d.id}' version ${d.version} is registered twice`);
    }
    versions.push(d);
    versions.sort((a, b) => b.version - a.version);
    byId.set(d.id, versions);
  }
  const defaultAgent = options.defaultAgent ?? definitions[0]?.id ?? '';
  if (defaultAgent && !byId.has(defaultAgent)) {
    throw new RuntimeError(RuntimeErrorCode.InvalidDefinition, `default agent '${defaultAgent}' is not registered`);
  }
  const known = () => [...byId.keys()].join(', ') || '(none)';
  return {
    defaultAgent,
    latest(id) {
      const d = byId.get(id)?.[0];
      if (!d) throw new RuntimeError(RuntimeErrorCode.UnknownAgent, `no agent '${id}' is registered on this host (known: ${known()})`);
      return d;
    },
    find: (id, version) => byId.get(id)?.find((d) => d.version === version),
    has: (id) => byId.has(id),
    list: () => [...byId.values()].flat(),
  };
}
