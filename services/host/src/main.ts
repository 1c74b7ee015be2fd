#!/usr/bin/env node
// The host service: wiring only. Configuration comes from the environment (see config.ts).
import { writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { isAbsolute, resolve } from 'node:path';
import { pino } from 'pino';
import { connect } from '@errand/nats';
import type { Logger } from '@errand/protocols';
import { createRegistry, startHost, type AgentDefinition, type CrashPoint } from '@errand/runtime';
import { ConfigError, parseConfig } from './config.js';

const config = (() => {
  try {
    return parseConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`errand-host: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
})();

const logger = pino({ level: config.logLevel, base: { service: 'host', pid: process.pid } }) as unknown as Logger;

async function loadAgents(specifiers: readonly string[]): Promise<AgentDefinition[]> {
  const all: AgentDefinition[] = [];
  for (const spec of specifiers) {
    const target = spec.startsWith('.') || isAbsolute(spec) ? pathToFileURL(resolve(spec)).href : spec;
    const mod = (await import(target)) as { agents?: readonly AgentDefinition[] };
    if (!Array.isArray(mod.agents)) throw new ConfigError(`ERRAND_AGENT_MODULES: '${spec}' has no 'agents' export (an array of defineAgent(...) results)`);
    all.push(...mod.agents);
  }
  return all;
}

let reached = 0;
const crash = (point: CrashPoint): void => {
  if (config.crashAt?.point !== point) return;
  reached += 1;
  if (reached < config.crashAt.nth) return;
  // Written synchronously: the process dies on the next line, with anything buffered.
  writeSync(2, `errand-host: crash point ${point} reached (ERRAND_CRASH_AT): SIGKILL\n`);
  process.kill(process.pid, 'SIGKILL');
};

try {
  const registry = createRegistry(await loadAgents(config.agentModules), { defaultAgent: config.defaultAgent });
  const conn = await connect({ ...config.connect, logger });
  const host = await startHost({
    conn,
    registry,
    prefix: config.prefix,
    logger,
    concurrency: config.concurrency,
    ackWaitMs: config.ackWaitMs,
    timers: config.timers,
    intake: config.intake,
    crash,
  });
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'shutting down');
    await host.stop();
    await conn.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
} catch (err) {
  logger.error({ err, code: (err as { code?: string }).code }, `host failed to start: ${(err as Error).message}`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}
