import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, startNatsServer, writePrivateFile } from '@errand/nats';
import { runProcess } from '@errand/testing';

const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url));

let home: string;
let dir: string;
beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'errand-creds-home-'));
  dir = join(home, 'creds');
});
afterAll(async () => {
  await rm(home, { recursive: true, force: true });
});

const errand = (args: string[]) => {
  const { NATS_URL: _u, NATS_CREDS: _c, ...rest } = process.env;
  return runProcess(process.execPath, [cli, ...args], { env: { ...rest, HOME: home } });
};

describe('errand creds', () => {
  it('mints, adds and rotates; a rotated user is refused by a server given the new config, its new creds are not', async () => {
    const minted = await errand(['creds', '--dir', dir, '--prefix', 'acme', '--json']);
    expect(minted.code, minted.stderr).toBe(0);
    const report = JSON.parse(minted.stdout) as { created: boolean; prefix: string; users: { name: string; role: string }[]; verifyKey: string };
    expect(report).toMatchObject({ created: true, prefix: 'acme' });
    expect(report.users.map((u) => u.role).sort()).toEqual(['admin', 'gateway', 'host', 'notifier', 'operator', 'planner', 'submitter', 'tool-runner']);
    expect(report.verifyKey).toMatch(/^ed25519:/);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(dir, 'identities.json'))).mode & 0o777).toBe(0o600);
    // A second run shows what is there and mints nothing.
    expect(JSON.parse((await errand(['creds', '--dir', dir, '--json'])).stdout)).toMatchObject({ created: false, verifyKey: report.verifyKey });

    const added = await errand(['creds', 'add', 'submitter', 'billing-app', '--dir', dir, '--json']);
    expect(added.code, added.stderr).toBe(0);
    expect((await stat(join(dir, 'billing-app.creds'))).mode & 0o777).toBe(0o600);

    const oldPlanner = await readFile(join(dir, 'planner.creds'), 'utf8');
    const server = await startNatsServer({
      port: 0,
      storeDir: 'temporary',
      env: process.env,
      config: (await errand(['creds', 'server-config', '--dir', dir])).stdout,
      client: { credsFile: join(dir, 'admin.creds') },
    });
    const old = join(home, 'old-planner.creds');
    try {
      await writePrivateFile(old, oldPlanner);
      await (await connect({ servers: server.url, credsFile: old })).close();
      await (await connect({ servers: server.url, credsFile: join(dir, 'billing-app.creds') })).close();

      const rotated = await errand(['creds', 'rotate', 'planner', '--dir', dir, '--json']);
      expect(rotated.code, rotated.stderr).toBe(0);
      expect(await readFile(join(dir, 'planner.creds'), 'utf8')).not.toBe(oldPlanner);
      // The server learns the revocation from the new account JWT in the config.
      await server.stop();
      const again = await startNatsServer({
        port: 0,
        storeDir: 'temporary',
        env: process.env,
        config: (await errand(['creds', 'server-config', '--dir', dir])).stdout,
        client: { credsFile: join(dir, 'admin.creds') },
      });
      try {
        await expect(connect({ servers: again.url, credsFile: old })).rejects.toMatchObject({ code: 'ERR_NATS_AUTH' });
        await (await connect({ servers: again.url, credsFile: join(dir, 'planner.creds') })).close();
        await (await connect({ servers: again.url, credsFile: join(dir, 'tool-runner.creds') })).close();
      } finally {
        await again.stop();
      }
    } finally {
      await server.stop();
    }

    // A new signing key keeps the old public key accepted until --finish.
    const rolled = JSON.parse((await errand(['creds', 'rotate', '--signing-key', '--dir', dir, '--json'])).stdout) as { verifyKey: string };
    expect(rolled.verifyKey.split(',')).toEqual([expect.stringMatching(/^ed25519:/), report.verifyKey]);
    const finished = JSON.parse((await errand(['creds', 'rotate', '--signing-key', '--finish', '--dir', dir, '--json'])).stdout) as { verifyKey: string };
    expect(finished.verifyKey).toBe(rolled.verifyKey.split(',')[0]);
  });

  it('refuses what it cannot do, saying what to do instead', async () => {
    const badRole = await errand(['creds', 'add', 'superuser', 'x', '--dir', dir]);
    expect(badRole.code).toBe(2);
    expect(badRole.stderr).toMatch(/no role 'superuser'; roles are admin, host/);
    const badName = await errand(['creds', 'add', 'submitter', 'Bad Name!', '--dir', dir]);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/use 1-64 lower-case letters/);
    const twice = await errand(['creds', 'add', 'submitter', 'billing-app', '--dir', dir]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/exists already; rotate it/);
    const nobody = await errand(['creds', 'rotate', 'nobody', '--dir', dir]);
    expect(nobody.code).toBe(2);
    expect(nobody.stderr).toMatch(/no user named 'nobody'/);
    const empty = await errand(['creds', 'server-config', '--dir', join(home, 'empty')]);
    expect(empty.code).toBe(3);
    expect(empty.stderr).toMatch(/no credentials in .*errand creds --dir/);
  });
});
