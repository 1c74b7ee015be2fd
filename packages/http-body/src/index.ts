import type { IncomingMessage, ServerResponse } from 'node:http';

/** How long the unread rest of a refused body may keep arriving (discarded) before the connection is cut. */
const DISCARD_GRACE_MS = 5000;

/**
 * Reads a request body of at most `limit` bytes; undefined when it is larger. A larger declared
 * Content-Length is refused before a byte is kept, and a body that grows past the limit (chunked)
 * as soon as it does — answer it with {@link refuseTooLarge}. Rejects when the client goes away.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return resolve(undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) return void (stop(), resolve(undefined));
      chunks.push(c);
    };
    const onEnd = () => (stop(), resolve(Buffer.concat(chunks)));
    const onError = (err: Error) => (stop(), reject(err));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/**
 * Answers 413 with `body` (JSON). The rest of the request is discarded as it arrives, never kept:
 * closing the socket at once would reset it under a client still sending, which then sees a
 * broken pipe instead of the 413. A sender that keeps going past DISCARD_GRACE_MS is cut off.
 */
export function refuseTooLarge(req: IncomingMessage, res: ServerResponse, body: unknown): void {
  if (res.headersSent) return void res.destroy();
  discardRest(req);
  res.writeHead(413, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/**
 * Reads and drops what is left of a request body, for at most DISCARD_GRACE_MS (then the connection
 * is cut): for a server that answered before reading it all, so the client reads the answer
 * rather than a broken pipe.
 */
export function discardRest(req: IncomingMessage): void {
  if (req.complete) return;
  const timer = setTimeout(() => req.destroy(), DISCARD_GRACE_MS);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.resume();
}
