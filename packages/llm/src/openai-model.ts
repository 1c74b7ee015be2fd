import OpenAI from 'openai';
import type { ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import type { ChatMessage, ToolCall } from '@errand/protocols';
import { LlmError, LlmErrorCode } from './errors.js';
import { costOf, type ChatModel, type Completion, type CompleteOptions, type CompletionRequest, type PriceTable } from './model.js';

export interface OpenAIModelOptions {
  /** Any OpenAI-compatible endpoint (OpenAI, Ollama, vLLM, llama.cpp, OpenRouter…). */
  baseURL: string | undefined;
  apiKey: string;
  /** Per call. Long generations are normal: the default is generous. */
  timeoutMs: number;
  prices: PriceTable;
  /** Stream tokens (and report them through `onToken`). */
  stream: boolean;
}

export function defaultOpenAIModelOptions(): OpenAIModelOptions {
  return { baseURL: undefined, apiKey: 'not-needed', timeoutMs: 10 * 60_000, prices: {}, stream: true };
}

/** A {@link ChatModel} on the official `openai` client, with its own retries off. */
export function createOpenAIModel(options: Partial<OpenAIModelOptions> = {}): ChatModel {
  const o = { ...defaultOpenAIModelOptions(), ...options };
  const client = new OpenAI({ apiKey: o.apiKey, baseURL: o.baseURL ?? null, maxRetries: 0, timeout: o.timeoutMs });

  return {
    async complete(request: CompletionRequest, opts: Partial<CompleteOptions> = {}): Promise<Completion> {
      const body = {
        model: request.model,
        messages: request.messages.map(toOpenAIMessage),
        ...(request.tools.length ? { tools: request.tools.map(toOpenAITool) } : {}),
        ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
        ...(request.maxOutputTokens !== undefined ? { max_tokens: request.maxOutputTokens } : {}),
      };
      try {
        if (!o.stream) {
          const r = await client.chat.completions.create({ ...body, stream: false }, { signal: opts.signal });
          const choice = r.choices[0];
          if (!choice) throw new LlmError(LlmErrorCode.Server, 'the model returned no choices', { retryable: true });
          const toolCalls = (choice.message.tool_calls ?? []).flatMap((c) =>
            c.type === 'function' ? [{ id: c.id, name: c.function.name, arguments: c.function.arguments }] : [],
          );
          return finish(request.model, choice.message.content ?? null, toolCalls, choice.finish_reason, r.usage?.prompt_tokens ?? 0, r.usage?.completion_tokens ?? 0, o.prices);
        }
        const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } }, { signal: opts.signal });
        let content = '';
        let finishReason = 'stop';
        let inputTokens = 0;
        let outputTokens = 0;
        const calls = new Map<number, { id: string; name: string; arguments: string }>();
        for await (const chunk of stream as AsyncIterable<ChatCompletionChunk>) {
          if (chunk.usage) {
            inputTokens = chunk.usage.prompt_tokens;
            outputTokens = chunk.usage.completion_tokens;
          }
          const choice = chunk.choices[0];
          if (!choice) continue;
          if (choice.delta.content) {
            content += choice.delta.content;
            opts.onToken?.(choice.delta.content);
          }
          for (const d of choice.delta.tool_calls ?? []) {
            const call = calls.get(d.index) ?? { id: '', name: '', arguments: '' };
            if (d.id) call.id = d.id;
            if (d.function?.name) call.name += d.function.name;
            if (d.function?.arguments) call.arguments += d.function.arguments;
            calls.set(d.index, call);
          }
          if (choice.finish_reason) finishReason = choice.finish_reason;
        }
        const toolCalls = [...calls.entries()].sort(([a], [b]) => a - b).map(([, c]) => c);
        return finish(request.model, content.length ? content : null, toolCalls, finishReason, inputTokens, outputTokens, o.prices);
      } catch (err) {
        throw classify(err);
      }
    },
  };
}

function finish(model: string, content: string | null, toolCalls: ToolCall[], finishReason: string, inputTokens: number, outputTokens: number, prices: PriceTable): Completion {
  const costUsd = costOf(prices, model, inputTokens, outputTokens);
  const message: ChatMessage = { role: 'assistant', content, ...(toolCalls.length ? { toolCalls } : {}) };
  return { message, finishReason, usage: { model, inputTokens, outputTokens, ...(costUsd !== undefined ? { costUsd } : {}) } };
}

function toOpenAIMessage(m: ChatMessage): ChatCompletionMessageParam {
  switch (m.role) {
    case 'system':
      return { role: 'system', content: m.content ?? '' };
    case 'user':
      return { role: 'user', content: m.content ?? '' };
    case 'tool':
      return { role: 'tool', content: m.content ?? '', tool_call_id: m.toolCallId ?? '' };
    case 'assistant':
      return {
        role: 'assistant',
        content: m.content,
        ...(m.toolCalls?.length
          ? { tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } })) }
          : {}),
      };
  }
}

function toOpenAITool(t: { name: string; description: string; parameters: Record<string, unknown> }): ChatCompletionTool {
  return { type: 'function', function: { name: t.name, description: t.description, parameters: t.parameters } };
}

const CONTEXT_CODES = new Set(['context_length_exceeded', 'string_above_max_length']);

/** Classifies a failure of the openai client once, by type and status — never by message text. */
export function classify(err: unknown): LlmError {
  if (err instanceof LlmError) return err;
  if (err instanceof OpenAI.APIUserAbortError) return new LlmError(LlmErrorCode.Cancelled, 'the model call was cancelled', { retryable: false, cause: err });
  if (err instanceof OpenAI.APIConnectionTimeoutError) return new LlmError(LlmErrorCode.Timeout, 'the model call timed out', { retryable: true, cause: err });
  if (err instanceof OpenAI.APIConnectionError) {
    return new LlmError(LlmErrorCode.Connection, `cannot reach the model server: ${err.message}`, { retryable: true, cause: err });
  }
  if (err instanceof OpenAI.APIError) {
    const status = err.status;
    const text = `model server answered ${status ?? 'an error'}: ${err.message}`;
    if (status === 429) {
      return new LlmError(LlmErrorCode.RateLimited, text, { retryable: true, retryAfterMs: retryAfter(err.headers), status, cause: err });
    }
    if (status !== undefined && status >= 500) return new LlmError(LlmErrorCode.Server, text, { retryable: true, retryAfterMs: retryAfter(err.headers), status, cause: err });
    if (status === 401 || status === 403) return new LlmError(LlmErrorCode.Auth, `${text} (check OPENAI_API_KEY)`, { retryable: false, status, cause: err });
    if (err.code && CONTEXT_CODES.has(err.code)) return new LlmError(LlmErrorCode.ContextLength, text, { retryable: false, status, cause: err });
    if (status === 408 || status === 409) return new LlmError(LlmErrorCode.Server, text, { retryable: true, status, cause: err });
    return new LlmError(LlmErrorCode.BadRequest, text, { retryable: false, status, cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new LlmError(LlmErrorCode.Connection, `the model call failed: ${message}`, { retryable: true, cause: err });
}

/** `Retry-After` as seconds or an HTTP date, or `retry-after-ms`. */
function retryAfter(headers: Headers | undefined): number | undefined {
  const ms = headers?.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = headers?.get('retry-after');
  if (!value) return undefined;
  if (Number.isFinite(Number(value))) return Math.max(0, Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
