// Errand as a user gets it: the packages packed as `pnpm publish` would (scripts/pack.mjs), installed
// with npm into an empty folder outside the workspace — third-party dependencies from the registry,
// no pnpm, no patches, no workspace links — and the `errand` there run through npx: --help, the demo
// to its end, and `errand up` with a custom agent package of that project (ERRAND_AGENT_MODULES).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' });
const skipReason = npm.status === 0 ? undefined : 'npm is not on PATH (this test installs the tarballs as a user does, with npm)';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Process groups this file started: each command runs in its own, so npx's children go with it. */
const groups = new Set<number>();

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Starts `command` in a process group of its own, stdin closed (no TTY), output collected. */
function start(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv }) {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pid = child.pid!;
  groups.add(pid);
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (c: string) => ((stdout += c), listeners.forEach((l) => l())));
  child.stderr.setEncoding('utf8').on('data', (c: string) => ((stderr += c), listeners.forEach((l) => l())));
  const exited = new Promise<Run>((resolve) =>
    child.once('close', (code, signal) => {
      groups.delete(pid);
      // Whatever the command left behind in its group (a server, a child node) goes too.
      killGroup(pid, 'SIGKILL');
      resolve({ code, signal, stdout, stderr });
    }),
  );
  /** The first stdout line matching `pattern`; rejects when the process ends first or after `ms`. */
  const waitFor = (pattern: RegExp, ms: number) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const line = stdout.split('\n').find((l) => pattern.test(l));
        if (line === undefined) return;
        done();
        resolve(line);
      };
      const timer = setTimeout(() => (done(), reject(new Error(`no line matched ${pattern} within ${ms} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`))), ms);
      const done = () => (clearTimeout(timer), listeners.delete(check));
      void exited.then((r) => (done(), reject(new Error(`exited (${r.code ?? r.signal}) before printing ${pattern}\nstdout:\n${stdout}\nstderr:\n${stderr}`))));
      listeners.add(check);
      check();
    });
  return { pid, exited, waitFor, stop: (signal: NodeJS.Signals) => killGroup(pid, signal) };
}

/** Runs `command` to its end, or kills its group after `ms` and says so with its output. */
async function run(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv; ms: number }): Promise<Run> {
  const p = start(command, args, options);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      p.stop('SIGKILL');
      void p.exited.then((r) => reject(new Error(`${command} ${args.join(' ')} did not finish within ${options.ms} ms\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`)));
    }, options.ms);
  });
  try {
    return await Promise.race([p.exited, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A user's shell: none of pnpm's or vitest's variables (npm would read `npm_config_*` as its own
 * settings), no NATS or Errand settings, and a home of its own so `~/.errand` is the test's.
 * npm keeps the machine's cache, so the registry is asked only for what it lacks.
 */
function userEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|pnpm_|vitest|NODE_OPTIONS$|NATS_|ERRAND_|OPENAI_|OTEL_|TEST$)/i.test(k)) continue;
    env[k] = v;
  }
  return {
    ...env,
    HOME: home,
    // The demo's temporary folders too (one that fails to start leaves its folder behind).
    TMPDIR: join(work, 'tmp'),
    npm_config_cache: process.env.npm_config_cache || join(homedir(), '.npm'),
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    CI: 'true',
    ...extra,
  };
}

let work: string;
let project: string;
let home: string;
let tarballs: { name: string; tarball: string }[] = [];

