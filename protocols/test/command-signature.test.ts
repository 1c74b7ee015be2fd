import { describe, expect, it } from 'vitest';
import {
  approvalHash,
  callHash,
  canonicalJson,
  createCommandSigner,
  createCommandVerifier,
  encodeMessage,
  generateCommandKeys,
  MESSAGE_VERSION,
  publicKeyOf,
  SignatureError,
} from '../src/index.js';

const body = () =>
  encodeMessage({ v: MESSAGE_VERSION, kind: 'tool.request', key: 'a1:3:0', agentId: 'a1', step: 3, at: 1, callId: 'c1', tool: 'fs_delete', args: { path: 'x.txt' }, attempt: 1 }).data;

describe('command signatures', () => {
  it('a body signed with the key verifies; altered, signed by another key, unsigned or malformed it does not', () => {
    const keys = generateCommandKeys();
    expect(keys.publicKey).toMatch(/^ed25519:[A-Za-z0-9_-]{43}$/);
    expect(keys.privateKeyPem).toContain('BEGIN PRIVATE KEY');
    const signer = createCommandSigner(keys.privateKeyPem);
    expect(signer.publicKey).toBe(keys.publicKey);
    expect(publicKeyOf(keys.privateKeyPem)).toBe(keys.publicKey);
    const verifier = createCommandVerifier(keys.publicKey);
    const data = body();
    const sig = signer.sign(data);
    expect(verifier.check(data, sig)).toEqual({ ok: true });

    const altered = Uint8Array.from(data);
    altered[altered.length - 2]! ^= 1;
    expect(verifier.check(altered, sig).ok).toBe(false);
    const other = createCommandSigner(generateCommandKeys().privateKeyPem);
    const wrong = verifier.check(data, other.sign(data));
    expect(wrong).toMatchObject({ ok: false, reason: expect.stringContaining('another key or altered') });
    expect(verifier.check(data, undefined)).toMatchObject({ ok: false, reason: expect.stringContaining('no signature') });
    expect(verifier.check(data, 'not-a-signature')).toMatchObject({ ok: false, reason: expect.stringContaining('malformed') });
  });

  it('a verifier takes several keys while keys rotate', () => {
    const a = generateCommandKeys();
    const b = generateCommandKeys();
    const verifier = createCommandVerifier(`${a.publicKey}, ${b.publicKey}`);
    const data = body();
    expect(verifier.check(data, createCommandSigner(b.privateKeyPem).sign(data)).ok).toBe(true);
    expect(verifier.publicKeys).toEqual([a.publicKey, b.publicKey]);
  });

  it('keys that do not parse are refused with ERR_INVALID_KEY and never echoed', () => {
    const secretish = 'ed25519:short';
    const err = (() => {
      try {
        createCommandVerifier(secretish);
      } catch (e) {
        return e as SignatureError;
      }
    })();
    expect(err).toBeInstanceOf(SignatureError);
    expect(err?.code).toBe('ERR_INVALID_KEY');
    expect(err?.message).not.toContain('short');
    expect(() => createCommandVerifier('')).toThrow(/errand creds/);
    expect(() => createCommandSigner('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----')).toThrow(SignatureError);
  });
});

describe('approval hashes', () => {
  it('canonical JSON sorts keys at every level, so key order does not change a hash', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}');
    expect(callHash('fs_delete', { path: 'a', recursive: true })).toBe(callHash('fs_delete', { recursive: true, path: 'a' }));
    expect(callHash('fs_delete', { path: 'a' })).not.toBe(callHash('fs_delete', { path: 'b' }));
    expect(callHash('fs_delete', { path: 'a' })).not.toBe(callHash('fs_read', { path: 'a' }));
  });

  it('an approval hash covers every call in order', () => {
    const calls = [{ tool: 'fs_delete', args: { path: 'a' } }, { tool: 'shell', args: { command: 'ls' } }];
    expect(approvalHash(calls)).toMatch(/^[0-9a-f]{64}$/);
    expect(approvalHash(calls)).not.toBe(approvalHash([...calls].reverse()));
    expect(approvalHash(calls)).not.toBe(approvalHash(calls.slice(0, 1)));
  });
});
