import { LlmError, LlmErrorCode, type ChatModel } from '@errand/llm';
import { formatUsd, MESSAGE_VERSION, patternRedactor, type Message, type Redactor, type Subjects } from '@errand/protocols';
import type { NatsConnection } from '@errand/nats';
import type { SpendLedger } from './spend.js';

// The limiter lives in rate-limit.ts; re-exported for the callers that know it from here.
export { createRateLimiter } from './rate-limit.js';

export interface PlannerOptions {
  model: ChatModel;
  /** Daily cost caps per label; absent when none are configured. */
  spend: SpendLedger | undefined;
  defaultModel: string;
  nc: NatsConnection;
  subjects: Subjects;
  rateLimit: (model: string, signal: AbortSignal) => Promise<void>;
  /**
   * Removes secrets from what the model says (its text, tool-call arguments, streamed chunks) and
   * from errors, before the agent, the journal or a watcher sees them; patterns only unless given.
   */
  redactor?: Redactor;
}

/**
 * Answers one plan command: calls the model (streaming its text, ephemerally, to
 * `errand.agent.<id>.stream`) and returns the `plan.result` — with the model's failure as data
 * when it fails, classified retryable or not, so the agent decides about retries.
 */
export function createPlanExecutor(o: PlannerOptions) {
  const encoder = new TextEncoder();
  const redactor = o.redactor ?? patternRedactor;
  return async (command: Message<'plan.request'>, { signal }: { signal: AbortSignal }): Promise<Message<'plan.result'> | undefined> => {
    const model = command.model ?? o.defaultModel;
    const base = { v: MESSAGE_VERSION, kind: 'plan.result', agentId: command.agentId, key: command.key, ...(command.ref !== undefined ? { ref: command.ref } : {}) } as const;
    try {
      if (o.spend && !command.overDailyCap) {
        const over = await o.spend.overCap(command.labels);
        if (over) {
          const error = {
            code: 'ERR_DAILY_BUDGET',
            message: `label ${over.label} spent ${formatUsd(over.spentUsd)} of its ${formatUsd(over.capUsd)} daily cap`,
            retryable: false,
            details: over,
          };
          return { ...base, error, at: Date.now() };
        }
      }
      await o.rateLimit(model, signal);
      const stream = o.subjects.agentStream(command.agentId);
      const completion = await o.model.complete(
        { model, messages: command.messages, tools: command.tools, temperature: command.temperature, maxOutputTokens: command.maxOutputTokens },
        // Chunk by chunk: a secret split across two chunks can pass the stream (ephemeral, never stored); the result below is whole.
        { signal, onToken: (text) => o.nc.publish(stream, encoder.encode(redactor.redact(text))) },
      );
      await o.spend?.charge(command.labels, completion.usage.costUsd ?? 0);
      return { ...base, result: { message: redactor.redactDeep(completion.message), finishReason: completion.finishReason }, usage: completion.usage, at: Date.now() };
    } catch (err) {
      if (signal.aborted) return undefined;
      const error = err instanceof LlmError ? err : new LlmError(LlmErrorCode.Connection, (err as Error).message, { retryable: true, cause: err });
      return { ...base, error: redactor.redactDeep(error.toErrorInfo()), at: Date.now() };
    }
  };
}
