import { roundUsd, type ChatMessage, type ToolDefinition, type Usage } from '@errand/protocols';

export interface CompletionRequest {
  model: string;
  messages: readonly ChatMessage[];
  tools: readonly ToolDefinition[];
  temperature?: number | undefined;
  maxOutputTokens?: number | undefined;
}

export interface Completion {
  /** The assistant's message: text, tool calls, or both. */
  message: ChatMessage;
  finishReason: string;
  usage: Usage;
}

export interface CompleteOptions {
  signal: AbortSignal;
  /** Called with each piece of text as the model streams it (ephemeral progress). */
  onToken: (text: string) => void;
}

/**
 * A chat model. Implementations classify every failure as an `LlmError` (transient or permanent);
 * they do not retry: retries are the agent's decision, on durable timers.
 */
export interface ChatModel {
  complete(request: CompletionRequest, options?: Partial<CompleteOptions>): Promise<Completion>;
}

/** USD per million tokens. */
export interface ModelPrice {
  inputPerMTok: number;
  outputPerMTok: number;
}
export type PriceTable = Readonly<Record<string, ModelPrice>>;

/** The cost of a call, or undefined for a model without a price (its tokens still count). */
export function costOf(prices: PriceTable, model: string, inputTokens: number, outputTokens: number): number | undefined {
  const price = prices[model];
  if (!price) return undefined;
  return roundUsd((inputTokens * price.inputPerMTok + outputTokens * price.outputPerMTok) / 1_000_000);
}
