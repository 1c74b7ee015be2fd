import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fsTools, httpFetchTool, shellTool, ToolError, type Tool } from '@errand/tools';

let root: string;
let outside: string;
let tools: Record<string, Tool>;
const ctx = () => ({ signal: new AbortController().signal, key: 'a:1:0' });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'errand-ws-'));
  outside = await mkdtemp(join(tmpdir(), 'errand-outside-'));
  await writeFile(join(outside, 'secret.txt'), 'do not read');
  await symlink(outside, join(root, 'escape'));
  await mkdir(join(root, 'docs'));
  await writeFile(join(root, 'docs', 'a.txt'), 'hello');
  tools = Object.fromEntries(fsTools({ root, maxReadBytes: 1000, maxWriteBytes: 1000 }).map((t) => [t.definition.name, t]));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function refusal(p: Promise<unknown>): Promise<ToolError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ToolError);
  return err as ToolError;
}

describe('workspace tools', () => {
  it('list, read, write and delete inside the workspace', async () => {
    expect(await tools.fs_list!.run({ path: 'docs' }, ctx())).toEqual([{ name: 'a.txt', type: 'file' }]);
    expect(await tools.fs_read!.run({ path: 'docs/a.txt' }, ctx())).toBe('hello');
    expect(await tools.fs_write!.run({ path: 'out/new.txt', content: 'made' }, ctx())).toEqual({ path: 'out/new.txt', bytes: 4, replaced: false });
    expect(await readFile(join(root, 'out/new.txt'), 'utf8')).toBe('made');
    expect(await tools.fs_delete!.run({ path: 'out/new.txt' }, ctx())).toEqual({ path: 'out/new.txt', deleted: true });
  });

  it.each([
    ['a path with ..', { path: '../secret.txt' }, /contains '\.\.'/],
    ['an absolute path', { path: '/etc/passwd' }, /is absolute/],
    ['a symlink that leads outside', { path: 'escape/secret.txt' }, /goes through a symlink \('escape'\); the fs tools follow no symlinks/],
  ])('refuses %s, saying why', async (_what, args, why) => {
    const err = await refusal(tools.fs_read!.run(args, ctx()));
    expect(err.code).toBe('ERR_OUTSIDE_WORKSPACE');
    expect(err.message).toMatch(why);
    expect((await refusal(tools.fs_write!.run({ ...args, content: 'x' }, ctx()))).code).toBe('ERR_OUTSIDE_WORKSPACE');
  });

  it('refuses a file over the read limit and explains arguments it cannot use', async () => {
    await writeFile(join(root, 'big.txt'), 'x'.repeat(2000));
    expect((await refusal(tools.fs_read!.run({ path: 'big.txt' }, ctx()))).message).toMatch(/2000 bytes; fs_read returns at most 1000/);
    expect((await refusal(tools.fs_read!.run({}, ctx()))).message).toBe("fs_read: 'path' must be a non-empty string");
  });

  it('marks destructive tools for approval by default; replacing a file takes overwrite: true, which needs approval', async () => {
    expect(tools.fs_delete!.defaultPolicy).toBe('ask');
    expect(tools.fs_read!.defaultPolicy).toBe('auto');
    expect(tools.fs_write!.askIfArgs).toEqual({ overwrite: true });
    expect((await refusal(tools.fs_write!.run({ path: 'docs/a.txt', content: 'new' }, ctx()))).message).toMatch(/exists; to replace it, call fs_write again with overwrite: true/);
    expect(await tools.fs_write!.run({ path: 'docs/a.txt', content: 'new', overwrite: true }, ctx())).toMatchObject({ replaced: true });
  });
});

describe('http_fetch', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/hello') return res.end('hi there');
      if (req.url === '/hop') return res.writeHead(302, { location: '/hello' }).end();
      if (req.url === '/away') return res.writeHead(302, { location: 'http://localhost:1/steal' }).end();
      if (req.url === '/big') return res.end('y'.repeat(5000));
      if (req.url === '/slow') return void setTimeout(() => res.end('late'), 5000);
      res.writeHead(404).end('nope');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))));

  const fetchTool = () => httpFetchTool({ allowHosts: ['127.0.0.1'], maxBytes: 1000, timeoutMs: 500, maxRedirects: 3 });

  it('fetches from an allowed host and follows a redirect that stays allowed', async () => {
    expect(await fetchTool().run({ url: `${base}/hello` }, ctx())).toMatchObject({ status: 200, body: 'hi there', truncated: false });
    expect(await fetchTool().run({ url: `${base}/hop` }, ctx())).toMatchObject({ status: 200, body: 'hi there' });
  });

  it('refuses a host off the allowlist, and a redirect to one', async () => {
    expect((await refusal(fetchTool().run({ url: 'http://localhost:1/x' }, ctx()))).message).toMatch(/host localhost is not on the allowlist/);
    const err = await refusal(fetchTool().run({ url: `${base}/away` }, ctx()));
    expect(err.code).toBe('ERR_HOST_NOT_ALLOWED');
    expect(err.message).toMatch(/a redirect led to host localhost/);
  });

  it('cuts a large body, reports an HTTP error, and times out', async () => {
    expect(await fetchTool().run({ url: `${base}/big` }, ctx())).toMatchObject({ truncated: true });
    expect((await refusal(fetchTool().run({ url: `${base}/missing` }, ctx()))).message).toMatch(/answered 404/);
    const slow = await refusal(fetchTool().run({ url: `${base}/slow` }, ctx()));
    expect(slow).toMatchObject({ code: 'ERR_TOOL_TIMEOUT', retryable: true });
  });
});

describe('shell', () => {
  const sh = () => shellTool({ allowCommands: ['echo', 'sleep'], cwd: root, timeoutMs: 500, maxOutputBytes: 100 });

  it('runs an allowed command without a shell, and refuses others', async () => {
    expect(await sh().run({ command: 'echo', args: ['hi', '$HOME', ';', 'ls'] }, ctx())).toMatchObject({ exitCode: 0, output: 'hi $HOME ; ls\n' });
    expect((await refusal(sh().run({ command: 'rm', args: ['-rf', '/'] }, ctx()))).code).toBe('ERR_COMMAND_NOT_ALLOWED');
  });

  it('kills a command over its timeout, and one whose call is cancelled', async () => {
    expect((await refusal(sh().run({ command: 'sleep', args: ['5'] }, ctx()))).code).toBe('ERR_TOOL_TIMEOUT');
    const controller = new AbortController();
    const running = sh().run({ command: 'sleep', args: ['5'] }, { signal: controller.signal, key: 'k' });
    controller.abort();
    expect((await refusal(running)).code).toBe('ERR_TOOL_CANCELLED');
  });
});
