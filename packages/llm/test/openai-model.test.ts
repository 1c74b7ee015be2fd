import { describe, expect, it } from 'vitest';
import { createOpenAIModel, LlmError, LlmErrorCode, startMockLlm, type MockStep } from '@errand/llm';
import { freePort } from '@errand/testing';

const request = {
  model: 'mock-1',
  messages: [
    { role: 'system' as const, content: 'You are terse.' },
    { role: 'user' as const, content: 'Say hello to the team.' },
  ],
  tools: [{ name: 'post_message', description: 'post to chat', parameters: { type: 'object', properties: { text: { type: 'string' } } } }],
};

async function call(steps: MockStep[], stream = true, extra: { signal?: AbortSignal } = {}) {
  const mock = await startMockLlm({ steps });
  try {
    const tokens: string[] = [];
    const model = createOpenAIModel({ baseURL: mock.url, stream, prices: { 'mock-1': { inputPerMTok: 1, outputPerMTok: 2 } } });
    const result = await model.complete(request, { onToken: (t) => tokens.push(t), ...extra }).catch((e: unknown) => e);
    return { result, tokens, mock };
  } finally {
    await mock.close();
  }
}

describe('the OpenAI model over the scripted server', () => {
  it.each([true, false])('returns text and tool calls with usage and cost (stream: %s)', async (stream) => {
    const { result, tokens, mock } = await call(
      [{ expect: { contains: ['Say hello'] }, reply: { content: 'Posting it now, as asked.', toolCalls: [{ name: 'post_message', arguments: { text: 'hello' } }], usage: { inputTokens: 1000, outputTokens: 500 } } }],
      stream,
    );
    expect(mock.failures).toEqual([]);
    expect(result).toEqual({
      message: { role: 'assistant', content: 'Posting it now, as asked.', toolCalls: [{ id: 'call_1', name: 'post_message', arguments: '{"text":"hello"}' }] },
      finishReason: 'tool_calls',
      usage: { model: 'mock-1', inputTokens: 1000, outputTokens: 500, costUsd: 0.002 },
    });
    expect(mock.requests[0]).toMatchObject({ model: 'mock-1', stream, tools: [{ type: 'function', function: { name: 'post_message' } }] });
    if (stream) expect(tokens.join('')).toBe('Posting it now, as asked.');
  });

  it('counts tokens without a cost for a model with no price', async () => {
    const mock = await startMockLlm({ steps: [{ reply: { content: 'hi', usage: { inputTokens: 10, outputTokens: 2 } } }] });
    const r = await createOpenAIModel({ baseURL: mock.url }).complete({ ...request, model: 'unpriced' });
    expect(r.usage).toEqual({ model: 'unpriced', inputTokens: 10, outputTokens: 2 });
    await mock.close();
  });

  it.each([
    [{ status: 500 }, LlmErrorCode.Server, true, undefined],
    [{ status: 503, retryAfterSeconds: 1 }, LlmErrorCode.Server, true, 1000],
    [{ status: 429, retryAfterSeconds: 2 }, LlmErrorCode.RateLimited, true, 2000],
    [{ status: 401 }, LlmErrorCode.Auth, false, undefined],
    [{ status: 400, code: 'context_length_exceeded', message: 'too long' }, LlmErrorCode.ContextLength, false, undefined],
    [{ status: 400 }, LlmErrorCode.BadRequest, false, undefined],
  ])('classifies %j as %s', async (error, code, retryable, retryAfterMs) => {
    const { result } = await call([{ error }]);
    expect(result).toBeInstanceOf(LlmError);
    expect(result).toMatchObject({ code, retryable, retryAfterMs, status: error.status });
    expect((result as LlmError).toErrorInfo()).toMatchObject({ code, retryable });
  });

  it('classifies an unreachable server as a transient connection error', async () => {
    const port = await freePort();
    const err = await createOpenAIModel({ baseURL: `http://127.0.0.1:${port}/v1` }).complete(request).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: LlmErrorCode.Connection, retryable: true });
  });

  it('stops a call in flight when its signal aborts', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const { result } = await call([{ delayMs: 10_000, reply: { content: 'too late' } }], true, { signal: controller.signal });
    expect(result).toMatchObject({ code: LlmErrorCode.Cancelled, retryable: false });
  });

  it('records what the script expected and did not get', async () => {
    const { result, mock } = await call([{ expect: { contains: ['a word nobody said'] }, reply: { content: 'x' } }]);
    expect(result).toMatchObject({ code: LlmErrorCode.BadRequest });
    expect(mock.failures).toEqual(['step 1: missing "a word nobody said"']);
  });

  it('answers every later request with a repeating step, after the one-shot steps are used', async () => {
    const mock = await startMockLlm({ steps: [{ reply: { content: 'first' } }, { repeat: true, reply: { content: 'again' } }] });
    try {
      const model = createOpenAIModel({ baseURL: mock.url, stream: false });
      const texts = [];
      for (let i = 0; i < 3; i++) texts.push((await model.complete(request)).message.content);
      expect(texts).toEqual(['first', 'again', 'again']);
      expect(mock.remaining()).toBe(0);
      expect(mock.failures).toEqual([]);
    } finally {
      await mock.close();
    }
  });
});
