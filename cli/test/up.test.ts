import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm, type MockLlm } from '@errand/llm';
import { createDeployment, freePort, runProcess, startProcess, startTestServer, type TestProcess } from '@errand/testing';

// The built CLI, as a user runs it (`pnpm test` builds before testing).
const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let home: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'errand-up-home-'));
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

/** A user with an empty home and no NATS configured: the CLI finds `errand up` through ~/.errand. */
function userEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, OPENAI_API_KEY: _k, OPENAI_BASE_URL: _b, ...rest } = process.env;
  return { ...rest, HOME: home, ...extra };
}

const errand = (args: string[], extra: Record<string, string> = {}) => runProcess(process.execPath, [cli, ...args], { env: userEnv(extra) });

/** `errand up` with its dashboard on `gatewayPort` (never the default 7878, which a test running beside this one may hold). */
async function up(dataDir: string, workspace: string, model: MockLlm, gatewayPort: number): Promise<TestProcess> {
  const p = startProcess(process.execPath, [cli, 'up', '--data-dir', dataDir, '--workspace', workspace, '--gateway-port', String(gatewayPort), '--log-level', 'warn'], {
    env: userEnv({ OPENAI_BASE_URL: model.url }),
  });
  await p.waitForLine(/Errand is up/, 30_000);
  return p;
}

async function stop(p: TestProcess): Promise<void> {
  p.signal('SIGINT');
  const exit = await p.exited;
  expect(exit.code, p.stderr()).toBe(0);
  expect(p.stdout()).toContain('stopped');
}

