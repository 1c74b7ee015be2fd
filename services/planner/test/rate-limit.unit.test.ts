import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createRateLimiter } from '../src/planner.js';
import { memorySlotStore, rateKey, releaseSlot, reserveSlot, type SlotStore } from '../src/rate-limit.js';

// The limiter's own clock is Date.now and setTimeout: fake timers drive it, no real waiting.
beforeEach(() => {
  vi.useFakeTimers({ now: 1_800_000_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the per-model rate limiter', () => {
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

describe('the rate limit shared by every planner (one slot store)', () => {
  it('two limiters on one store (two planners) space their calls together: 6 per window in all, not 6 each', async () => {
    const store = memorySlotStore();
    const a = createRateLimiter(6, { store, windowMs: 3000 });
    const b = createRateLimiter(6, { store, windowMs: 3000 });
    const started: number[] = [];
    for (let i = 0; i < 6; i++) {
      void a('m', new AbortController().signal).then(() => started.push(Date.now()));
      void b('m', new AbortController().signal).then(() => started.push(Date.now()));
    }
    await vi.advanceTimersByTimeAsync(6000);
    expect(started).toHaveLength(12);
    // One every 500 ms: never more than 6 within any 3 s.
    for (const t of started) expect(started.filter((u) => u >= t && u < t + 3000).length).toBeLessThanOrEqual(6);
    expect(new Set(started).size).toBe(12);
  });

  it('a lost compare-and-set (another planner reserved first) is retried after a back-off, and takes the slot after the winner', async () => {
    const inner = memorySlotStore();
    let stolen = false;
    // Between this planner's read and write, another planner takes the first slot.
    const racing: SlotStore = {
      read: (m) => inner.read(m),
      write: async (m, next, version) => {
        if (!stolen) {
          stolen = true;
          const other = await inner.read(m);
          await inner.write(m, reserveSlot(other.next, Date.now(), 1000).next, other.version);
        }
        return inner.write(m, next, version);
      },
    };
    const limit = createRateLimiter(60, { store: racing });
    let released = false;
    void limit('m', new AbortController().signal).then(() => (released = true));
    await vi.advanceTimersByTimeAsync(500);
    expect(released).toBe(false);
    await vi.advanceTimersByTimeAsync(600);
    expect(released).toBe(true);
  });

  it('the pure part: a slot at max(now, next); a cancelled slot goes back only if it was the last', () => {
    expect(reserveSlot(0, 100, 10)).toEqual({ at: 100, next: 110 });
    expect(reserveSlot(150, 100, 10)).toEqual({ at: 150, next: 160 });
    expect(releaseSlot(160, 150, 10)).toBe(150);
    expect(releaseSlot(170, 150, 10)).toBeUndefined();
  });

  it('model names of any characters become distinct, valid KV keys', () => {
    expect(rateKey('gpt-4o-mini')).toBe('rate.gpt-4o-mini');
    expect(rateKey('meta/llama-3.1:8b')).toBe('rate.meta=2fllama-3=2e1=3a8b');
    expect(rateKey('a.b')).not.toBe(rateKey('a_b'));
    for (const m of ['x y', 'ü', '*', '>']) expect(rateKey(m)).toMatch(/^rate\.[A-Za-z0-9_=-]+$/);
  });
});
