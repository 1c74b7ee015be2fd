import { objectArgs, stringArg, ToolError, ToolErrorCode, type Tool } from './tool.js';

export interface HttpFetchOptions {
  /** Hosts that may be fetched: `api.example.com`, `*.example.com`, `127.0.0.1`. Empty allows none. */
  allowHosts: readonly string[];
  maxBytes: number;
  timeoutMs: number;
  maxRedirects: number;
}

export function hostAllowed(host: string, allow: readonly string[]): boolean {
  const h = host.toLowerCase();
  return allow.some((a) => {
    const rule = a.toLowerCase();
    return rule.startsWith('*.') ? h.endsWith(rule.slice(1)) || h === rule.slice(2) : h === rule;
  });
}

/**
 * `http_fetch`: GET or POST to an allowed host. Redirects are followed by hand, each target
 * checked against the allowlist, so a redirect cannot take the call elsewhere; the body is cut at
 * `maxBytes`; the call is aborted at `timeoutMs` or when the agent is cancelled.
 */
export function httpFetchTool(o: HttpFetchOptions): Tool {
  return {
    definition: {
      name: 'http_fetch',
      description: `Fetch a URL (GET, or POST with a body). Allowed hosts: ${o.allowHosts.join(', ') || 'none'}.`,
      parameters: {
        type: 'object',
        properties: {
          url: { type: 'string' },
          method: { type: 'string', enum: ['GET', 'POST'] },
          body: { type: 'string' },
          headers: { type: 'object', additionalProperties: { type: 'string' } },
        },
        required: ['url'],
      },
    },
    idempotent: false,
    destructive: false,
    defaultPolicy: 'auto',
    timeoutMs: o.timeoutMs,
    async run(args, { signal }) {
      const a = objectArgs(args, 'http_fetch');
      let url = stringArg(a, 'url', 'http_fetch');
      const method = a.method === 'POST' ? 'POST' : 'GET';
      const headers = (a.headers && typeof a.headers === 'object' ? a.headers : {}) as Record<string, string>;
      const timeout = AbortSignal.any([signal, AbortSignal.timeout(o.timeoutMs)]);
      for (let hop = 0; ; hop++) {
        let parsed: URL;
        try {
          parsed = new URL(url);
        } catch {
          throw new ToolError(ToolErrorCode.InvalidArguments, `http_fetch: '${url}' is not a URL`);
        }
        if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new ToolError(ToolErrorCode.InvalidArguments, `http_fetch fetches http and https URLs, not ${parsed.protocol}`);
        if (!hostAllowed(parsed.hostname, o.allowHosts)) {
          throw new ToolError(
            ToolErrorCode.HostNotAllowed,
            `${hop === 0 ? '' : 'a redirect led to '}host ${parsed.hostname} is not on the allowlist (${o.allowHosts.join(', ') || 'empty'})`,
          );
        }
        let res: Response;
        try {
          res = await fetch(parsed, { method, headers, redirect: 'manual', signal: timeout, ...(method === 'POST' && typeof a.body === 'string' ? { body: a.body } : {}) });
        } catch (err) {
          if (signal.aborted) throw new ToolError(ToolErrorCode.Cancelled, 'http_fetch was cancelled');
          if (timeout.aborted) throw new ToolError(ToolErrorCode.Timeout, `http_fetch took longer than ${o.timeoutMs} ms`, true);
          throw new ToolError(ToolErrorCode.Network, `http_fetch could not reach ${parsed.host}: ${(err as Error).message}`, true);
        }
        if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
          if (hop >= o.maxRedirects) throw new ToolError(ToolErrorCode.HttpStatus, `http_fetch followed ${o.maxRedirects} redirects; stopping`);
          url = new URL(res.headers.get('location')!, parsed).href;
          await res.body?.cancel();
          continue;
        }
        const text = await readCapped(res, o.maxBytes);
        if (res.status >= 400) throw new ToolError(ToolErrorCode.HttpStatus, `${method} ${parsed.href} answered ${res.status}: ${text.body.slice(0, 500)}`, res.status >= 500 || res.status === 429);
        return { status: res.status, contentType: res.headers.get('content-type'), body: text.body, truncated: text.truncated };
      }
    },
  };
}

async function readCapped(res: Response, max: number): Promise<{ body: string; truncated: boolean }> {
  if (!res.body) return { body: '', truncated: false };
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size > max) {
      truncated = true;
      await reader.cancel();
      break;
    }
  }
  return { body: Buffer.concat(chunks).subarray(0, max).toString('utf8'), truncated };
}