describe('errand up and the CLI, as a user runs them', () => {
  it('submit → approval survives a restart of `errand up` → watch → approve → done; errors have their exit codes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'errand-up-'));
    const workspace = join(root, 'workspace');
    await mkdir(workspace, { recursive: true });
    await writeFile(join(workspace, 'plan.txt'), 'old plan\n');
    // The test's model outlives both runs of `errand up`.
    const model = await startMockLlm({
      steps: [
        { match: 'Rewrite plan.txt', reply: { toolCalls: [{ name: 'fs_write', arguments: { path: 'plan.txt', content: 'new plan\n', overwrite: true } }] } },
        { match: 'Rewrite plan.txt', expect: { contains: ['plan.txt'] }, reply: { content: 'plan.txt is rewritten.' } },
      ],
    });
    let first: TestProcess | undefined;
    let second: TestProcess | undefined;
    try {
      // One port for both runs: the login link must be the same after the restart.
      const gatewayPort = await freePort();
      first = await up(join(root, 'nats'), workspace, model, gatewayPort);

      const submitted = await errand(['submit', 'Rewrite plan.txt', '--agent', 'assistant', '--tools', 'fs_write', '--label', 'suite=up', '--json']);
      expect(submitted.code, submitted.stderr).toBe(0);
      const { agentId } = JSON.parse(submitted.stdout) as { ok: boolean; agentId: string };
      expect(agentId).toMatch(/^a-/);

      // The overwrite needs a person: wait (bounded) until the agent shows the request.
      type Shown = { status: string; waiting?: { kind: string; requestId: string; calls?: { tool: string; args: unknown }[] } };
      let waiting: Shown | undefined;
      for (let i = 0; i < 100 && !waiting?.waiting; i++) {
        const shown = await errand(['show', agentId, '--json']);
        expect(shown.code, shown.stderr).toBe(0);
        waiting = JSON.parse(shown.stdout) as Shown;
        if (!waiting?.waiting) await new Promise((r) => setTimeout(r, 200));
      }
      expect(waiting).toMatchObject({ status: 'waiting', waiting: { kind: 'approval', calls: [{ tool: 'fs_write', args: { path: 'plan.txt', content: 'new plan\n', overwrite: true } }] } });
      const requestId = waiting!.waiting!.requestId;

      // The dashboard link: signs the browser in, and the gateway shows the same agent waiting.
      const dashboard = /Dashboard: (http:\/\/127\.0\.0\.1:\d+\/login\?token=[A-Za-z0-9_-]+)/.exec(first.stdout())?.[1];
      expect(dashboard, first.stdout()).toBeDefined();
      const login = await fetch(dashboard!, { redirect: 'manual' });
      expect(login.status).toBe(303);
      const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
      const viaGateway = (await (await fetch(new URL(`/api/agents/${agentId}`, dashboard), { headers: { Cookie: cookie } })).json()) as { agent: Shown };
      expect(viaGateway.agent).toMatchObject({ status: 'waiting', waiting: { requestId } });

      // Ctrl-C, and up again on the same data: the agent is still waiting for the same request.
      await stop(first);
      first = undefined;
      second = await up(join(root, 'nats'), workspace, model, gatewayPort);
      // The same login link works again (the token is kept in the data folder).
      expect(second.stdout()).toContain(`Dashboard: ${dashboard}`);
      const after = JSON.parse((await errand(['show', agentId, '--json'])).stdout) as Shown;
      expect(after).toMatchObject({ status: 'waiting', waiting: { requestId } });
      expect(await readFile(join(workspace, 'plan.txt'), 'utf8')).toBe('old plan\n');

      // watch follows it (NDJSON with --json) while a person approves from another terminal.
      const watch = startProcess(process.execPath, [cli, 'watch', agentId, '--json'], { env: userEnv() });
      await watch.waitForLine(/"kind":"event\.approval"/, 20_000);
      const approved = await errand(['approve', agentId, '--json']);
      expect(approved.code, approved.stderr).toBe(0);
      expect(JSON.parse(approved.stdout)).toEqual({ ok: true, agentId, decision: 'approve', requestId });
      const watched = await watch.exited;
      expect(watched.code, watch.stderr()).toBe(0);
      const events = watch
        .stdout()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { kind: string; status?: string; tool?: string });
      expect(events.some((e) => e.kind === 'event.approval' && e.status === 'approved')).toBe(true);
      expect(events.some((e) => e.kind === 'event.tool' && e.tool === 'fs_write' && e.status === 'ok')).toBe(true);
      expect(events.some((e) => e.kind === 'event.done')).toBe(true);

      const done = JSON.parse((await errand(['show', agentId, '--json'])).stdout) as { status: string; output: { answer: string } };
      expect(done).toMatchObject({ status: 'done', output: { answer: 'plan.txt is rewritten.' } });
      expect(await readFile(join(workspace, 'plan.txt'), 'utf8')).toBe('new plan\n');
      expect(model.failures).toEqual([]);

      // The services' logs, read back from NATS: this agent's lines from each service, and filters.
      const logs = await errand(['logs', '--agent', agentId, '--json']);
      expect(logs.code, logs.stderr).toBe(0);
      const lines = logs.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { service: string; agentId: string; level: number; traceId?: string });
      // The notifier's console channel told of the approval and of the end.
      expect(new Set(lines.map((l) => l.service))).toEqual(new Set(['host', 'planner', 'tool-runner', 'notifier']));
      expect(lines.every((l) => l.agentId === agentId)).toBe(true);
      expect(new Set(lines.map((l) => l.traceId)).size).toBe(1);
      const planner = await errand(['logs', '--service', 'planner', '--agent', agentId]);
      expect(planner.stdout).toMatch(/INFO  planner +\[a-[^\]]+\] command done/);
      expect(planner.stdout).not.toMatch(/ host /);
      const warnings = await errand(['logs', '--agent', agentId, '--level', 'error', '--json']);
      expect(warnings.stdout.trim()).toBe('');
      const badLevel = await errand(['logs', '--level', 'loud']);
      expect(badLevel.code).toBe(2);
      expect(badLevel.stderr).toMatch(/levels are trace, debug, info, warn, error, fatal/);

      // Each error path: its exit code, and a message that says what to do.
      const again = await errand(['approve', agentId]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/is not waiting for an approval.*errand show/);
      const missing = await errand(['show', 'a-nobody-here']);
      expect(missing.code).toBe(3);
      expect(missing.stderr).toMatch(/no agent a-nobody-here.*errand ls/);
      const missingJson = await errand(['show', 'a-nobody-here', '--json']);
      expect(missingJson.code).toBe(3);
      expect(JSON.parse(missingJson.stdout)).toMatchObject({ ok: false, error: { code: 'ERR_AGENT_NOT_FOUND' } });
      const unknownAgent = await errand(['submit', 'x', '--agent', 'no-such-agent']);
      expect(unknownAgent.code).toBe(3);
      expect(unknownAgent.stderr).toMatch(/no agent 'no-such-agent' is registered \(known: assistant/);
      const noGoal = await errand(['submit']);
      expect(noGoal.code).toBe(2);
      expect(noGoal.stderr).toMatch(/no goal given/);
      const badWorker = await errand(['worker', 'nope']);
      expect(badWorker.code).toBe(2);
      expect(badWorker.stderr).toMatch(/the services are host, planner, tool-runner, notifier/);

      await stop(second);
      second = undefined;
      const down = await errand(['show', agentId, '--server', `nats://127.0.0.1:${await freePort()}`]);
      expect(down.code).toBe(4);
      expect(down.stderr).toMatch(/cannot connect to NATS/);
    } finally {
      first?.signal('SIGKILL');
      second?.signal('SIGKILL');
      await model.close();
      await rm(root, { recursive: true, force: true });
    }
  }, 120_000);

  it('errand demo runs its sample goal to the end on a fresh data folder and exits 0', async () => {
    const root = await mkdtemp(join(tmpdir(), 'errand-demo-test-'));
    try {
      const r = await errand(['demo', '--data-dir', root, '--approve-after', '0', '--gateway-port', '0', '--json']);
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(summary).toMatchObject({ ok: true, status: 'done', rounds: 6, toolCalls: { ok: 4, failed: 1 } });
      expect(summary.approvals).toEqual([expect.stringMatching(/ approved$/)]);
      // The dashboard served the run while it ran (its link signs in).
      expect(summary.dashboard).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/login\?token=[A-Za-z0-9_-]{32,}$/);
      // The approved overwrite really happened in the demo's workspace.
      expect(await readFile(join(root, 'workspace', 'summary.md'), 'utf8')).toContain('Approvals from Slack and Telegram');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }, 120_000);

  it('errand demo prints the dashboard link; the run is there while it runs, and approving it there is the decision', async () => {
    const root = await mkdtemp(join(tmpdir(), 'errand-demo-dash-'));
    // The demo would approve by itself only after 300 s: the test approves through the gateway.
    const demo = startProcess(process.execPath, [cli, 'demo', '--data-dir', root, '--approve-after', '300', '--gateway-port', String(await freePort())], { env: userEnv() });
    try {
      const line = await demo.waitForLine(/Dashboard: http/, 60_000);
      const login = new URL(/(http:\/\/\S+)/.exec(line)![1]!);
      const token = login.searchParams.get('token')!;
      const api = (path: string, init: RequestInit = {}) =>
        fetch(new URL(path, login), { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
      // The demo's agent shows up waiting for the overwrite, with the exact call.
      type Waiting = { agentId: string; waiting: { requestId: string; argsHash: string; calls: { tool: string; args: { path: string } }[] } };
      let waiting: Waiting | undefined;
      for (let i = 0; i < 600 && !waiting; i++) {
        const page = (await (await api('/api/agents?status=waiting')).json()) as { agents: Waiting[] };
        waiting = page.agents.find((a) => a.agentId.startsWith('demo-'));
        if (!waiting) await new Promise((r) => setTimeout(r, 100));
      }
      expect(waiting, demo.stdout()).toBeDefined();
      expect(waiting!.waiting.calls).toEqual([expect.objectContaining({ tool: 'fs_write', args: expect.objectContaining({ path: 'summary.md' }) })]);
      const res = await api(`/api/agents/${waiting!.agentId}/approve`, { method: 'POST', body: JSON.stringify({ requestId: waiting!.waiting.requestId, argsHash: waiting!.waiting.argsHash }) });
      expect(res.status).toBe(202);
      const exit = await demo.exited;
      expect(exit.code, demo.stderr()).toBe(0);
      // The demo took the dashboard's decision as the decision, and says who made it.
      expect(demo.stdout()).toMatch(/1 approval\(s\)/);
      expect(demo.stdout()).toMatch(/approval: \S+ approved by \S+/);
      expect(await readFile(join(root, 'workspace', 'summary.md'), 'utf8')).toContain('Approvals from Slack and Telegram');
    } finally {
      demo.signal('SIGKILL');
      await demo.exited;
      await rm(root, { recursive: true, force: true });
    }
  }, 120_000);

  it('errand worker runs one service against a given server, which serves agents until SIGTERM stops it cleanly', async () => {
    const srv = await startTestServer();
    try {
      const d = await createDeployment(srv);
      // The server and prefix come from the flags; only the host's credentials from the environment.
      const { NATS_CREDS } = d.env('host');
      const worker = startProcess(process.execPath, [cli, 'worker', 'host', '--server', srv.url, '--prefix', d.prefix], {
        env: userEnv({ LOG_FORMAT: 'json', ...(NATS_CREDS ? { NATS_CREDS } : {}) }),
      });
      await worker.waitForLine(/"msg":"host ready"/, 30_000);
      const agentId = await d.submit({ goal: 'count', agent: 'tally', input: { expect: 1 } });
      await d.send({ v: 1, kind: 'input', agentId, text: '1', by: { id: 'test', channel: 'cli' }, at: Date.now() });
      expect((await d.waitForStatus(agentId, ['done', 'failed'])).status).toBe('done');
      worker.signal('SIGTERM');
      expect((await worker.exited).code).toBe(0);
      expect(worker.stdout()).toMatch(/"service":"host".*"msg":"host stopped"/);

      // The gateway the same way: its API answers the configured person, and lists that agent.
      const token = 'a'.repeat(32);
      const gateway = startProcess(process.execPath, [cli, 'worker', 'gateway', '--server', srv.url, '--prefix', d.prefix], {
        env: userEnv({ LOG_FORMAT: 'json', ERRAND_GATEWAY_PORT: '0', ERRAND_GATEWAY_TOKENS: `carol:${token}`, ...(d.env('gateway').NATS_CREDS ? { NATS_CREDS: d.env('gateway').NATS_CREDS! } : {}) }),
      });
      try {
        const ready = await gateway.waitForLine(/"msg":"gateway ready"/, 30_000);
        const url = (JSON.parse(ready) as { url: string }).url;
        const get = (path: string, t = token) => fetch(new URL(path, url), { headers: { authorization: `Bearer ${t}` } });
        expect(await (await get('/api/session')).json()).toMatchObject({ user: 'carol' });
        expect((await get('/api/session', 'b'.repeat(32))).status).toBe(401);
        const page = (await (await get('/api/agents')).json()) as { agents: { agentId: string; status: string }[] };
        expect(page.agents).toEqual([expect.objectContaining({ agentId, status: 'done' })]);
        gateway.signal('SIGTERM');
        expect((await gateway.exited).code).toBe(0);
      } finally {
        gateway.signal('SIGKILL');
      }
    } finally {
      await srv.stop();
    }
  });
});
