import type { Msg, NatsConnection } from '@errand/nats';

/** Messages on a core subject, taken in arrival order one at a time, each wait bounded. */
export interface Collector {
  /** The next message; rejects when none comes within `timeoutMs` or the subscription ended. */
  next(timeoutMs?: number): Promise<Msg>;
  stop(): void;
}

/** Subscribes to `subject` now, so nothing published after this call is missed. */
export function collect(nc: NatsConnection, subject: string): Collector {
  const sub = nc.subscribe(subject);
  const it = sub[Symbol.asyncIterator]();
  return {
    async next(timeoutMs = 15_000): Promise<Msg> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`nothing on ${subject} within ${timeoutMs} ms`)), timeoutMs)));
      try {
        const r = await Promise.race([it.next(), timeout]);
        if (r.done) throw new Error(`subscription to ${subject} ended`);
        return r.value;
      } finally {
        clearTimeout(timer);
      }
    },
    stop: () => sub.unsubscribe(),
  };
}
