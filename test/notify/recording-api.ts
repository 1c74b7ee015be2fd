import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the API received, and the status it answered. */
export interface RecordedRequest {
  path: string;
  body: string;
  status: number;
}

/** A loopback stand-in for Slack, Telegram or a webhook receiver: records every request it gets. */
export interface RecordingApi {
  readonly base: string;
  readonly requests: RecordedRequest[];
  /** Resolves once `test` holds (checked now and after every request). */
  until(test: () => boolean): Promise<void>;
  close(): Promise<void>;
}

export type Responder = (req: { path: string; body: string }) => Promise<{ status?: number; body?: string } | undefined> | { status?: number; body?: string } | undefined;

/** Starts it on a free port; `respond` may answer a request itself, otherwise `200 {"ok":true}`. */
export async function startRecordingApi(respond: Responder = () => undefined): Promise<RecordingApi> {
  const requests: RecordedRequest[] = [];
  const waiters = new Set<() => void>();
  const server = createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += String(c);
    const path = req.url ?? '';
    const answer = (await respond({ path, body })) ?? {};
    const status = answer.status ?? 200;
    requests.push({ path, body, status });
    res.writeHead(status, { 'content-type': 'application/json' }).end(answer.body ?? JSON.stringify({ ok: true }));
    for (const w of [...waiters]) w();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    until: (test) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (!test()) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      }),
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}
