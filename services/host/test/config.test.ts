import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCommandVerifier, generateCommandKeys } from '@errand/protocols';
import { runProcess, serviceMain } from '@errand/testing';
import { parseConfig } from '../src/config.js';

describe('host configuration', () => {
  it('has defaults that run the built-in and example agents', () => {
    const c = parseConfig({});
    expect(c).toMatchObject({ settings: { prefix: 'errand', concurrency: 64, ackWaitMs: 3_000, timers: true, intake: true }, crashAt: undefined });
    expect(c.agentModules).toEqual(['@errand/agent', '@errand/example-agents']);
  });

  it('reads the event format from ERRAND_EVENT_FORMAT (msgpack by default) and refuses any other', () => {
    expect(parseConfig({}).settings.eventFormat).toBe('msgpack');
    expect(parseConfig({ ERRAND_EVENT_FORMAT: 'json' }).settings.eventFormat).toBe('json');
    expect(parseConfig({ ERRAND_EVENT_FORMAT: 'JSON' }).settings.eventFormat).toBe('json');
    expect(parseConfig({ ERRAND_EVENT_FORMAT: 'msgpack' }).settings.eventFormat).toBe('msgpack');
    expect(() => parseConfig({ ERRAND_EVENT_FORMAT: 'yaml' })).toThrow("ERRAND_EVENT_FORMAT must be one of msgpack, json, got 'yaml'");
  });

  it('reads a crash point with an optional count', () => {
    expect(parseConfig({ ERRAND_CRASH_AT: 'host.after-commit:3' }).crashAt).toEqual({ point: 'host.after-commit', nth: 3 });
    expect(() => parseConfig({ ERRAND_CRASH_AT: 'host.somewhere' })).toThrow(/ERRAND_CRASH_AT must be one of .*host\.after-load/);
  });

  it('reads default notification rules for goals that bring none', () => {
    expect(parseConfig({ ERRAND_DEFAULT_NOTIFY: '[{"channel":"ops","on":["failed","approval"]}]' }).settings.defaultNotify).toEqual([{ channel: 'ops', on: ['failed', 'approval'] }]);
    expect(() => parseConfig({ ERRAND_DEFAULT_NOTIFY: '{oops' })).toThrow(/ERRAND_DEFAULT_NOTIFY must be JSON like/);
  });

  it('reads the signing key from ERRAND_SIGNING_KEY; an unreadable or wrong file is refused without showing the path or the key', async () => {
    expect(parseConfig({}).signer).toBeUndefined();
    const dir = await mkdtemp(join(tmpdir(), 'errand-host-key-'));
    const keys = generateCommandKeys();
    await writeFile(join(dir, 'signing.pem'), keys.privateKeyPem, { mode: 0o600 });
    const c = parseConfig({ ERRAND_SIGNING_KEY: join(dir, 'signing.pem') });
    expect(c.signer?.publicKey).toBe(keys.publicKey);
    const body = new TextEncoder().encode('a command');
    expect(createCommandVerifier(keys.publicKey).check(body, c.signer!.sign(body)).ok).toBe(true);
    expect(c.verifier?.publicKeys).toEqual([keys.publicKey]);

    const missing = join(dir, 'nope.pem');
    expect(() => parseConfig({ ERRAND_SIGNING_KEY: missing })).toThrow(/ERRAND_SIGNING_KEY names a file that cannot be read \(ENOENT\)/);
    expect(() => parseConfig({ ERRAND_SIGNING_KEY: missing })).not.toThrow(new RegExp(dir));
    await writeFile(join(dir, 'public.key'), keys.publicKey);
    expect(() => parseConfig({ ERRAND_SIGNING_KEY: join(dir, 'public.key') })).toThrow(/ERRAND_SIGNING_KEY: the signing key is not a PEM private key/);
  });

  it('exits 2 with the reason on a bad setting', async () => {
    const r = await runProcess(process.execPath, [serviceMain.host], { env: { ...process.env, ERRAND_HOST_CONCURRENCY: 'lots' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("errand-host: ERRAND_HOST_CONCURRENCY must be a whole number of at least 1, got 'lots'");
  });
});
