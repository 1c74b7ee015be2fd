import { describe, expect, it } from 'vitest';
import { childAgentId, effectKey, effectKeys, isAgentId, messageIds, newAgentId, stateValueOf, TERMINAL_STATUSES, timerKeyOfMessageId } from '../src/index.js';

// These strings are on the wire and in buckets of running deployments: changing one is a protocol change.
describe('wire ids', () => {
  it('builds each kind of message id', () => {
    expect(messageIds.goal('a-1')).toBe('goal:a-1');
    expect(messageIds.command('a-1', 3, 0)).toBe('a-1:3:0');
    expect(messageIds.notice('a-1', 4, 'done', 'ops')).toBe('a-1:4:done-ops');
    expect(messageIds.event('a-1', 4, 'step')).toBe('a-1:4:ev.step');
    expect(messageIds.stateEvent('a-1', 'ERRAND_INBOX:7')).toBe('a-1:ERRAND_INBOX:7:ev.state');
    expect(messageIds.result('a-1:3:0')).toBe('result:a-1:3:0');
    expect(messageIds.timerFired('a-1:2:1')).toBe('timer:a-1:2:1');
    expect(messageIds.cancelChild('a-1-kid')).toBe('cancel:a-1-kid');
    expect(messageIds.childResult('a-1-kid')).toBe('child:a-1-kid');
    expect(messageIds.deadLetter('host', 'ERRAND_INBOX', 9)).toBe('dlq:host:ERRAND_INBOX:9');
  });

  it('reads the timer key back from a firing id only', () => {
    expect(timerKeyOfMessageId(messageIds.timerFired('a-1:2:1'))).toBe('a-1:2:1');
    expect(timerKeyOfMessageId(messageIds.goal('a-1'))).toBeUndefined();
  });

  it('builds effects-bucket keys that KV accepts', () => {
    expect(effectKey('a-1:3:0')).toBe('a-1.3.0');
    expect(effectKey('bad key:1')).toMatch(/^h\.[0-9a-f]{64}$/);
    expect(effectKeys.started('a-1:3:0')).toBe('started.a-1.3.0');
    expect(effectKeys.sending('a-1:3:0')).toBe('sending.a-1.3.0');
    expect(effectKeys.digest('ops', '2024-05-01')).toBe('digest.ops.2024-05-01');
    expect(effectKeys.telegramApproval('tg', 'abc')).toBe('tg.tg.abc');
    expect(effectKeys.spend('team=research', '2024-05-01')).toMatch(/^spend\.[0-9a-f]{32}\.2024-05-01$/);
    expect(effectKeys.spend('team=research', 'd')).not.toBe(effectKeys.spend('team=ops', 'd'));
    expect(effectKeys.intakeClaim('a-1')).toBe('intake.a-1');
  });

  it('makes agent ids that are subject tokens, children deterministic', () => {
    expect(isAgentId(newAgentId(0))).toBe(true);
    expect(newAgentId(36)).toMatch(/^a-10-[0-9a-f]{8}$/);
    expect(childAgentId('a-1', 'helper')).toBe('a-1-helper');
    const long = childAgentId('a-1', 'x'.repeat(200));
    expect(long).toMatch(/^c-[0-9a-f]{32}$/);
    expect(childAgentId('a-1', 'x'.repeat(200))).toBe(long);
    expect(childAgentId('a-1', 'has space')).toMatch(/^c-/);
  });

  it('knows the terminal statuses and reads a state value', () => {
    expect([...TERMINAL_STATUSES].sort()).toEqual(['cancelled', 'done', 'failed']);
    expect(stateValueOf({ value: { acting: 'tools' } })).toEqual({ acting: 'tools' });
    expect(stateValueOf(undefined)).toBeNull();
  });
});
