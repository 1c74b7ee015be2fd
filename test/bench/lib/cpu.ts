/**
 * CPU time of processes, for the benches (Linux: /proc).
 *
 * Stable exports: `clientCpuUs()` (this process, user + system, plus the children it has waited
 * for), `processCpuUs(pid)` (one process's own user + system) and `serverCpuUs(pids)` (their sum;
 * a pid that is gone counts 0), all in microseconds.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticks: number | undefined;
/** Microseconds per clock tick of /proc/<pid>/stat (USER_HZ, 100 on Linux almost always). */
function usPerTick(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return 1_000_000 / ticks;
}

/** utime, stime, cutime, cstime of /proc/<pid>/stat (fields 14–17), in ticks; undefined when the process is gone. */
function statTimes(pid: number | 'self'): [number, number, number, number] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state), so field n is f[n - 3].
  return [Number(f[11]), Number(f[12]), Number(f[13]), Number(f[14])];
}

/** One process's own CPU (user + system), µs; 0 when it is gone. Resolution: one clock tick (10 ms). */
export function processCpuUs(pid: number): number {
  const t = statTimes(pid);
  return t ? (t[0] + t[1]) * usPerTick() : 0;
}

/** The sum of {@link processCpuUs} over `pids`. */
export function serverCpuUs(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + processCpuUs(pid), 0);
}

/**
 * This process's CPU (user + system, µs, from `process.cpuUsage`) plus the CPU of its children
 * that have ended and been waited for (/proc/self/stat cutime + cstime). A child still running is
 * not in it: a system that starts children reads their pids with {@link processCpuUs} itself.
 */
export function clientCpuUs(): number {
  const own = process.cpuUsage();
  const t = statTimes('self');
  return own.user + own.system + (t ? (t[2] + t[3]) * usPerTick() : 0);
}
