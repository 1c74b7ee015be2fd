// The dashboard's files (the Vite build in dist/web): a file when one matches, index.html for any
// other page (the single-page app routes itself), a page saying how to build it when there is none.
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import type { Context } from 'hono';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webmanifest': 'application/manifest+json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Errand</title>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">
<h1>The dashboard is not built</h1>
<p>The gateway serves the dashboard from <code>services/gateway/dist/web</code>, which does not exist yet.
Run <code>pnpm build</code> in the repository, then reload this page. The HTTP API under <code>/api</code> works meanwhile.</p>
</body>`;

/** Security headers for every page: no framing, no sniffing, no referrer leaking tokens in login links. */
export const PAGE_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
} as const;

async function fileAt(path: string): Promise<Buffer | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? await readFile(path) : undefined;
  } catch {
    return undefined;
  }
}

/** Serves `c.req.path` from `webDir` (GET/HEAD only; the caller routes everything else). */
export async function serveWeb(c: Context, webDir: string): Promise<Response> {
  const root = resolve(webDir);
  let path: string;
  try {
    path = decodeURIComponent(c.req.path);
  } catch {
    path = '/';
  }
  const target = resolve(join(root, path));
  const inside = target === root || target.startsWith(root + sep);
  if (inside && target !== root) {
    const body = await fileAt(target);
    if (body) {
      const immutable = path.startsWith('/assets/');
      return c.body(new Uint8Array(body), 200, {
        ...PAGE_HEADERS,
        'Content-Type': TYPES[extname(target).toLowerCase()] ?? 'application/octet-stream',
        'Cache-Control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      });
    }
    // A missing asset is a 404, not the app: a stale page asking for an old bundle should fail visibly.
    if (path.startsWith('/assets/') || extname(path) !== '') return c.text('not found', 404, PAGE_HEADERS);
  }
  const index = await fileAt(join(root, 'index.html'));
  if (!index) return c.html(NOT_BUILT, 200, PAGE_HEADERS);
  return c.body(new Uint8Array(index), 200, { ...PAGE_HEADERS, 'Content-Type': TYPES['.html']!, 'Cache-Control': 'no-cache' });
}
