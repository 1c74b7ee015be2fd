// What the runner's own policy asks of one call: pure, no server.
import { describe, expect, it } from 'vitest';
import { policyForCall } from '@errand/tool-runner';

describe('policyForCall', () => {
  it('deny and ask stand whatever the arguments', () => {
    expect(policyForCall({ policy: 'deny' }, { path: 'a' })).toBe('deny');
    expect(policyForCall({ policy: 'ask' }, {})).toBe('ask');
    expect(policyForCall({ policy: 'deny', askIfArgs: { force: true } }, { force: false })).toBe('deny');
  });

  it('auto without askIfArgs is auto', () => {
    expect(policyForCall({ policy: 'auto' }, { anything: 1 })).toBe('auto');
  });

  it('auto asks when every askIfArgs value matches the arguments (compared as canonical JSON)', () => {
    const entry = { policy: 'auto' as const, askIfArgs: { force: true, opts: { a: 1, b: 2 } } };
    expect(policyForCall(entry, { force: true, opts: { b: 2, a: 1 }, path: 'x' })).toBe('ask');
    expect(policyForCall(entry, { force: true, opts: { a: 1 } })).toBe('auto');
    expect(policyForCall(entry, { force: 'true', opts: { a: 1, b: 2 } })).toBe('auto');
    expect(policyForCall(entry, { opts: { a: 1, b: 2 } })).toBe('auto');
  });

  it('arguments that are not an object never match askIfArgs', () => {
    const entry = { policy: 'auto' as const, askIfArgs: { force: true } };
    for (const args of [null, undefined, 'force', 1, [true]]) expect(policyForCall(entry, args), JSON.stringify(args)).toBe('auto');
  });
});
