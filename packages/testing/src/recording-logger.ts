import type { Logger } from '@errand/protocols';

export interface LogEntry {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** A {@link Logger} that keeps every entry, so a test can assert on (and await) what was logged. */
export interface RecordingLogger extends Logger {
  readonly entries: readonly LogEntry[];
  /** Resolves with the first entry (past or future) that matches; rejects after `timeoutMs`. */
  waitFor(match: (e: LogEntry) => boolean, timeoutMs?: number): Promise<LogEntry>;
}

export function recordingLogger(): RecordingLogger {
  const entries: LogEntry[] = [];
  const waiters = new Set<{ match: (e: LogEntry) => boolean; resolve: (e: LogEntry) => void }>();
  const make = (bindings: Record<string, unknown>): RecordingLogger => {
    const log = (level: LogEntry['level']) => (obj: object, msg?: string) => {
      const entry = { level, msg: msg ?? '', fields: { ...bindings, ...obj } };
      entries.push(entry);
      for (const w of waiters) {
        if (w.match(entry)) {
          waiters.delete(w);
          w.resolve(entry);
        }
      }
    };
    return {
      entries,
      debug: log('debug'),
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      child: (more) => make({ ...bindings, ...more }),
      waitFor(match, timeoutMs = 20_000) {
        const seen = entries.find(match);
        if (seen) return Promise.resolve(seen);
        return new Promise((resolve, reject) => {
          const waiter = {
            match,
            resolve: (e: LogEntry) => {
              clearTimeout(timer);
              resolve(e);
            },
          };
          const timer = setTimeout(() => {
            waiters.delete(waiter);
            reject(new Error(`no log entry matched within ${timeoutMs} ms`));
          }, timeoutMs);
          waiters.add(waiter);
        });
      },
    };
  };
  return make({});
}
