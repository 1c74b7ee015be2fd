import { fileURLToPath } from 'node:url';
import type { ConnectOptions } from '@errand/nats';
import type { ChannelConfig } from '@errand/notify';
import { ConfigError, envConnect, envInt, envPrefix } from '@errand/service';
import { parseCallbackChannels } from './callbacks.js';

/** A person the gateway knows, by the bearer token that names them. */
export interface GatewayUser {
  name: string;
  token: string;
}

export interface GatewayConfig {
  connect: Partial<ConnectOptions>;
  prefix: string;
  /** `ERRAND_GATEWAY_HOST` (default 127.0.0.1: loopback only). */
  host: string;
  /** `ERRAND_GATEWAY_PORT` (default 7878; 0 picks a free one). */
  port: number;
  /** `ERRAND_GATEWAY_TOKENS`: `name:token` pairs, comma-separated. */
  users: GatewayUser[];
  /** `ERRAND_GATEWAY_WEB_DIR`: the dashboard's built files (default services/gateway/dist/web). */
  webDir: string;
  /** `ERRAND_AGENT_MODULES`: the agent definitions replay and fork fold through. */
  agentModules: string[];
  /** `ERRAND_GATEWAY_KEEPALIVE_MS`: how often an idle event stream gets a `: keep-alive` comment (15 s). */
  keepAliveMs: number;
  /** `ERRAND_NOTIFY_CHANNELS` (the notifier's): the Slack and Telegram channels whose callbacks the gateway serves. */
  channels: Record<string, ChannelConfig>;
  logLevel: string;
}

/** The modules whose `agents` replay uses when ERRAND_AGENT_MODULES names none (the host's default). */
export const DEFAULT_AGENT_MODULES = '@errand/agent,@errand/example-agents';

export const DEFAULT_WEB_DIR = fileURLToPath(new URL('../dist/web', import.meta.url));

const NAME = /^[A-Za-z0-9._@-]{1,64}$/;
const TOKEN = /^[A-Za-z0-9._~+/=-]{16,256}$/;

/** `alice:tok…,bob:tok…` → users; a bad pair is a {@link ConfigError} that never repeats the token. */
export function parseTokens(raw: string | undefined): GatewayUser[] {
  if (!raw?.trim()) {
    throw new ConfigError('ERRAND_GATEWAY_TOKENS is required: comma-separated name:token pairs, e.g. alice:<32 random characters> (`errand up` makes one for you)');
  }
  const users: GatewayUser[] = [];
  for (const [i, pair] of raw.split(',').map((s) => s.trim()).filter(Boolean).entries()) {
    const colon = pair.indexOf(':');
    const name = colon < 0 ? '' : pair.slice(0, colon);
    const token = colon < 0 ? '' : pair.slice(colon + 1);
    if (!NAME.test(name)) throw new ConfigError(`ERRAND_GATEWAY_TOKENS: pair ${i + 1} needs a name of 1-64 letters, digits, . _ @ - before the ':'`);
    if (!TOKEN.test(token)) throw new ConfigError(`ERRAND_GATEWAY_TOKENS: the token of ${name} must be 16-256 characters of A-Z a-z 0-9 . _ ~ + / = -`);
    if (users.some((u) => u.token === token)) throw new ConfigError(`ERRAND_GATEWAY_TOKENS: the token of ${name} is also another person's: give each person their own`);
    users.push({ name, token });
  }
  return users;
}

export function parseConfig(env: Readonly<Record<string, string | undefined>>): GatewayConfig {
  return {
    connect: envConnect(env, 'errand-gateway'),
    prefix: envPrefix(env),
    host: env.ERRAND_GATEWAY_HOST || '127.0.0.1',
    port: envInt(env, 'ERRAND_GATEWAY_PORT', 7878, 0),
    users: parseTokens(env.ERRAND_GATEWAY_TOKENS),
    webDir: env.ERRAND_GATEWAY_WEB_DIR || DEFAULT_WEB_DIR,
    agentModules: (env.ERRAND_AGENT_MODULES || DEFAULT_AGENT_MODULES)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    keepAliveMs: envInt(env, 'ERRAND_GATEWAY_KEEPALIVE_MS', 15_000, 10),
    channels: parseCallbackChannels(env),
    logLevel: env.LOG_LEVEL || 'info',
  };
}
