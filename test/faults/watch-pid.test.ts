// ERRAND_WATCH_PID: a service, or `errand up`, stops once the process it names is gone — so what a
// killed test runner or supervisor started does not run on as an orphan. The watched process here
// is a real one the test kills with SIGKILL.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '@errand/service';
import { createDeployment, freePort, runProcess, startProcess, startTestServer, type Deployment, type TestServer } from '@errand/testing';

const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));

let srv: TestServer;
let d: Deployment;
const watched: ChildProcess[] = [];
beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv);
});
afterAll(async () => {
  for (const w of watched) w.kill('SIGKILL');
  await d?.stopAll();
  await srv?.stop();
});

/** Whether a TCP connection to this loopback port is refused (nothing listens there). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** A process to watch: a plain `sleep` the test kills when it wants. */
function aProcess(): ChildProcess {
  const p = spawn('sleep', ['600'], { stdio: 'ignore' });
  watched.push(p);
  return p;
}

describe('ERRAND_WATCH_PID', () => {
  it('a service stops, cleanly, once the process it watches is SIGKILLed', async () => {
    const parent = aProcess();
    const host = d.spawn('host', { ERRAND_WATCH_PID: String(parent.pid) });
    await host.waitForLine(/"msg":"host ready"/, 30_000);
    expect(pidAlive(host.pid!)).toBe(true);
    parent.kill('SIGKILL');
    const exit = await host.exited;
    expect(exit.code, host.stderr()).toBe(0);
    expect(host.stdout()).toContain(`process ${parent.pid} (ERRAND_WATCH_PID) is gone: stopping`);
    expect(host.stdout()).toContain('shutting down');
  }, 60_000);

  it('a value that is not a pid is refused at start with the reason (exit 2)', async () => {
    const host = d.spawn('host', { ERRAND_WATCH_PID: 'init' });
    const exit = await host.exited;
    expect(exit.code).toBe(2);
    expect(host.stderr()).toContain("ERRAND_WATCH_PID must be the pid of a process to stop with (an integer above 1), got 'init'");
  }, 30_000);

  it('errand up refuses a value that is not a pid as a usage error (exit 2), before starting anything', async () => {
    const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, ...env } = process.env;
    const r = await runProcess(process.execPath, [cli, 'up', '--data-dir', join(tmpdir(), 'errand-watch-pid-never-made')], { env: { ...env, ERRAND_WATCH_PID: '1' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("ERRAND_WATCH_PID must be the pid of a process to stop with (an integer above 1), got '1'");
    expect(r.stdout).not.toContain('starting nats-server');
  }, 30_000);

  it('errand up stops its stack (and its nats-server) once the process it watches is gone', async () => {
    const home = await mkdtemp(join(tmpdir(), 'errand-watch-pid-'));
    try {
      const parent = aProcess();
      const { NATS_URL: _u, NATS_CREDS: _c, ERRAND_PREFIX: _p, ...env } = process.env;
      const up = startProcess(process.execPath, [cli, 'up', '--data-dir', join(home, 'data'), '--workspace', join(home, 'ws'), '--gateway-port', String(await freePort()), '--log-level', 'warn'], {
        env: { ...env, HOME: home, ERRAND_WATCH_PID: String(parent.pid) },
      });
      await up.waitForLine(/Errand is up/, 60_000);
      const url = new URL(/NATS_URL=(\S+)/.exec(up.stdout())![1]!);
      expect(await refused(Number(url.port))).toBe(false);
      parent.kill('SIGKILL');
      const exit = await up.exited;
      expect(exit.code, up.stderr()).toBe(0);
      expect(up.stdout()).toContain('stopped');
      // Its embedded nats-server went with it.
      expect(await refused(Number(url.port))).toBe(true);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }, 90_000);
});
