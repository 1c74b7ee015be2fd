import type { IncomingMessage, ServerResponse } from 'node:http';

/** A request body over the limit: answered 413, never read whole. */
export class BodyTooLargeError extends Error {
  readonly code = 'ERR_TOO_LARGE';
  constructor(readonly limit: number) {
    super(`the request body is larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/**
 * Reads a request body of at most `limit` bytes. A larger declared Content-Length is refused before
 * a byte is kept; a body that grows past the limit (chunked) is refused as soon as it does. The
 * caller answers with {@link tooLarge}, which drops the rest. Throws BodyTooLargeError.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) return reject(new BodyTooLargeError(limit));
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        stop();
        return reject(new BodyTooLargeError(limit));
      }
      chunks.push(c);
    };
    const onEnd = () => (stop(), resolve(Buffer.concat(chunks)));
    const onError = (err: Error) => (stop(), reject(err));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** How long the unread rest of a refused body may keep arriving (discarded) before the connection is cut. */
export const DISCARD_GRACE_MS = 5000;

/**
 * Answers 413. The rest of the body is discarded as it arrives, never kept: closing the socket
 * at once would reset it under a client still sending, which then sees a broken pipe instead of
 * the 413. A sender that keeps going past DISCARD_GRACE_MS is cut off.
 */
export function tooLarge(req: IncomingMessage, res: ServerResponse, err: BodyTooLargeError): void {
  if (res.headersSent) return void res.destroy();
  discardRest(req);
  res.writeHead(413, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `${err.message}: send less`, code: err.code }));
}

/** Reads and drops what is left of a request body, for at most DISCARD_GRACE_MS. */
export function discardRest(req: IncomingMessage): void {
  if (req.complete) return;
  const timer = setTimeout(() => req.destroy(), DISCARD_GRACE_MS);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.resume();
}
