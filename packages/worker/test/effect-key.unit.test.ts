// The effects-bucket key of an idempotency key: pure, no server.
import { describe, expect, it } from 'vitest';
import { effectKey } from '@errand/worker';

describe('effectKey', () => {
  it('keeps a valid key readable (":" becomes ".") and hashes one KV would refuse', () => {
    expect(effectKey('a1:3:0')).toBe('a1.3.0');
    expect(effectKey('digest.day')).toBe('digest.day');
    for (const odd of ['has space:1:0', ':leading', 'trailing:', 'a::b', 'ünï:1:0']) {
      const k = effectKey(odd);
      expect(k, odd).toMatch(/^h\.[0-9a-f]{64}$/);
      expect(effectKey(odd), odd).toBe(k);
    }
    expect(effectKey('a b')).not.toBe(effectKey('a c'));
  });
});
