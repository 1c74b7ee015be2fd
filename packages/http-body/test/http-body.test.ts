import { createServer, request, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBody, refuseTooLarge } from '../src/index.js';

const LIMIT = 1024;
let server: Server;
let port: number;
beforeAll(async () => {
  server = createServer(async (req, res) => {
    const body = await readBody(req, LIMIT);
    if (body === undefined) return refuseTooLarge(req, res, { error: 'too large' });
    res.writeHead(200).end(`got ${body.length}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise((r) => server.close(r)));

/** Sends `chunks` (chunked unless `length` is given) and resolves with the status and body. */
function send(chunks: Buffer[], length?: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', headers: length === undefined ? {} : { 'content-length': length } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('request bodies with a limit', () => {
  it('reads a body within the limit', async () => {
    expect(await send([Buffer.alloc(LIMIT)], LIMIT)).toEqual({ status: 200, body: `got ${LIMIT}` });
  });

  it('answers 413 to a declared length over the limit, and to a chunked body that grows past it', async () => {
    expect(await send([Buffer.alloc(LIMIT + 1)], LIMIT + 1)).toEqual({ status: 413, body: '{"error":"too large"}' });
    expect(await send(Array.from({ length: 8 }, () => Buffer.alloc(512)))).toEqual({ status: 413, body: '{"error":"too large"}' });
    // The server is still there for the next one.
    expect((await send([Buffer.from('ok')], 2)).status).toBe(200);
  });
});
