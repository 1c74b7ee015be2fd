import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, findNatsServer, type ErrandConnection } from '@errand/nats';
import { freePort, runProcess } from '@errand/testing';

const run = promisify(execFile);
const deploy = fileURLToPath(new URL('../../deploy/nats/', import.meta.url));
const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url));

/**
 * The shipped nats-server configs, run as an operator would after the steps they describe
 * (`errand creds`, `errand creds server-config > errand-auth.conf`, a CA for TLS) — only host
 * names, ports and folders are changed to fit on loopback.
 */
let dir: string;
const servers: ChildProcess[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'errand-deploy-'));
  const creds = await runProcess(process.execPath, [cli, 'creds', '--dir', join(dir, 'creds'), '--json'], { env: { ...process.env, HOME: dir } });
  expect(creds.code, creds.stderr).toBe(0);
  const config = await runProcess(process.execPath, [cli, 'creds', 'server-config', '--dir', join(dir, 'creds')], { env: { ...process.env, HOME: dir } });
  expect(config.code, config.stderr).toBe(0);
  await writeFile(join(dir, 'errand-auth.conf'), config.stdout);
  // A CA of the test's own and a certificate for 127.0.0.1 (docs/security.md shows the same commands).
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', ['req', '-x509', ...ec, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-days', '1', '-subj', '/CN=errand-test-ca']);
  await run('openssl', ['req', ...ec, '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.csr'), '-subj', '/CN=127.0.0.1']);
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await run('openssl', ['x509', '-req', '-in', join(dir, 'server.csr'), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, 'server.pem'), '-days', '1', '-extfile', join(dir, 'san.ext')]);
});
afterAll(async () => {
  for (const s of servers) if (s.exitCode === null) s.kill('SIGKILL');
  await Promise.all(servers.map((s) => (s.exitCode === null ? new Promise((r) => s.once('exit', r)) : undefined)));
  await rm(dir, { recursive: true, force: true });
});

/** The config with loopback ports and folders; `sync_interval` only where the server has it (2.10+). */
async function fit(file: string, name: string, replace: [RegExp | string, string][]): Promise<string> {
  let text = await readFile(join(deploy, file), 'utf8');
  const version = (await run(findNatsServer({ env: process.env }), ['--version'])).stdout;
  if (/v2\.[0-9]\./.test(version)) text = text.replace(/^\s*sync_interval:.*$/m, '');
  for (const [from, to] of replace) text = text.replaceAll(from, to);
  text = text.replace('/var/lib/nats', join(dir, name, 'js')).replaceAll('/etc/nats/tls/server.pem', join(dir, 'server.pem')).replaceAll('/etc/nats/tls/server.key', join(dir, 'server.key'));
  await mkdir(join(dir, name), { recursive: true });
  const path = join(dir, `${name}.conf`); // beside errand-auth.conf, which it includes
  await writeFile(path, text);
  return path;
}

