// Every call the dashboard makes to the gateway. Authentication is the session cookie set by the
// login link `errand up` prints; a POST also sends the CSRF token from GET /api/session.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type Listener = (signedOut: boolean) => void;
const listeners = new Set<Listener>();
let signedOut = false;

/** Called with true when a request was refused for want of a session (401), so the page says how to sign in. */
export function onSignedOut(l: Listener): () => void {
  listeners.add(l);
  l(signedOut);
  return () => listeners.delete(l);
}

function setSignedOut(v: boolean): void {
  if (v === signedOut) return;
  signedOut = v;
  for (const l of listeners) l(v);
}

let session: Promise<{ user: string; csrf: string }> | undefined;

/** The signed-in person and the CSRF token, read once (again after a refusal). */
export function getSession(): Promise<{ user: string; csrf: string }> {
  session ??= request<{ user: string; csrf: string }>('GET', '/api/session').catch((err: unknown) => {
    session = undefined;
    throw err;
  });
  return session;
}

async function request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method === 'POST') {
    headers['content-type'] = 'application/json';
    headers['x-errand-csrf'] = (await getSession()).csrf;
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch (err) {
    throw new ApiError(0, 'ERR_NETWORK', `the gateway did not answer (${(err as Error).message}); is it running?`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (res.status === 401) {
    session = undefined;
    setSignedOut(true);
  } else if (res.ok) setSignedOut(false);
  if (!res.ok) {
    const e = (json ?? {}) as { code?: unknown; message?: unknown };
    // A refused CSRF token is stale (a gateway restart): read the session again next time.
    if (res.status === 403) session = undefined;
    throw new ApiError(res.status, typeof e.code === 'string' ? e.code : `HTTP_${res.status}`, typeof e.message === 'string' ? e.message : `${method} ${path}: HTTP ${res.status}`);
  }
  return json as T;
}

export const get = <T>(path: string): Promise<T> => request<T>('GET', path);
export const post = <T>(path: string, body: unknown = {}): Promise<T> => request<T>('POST', path, body);

/** `?a=1&b=2` from the defined, non-empty entries. */
export function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const agentPath = (id: string, rest = ''): string => `/api/agents/${encodeURIComponent(id)}${rest}`;
