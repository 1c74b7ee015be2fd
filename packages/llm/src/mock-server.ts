import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody, refuseTooLarge } from '@errand/http-body';

/**
 * A scripted model server: a real HTTP server speaking OpenAI's chat-completions protocol
 * (streaming and not), replaying a script. Each request takes the first unused step whose `match`
 * (if any) occurs in the request's messages; the step may check what the request contains, and
 * answers with a reply or a failure. Nothing is mocked on the client side: the `openai` client and
 * everything above it run for real.
 */

export interface MockToolCall {
  name: string;
  /** An object (sent as JSON) or the raw argument text. */
  arguments: Record<string, unknown> | string;
}

export interface MockStep {
  /** Use this step only for a request whose messages contain this text (for concurrent agents). */
  match?: string;
  /** Texts the request's messages must contain; a miss answers 400 and is recorded. */
  expect?: { contains?: string[]; notContains?: string[] };
  /** Never used up: answers every request that reaches it (a fallback, as the last step). */
  repeat?: boolean;
  /** Wait this long before answering (to cancel during a call). */
  delayMs?: number;
  reply?: { content?: string; toolCalls?: MockToolCall[]; finishReason?: string; usage?: { inputTokens: number; outputTokens: number } };
  error?: { status: number; message?: string; code?: string; retryAfterSeconds?: number };
}

export interface MockScript {
  steps: MockStep[];
}

