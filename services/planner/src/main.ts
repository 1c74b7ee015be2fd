#!/usr/bin/env node
// The planner service: wiring only. Configuration comes from the environment (see config.ts).
import { pino } from 'pino';
import { createOpenAIModel } from '@errand/llm';
import { connect, openBucket } from '@errand/nats';
import { createSubjects, resourceNames, type Logger } from '@errand/protocols';
import { startCommandWorker } from '@errand/worker';
import { ConfigError, parseConfig } from './config.js';
import { createPlanExecutor, createRateLimiter } from './planner.js';
import { SpendLedger } from './spend.js';

let config;
try {
  config = parseConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`errand-planner: ${err.message}\n`);
  process.exit(2);
}

const logger = pino({ level: config.logLevel, base: { service: 'planner', pid: process.pid }, redact: ['apiKey'] }) as unknown as Logger;
try {
  const conn = await connect({ ...config.connect, logger });
  const subjects = createSubjects(config.prefix);
  const spend = Object.keys(config.dailyCaps).length
    ? new SpendLedger(await openBucket(conn, resourceNames(config.prefix).buckets.effects), config.dailyCaps)
    : undefined;
  const model = createOpenAIModel({ baseURL: config.baseURL, apiKey: config.apiKey, timeoutMs: config.timeoutMs, prices: config.prices });
  const worker = await startCommandWorker({
    conn,
    prefix: config.prefix,
    name: 'planner',
    filterSubject: subjects.workPlan(),
    expect: 'plan.request',
    concurrency: config.concurrency,
    logger,
    execute: createPlanExecutor({ model, spend, defaultModel: config.model, nc: conn.nc, subjects, rateLimit: createRateLimiter(config.requestsPerMinute) }),
  });
  logger.info({ baseURL: config.baseURL ?? 'https://api.openai.com/v1', model: config.model }, 'planner ready');
  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'shutting down');
    await worker.stop();
    await conn.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
} catch (err) {
  logger.error({ err }, `planner failed to start: ${(err as Error).message}`);
  process.exit(1);
}
