/**
 * `ERRAND_WATCH_PID`: a process to outlive by no more than a second. A service (or `errand up`)
 * given a pid stops gracefully, as on SIGTERM, once no process has that pid — so what a test
 * runner or a supervisor started does not run on as an orphan when that one is killed. A pid, not
 * "my parent": a service under `errand worker`, under `errand up`, under the watcher, watches the
 * watcher. Unset (the default): nothing is watched.
 */

/** The pid ERRAND_WATCH_PID names, or undefined when unset. Throws on a value that is not a pid. */
export function watchedPid(env: Readonly<Record<string, string | undefined>>): number | undefined {
  const raw = env.ERRAND_WATCH_PID?.trim();
  if (!raw) return undefined;
  const pid = Number(raw);
  if (!Number.isInteger(pid) || pid <= 1) throw new RangeError(`ERRAND_WATCH_PID must be the pid of a process to stop with (an integer above 1), got '${raw}'`);
  return pid;
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Calls `onGone` once, within `everyMs` of the process `pid` ending. Returns the function that
 * stops watching. The check does not keep the event loop alive.
 */
export function whenPidGone(pid: number, onGone: () => void, everyMs = 1_000): () => void {
  const timer = setInterval(() => {
    if (pidAlive(pid)) return;
    clearInterval(timer);
    onGone();
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
