import { ErrandError, type ErrorInfo } from '@errand/protocols';

export const LlmErrorCode = {
  Timeout: 'ERR_LLM_TIMEOUT',
  Connection: 'ERR_LLM_CONNECTION',
  /** 5xx from the model server. */
  Server: 'ERR_LLM_SERVER',
  /** 429: retry after `retryAfterMs`. */
  RateLimited: 'ERR_LLM_RATE_LIMITED',
  /** The prompt does not fit the model's context: compact the history, do not retry as is. */
  ContextLength: 'ERR_LLM_CONTEXT_LENGTH',
  /** 401/403: the key is wrong or lacks access. */
  Auth: 'ERR_LLM_AUTH',
  /** 400/404/422: the request itself is wrong (unknown model, bad tool schema…). */
  BadRequest: 'ERR_LLM_BAD_REQUEST',
  Cancelled: 'ERR_LLM_CANCELLED',
} as const;
export type LlmErrorCode = (typeof LlmErrorCode)[keyof typeof LlmErrorCode];

/** A failed model call, classified once, here: `retryable` says whether waiting can help. */
export class LlmError extends ErrandError {
  declare readonly code: LlmErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;

  constructor(
    code: LlmErrorCode,
    message: string,
    options: { retryable: boolean; retryAfterMs?: number | undefined; status?: number | undefined; cause?: unknown; agentId?: string },
  ) {
    super(code, message, options);
    this.name = 'LlmError';
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
  }

  /** The failure as wire data, for a `plan.result`. */
  toErrorInfo(): ErrorInfo {
    return {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...(this.retryAfterMs !== undefined ? { retryAfterMs: this.retryAfterMs } : {}),
      ...(this.status !== undefined ? { details: { status: this.status } } : {}),
    };
  }
}
