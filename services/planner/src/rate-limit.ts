import { isRevisionConflict, type KV } from '@errand/nats';

/**
 * The per-model rate limit. Each model has one number, "the time the next call may go": a call
 * reserves the slot at `max(now, next)` and moves `next` one interval (window / limit) on, then
 * waits until its slot. Kept in a KV bucket and changed only by compare-and-set, the number is shared
 * by every planner of a deployment, so the limit holds for all of them together — N planners send
 * at the configured rate, not N times it — and slots are handed out in the order reservations
 * succeed, first come first served across planners. At most `limit` calls start within any
 * `window` (they start one interval apart). The planners' clocks are compared, so keep them in sync
 * (NTP): a planner whose clock runs ahead reserves later slots, never earlier ones than `next`.
 */

/** Where the per-model "next free time" lives: one process's memory, or the deployment's KV bucket. */
export interface SlotStore {
  /** `next` for `model` (0 when none) and the version to compare against when writing it. */
  read(model: string): Promise<{ next: number; version: number }>;
  /** Sets `next` if nobody changed it since `version`; false when another caller did first. */
  write(model: string, next: number, version: number): Promise<boolean>;
}

/** The pure part: the slot a call gets and what `next` becomes. */
export function reserveSlot(next: number, now: number, intervalMs: number): { at: number; next: number } {
  const at = Math.max(now, next);
  return { at, next: at + intervalMs };
}

/** A cancelled call's slot is given back only when no later call was spaced after it. */
export function releaseSlot(next: number, at: number, intervalMs: number): number | undefined {
  return next === at + intervalMs ? at : undefined;
}

/** Back-off after a lost compare-and-set: short, growing, with jitter so racing planners spread out. */
export function conflictBackoffMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(5 * 2 ** attempt, 200);
  return base / 2 + random() * base;
}

/** One process's slots (a single planner, and the unit tests). */
export function memorySlotStore(): SlotStore {
  const slots = new Map<string, { next: number; version: number }>();
  return {
    read: async (model) => slots.get(model) ?? { next: 0, version: 0 },
    write: async (model, next, version) => {
      if ((slots.get(model)?.version ?? 0) !== version) return false;
      slots.set(model, { next, version: version + 1 });
      return true;
    },
  };
}

/** A KV key for a model name (any characters): letters, digits, `-` and `_` as they are, others as `=hh`. */
export function rateKey(model: string): string {
  const encoded = [...new TextEncoder().encode(model)].map((b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9_-]/.test(c) ? c : `=${b.toString(16).padStart(2, '0')}`;
  });
  return `rate.${encoded.join('')}`;
}

/** The deployment's slots, in the limits bucket: every planner sees and changes the same ones. */
export function kvSlotStore(kv: KV): SlotStore {
  return {
    read: async (model) => {
      const e = await kv.get(rateKey(model));
      if (!e) return { next: 0, version: 0 };
      return { next: e.operation === 'PUT' ? Number(e.string()) || 0 : 0, version: e.revision };
    },
    write: async (model, next, version) => {
      try {
        // Version 0: only if the key does not exist yet (or was deleted).
        if (version === 0) await kv.create(rateKey(model), String(next));
        else await kv.update(rateKey(model), String(next), version);
        return true;
      } catch (err) {
        if (isRevisionConflict(err)) return false;
        throw err;
      }
    },
  };
}

export interface RateLimiterOptions {
  store: SlotStore;
  /** The window the limit counts in; 60 000 for "per minute". */
  windowMs: number;
  now: () => number;
}

export type RateLimiter = (model: string, signal: AbortSignal) => Promise<void>;

/**
 * Spaces calls to one model `windowMs / limit` ms apart — across every planner sharing `store`.
 * Resolves when the call may go; a call whose signal aborts while it waits (or before it got a
 * slot) rejects with the reason and gives its slot back when it can.
 */
export function createRateLimiter(limit: number, options: Partial<RateLimiterOptions> = {}): RateLimiter {
  if (limit <= 0) return async () => {};
  const store = options.store ?? memorySlotStore();
  const now = options.now ?? Date.now;
  const interval = (options.windowMs ?? 60_000) / limit;
  // This process's callers reserve one at a time per model, in the order they came.
  const queues = new Map<string, Promise<unknown>>();

  const abortable = (ms: number, signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal.reason);
      };
      const t = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });

  const reserve = async (model: string, signal: AbortSignal): Promise<number> => {
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw signal.reason;
      const current = await store.read(model);
      const slot = reserveSlot(current.next, now(), interval);
      if (await store.write(model, slot.next, current.version)) return slot.at;
      await abortable(conflictBackoffMs(attempt), signal);
    }
  };

  const release = async (model: string, at: number) => {
    const current = await store.read(model);
    const back = releaseSlot(current.next, at, interval);
    // One try: when it lost, another call was spaced after this one and the slot stays taken.
    if (back !== undefined) await store.write(model, back, current.version).catch(() => false);
  };

  return async (model, signal) => {
    const previous = queues.get(model) ?? Promise.resolve();
    const mine = previous.then(() => reserve(model, signal));
    const settled = mine.catch(() => undefined);
    queues.set(model, settled);
    void settled.then(() => {
      if (queues.get(model) === settled) queues.delete(model);
    });
    const at = await mine;
    const wait = at - now();
    try {
      if (signal.aborted) throw signal.reason;
      if (wait > 0) await abortable(wait, signal);
    } catch (err) {
      await release(model, at);
      throw err;
    }
  };
}