export interface MockLlm extends AsyncDisposable {
  /** Base URL for an OpenAI client (`…/v1`). */
  readonly url: string;
  /** Every request body received, in order. */
  readonly requests: readonly MockRequest[];
  /** Expectations that failed, and requests no step was left for. */
  readonly failures: readonly string[];
  /** Steps not used yet. */
  remaining(): number;
  /** Requests whose client went away before the (delayed) answer. */
  aborted(): number;
  /** Resolves once `condition` holds (checked after every request and abort); rejects after `timeoutMs`. */
  until(condition: (mock: MockLlm) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface MockRequest {
  model: string;
  stream: boolean;
  messages: { role: string; content?: string | null; tool_calls?: unknown[]; tool_call_id?: string }[];
  tools?: unknown[];
}

export interface MockLlmOptions {
  port: number;
  host: string;
  /** Request bodies larger than this are answered 413 without being read whole (default 16 MiB). */
  maxBodyBytes: number;
}

/** The default request body limit: far above any scripted conversation, far below a memory problem. */
export const MOCK_LLM_MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Checks a script's shape (for a script from a file); throws with what is wrong. */
export function parseMockScript(value: unknown): MockScript {
  const steps = (value as { steps?: unknown } | null)?.steps;
  if (!Array.isArray(steps)) throw new Error('a mock-llm script is {"steps": [...]}');
  steps.forEach((s: unknown, i) => {
    const step = s as MockStep;
    if (typeof step !== 'object' || step === null) throw new Error(`step ${i + 1} is not an object`);
    if ((step.reply === undefined) === (step.error === undefined)) throw new Error(`step ${i + 1} needs exactly one of "reply" or "error"`);
    if (step.error && !Number.isInteger(step.error.status)) throw new Error(`step ${i + 1}: error.status must be an HTTP status`);
  });
  return { steps: steps as MockStep[] };
}

export async function startMockLlm(script: MockScript, options: Partial<MockLlmOptions> = {}): Promise<MockLlm> {
  const used = new Set<number>();
  const requests: MockRequest[] = [];
  const failures: string[] = [];
  let callSeq = 0;
  let abortedCount = 0;
  const watchers = new Set<() => void>();
  const notify = () => {
    for (const w of [...watchers]) w();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || !/\/chat\/completions$/.test(req.url ?? '')) {
      return json(res, 404, { error: { message: `mock-llm serves POST /v1/chat/completions, not ${req.method} ${req.url}`, type: 'not_found' } });
    }
    const limit = options.maxBodyBytes ?? MOCK_LLM_MAX_BODY_BYTES;
    const bytes = await readBody(req, limit);
    if (bytes === undefined) return refuseTooLarge(req, res, { error: { message: `request body is larger than ${limit} bytes`, type: 'invalid_request_error', code: 'request_too_large' } });
    const raw = bytes.toString('utf8');
    let body: MockRequest;
    try {
      body = JSON.parse(raw) as MockRequest;
    } catch {
      return json(res, 400, { error: { message: 'request body is not JSON', type: 'invalid_request_error' } });
    }
    requests.push(body);
    notify();
    const text = body.messages.map((m) => `${m.content ?? ''}`).join('\n');
    const index = script.steps.findIndex((s, i) => !used.has(i) && (s.match === undefined || text.includes(s.match)));
    if (index < 0) {
      failures.push(`request ${requests.length}: no script step left for it (last message: ${JSON.stringify(body.messages.at(-1)?.content ?? '').slice(0, 200)})`);
      return json(res, 400, { error: { message: 'mock-llm: the script has no step left for this request', type: 'invalid_request_error' } });
    }
    const step = script.steps[index]!;
    if (!step.repeat) used.add(index);
    const missing = (step.expect?.contains ?? []).filter((t) => !text.includes(t));
    const unwanted = (step.expect?.notContains ?? []).filter((t) => text.includes(t));
    if (missing.length || unwanted.length) {
      const why = [...missing.map((t) => `missing ${JSON.stringify(t)}`), ...unwanted.map((t) => `unexpected ${JSON.stringify(t)}`)].join(', ');
      failures.push(`step ${index + 1}: ${why}`);
      return json(res, 400, { error: { message: `mock-llm: step ${index + 1} expectation failed: ${why}`, type: 'invalid_request_error' } });
    }
    if (step.delayMs) {
      const aborted = await waitOrClose(step.delayMs, req);
      if (aborted) {
        abortedCount += 1;
        notify();
        return;
      }
    }
    if (step.error) {
      const headers: Record<string, string> = {};
      if (step.error.retryAfterSeconds !== undefined) headers['retry-after'] = String(step.error.retryAfterSeconds);
      return json(res, step.error.status, { error: { message: step.error.message ?? `scripted ${step.error.status}`, type: 'scripted', code: step.error.code ?? null } }, headers);
    }
    const reply = step.reply!;
    const toolCalls = (reply.toolCalls ?? []).map((c) => ({
      id: `call_${++callSeq}`,
      type: 'function' as const,
      function: { name: c.name, arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments) },
    }));
    const content = reply.content ?? null;
    const finishReason = reply.finishReason ?? (toolCalls.length ? 'tool_calls' : 'stop');
    const usage = {
      prompt_tokens: reply.usage?.inputTokens ?? Math.ceil(text.length / 4),
      completion_tokens: reply.usage?.outputTokens ?? Math.ceil(((content ?? '') + JSON.stringify(toolCalls)).length / 4),
    };
    const id = `chatcmpl-mock-${requests.length}`;
    const created = Math.floor(Date.now() / 1000);
    if (!body.stream) {
      return json(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content, ...(toolCalls.length ? { tool_calls: toolCalls } : {}) }, finish_reason: finishReason, logprobs: null }],
        usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const chunk = (delta: Record<string, unknown>, finish: string | null = null, extra: Record<string, unknown> = {}) =>
      res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`);
    chunk({ role: 'assistant', content: '' });
    for (const piece of (content ?? '').match(/.{1,16}/gs) ?? []) chunk({ content: piece });
    toolCalls.forEach((c, i) => chunk({ tool_calls: [{ index: i, id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } }] }));
    chunk({}, finishReason);
    res.write(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices: [], usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } })}\n\n`);
    res.end('data: [DONE]\n\n');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      failures.push(`internal: ${(err as Error).message}`);
      if (!res.headersSent) json(res, 500, { error: { message: 'mock-llm internal error' } });
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  const mock: MockLlm = {
    url: `http://${options.host ?? '127.0.0.1'}:${port}/v1`,
    requests,
    failures,
    remaining: () => script.steps.filter((s) => !s.repeat).length - used.size,
    aborted: () => abortedCount,
    until(condition, timeoutMs = 30_000) {
      if (condition(mock)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!condition(mock)) return;
          watchers.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          watchers.delete(check);
          reject(new Error(`mock-llm: condition not met within ${timeoutMs} ms (${requests.length} requests, ${abortedCount} aborted)`));
        }, timeoutMs);
        watchers.add(check);
      });
    },
    close,
    [Symbol.asyncDispose]: close,
  };
  return mock;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}


/** Resolves true if the client went away before `ms` passed. */
function waitOrClose(ms: number, req: IncomingMessage): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      req.socket.off('close', onClose);
      resolve(false);
    }, ms);
    const onClose = () => {
      clearTimeout(timer);
      resolve(true);
    };
    req.socket.once('close', onClose);
  });
}
