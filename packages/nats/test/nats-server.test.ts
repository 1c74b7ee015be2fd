import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, findNatsServer, NatsError, NatsErrorCode, startNatsServer, type NatsServer } from '@errand/nats';

const env = process.env;
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'errand-launcher-test-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function putAndGet(server: NatsServer, write?: string): Promise<string | undefined> {
  const conn = await connect({ servers: server.url });
  try {
    const kv = await new Kvm(conn.js).create('launcher_test');
    if (write !== undefined) await kv.put('greeting', write);
    return (await kv.get('greeting'))?.string();
  } finally {
    await conn.close();
  }
}

describe('embedded nats-server launcher', () => {
  it('starts with JetStream on a free port and stops cleanly, removing a temporary store', async () => {
    const server = await startNatsServer({ storeDir: 'temporary', env });
    expect(server.running).toBe(true);
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    expect(server.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(await putAndGet(server, 'hello')).toBe('hello');
    await server.stop();
    expect(server.running).toBe(false);
    await expect(connect({ servers: server.url, timeoutMs: 1000 })).rejects.toMatchObject({ code: NatsErrorCode.ConnectFailed });
  });

  it('restarts on the same port with the same data', async () => {
    const server = await startNatsServer({ storeDir: 'temporary', env });
    cleanup.push(() => server.stop());
    const port = server.port;
    expect(await putAndGet(server, 'kept across restart')).toBe('kept across restart');
    await server.restart();
    expect(server.port).toBe(port);
    expect(await putAndGet(server)).toBe('kept across restart');
  });

  it('keeps data after a SIGKILL', async () => {
    const server = await startNatsServer({ storeDir: 'temporary', env });
    cleanup.push(() => server.stop());
    expect(await putAndGet(server, 'before the crash')).toBe('before the crash');
    await server.kill();
    expect(server.running).toBe(false);
    await server.restart();
    expect(await putAndGet(server)).toBe('before the crash');
  });

  it('persists a data folder across separate runs and refuses a second server on it', async () => {
    const storeDir = await tempDir();
    const first = await startNatsServer({ storeDir, env });
    expect(await putAndGet(first, 'persistent')).toBe('persistent');
    const err = await startNatsServer({ storeDir, env }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsError);
    expect((err as NatsError).code).toBe(NatsErrorCode.ServerDataInUse);
    expect((err as NatsError).message).toContain(storeDir);
    await first.stop();

    const second = await startNatsServer({ storeDir, env });
    cleanup.push(() => second.stop());
    expect(await putAndGet(second)).toBe('persistent');
  });

  it('reports a missing binary clearly, naming the Debian package', () => {
    let err: unknown;
    try {
      findNatsServer({ env: { PATH: '/nonexistent' }, fallbacks: [] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NatsError);
    expect((err as NatsError).code).toBe(NatsErrorCode.ServerNotFound);
    expect((err as NatsError).message).toMatch(/apt-get install nats-server/);
    expect((err as NatsError).message).toMatch(/NATS_SERVER_BIN/);
    expect(() => findNatsServer({ env: { PATH: '/nonexistent', NATS_SERVER_BIN: '/nonexistent/nats-server' } })).toThrow(
      /'\/nonexistent\/nats-server' does not exist/,
    );
  });

  it('finds the binary through PATH', () => {
    const found = findNatsServer({ env: { PATH: process.env.PATH }, fallbacks: [] });
    expect(found).toMatch(/nats-server$/);
  });

  it('fails start-up with ERR_NATS_SERVER_NOT_FOUND when NATS_SERVER_BIN points nowhere', async () => {
    await expect(startNatsServer({ storeDir: 'temporary', env: { NATS_SERVER_BIN: '/nonexistent/nats-server' } })).rejects.toMatchObject({
      code: NatsErrorCode.ServerNotFound,
    });
  });

  it("reports a server that dies during start-up with the server's own output", async () => {
    const dir = await tempDir();
    const fake = join(dir, 'nats-server');
    await writeFile(fake, '#!/bin/sh\necho "fake server: cannot bind" >&2\nexit 3\n');
    await chmod(fake, 0o755);
    const err = await startNatsServer({ storeDir: 'temporary', binary: fake, env }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsError);
    expect((err as NatsError).code).toBe(NatsErrorCode.ServerStartFailed);
    expect((err as NatsError).message).toMatch(/exited during start-up \(code 3\)/);
    expect((err as NatsError).message).toContain('fake server: cannot bind');
  });
});
