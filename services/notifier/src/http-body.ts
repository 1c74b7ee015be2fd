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
 * a byte is read; a body that grows past the limit (chunked) is refused as soon as it does, and
 * the rest is left unread (Node discards it once the response is sent). Throws BodyTooLargeError.
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

/** Answers 413 and closes the connection, so the unread rest of the body is not waited for. */
export function tooLarge(res: ServerResponse, err: BodyTooLargeError): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(413, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ error: `${err.message}: send less`, code: err.code }));
}
