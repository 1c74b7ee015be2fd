// The gateway's doors: who gets in, with what, and what is refused — against a real gateway process.
import { mkdtemp, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '@errand/testing';
import { ALICE, gatewayWorld, readSse, type GatewayWorld } from './helpers.js';

let srv: TestServer;
let w: GatewayWorld;
let webDir: string;

beforeAll(async () => {
  srv = await startTestServer();
  webDir = await mkdtemp(join(tmpdir(), 'errand-gateway-web-'));
  await mkdir(join(webDir, 'assets'));
  await writeFile(join(webDir, 'index.html'), '<!doctype html><title>Errand dashboard</title><div id="app"></div>');
  await writeFile(join(webDir, 'assets', 'app.js'), 'console.log("dashboard")');
  w = await gatewayWorld(srv, { services: ['host'], env: { ERRAND_GATEWAY_WEB_DIR: webDir } });
});
afterAll(async () => {
  await w?.stop();
  await srv?.stop();
});

const cookieOf = (res: Response) => res.headers.get('set-cookie')!.split(';')[0]!;

describe('auth', () => {
  it('refuses a missing or wrong bearer token with 401 ERR_UNAUTHENTICATED', async () => {
    const none = await fetch(`${w.base}/api/agents`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 'ERR_UNAUTHENTICATED' });
    const wrong = await w.api('/api/agents', { headers: { Authorization: 'Bearer not-a-token-of-this-gateway' } });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ code: 'ERR_UNAUTHENTICATED', message: expect.stringContaining('token') });
    const events = await fetch(`${w.base}/api/agents/events`);
    expect(events.status).toBe(401);
    const logs = await fetch(`${w.base}/api/logs`, { headers: { Authorization: 'Basic YWxpY2U6eA==' } });
    expect(logs.status).toBe(401);
  });

  it('a bearer token names its person', async () => {
    const res = await w.api('/api/session');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ user: 'alice' });
  });

  it('the login link sets an HttpOnly SameSite=Strict cookie and redirects; a wrong one is 401', async () => {
    const bad = await fetch(`${w.base}/login?token=nope-nope-nope-nope`, { redirect: 'manual' });
    expect(bad.status).toBe(401);
    expect(bad.headers.get('set-cookie')).toBeNull();
    const res = await fetch(`${w.base}/login?token=${ALICE.token}`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    const setCookie = res.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^errand_session=/);
    expect(setCookie).toMatch(/HttpOnly/i);
    expect(setCookie).toMatch(/SameSite=Strict/i);
    expect(setCookie).toMatch(/Path=\//);
    expect(setCookie).not.toContain(ALICE.token);
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
  });

  it('a cookie authenticates GETs; a cookie POST without the CSRF header is 403, with it accepted', async () => {
    const cookie = cookieOf(await fetch(`${w.base}/login?token=${ALICE.token}`, { redirect: 'manual' }));
    const session = await fetch(`${w.base}/api/session`, { headers: { Cookie: cookie } });
    expect(session.status).toBe(200);
    const { user, csrf } = (await session.json()) as { user: string; csrf: string };
    expect(user).toBe('alice');
    expect(csrf.length).toBeGreaterThan(16);

    const body = JSON.stringify({ goal: 'count', agent: 'tally' });
    const noCsrf = await fetch(`${w.base}/api/agents`, { method: 'POST', headers: { Cookie: cookie, 'Content-Type': 'application/json' }, body });
    expect(noCsrf.status).toBe(403);
    expect(await noCsrf.json()).toMatchObject({ code: 'ERR_CSRF' });
    const wrongCsrf = await fetch(`${w.base}/api/agents`, { method: 'POST', headers: { Cookie: cookie, 'X-Errand-CSRF': `${csrf}x`, 'Content-Type': 'application/json' }, body });
    expect(wrongCsrf.status).toBe(403);
    const ok = await fetch(`${w.base}/api/agents`, { method: 'POST', headers: { Cookie: cookie, 'X-Errand-CSRF': csrf, 'Content-Type': 'application/json' }, body });
    expect(ok.status).toBe(201);

    // A forged cookie (another name, or a changed MAC) is not a session.
    const forged = cookie.replace('errand_session=alice.', 'errand_session=bob.');
    expect((await fetch(`${w.base}/api/session`, { headers: { Cookie: forged } })).status).toBe(401);
  });

  it('an oversized body is 413 ERR_TOO_LARGE, with or without Content-Length', async () => {
    const big = await w.api('/api/agents', { json: { goal: 'x'.repeat(300 * 1024) } });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ code: 'ERR_TOO_LARGE' });
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"goal":"'));
        // 2 MiB: far more than socket buffers hold, so the 413 comes while the client is still sending.
        for (let i = 0; i < 128; i++) c.enqueue(new TextEncoder().encode('y'.repeat(16 * 1024)));
        c.enqueue(new TextEncoder().encode('"}'));
        c.close();
      },
    });
    const streamed = await w.api('/api/agents', { method: 'POST', body: chunked, headers: { 'Content-Type': 'application/json' }, duplex: 'half' } as RequestInit);
    expect(streamed.status).toBe(413);
  });

  it('a body that is not valid is 400 ERR_INVALID with the issues', async () => {
    const res = await w.api('/api/agents', { json: { goal: 42 } });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; issues: { path: string[] }[] };
    expect(body.code).toBe('ERR_INVALID');
    expect(body.issues[0]!.path).toEqual(['goal']);
    const notJson = await w.api('/api/agents', { method: 'POST', body: 'goal=x', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    expect(notJson.status).toBe(400);
  });

  it('sends no CORS headers, to a preflight or a cross-origin request', async () => {
    const preflight = await fetch(`${w.base}/api/agents`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    expect(preflight.headers.get('access-control-allow-headers')).toBeNull();
    const get = await w.api('/api/session', { headers: { Origin: 'https://evil.example' } });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('unknown API routes are 404 ERR_NOT_FOUND; other pages get the dashboard (SPA), assets are files', async () => {
    const api = await w.api('/api/nope');
    expect(api.status).toBe(404);
    expect(await api.json()).toMatchObject({ code: 'ERR_NOT_FOUND' });
    for (const path of ['/', '/agents/a-123', '/replay/a-1', '/system']) {
      const page = await fetch(`${w.base}${path}`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('Errand dashboard');
    }
    const asset = await fetch(`${w.base}/assets/app.js`);
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
    expect(await asset.text()).toContain('dashboard');
    expect((await fetch(`${w.base}/assets/missing.js`)).status).toBe(404);
    expect(await (await fetch(`${w.base}/..%2f..%2fetc%2fpasswd`)).text()).toContain('Errand dashboard');
  });

  it('unknown agents are 404 ERR_AGENT_NOT_FOUND on every agent route', async () => {
    const id = 'a-nobody-here';
    for (const [method, path, json] of [
      ['GET', `/api/agents/${id}`, undefined],
      ['GET', `/api/agents/${id}/journal`, undefined],
      ['GET', `/api/agents/${id}/events`, undefined],
      ['POST', `/api/agents/${id}/approve`, { requestId: 'r', argsHash: 'h' }],
      ['POST', `/api/agents/${id}/deny`, { requestId: 'r', argsHash: 'h' }],
      ['POST', `/api/agents/${id}/answer`, { text: 'hi' }],
      ['POST', `/api/agents/${id}/tell`, { text: 'hi' }],
      ['POST', `/api/agents/${id}/cancel`, {}],
      ['POST', `/api/agents/${id}/pause`, {}],
      ['POST', `/api/agents/${id}/resume`, {}],
      ['GET', `/api/agents/${id}/replay`, undefined],
      ['POST', `/api/agents/${id}/fork`, { at: 1 }],
    ] as const) {
      const res = await w.api(path, { method, ...(json ? { json } : {}) });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(((await res.json()) as { code: string }).code, `${method} ${path}`).toBe('ERR_AGENT_NOT_FOUND');
    }
  });

  it('the gateway process serves /api/system behind its auth and the chat callbacks outside it', async () => {
    expect((await fetch(`${w.base}/api/system`)).status).toBe(401);
    const system = await w.api('/api/system');
    expect(system.status).toBe(200);
    expect(await system.json()).toMatchObject({ server: { version: expect.any(String), jetstream: true }, replicas: { 'errand-host': 1, 'errand-gateway': 1 }, dlq: [] });
    // No channels configured: the callbacks answer, without a token, that there is no such channel.
    for (const path of ['/slack/ops/actions', '/telegram/tg/webhook']) {
      const res = await fetch(`${w.base}${path}`, { method: 'POST', body: '{}' });
      expect(res.status, path).toBe(404);
      expect(await res.json()).toMatchObject({ code: 'ERR_NOT_FOUND', message: expect.stringContaining('ERRAND_NOTIFY_CHANNELS') });
    }
  });

  it('event streams send keep-alive comments', async () => {
    const res = await w.api('/api/agents/events');
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const { comments } = await readSse(res, () => false, 1_500);
    expect(comments.filter((c) => c === 'keep-alive').length).toBeGreaterThanOrEqual(1);
  });
});
