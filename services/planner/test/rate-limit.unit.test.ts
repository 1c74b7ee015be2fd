import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createRateLimiter } from '../src/planner.js';

// The limiter's own clock is Date.now and setTimeout: fake timers drive it, no real waiting.
beforeEach(() => {
  vi.useFakeTimers({ now: 1_800_000_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the per-model rate limiter (per planner process)', () => {
  it('spaces calls to one model 60 000 / rpm ms apart; another model has its own spacing', async () => {
    const limit = createRateLimiter(60); // one call a second
    const signal = new AbortController().signal;
    const released: string[] = [];
    const call = (name: string, model: string) => void limit(model, signal).then(() => released.push(name));
    call('a1', 'gpt-a');
    call('a2', 'gpt-a');
    call('a3', 'gpt-a');
    call('b1', 'gpt-b');
    await vi.advanceTimersByTimeAsync(0);
    expect(released).toEqual(['a1', 'b1']);
    await vi.advanceTimersByTimeAsync(999);
    expect(released).toEqual(['a1', 'b1']);
    await vi.advanceTimersByTimeAsync(1);
    expect(released).toEqual(['a1', 'b1', 'a2']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(released).toEqual(['a1', 'b1', 'a2', 'a3']);
  });

  it('a call whose command is cancelled while it waits stops waiting with the reason, and gives its slot back', async () => {
    const limit = createRateLimiter(60);
    await limit('gpt-a', new AbortController().signal);
    const abort = new AbortController();
    const waiting = limit('gpt-a', abort.signal);
    abort.abort(new Error('agent cancelled'));
    await expect(waiting).rejects.toThrow('agent cancelled');
    // The next call takes the freed slot (1 s after the first), not the one after it (2 s).
    let released = false;
    void limit('gpt-a', new AbortController().signal).then(() => (released = true));
    await vi.advanceTimersByTimeAsync(1000);
    expect(released).toBe(true);
  });

  it('0 means no limit: every call to one model goes at once, none waits on a timer', async () => {
    const limit = createRateLimiter(0);
    const signal = new AbortController().signal;
    const released: number[] = [];
    for (let i = 0; i < 5; i += 1) void limit('m', signal).then(() => released.push(i));
    // The clock does not move: a limiter that spaced calls would release only the first.
    await vi.advanceTimersByTimeAsync(0);
    expect(released).toEqual([0, 1, 2, 3, 4]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
