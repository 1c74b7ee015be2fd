import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm, type MockLlm } from '@errand/llm';

let mock: MockLlm;
beforeAll(async () => {
  mock = await startMockLlm({ steps: [{ repeat: true, reply: { content: 'still here' } }] }, { maxBodyBytes: 64 * 1024 });
});
afterAll(async () => {
  await mock?.close();
});

const chat = (content: string) => JSON.stringify({ model: 'mock-1', stream: false, messages: [{ role: 'user', content }] });
/** A body sent in chunks with no Content-Length, so only counting what arrives can catch it. */
const chunked = (bytes: number) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      const piece = new TextEncoder().encode('x'.repeat(16 * 1024));
      for (let sent = 0; sent < bytes; sent += piece.length) c.enqueue(piece);
      c.close();
    },
  });

describe('the scripted model server: request body limit', () => {
  it('answers 413 to an oversized body, declared or chunked, and keeps answering', async () => {
    const url = `${mock.url}/chat/completions`;
    const declared = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat('y'.repeat(1024 * 1024)) });
    expect(declared.status).toBe(413);
    expect(await declared.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'request_too_large', message: 'request body is larger than 65536 bytes' } });

    const streamed = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chunked(4 * 1024 * 1024), duplex: 'half' } as RequestInit);
    expect(streamed.status).toBe(413);

    // Neither reached the script; the next request does.
    expect(mock.requests).toHaveLength(0);
    const ok = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat('hello') });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe('still here');
    expect(mock.failures).toEqual([]);
  });
});
