import { resolve } from 'node:path';
import type { ConnectOptions } from '@errand/nats';
import { TOOL_POLICIES, type CommandVerifier } from '@errand/protocols';
import { ConfigError, envConnect, envInt, envPrefix, envVerifyKey } from '@errand/service';
import type { ToolSettings } from '@errand/tool-runner';

export const BUILT_IN_TOOLS = ['fs_list', 'fs_read', 'fs_write', 'fs_delete', 'http_fetch', 'shell'] as const;

export interface ToolRunnerConfig {
  connect: Partial<ConnectOptions>;
  prefix: string;
  workspace: string;
  tools: string[];
  httpAllow: string[];
  shellAllow: string[];
  /** ERRAND_SHELL_NETWORK=1: the shell sandbox shares the runner's network. */
  shellNetwork: boolean;
  /** ERRAND_SHELL_ENV: the variables (names from the list, values from this environment) the shell sandbox gets. */
  shellEnv: Record<string, string>;
  /** ERRAND_SHELL_BWRAP: the bubblewrap binary (default `bwrap` on PATH). */
  shellBwrap: string | undefined;
  settings: Record<string, ToolSettings>;
  runnerId: string | undefined;
  /**
   * ERRAND_TOOL_MODULES (`errand worker tool-runner --tools`): modules of tools made with
   * defineTool (@errand/function-tools), comma-separated paths (from the working folder) or package names.
   */
  toolModules: string[];
  /** `errand.config.json` (ERRAND_CONFIG): the MCP servers (and `toolModules`) whose tools this runner serves. */
  configFile: string | undefined;
  concurrency: number;
  ackWaitMs: number;
  /** ERRAND_STOP_GRACE_MS: on SIGTERM, how long calls in flight may finish before the rest are handed back (nak: another process takes them at once). */
  stopGraceMs: number;
  logLevel: string;
  /** `ERRAND_VERIFY_KEY` (required): only commands a host of this deployment signed run. */
  verify: CommandVerifier;
}

const list = (v: string | undefined) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

export function parseConfig(env: Readonly<Record<string, string | undefined>>): ToolRunnerConfig {
  const shellAllow = list(env.ERRAND_SHELL_ALLOW);
  const tools = env.ERRAND_TOOLS !== undefined ? list(env.ERRAND_TOOLS) : ['fs_list', 'fs_read', 'fs_write', 'fs_delete', 'http_fetch', ...(shellAllow.length ? ['shell'] : [])];
  const unknown = tools.filter((t) => !(BUILT_IN_TOOLS as readonly string[]).includes(t));
  if (unknown.length) throw new ConfigError(`ERRAND_TOOLS: unknown tool ${unknown.join(', ')}; built-in tools are ${BUILT_IN_TOOLS.join(', ')}`);
  if (tools.includes('shell') && !shellAllow.length) throw new ConfigError('the shell tool needs ERRAND_SHELL_ALLOW: the commands it may run, comma-separated');
  const shellEnv: Record<string, string> = {};
  for (const name of list(env.ERRAND_SHELL_ENV)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ConfigError(`ERRAND_SHELL_ENV: '${name}' is not a variable name; list names, comma-separated (ERRAND_SHELL_ENV=GIT_AUTHOR_NAME,TZ)`);
    const value = env[name];
    if (value === undefined) throw new ConfigError(`ERRAND_SHELL_ENV names ${name}, which is not set in the tool-runner's environment`);
    shellEnv[name] = value;
  }
  if (env.ERRAND_SHELL_NETWORK !== undefined && !['0', '1', ''].includes(env.ERRAND_SHELL_NETWORK)) throw new ConfigError('ERRAND_SHELL_NETWORK must be 1 (the shell may reach the network) or 0 (it may not; the default)');
  let settings: Record<string, ToolSettings> = {};
  if (env.ERRAND_TOOL_SETTINGS) {
    try {
      settings = JSON.parse(env.ERRAND_TOOL_SETTINGS) as Record<string, ToolSettings>;
      for (const [name, s] of Object.entries(settings)) {
        if (s.policy !== undefined && !(TOOL_POLICIES as readonly string[]).includes(s.policy)) throw new Error(`${name}: policy '${s.policy}'`);
      }
    } catch (err) {
      throw new ConfigError(`ERRAND_TOOL_SETTINGS must be JSON like {"fs_delete": {"policy": "auto"}, "shell": {"idempotent": false, "timeoutMs": 60000}}: ${(err as Error).message}`);
    }
  }
  return {
    connect: envConnect(env, 'errand-tool-runner'),
    prefix: envPrefix(env),
    workspace: resolve(env.ERRAND_WORKSPACE || 'workspace'),
    tools,
    httpAllow: list(env.ERRAND_HTTP_ALLOW),
    shellAllow,
    shellNetwork: env.ERRAND_SHELL_NETWORK === '1',
    shellEnv,
    shellBwrap: env.ERRAND_SHELL_BWRAP || undefined,
    settings,
    runnerId: env.ERRAND_RUNNER_ID || undefined,
    toolModules: list(env.ERRAND_TOOL_MODULES),
    configFile: env.ERRAND_CONFIG ? resolve(env.ERRAND_CONFIG) : undefined,
    concurrency: envInt(env, 'ERRAND_TOOL_CONCURRENCY', 16),
    ackWaitMs: envInt(env, 'ERRAND_TOOL_ACK_WAIT_MS', 3_000, 100),
    stopGraceMs: envInt(env, 'ERRAND_STOP_GRACE_MS', 10_000, 0),
    logLevel: env.LOG_LEVEL || 'info',
    verify: envVerifyKey(env, 'tool-runner', { required: true }),
  };
}
