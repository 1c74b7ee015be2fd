import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm, type MockLlm } from '@errand/llm';
import { findNatsServer } from '@errand/nats';
import { runProcess, startProcess, type TestProcess } from '@errand/testing';

// The built CLI, as a user runs it (`pnpm test` builds before testing).
const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const PID_FILE = 'errand-nats-server.pid';

let home: string;
let model: MockLlm;
const started: TestProcess[] = [];
/** Processes that are not children of this test (servers, watchdogs): ended in afterAll if still the same process. */
const orphans: { pid: number; start: string | undefined }[] = [];
const track = (...pids: number[]) => orphans.push(...pids.map((pid) => ({ pid, start: startTime(pid) })));

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'errand-takeover-home-'));
  model = await startMockLlm({
    steps: [
      { match: 'Rewrite plan.txt', reply: { toolCalls: [{ name: 'fs_write', arguments: { path: 'plan.txt', content: 'new plan\n', overwrite: true } }] } },
      { match: 'Rewrite plan.txt', expect: { contains: ['plan.txt'] }, reply: { content: 'plan.txt is rewritten.' } },
    ],
  });
});
afterAll(async () => {
  for (const p of started) p.signal('SIGKILL');
  await Promise.all(started.map((p) => p.exited));
  for (const { pid, start } of orphans) if (alive(pid) && start !== undefined && startTime(pid) === start) process.kill(pid, 'SIGKILL');
  await model.close();
  await rm(home, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A killed orphan is a zombie until its new parent reaps it.
  return !/^\d+ \(.*\) Z /.test(safeRead(`/proc/${pid}/stat`));
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Polls `check` every 100 ms until it holds, for at most `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function userEnv(): Record<string, string | undefined> {
  const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, OPENAI_API_KEY: _k, OPENAI_BASE_URL: _b, ...rest } = process.env;
  return { ...rest, HOME: home, OPENAI_BASE_URL: model.url };
}

const errand = (args: string[]) => runProcess(process.execPath, [cli, ...args], { env: userEnv() });

function up(dataDir: string, workspace: string): TestProcess {
  const p = startProcess(process.execPath, [cli, 'up', '--data-dir', dataDir, '--workspace', workspace, '--gateway-port', '0', '--log-level', 'warn'], { env: userEnv() });
  started.push(p);
  return p;
}

/** The kernel's start time of `pid` (field 22 of /proc/<pid>/stat). */
function startTime(pid: number): string | undefined {
  const stat = safeRead(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

describe('errand up takes over the nats-server an earlier, killed errand up left running', () => {
  it('kill -9 of errand up: its watchdog stops the embedded server, and errand up starts again without a takeover', async () => {
    const root = await mkdtemp(join(tmpdir(), 'errand-takeover-'));
    const dataDir = join(root, 'nats');
    const first = up(dataDir, join(root, 'workspace'));
    await first.waitForLine(/Errand is up/, 30_000);
    const { pid: server, supervisor } = JSON.parse(await readFile(join(dataDir, PID_FILE), 'utf8')) as { pid: number; supervisor: number };
    track(server, supervisor);
    first.signal('SIGKILL');
    await first.exited;
    await until(() => !alive(server), 15_000, 'the server stops with its errand up');
    await until(() => !alive(supervisor), 5_000, 'the watchdog exits after it');
    const second = up(dataDir, join(root, 'workspace'));
    await second.waitForLine(/Errand is up/, 30_000);
    expect(second.stdout()).not.toContain('stopped the nats-server');
    const again = JSON.parse(await readFile(join(dataDir, PID_FILE), 'utf8')) as { supervisor: number };
    track(again.supervisor);
    second.signal('SIGINT');
    expect((await second.exited).code, second.stderr()).toBe(0);
    // A clean stop ends the watchdog too (it exits when its server does).
    await until(() => !alive(again.supervisor), 5_000, 'the watchdog exits after a clean stop');
    await rm(root, { recursive: true, force: true });
  }, 90_000);

  it('kill -9 of errand up with an agent waiting, then errand up again: the orphan is stopped, and the agent continues to done', async () => {
    const root = await mkdtemp(join(tmpdir(), 'errand-takeover-'));
    const dataDir = join(root, 'nats');
    const workspace = join(root, 'workspace');
    await mkdir(workspace, { recursive: true });
    await writeFile(join(workspace, 'plan.txt'), 'old plan\n');

    const first = up(dataDir, workspace);
    await first.waitForLine(/Errand is up/, 30_000);
    const { pid: orphan, supervisor } = JSON.parse(await readFile(join(dataDir, PID_FILE), 'utf8')) as { pid: number; supervisor?: number };
    expect(supervisor).toBeGreaterThan(0);
    track(orphan, supervisor!);

    const submitted = await errand(['submit', 'Rewrite plan.txt', '--agent', 'assistant', '--tools', 'fs_write', '--json']);
    expect(submitted.code, submitted.stderr).toBe(0);
    const { agentId } = JSON.parse(submitted.stdout) as { agentId: string };
    type Shown = { status: string; waiting?: { kind: string; requestId: string } };
    const show = async () => JSON.parse((await errand(['show', agentId, '--json'])).stdout) as Shown;
    await until(async () => (await show()).waiting?.kind === 'approval', 30_000, 'the agent waits for an approval');

    // Its watchdog would stop the server after `errand up` dies: killed first, the server is left
    // as the issue found it (as after an OOM kill of both, or on a system without /proc).
    process.kill(supervisor!, 'SIGKILL');
    await until(() => !alive(supervisor!), 5_000, 'the watchdog is gone');
    first.signal('SIGKILL');
    await first.exited;
    // What the issue describes: the embedded server outlives its `errand up`.
    expect(alive(orphan)).toBe(true);

    const second = up(dataDir, workspace);
    await second.waitForLine(/Errand is up/, 30_000);
    expect(second.stdout()).toContain(`stopped the nats-server (pid ${orphan}) an earlier errand up left running on this data folder`);
    expect(alive(orphan)).toBe(false);
    const record = JSON.parse(await readFile(join(dataDir, PID_FILE), 'utf8')) as { pid: number; storeDir: string };
    expect(record.pid).not.toBe(orphan);
    expect(record.storeDir).toBe(dataDir);

    expect(await show()).toMatchObject({ status: 'waiting', waiting: { kind: 'approval' } });
    const approved = await errand(['approve', agentId, '--json']);
    expect(approved.code, approved.stderr).toBe(0);
    await until(async () => (await show()).status === 'done', 30_000, 'the agent is done');
    expect(await readFile(join(workspace, 'plan.txt'), 'utf8')).toBe('new plan\n');

    second.signal('SIGINT');
    expect((await second.exited).code, second.stderr()).toBe(0);
    expect(existsSync(join(dataDir, PID_FILE))).toBe(false);
    await rm(root, { recursive: true, force: true });
  }, 120_000);

  it('a pid file naming a live process Errand cannot prove it started (a sleep) is refused with the message, and the process is not touched', async () => {
    const root = await mkdtemp(join(tmpdir(), 'errand-takeover-'));
    const dataDir = join(root, 'nats');
    await mkdir(dataDir, { recursive: true });
    const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    const sleeperExit = new Promise((r) => sleeper.once('exit', r));
    try {
      const pid = sleeper.pid!;
      await until(() => startTime(pid) !== undefined, 5_000, 'the sleep shows in /proc');
      // Everything a takeover checks, but the process is not a nats-server on this folder: a reused pid.
      await writeFile(
        join(dataDir, PID_FILE),
        JSON.stringify({ pid, startTime: startTime(pid), binary: findNatsServer({ env: process.env }), storeDir: dataDir, uid: process.getuid!(), owner: { pid: 2 ** 22 + 1, startTime: '1' } }),
      );
      const refused = up(dataDir, join(root, 'workspace'));
      const exit = await refused.exited;
      expect(exit.code).not.toBe(0);
      expect(refused.stderr()).toContain(`another nats-server (pid ${pid}) is using the data folder ${dataDir}`);
      expect(alive(pid)).toBe(true);
      expect(existsSync(join(dataDir, PID_FILE))).toBe(true);
    } finally {
      sleeper.kill('SIGKILL');
      await sleeperExit;
      await rm(root, { recursive: true, force: true });
    }
  }, 60_000);

  it('Ctrl-C while errand up starts stops it cleanly once started: exit 0, its nats-server stopped, no pid file left', async () => {
    const root = await mkdtemp(join(tmpdir(), 'errand-takeover-'));
    const dataDir = join(root, 'nats');
    const p = up(dataDir, join(root, 'workspace'));
    await p.waitForLine(/starting nats-server/, 30_000);
    p.signal('SIGINT');
    const exit = await p.exited;
    expect(exit, `stdout:\n${p.stdout()}\nstderr:\n${p.stderr()}`).toEqual({ code: 0, signal: null });
    expect(p.stdout()).toContain('stopped');
    expect(existsSync(join(dataDir, PID_FILE))).toBe(false);
    await rm(root, { recursive: true, force: true });
  }, 60_000);

  it('a stale pid file (its process is gone) is removed, and errand up starts', async () => {
    const root = await mkdtemp(join(tmpdir(), 'errand-takeover-'));
    const dataDir = join(root, 'nats');
    await mkdir(dataDir, { recursive: true });
    const gone = spawn('true', [], { stdio: 'ignore' });
    await new Promise((r) => gone.once('exit', r));
    await writeFile(join(dataDir, PID_FILE), JSON.stringify({ pid: gone.pid, startTime: '1', binary: 'nats-server', storeDir: dataDir, uid: process.getuid!(), owner: { pid: gone.pid, startTime: '1' } }));
    const p = up(dataDir, join(root, 'workspace'));
    await p.waitForLine(/Errand is up/, 30_000);
    expect(p.stdout()).not.toContain('stopped the nats-server');
    const record = JSON.parse(await readFile(join(dataDir, PID_FILE), 'utf8')) as { pid: number };
    expect(record.pid).not.toBe(gone.pid);
    p.signal('SIGINT');
    const exit = await p.exited;
    expect(exit, `stdout:\n${p.stdout()}\nstderr:\n${p.stderr()}`).toEqual({ code: 0, signal: null });
    await rm(root, { recursive: true, force: true });
  }, 60_000);
});
