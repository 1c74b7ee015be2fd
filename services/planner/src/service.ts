// The planner service as a definition: `main.ts` runs it as a process, `errand up` beside the others.
import { createOpenAIModel } from '@errand/llm';
import { openBucket } from '@errand/nats';
import { createSubjects, resourceNames } from '@errand/protocols';
import type { ServiceDefinition } from '@errand/service';
import { startCommandWorker } from '@errand/worker';
import { parseConfig, type PlannerConfig } from './config.js';
import { createPlanExecutor } from './planner.js';
import { createRateLimiter, kvSlotStore, memorySlotStore, type SlotStore } from './rate-limit.js';
import { SpendLedger } from './spend.js';

export const plannerService: ServiceDefinition<PlannerConfig> = {
  name: 'errand-planner',
  parseConfig,
  logLevel: (c) => c.logLevel,
  connect: (c) => c.connect,
  secrets: (c) => [c.apiKey],
  start: async ({ config, conn, logger, redactor }) => {
    const subjects = createSubjects(config.prefix);
    const spend = Object.keys(config.dailyCaps).length
      ? new SpendLedger(await openBucket(conn, resourceNames(config.prefix).buckets.effects), config.dailyCaps)
      : undefined;
    // The rate limit is the deployment's, shared by every planner through the limits bucket.
    let slots: SlotStore | undefined;
    if (config.requestsPerMinute > 0) {
      const bucket = resourceNames(config.prefix).buckets.limits;
      try {
        slots = kvSlotStore(await openBucket(conn, bucket));
      } catch (err) {
        slots = memorySlotStore();
        logger.warn({ err, bucket }, `the limits bucket ${bucket} cannot be opened (run \`errand provision\`): ERRAND_MODEL_RPM holds per planner process, not across planners`);
      }
    }
    const rateLimit = createRateLimiter(config.requestsPerMinute, { windowMs: config.rateWindowMs, ...(slots ? { store: slots } : {}) });
    const model = createOpenAIModel({ baseURL: config.baseURL, apiKey: config.apiKey, timeoutMs: config.timeoutMs, prices: config.prices });
    const worker = await startCommandWorker({
      conn,
      prefix: config.prefix,
      name: 'planner',
      filterSubject: subjects.workPlan(),
      expect: 'plan.request',
      concurrency: config.concurrency,
      ackWaitMs: config.ackWaitMs,
      stopGraceMs: config.stopGraceMs,
      logger,
      verify: config.verify,
      execute: createPlanExecutor({ model, spend, defaultModel: config.model, nc: conn.nc, subjects, rateLimit, redactor }),
    });
    logger.info(
      { baseURL: config.baseURL ?? 'https://api.openai.com/v1', model: config.model, rateLimit: config.requestsPerMinute ? `${config.requestsPerMinute} per ${config.rateWindowMs} ms per model` : 'none' },
      'planner ready',
    );
    return worker;
  },
};
