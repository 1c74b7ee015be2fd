// The shell tool's sandbox, tried as a model would try to get out of it: real bwrap, real
// processes, a real HTTP server on loopback. Nothing here is mocked.
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeShellSandbox, shellTool, ToolError, type ShellOptions } from '@errand/tools';

const SECRET = 'sk-test-h1-0123456789abcdefghijklmnop';
let workspace: string;
let outside: string;
let server: Server;
let port: number;
let requests = 0;
const ctx = () => ({ signal: new AbortController().signal, key: 'a:1:0' });
const sh = (o: Partial<ShellOptions> = {}) =>
  shellTool({ allowCommands: ['cat', 'ls', 'env', 'printenv', 'find', 'bash', 'touch', 'pwd', 'id', 'tar', 'git', 'curl'], cwd: workspace, timeoutMs: 10_000, maxOutputBytes: 64 * 1024, ...o });
const output = async (p: Promise<unknown>) => ((await p) as { output: string }).output;
async function refusal(p: Promise<unknown>): Promise<ToolError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ToolError);
  return err as ToolError;
}

beforeAll(async () => {
  workspace = await mkdtemp(join(tmpdir(), 'errand-sbx-ws-'));
  outside = await mkdtemp(join(tmpdir(), 'errand-sbx-outside-'));
  await writeFile(join(outside, 'secret.txt'), `the secret is ${SECRET}`);
  await writeFile(join(workspace, 'inside.txt'), 'visible');
  // The runner's own environment holds an API key; the sandbox must not.
  process.env.OPENAI_API_KEY = SECRET;
  process.env.H1_PASSED_ON = 'named-in-config';
  server = createServer((_req, res) => (requests++, res.end('reached')));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  expect((await probeShellSandbox({ cwd: workspace })).ok).toBe(true);
});
afterAll(async () => {
  delete process.env.OPENAI_API_KEY;
  delete process.env.H1_PASSED_ON;
  await new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r())));
  await rm(workspace, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

describe('the shell sandbox', () => {
  it('runs in the workspace, which it can read and write', async () => {
    expect(await output(sh().run({ command: 'pwd' }, ctx()))).toBe('/workspace\n');
    expect(await output(sh().run({ command: 'cat', args: ['inside.txt'] }, ctx()))).toBe('visible');
    await sh().run({ command: 'touch', args: ['made-inside'] }, ctx());
    expect(existsSync(join(workspace, 'made-inside'))).toBe(true);
  });

  it("cannot read the host's /etc/passwd or a file outside the workspace", async () => {
    const hostPasswd = await readFile('/etc/passwd', 'utf8');
    const passwd = await output(sh().run({ command: 'cat', args: ['/etc/passwd'] }, ctx()));
    expect(passwd).toContain('sandbox:x:1000');
    expect(passwd).not.toContain(hostPasswd.split('\n')[0]);
    const err = await refusal(sh().run({ command: 'cat', args: [join(outside, 'secret.txt')] }, ctx()));
    expect(err.code).toBe('ERR_COMMAND_FAILED');
    expect(err.message).toMatch(/No such file or directory/);
    expect(err.message).not.toContain(SECRET);
    const root = await output(sh().run({ command: 'ls', args: ['/'] }, ctx()));
    expect(root.split('\n')).not.toContain('root');
    expect(root.split('\n')).not.toContain('home');
    expect(root.split('\n')).toContain('workspace');
  });

  it("cannot see the runner's environment, only PATH, HOME, LANG and the names the config passes", async () => {
    const env = await output(sh({ env: { H1_PASSED_ON: process.env.H1_PASSED_ON! } }).run({ command: 'env' }, ctx()));
    expect(env).not.toContain(SECRET);
    expect(env).not.toContain('OPENAI_API_KEY');
    expect(env).toContain('H1_PASSED_ON=named-in-config');
    expect(env.trim().split('\n').map((l) => l.split('=')[0]).sort()).toEqual(['H1_PASSED_ON', 'HOME', 'LANG', 'PATH', 'PWD']);
    expect((await refusal(sh().run({ command: 'printenv', args: ['OPENAI_API_KEY'] }, ctx()))).code).toBe('ERR_COMMAND_FAILED');
    // bwrap is the sandbox's PID 1: its environment and command line are readable in there too.
    const pid1 = await output(sh().run({ command: 'cat', args: ['/proc/1/environ', '/proc/1/cmdline'] }, ctx()));
    expect(pid1).not.toContain(SECRET);
    expect(pid1).not.toContain(workspace);
  });

  it('cannot reach the network (a loopback HTTP server of the host), unless the config allows it', async () => {
    const before = requests;
    const tcp = `exec 3<>/dev/tcp/127.0.0.1/${port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3`;
    expect((await refusal(sh().run({ command: 'bash', args: ['-c', tcp] }, ctx()))).message).toMatch(/Connection refused|Network is unreachable/);
    expect((await refusal(sh().run({ command: 'curl', args: ['-sS', '--max-time', '3', `http://127.0.0.1:${port}/`] }, ctx()))).code).toBe('ERR_COMMAND_FAILED');
    expect(requests).toBe(before);
    // The same attempt with the network allowed gets through: the test above could have failed.
    expect(await output(sh({ network: true }).run({ command: 'bash', args: ['-c', tcp] }, ctx()))).toContain('reached');
    expect(requests).toBe(before + 1);
  });

  it('refuses find -exec and other ways of running a program, and find sees nothing outside anyway', async () => {
    for (const args of [['.', '-exec', 'cat', '/etc/shadow', ';'], ['.', '-execdir', 'sh', '{}', ';'], ['.', '-okdir', 'id', ';']]) {
      const err = await refusal(sh().run({ command: 'find', args }, ctx()));
      expect(err.code).toBe('ERR_COMMAND_NOT_ALLOWED');
      expect(err.message).toMatch(/would run another program/);
    }
    expect((await refusal(sh().run({ command: 'tar', args: ['-cf', 'x.tar', '--to-comm=sh', '.'] }, ctx()))).code).toBe('ERR_COMMAND_NOT_ALLOWED');
    expect((await refusal(sh().run({ command: 'tar', args: ['-xIsh', 'x.tar'] }, ctx()))).code).toBe('ERR_COMMAND_NOT_ALLOWED');
    expect((await refusal(sh().run({ command: 'git', args: ['-c', 'core.pager=sh', 'log'] }, ctx()))).code).toBe('ERR_COMMAND_NOT_ALLOWED');
    expect((await refusal(sh().run({ command: 'env', args: ['cat', '/etc/passwd'] }, ctx()))).message).toMatch(/runs other programs and is never allowed/);
    // Some of /usr is unreadable to the sandbox's user, so find may exit 1: read what it printed either way.
    const found = await sh()
      .run({ command: 'find', args: ['/', '-name', 'secret.txt'] }, ctx())
      .then((r) => (r as { output: string }).output, (e: ToolError) => e.message);
    expect(found).not.toContain('secret.txt');
  });

  it('kills the whole sandbox at the timeout, background processes included', async () => {
    const err = await refusal(sh({ timeoutMs: 500 }).run({ command: 'bash', args: ['-c', 'sleep 987 & sleep 986'] }, ctx()));
    expect(err.code).toBe('ERR_TOOL_TIMEOUT');
    const left: string[] = [];
    for (const pid of await readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmd === 'sleep\x00987\x00' || cmd === 'sleep\x00986\x00') left.push(pid);
    }
    expect(left).toEqual([]);
  });

  it('is refused, never run unsandboxed, where bwrap is missing', async () => {
    const tool = sh({ bwrapPath: '/nonexistent/errand-test/bwrap' });
    const err = await refusal(tool.run({ command: 'touch', args: ['ran-unsandboxed'] }, ctx()));
    expect(err.code).toBe('ERR_SANDBOX_UNAVAILABLE');
    expect(err.message).toMatch(/shell is refused on this runner: bubblewrap \(bwrap\) is not installed.*apt-get install bubblewrap/);
    expect(err.message).not.toContain('/nonexistent');
    expect(existsSync(join(workspace, 'ran-unsandboxed'))).toBe(false);
    expect(await probeShellSandbox({ cwd: workspace, bwrapPath: '/nonexistent/errand-test/bwrap' })).toMatchObject({ ok: false, reason: 'bubblewrap (bwrap) is not installed' });
  });
});
