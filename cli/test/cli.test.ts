import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@errand/nats';
import { decodeMessage, decodeRecord } from '@errand/protocols';
import { createDeployment, freePort, runProcess, startProcess, startTestServer, uniquePrefix, type TestServer } from '@errand/testing';

// The built CLI, as a user runs it (`pnpm test` builds before testing).
const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let home: string;
let srv: TestServer;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'errand-cli-home-'));
  srv = await startTestServer();
});
afterAll(async () => {
  await srv.stop();
  await rm(home, { recursive: true, force: true });
});

/** The environment of a user with an empty home and no NATS configured. */
function userEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, ...rest } = process.env;
  return { ...rest, HOME: home, ...extra };
}

const errand = (args: string[], extra: Record<string, string> = {}) => runProcess(process.execPath, [cli, ...args], { env: userEnv(extra) });

describe('errand CLI', () => {
  it('prints help with examples and exits 0', async () => {
    const r = await errand(['provision', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('--replicas');
  });

  it('exits 2 with the reason on a usage error', async () => {
    const r = await errand(['provision', '--replicas', '9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/replicas must be a whole number from 1 to 5/);
  });

  it('exits 4 and says what to do when NATS is unreachable', async () => {
    const port = await freePort();
    const r = await errand(['provision', '--server', `nats://127.0.0.1:${port}`]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/cannot connect to NATS .*errand up.*NATS_URL/);
  });

  it('provisions a given server and reports as JSON; a second run changes nothing', async () => {
    const prefix = uniquePrefix();
    // Provisioning is the admin's job; a fresh prefix, so not a deployment's.
    const admin = await srv.env('admin', prefix);
    const first = await errand(['provision', '--json', '--prefix', prefix], admin);
    expect(first.code).toBe(0);
    const report = JSON.parse(first.stdout) as { ok: boolean; changed: boolean; items: { name: string; action: string }[] };
    expect(report.ok).toBe(true);
    // Five streams, five buckets (the schedules' too), one object store.
    expect(report.items.map((i) => i.action)).toEqual(Array(11).fill('created'));
    const second = await errand(['provision', '--prefix', prefix], admin);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('everything was already up to date');
  });

  it('`up` runs an embedded server that other commands find, stops on Ctrl-C, and keeps its data', async () => {
    const dataDir = join(home, 'nats-data');
    const up = startProcess(process.execPath, [cli, 'up', '--data-dir', dataDir, '--gateway-port', '0'], { env: userEnv() });
    const ready = await up.waitForLine(/Errand is up\. NATS_URL=/);
    const url = /NATS_URL=(\S+)/.exec(ready)![1]!;
    expect(up.stdout()).toMatch(/nats-server \d+\.\d+\.\d+ listening on nats:\/\/127\.0\.0\.1:\d+/);
    expect(up.stdout()).toMatch(/bucket +errand_agents +(created|unchanged)/);

    // Another command, with no NATS_URL, finds the server through `up`'s state file.
    const again = await errand(['provision', '--json']);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ server: url, changed: false });

    // `up` runs a host: a goal submitted from another terminal runs to its end.
    const submitted = await errand(['submit', 'take a short nap', '--agent', 'sleeper', '--input', '{"delayMs":300}', '--wait']);
    expect(submitted.code).toBe(0);
    expect(submitted.stdout).toMatch(/^a-\S+\n/);
    expect(submitted.stdout).toContain('step 2  xstate.after.sleep.sleeper.sleeping');
    expect(submitted.stdout).toContain('done: {"reminders":0,"sleptMs":300}');
    const failed = await errand(['submit', 'explode', '--agent', 'thrower', '--json']);
    expect(JSON.parse(failed.stdout)).toMatchObject({ ok: true, agentId: expect.any(String) });
    const tagged = await errand(['submit', 'count', '--agent', 'tally', '--label', 'team=core', '--model', 'm1', '--max-cost', '2', '--max-steps', '5', '--notify', 'ops:done,failed', '--json']);
    const taggedId = (JSON.parse(tagged.stdout) as { agentId: string }).agentId;
    // The embedded server requires credentials: up minted them next to its data, private to this user.
    const credsDir = join(home, 'creds');
    await expect(connect({ servers: url })).rejects.toMatchObject({ code: 'ERR_NATS_AUTH' });
    expect((await stat(credsDir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(credsDir, 'admin.creds'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(credsDir, 'command-signing.pem'))).mode & 0o777).toBe(0o600);
    const admin = { credsFile: join(credsDir, 'admin.creds') };
    const probe = await connect({ servers: url, ...admin });
    const agents = await new Kvm(probe.js).open('errand_agents');
    const watch = await agents.watch({ key: taggedId });
    for await (const e of watch) if (e.operation === 'PUT') break;
    watch.stop();
    const rec = decodeRecord((await agents.get(taggedId))!.value);
    expect(rec.labels).toEqual({ team: 'core' });
    // The goal's options reach the machine: its first journaled step shows the input it got.
    const journal = await probe.js.consumers.get('ERRAND_EVENTS', { filter_subjects: `errand.agent.${taggedId}.ev.step` });
    const first = decodeMessage((await journal.next({ expires: 5000 }))!.data, { expect: 'event.step' });
    expect(first.event).toMatchObject({
      type: 'xstate.init',
      input: { model: 'm1', budget: { maxCostUsd: 2, maxSteps: 5 }, notify: [{ channel: 'ops', on: ['done', 'failed'] }], labels: { team: 'core' } },
    });
    await probe.close();
    const unknown = await errand(['submit', 'anything', '--agent', 'nobody']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/no agent 'nobody' is registered/);
    const noGoal = await errand(['submit']);
    expect(noGoal.code).toBe(2);

    const conn = await connect({ servers: url, ...admin });
    const kv = await new Kvm(conn.js).open('errand_agents');
    await kv.put('agent-1', 'remember me');
    await conn.close();

    up.signal('SIGINT');
    expect((await up.exited).code).toBe(0);
    expect(up.stdout()).toContain('stopped');
    expect(existsSync(join(home, '.errand', 'up.json'))).toBe(false);
    expect(existsSync(join(dataDir, 'errand-nats-server.pid'))).toBe(false);

    const up2 = startProcess(process.execPath, [cli, 'up', '--data-dir', dataDir, '--gateway-port', '0'], { env: userEnv() });
    const url2 = /NATS_URL=(\S+)/.exec(await up2.waitForLine(/Errand is up/))![1]!;
    expect(up2.stdout()).toMatch(/everything was already up to date/);
    const conn2 = await connect({ servers: url2, ...admin });
    expect((await (await new Kvm(conn2.js).open('errand_agents')).get('agent-1'))?.string()).toBe('remember me');
    await conn2.close();
    up2.signal('SIGTERM');
    expect((await up2.exited).code).toBe(0);
  }, 60_000);

  it('`up` without a nats-server binary exits 4 naming the Debian package', async () => {
    const r = await errand(['up', '--data-dir', join(home, 'never')], { NATS_SERVER_BIN: '/nonexistent/nats-server' });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/nats-server/);
  });

  it('`demo` without a nats-server binary exits 4 and leaves no temporary folder behind', async () => {
    const tmp = join(home, 'demo-tmp');
    await mkdir(tmp, { recursive: true });
    const r = await errand(['demo'], { NATS_SERVER_BIN: '/nonexistent/nats-server', TMPDIR: tmp });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/nats-server/);
    expect(await readdir(tmp)).toEqual([]);
  });

  it('`mock-llm` serves a script over HTTP in the OpenAI format and reports what was not used', async () => {
    const script = join(home, 'script.json');
    await writeFile(script, JSON.stringify({ steps: [{ expect: { contains: ['ping'] }, reply: { content: 'pong' } }, { reply: { content: 'never asked' } }] }));
    const p = startProcess(process.execPath, [cli, 'mock-llm', '--script', script], { env: userEnv() });
    const url = /OPENAI_BASE_URL=(\S+)/.exec(await p.waitForLine(/OPENAI_BASE_URL=/))![1]!;
    const res = await fetch(`${url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'ping' }] }),
    });
    expect(((await res.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe('pong');
    p.signal('SIGINT');
    expect((await p.exited).code).toBe(0);
    expect(p.stdout()).toContain('stopped after 1 requests; 1 steps unused');

    await writeFile(script, '{"steps": "no"}');
    const bad = await errand(['mock-llm', '--script', script]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/a mock-llm script is \{"steps": \[\.\.\.\]\}/);
  });

  it('show, answer, pause, resume, cancel and approve act on agents, with exit codes that mean something', async () => {
    const d = await createDeployment(srv, { env: { ERRAND_AGENT_MODULES: '@errand/example-agents' } });
    try {
      await d.start('host');
      const env = d.env('operator');
      const tally = await d.submit({ goal: 'count', agent: 'tally', input: { expect: 1 } });
      await d.waitForStatus(tally, ['running']);
      expect((await errand(['answer', tally, '7'], env)).code).toBe(0);
      await d.waitForStatus(tally, ['done']);
      const shown = await errand(['show', tally], env);
      expect(shown.stdout).toContain(`${tally}  done`);
      expect(shown.stdout).toContain('output: {"sum":7,"count":1,"seen":["7"]}');
      expect(JSON.parse((await errand(['show', tally, '--json'], env)).stdout)).toMatchObject({ status: 'done', output: { sum: 7 } });

      const nap = await d.submit({ goal: 'nap', agent: 'sleeper', input: { delayMs: 600_000 } });
      await d.waitForStatus(nap, ['running']);
      expect((await errand(['pause', nap], env)).code).toBe(0);
      await d.waitForStatus(nap, ['paused']);
      expect((await errand(['resume', nap], env)).code).toBe(0);
      await d.waitForStatus(nap, ['running']);
      const notPending = await errand(['approve', nap], env);
      expect(notPending.code).toBe(1);
      expect(notPending.stderr).toContain(`agent ${nap} is not waiting for an approval`);
      expect((await errand(['cancel', nap, '--reason', 'enough'], env)).code).toBe(0);
      expect((await d.waitForStatus(nap, ['cancelled'])).error?.message).toBe('enough');
      // Who cancelled it: the operator identity the host verified, not a name the CLI claimed.
      const cancelled = await errand(['show', nap], env);
      expect(cancelled.stdout).toMatch(/^cancelled by \S+ \(\S+\)$/m);
      const record = JSON.parse((await errand(['show', nap, '--json'], env)).stdout) as { control?: { action: string; by?: { id: string } } };
      expect(record.control).toMatchObject({ action: 'cancel', reason: 'enough', by: { id: expect.any(String) } });
      expect(cancelled.stdout).toContain(`cancelled by ${record.control!.by!.id} (`);

      const missing = await errand(['show', 'no-such-agent'], env);
      expect(missing.code).toBe(3);
      expect(missing.stderr).toContain('no agent no-such-agent');
    } finally {
      await d.stopAll();
    }
  }, 60_000);
});