describe.skipIf(skipReason !== undefined)(`errand installed from its packed tarballs with npm${skipReason ? ` — skipped: ${skipReason}` : ''}`, () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'errand-install-'));
    project = join(work, 'project');
    home = join(work, 'home');
    await mkdir(project);
    await mkdir(home);
    await mkdir(join(work, 'tmp'));
    // What `pnpm pack:all` does, without building again: `pnpm test` has built, and the other
    // tests run the same dist/.
    const packed = await run(process.execPath, [join(root, 'scripts', 'pack.mjs'), '--no-build', '--json', '--out', join(work, 'tarballs')], { cwd: root, env: process.env, ms: 180_000 });
    expect(packed.code, packed.stderr).toBe(0);
    tarballs = (JSON.parse(packed.stdout) as { packages: { name: string; tarball: string }[] }).packages.map((p) => ({ ...p, tarball: join(work, 'tarballs', p.tarball) }));
    // An empty folder, as `npm init -y` leaves it.
    await writeFile(join(project, 'package.json'), `${JSON.stringify({ name: 'my-project', version: '1.0.0', private: true }, null, 2)}\n`);
    const installed = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...tarballs.map((t) => t.tarball)], { cwd: project, env: userEnv(homedir()), ms: 420_000 });
    expect(installed.code, `npm install failed:\n${installed.stdout}\n${installed.stderr}`).toBe(0);
  }, 600_000);

  afterAll(async () => {
    for (const pid of groups) killGroup(pid, 'SIGKILL');
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('packs the CLI and every workspace package it needs, each naming the others by version', async () => {
    const names = tarballs.map((t) => t.name);
    const cli = JSON.parse(await readFile(join(root, 'cli', 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const dep of Object.keys(cli.dependencies).filter((d) => d.startsWith('@errand/'))) expect(names).toContain(dep);
    expect(names).not.toContain('@errand/testing');
    // The manifests npm installed: workspace:* became versions, the CLI has its bin.
    const installedCli = JSON.parse(await readFile(join(project, 'node_modules', '@errand', 'cli', 'package.json'), 'utf8')) as { bin: Record<string, string>; dependencies: Record<string, string> };
    expect(installedCli.bin.errand).toBe('./dist/main.js');
    expect(Object.values(installedCli.dependencies).filter((v) => v.startsWith('workspace:'))).toEqual([]);
    // The dashboard's built files ship in the gateway package.
    expect(existsSync(join(project, 'node_modules', '@errand', 'gateway', 'dist', 'web', 'index.html'))).toBe(true);
    // Every package installed carries the license text its manifest names; none is left in the workspace.
    for (const name of names) {
      const license = await readFile(join(project, 'node_modules', ...name.split('/'), 'LICENSE'), 'utf8');
      expect(license, name).toContain('Apache License');
      expect(license, name).toContain('Version 2.0, January 2004');
    }
    const status = spawnSync('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: root, encoding: 'utf8' });
    expect(status.stdout.split('\n').filter((line) => /\/LICENSE$/.test(line))).toEqual([]);
  });

  it('npx errand --help lists the commands', async () => {
    const r = await run('npx', ['--no', '--', 'errand', '--help'], { cwd: project, env: userEnv(home), ms: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Usage: errand');
    for (const command of ['demo', 'up', 'submit', 'mcp']) expect(r.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });

  it('npx errand demo runs the sample goal to its end (CI, no terminal)', async () => {
    const r = await run('npx', ['--no', '--', 'errand', 'demo'], { cwd: project, env: userEnv(home), ms: 150_000 });
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(/✔ done in .*: \d+ steps/);
    expect(r.stdout).toContain('answer: Done: summary.md');
    expect(r.stdout).toMatch(/approval: tools-\d+ approved/);
  }, 180_000);

  it('without a nats-server, the demo says where it looked and how to get one', async () => {
    const r = await run('npx', ['--no', '--', 'errand', 'demo'], { cwd: project, env: userEnv(home, { NATS_SERVER_BIN: join(work, 'no-nats-server') }), ms: 60_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`nats-server binary '${join(work, 'no-nats-server')}' does not exist or is not executable`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('npm i -g of the tarballs puts errand on PATH; its demo runs from an empty folder', async () => {
    const prefix = join(work, 'global');
    const installed = await run('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', ...tarballs.map((t) => t.tarball)], { cwd: work, env: userEnv(homedir()), ms: 420_000 });
    expect(installed.code, `npm i -g failed:\n${installed.stdout}\n${installed.stderr}`).toBe(0);
    const empty = join(work, 'empty');
    await mkdir(empty);
    const env = userEnv(home, { PATH: `${join(prefix, 'bin')}${delimiter}${process.env.PATH ?? ''}` });
    const version = await run('errand', ['--version'], { cwd: empty, env, ms: 60_000 });
    expect(version.stdout.trim()).toBe((JSON.parse(await readFile(join(root, 'cli', 'package.json'), 'utf8')) as { version: string }).version);
    // Any free port for the dashboard: the other demo (cli/test/up.test.ts) may hold 7878 meanwhile.
    const demo = await run('errand', ['demo', '--json', '--gateway-port', '0'], { cwd: empty, env, ms: 150_000 });
    expect(demo.code, `${demo.stdout}\n${demo.stderr}`).toBe(0);
    expect(JSON.parse(demo.stdout)).toMatchObject({ ok: true, status: 'done', answer: expect.stringContaining('summary.md') });
  }, 600_000);

  it('errand up runs a custom agent of the project named as a package (ERRAND_AGENT_MODULES=@acme/agents); errand mcp reads it', async () => {
    // The project's own package, as `npm install @acme/agents` would place it.
    const pkg = join(project, 'node_modules', '@acme', 'agents');
    await mkdir(join(pkg, 'dist'), { recursive: true });
    await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: '@acme/agents', version: '1.0.0', type: 'module', exports: { '.': { import: './dist/index.js' } }, dependencies: { '@errand/core': '0.1.0', xstate: '5.33.3' } }));
    await writeFile(
      join(pkg, 'dist', 'index.js'),
      `import { setup } from 'xstate';
import { defineAgent } from '@errand/core';
export const greeter = defineAgent({
  id: 'acme-greeter',
  version: 1,
  description: 'greets whoever the goal names, and is done',
  machine: setup({}).createMachine({
    id: 'acme-greeter',
    initial: 'done',
    states: { done: { type: 'final' } },
    output: () => ({ greeting: 'hello from @acme/agents' }),
  }),
});
export const agents = [greeter];
`,
    );
    const env = userEnv(home, { ERRAND_AGENT_MODULES: '@errand/agent,@acme/agents' });
    const up = start('npx', ['--no', '--', 'errand', 'up', '--gateway-port', '0'], { cwd: project, env });
    try {
      await up.waitFor(/^Errand is up\./, 90_000);
      const dashboard = /Dashboard: (http:\/\/127\.0\.0\.1:\d+)\//.exec(await up.waitFor(/^Dashboard: /, 1_000))![1]!;
      // The dashboard is served from the gateway package's files.
      const page = await fetch(`${dashboard}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/<script[^>]+src="\/assets\/index-[^"]+\.js"/);

      const r = await run('npx', ['--no', '--', 'errand', 'submit', 'greet me', '--agent', 'acme-greeter', '--wait', '--json'], { cwd: project, env, ms: 60_000 });
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(r.stdout).toContain('hello from @acme/agents');
      const { agentId } = JSON.parse(r.stdout) as { agentId: string };

      // An MCP client configured with {"command": "errand", "args": ["mcp"]}, errand on its PATH.
      const client = new Client({ name: 'install-test', version: '1.0.0' });
      await client.connect(
        new StdioClientTransport({ command: 'errand', args: ['mcp'], cwd: project, env: { ...(env as Record<string, string>), PATH: `${join(project, 'node_modules', '.bin')}${delimiter}${env.PATH ?? ''}` }, stderr: 'ignore' }),
      );
      try {
        expect((await client.listTools()).tools.map((t) => t.name)).toContain('submit_goal');
        const got = (await client.callTool({ name: 'get_agent', arguments: { agentId } })) as { content: { text: string }[] };
        expect(JSON.parse(got.content[0]!.text)).toMatchObject({ agentId, status: 'done', output: { greeting: 'hello from @acme/agents' } });
      } finally {
        await client.close();
      }
    } finally {
      up.stop('SIGTERM');
      const stopped = await Promise.race([up.exited, new Promise<undefined>((resolve) => setTimeout(resolve, 30_000, undefined))]);
      if (!stopped) up.stop('SIGKILL');
      await up.exited;
    }
  }, 180_000);
});