const output = new Map<ChildProcess, string>();
function start(config: string): ChildProcess {
  const p = spawn(findNatsServer({ env: process.env }), ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  servers.push(p);
  output.set(p, '');
  p.stderr!.setEncoding('utf8').on('data', (c: string) => output.set(p, output.get(p)! + c));
  return p;
}
/** What the servers said, for a failure's message. */
const said = () => [...output.values()].map((o) => o.split('\n').filter((l) => /ERR|FTL|WRN/.test(l)).slice(-5).join('\n')).join('\n---\n');

/** Connects (bounded retries while the server starts). */
async function reach(url: string, options: { credsFile?: string; caFile?: string } = {}): Promise<ErrandConnection> {
  let last: unknown;
  for (let i = 0; i < 50; i++) {
    try {
      return await connect({ servers: url, timeoutMs: 2000, ...(options.credsFile ? { credsFile: options.credsFile } : {}), ...(options.caFile ? { tls: { caFile: options.caFile } } : {}) });
    } catch (err) {
      last = err;
      if ((err as { code?: string }).code === 'ERR_NATS_AUTH') throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw last;
}

describe('deploy/nats/server.conf', () => {
  it('listens on loopback, and only clients with credentials from errand creds get in', async () => {
    const port = await freePort();
    const config = await fit('server.conf', 'single', [
      ['listen: 127.0.0.1:4222', `listen: 127.0.0.1:${port}`],
      ['http: 127.0.0.1:8222', `http: 127.0.0.1:${await freePort()}`],
    ]);
    expect(await readFile(config, 'utf8')).toMatch(/^listen: 127\.0\.0\.1:/m);
    start(config);
    const operator = await reach(`nats://127.0.0.1:${port}`, { credsFile: join(dir, 'creds', 'operator.creds') });
    expect(operator.features.jetstream).toBe(true);
    await operator.close();
    await expect(reach(`nats://127.0.0.1:${port}`)).rejects.toMatchObject({ code: 'ERR_NATS_AUTH' });
  });
});

describe('deploy/nats/cluster-node.conf', () => {
  it('three nodes with authenticated routes and TLS form a cluster; a node without the route password does not join', async () => {
    const client = await Promise.all([0, 1, 2].map(() => freePort()));
    const route = await Promise.all([0, 1, 2].map(() => freePort()));
    const names = ['errand-n1', 'errand-n2', 'errand-n3'];
    const configs = await Promise.all(
      names.map((name, i) => {
        const others = [0, 1, 2].filter((j) => j !== i);
        return fit('cluster-node.conf', name, [
          ['server_name: errand-n1', `server_name: ${name}`],
          ['listen: 0.0.0.0:4222', `listen: 127.0.0.1:${client[i]}`],
          ['http: 127.0.0.1:8222', `http: 127.0.0.1:0`],
          ['listen: 0.0.0.0:6222', `listen: 127.0.0.1:${route[i]}`],
          ['@errand-n2:6222', `@127.0.0.1:${route[others[0]!]}`],
          ['@errand-n3:6222', `@127.0.0.1:${route[others[1]!]}`],
        ]);
      }),
    );
    configs.forEach(start);
    const caFile = join(dir, 'ca.pem');
    const admin = await reach(client.map((p) => `nats://127.0.0.1:${p}`).join(','), { credsFile: join(dir, 'creds', 'admin.creds'), caFile }).catch((err: Error) => {
      throw new Error(`${err.message}\n${said()}`);
    });
    try {
      // Placing a stream on all three nodes proves the routes are up (bounded: the meta group forms first).
      let placed = false;
      for (let i = 0; i < 120 && !placed; i++) {
        placed = await admin
          .jsm()
          .then((jsm) => jsm.streams.add({ name: 'R3_PROBE', subjects: ['r3.probe'], num_replicas: 3 }))
          .then(
            () => true,
            () => new Promise<boolean>((r) => setTimeout(() => r(false), 250)),
          );
      }
      const jsm = await admin.jsm();
      expect(placed, said()).toBe(true);

      // A fourth node that routes to n1 with the wrong password is refused by n1.
      const wrong = await fit('cluster-node.conf', 'intruder', [
        ['server_name: errand-n1', 'server_name: intruder'],
        ['listen: 0.0.0.0:4222', `listen: 127.0.0.1:${await freePort()}`],
        ['http: 127.0.0.1:8222', 'http: 127.0.0.1:0'],
        ['listen: 0.0.0.0:6222', `listen: 127.0.0.1:${await freePort()}`],
        ['CHANGE-ME-to-a-long-random-password@errand-n2:6222', `wrong-password@127.0.0.1:${route[0]}`],
        ['nats-route://errand-route:CHANGE-ME-to-a-long-random-password@errand-n3:6222', ''],
      ]);
      const intruder = start(wrong);
      await expect.poll(() => output.get(intruder), { timeout: 20_000, interval: 100 }).toMatch(/[Aa]uthorization [Vv]iolation/);
      const info = await jsm.streams.info('R3_PROBE');
      expect([info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)].sort()).toEqual(names);
    } finally {
      await admin.close();
    }
  }, 90_000);
});
