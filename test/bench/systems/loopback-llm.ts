/**
 * A lean loopback model server for the turn benchmark: it speaks OpenAI's chat-completions
 * protocol (JSON, or server-sent events when `stream` is set — what the real `openai` client asks
 * for), so the planner and its client run for real. Unlike @errand/llm's scripted mock it keeps no
 * record of requests, so a run of thousands of calls costs only the protocol.
 *
 * Stable exports: `startLoopbackLlm()` → `{ baseURL, turns, calls, close() }`. Each request is
 * answered by its history: while it holds fewer than `turns` tool results, a call of the tool
 * `noop` with `{ n }` (the next call's number, so no two calls of one agent repeat); then a final
 * answer.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackLlm {
  /** `http://127.0.0.1:<port>/v1`, for OPENAI_BASE_URL. */
  readonly baseURL: string;
  /** Tool calls per agent before the final answer; set it before a run. */
  turns: number;
  /** Requests answered so far. */
  readonly calls: number;
  close(): Promise<void>;
}

interface ChatRequest {
  model: string;
  stream?: boolean;
  messages: { role: string }[];
}

export async function startLoopbackLlm(): Promise<LoopbackLlm> {
  let calls = 0;
  const state = { turns: 10 };
  const answer = (req: IncomingMessage, res: ServerResponse, text: string) => {
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'not found', type: 'not_found' } }));
      return;
    }
    const body = JSON.parse(text) as ChatRequest;
    calls += 1;
    const results = body.messages.filter((m) => m.role === 'tool').length;
    const id = `chatcmpl-bench-${calls}`;
    const created = Math.floor(Date.now() / 1000);
    const toolCall = results < state.turns ? { id: `call_${calls}`, type: 'function' as const, function: { name: 'noop', arguments: JSON.stringify({ n: results + 1 }) } } : undefined;
    const content = toolCall ? null : 'done';
    const finish = toolCall ? 'tool_calls' : 'stop';
    const usage = { prompt_tokens: Math.ceil(text.length / 4), completion_tokens: 8, total_tokens: Math.ceil(text.length / 4) + 8 };
    if (!body.stream) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id,
          object: 'chat.completion',
          created,
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content, ...(toolCall ? { tool_calls: [toolCall] } : {}) }, finish_reason: finish, logprobs: null }],
          usage,
        }),
      );
      return;
    }
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices, ...extra })}\n\n`;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    res.end(
      chunk([{ index: 0, delta: { role: 'assistant', content: toolCall ? null : '' }, finish_reason: null }]) +
        (toolCall ? chunk([{ index: 0, delta: { tool_calls: [{ index: 0, ...toolCall }] }, finish_reason: null }]) : chunk([{ index: 0, delta: { content }, finish_reason: null }])) +
        chunk([{ index: 0, delta: {}, finish_reason: finish }]) +
        chunk([], { usage }) +
        'data: [DONE]\n\n',
    );
  };
  const server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      try {
        answer(req, res, Buffer.concat(parts).toString('utf8'));
      } catch (err) {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `loopback llm: ${(err as Error).message}`, type: 'server_error' } }));
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    get turns() {
      return state.turns;
    },
    set turns(n: number) {
      state.turns = n;
    },
    get calls() {
      return calls;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
