import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDeployment, runProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

// Which NATS server a command talks to is never a guess, and says so when the command found it
// itself; a goal file that cannot be read is one line, not a stack trace (#17).

const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let srv: TestServer;
let d: Deployment;
let root: string;
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv);
  root = await mkdtemp(join(tmpdir(), 'errand-server-choice-'));
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
  await rm(root, { recursive: true, force: true });
});

/** The CLI with HOME `home` and none of the user's NATS settings, plus `extra`. */
function errand(home: string, args: string[], extra: Record<string, string> = {}) {
  const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, ...rest } = process.env;
  return runProcess(process.execPath, [cli, ...args], { env: { ...rest, HOME: home, ...extra } });
}

const noStack = (stderr: string) => expect(stderr, stderr).not.toMatch(/^\s+at /m);

describe('the NATS server a command uses', () => {
  it('none named and no errand up running: exit 4 saying how to start or name one, nothing tried on localhost', async () => {
    const home = join(root, 'empty');
    await mkdir(home);
    for (const args of [['ls'], ['show', 'a-1'], ['status'], ['logs']]) {
      const r = await errand(home, args);
      expect(r.code, args.join(' ')).toBe(4);
      expect(r.stderr).toBe('errand: no NATS server named and no errand up running: start one with `errand up` (in another terminal), or name yours with --server nats://host:4222 or NATS_URL\n');
    }
    const json = await errand(home, ['ls', '--json']);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, error: { message: expect.stringContaining('no NATS server named') } });
  });

  it("a running errand up's server: used, and named once on stderr — --json output stays JSON", async () => {
    const home = join(root, 'with-up');
    await mkdir(join(home, '.errand'), { recursive: true });
    // What errand up leaves for other terminals (its pid must be alive: this test's).
    await writeFile(join(home, '.errand', 'up.json'), JSON.stringify({ url: srv.url, prefix: d.prefix, pid: process.pid }));
    const { NATS_CREDS } = d.env('operator');
    const r = await errand(home, ['ls', '--json'], NATS_CREDS ? { NATS_CREDS } : {});
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([]);
    expect(r.stderr).toBe(`errand: using ${srv.url} (prefix ${d.prefix}), the NATS server of the errand up running as pid ${process.pid}\n`);
  });

  it('--server and NATS_URL name it: used without a word', async () => {
    const home = join(root, 'named');
    await mkdir(home);
    const env = d.env('operator');
    const viaEnv = await errand(home, ['ls', '--json'], env);
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(viaEnv.stderr).toBe('');
    const { NATS_URL, ...rest } = env;
    const viaFlag = await errand(home, ['ls', '--json', '--server', NATS_URL!], rest);
    expect(viaFlag.code, viaFlag.stderr).toBe(0);
    expect(viaFlag.stderr).toBe('');
  });
});

describe('errand submit --file', () => {
  it('a file that does not exist: one line, exit 3; a folder: exit 2; --json says it as JSON', async () => {
    const home = join(root, 'files');
    await mkdir(home);
    const env = d.env('operator');
    const missing = await errand(home, ['submit', '--file', '/nonexistent/goal.md'], env);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toBe('errand: cannot read the goal from --file /nonexistent/goal.md: there is no such file\n');
    noStack(missing.stderr);
    const folder = await errand(home, ['submit', '--file', home], env);
    expect(folder.code).toBe(2);
    expect(folder.stderr).toBe(`errand: cannot read the goal from --file ${home}: it is a folder\n`);
    const json = await errand(home, ['submit', '--file', '/nonexistent/goal.md', '--json'], env);
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toEqual({ ok: false, error: { code: 'ERR_CLI', message: 'cannot read the goal from --file /nonexistent/goal.md: there is no such file' } });
  });
});
