import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * What the kernel says a process costs: CPU time from /proc/<pid>/stat and resident memory from
 * /proc/<pid>/status. Linux only, as the benchmarks are; a process that has gone reads as 0 so a
 * sum over hosts that were SIGKILLed still adds up.
 */

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100; // what every Linux we run on uses
    }
  }
  return ticksPerSecond;
}

/** utime + stime of the process in microseconds (0 when it is gone). */
export function cpuMicros(pid: number | undefined): number {
  if (pid === undefined) return 0;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return 0;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000_000) / clockTicks();
}

/** The sum of {@link cpuMicros} over several processes. */
export function cpuMicrosOf(pids: readonly (number | undefined)[]): number {
  return pids.reduce<number>((sum, pid) => sum + cpuMicros(pid), 0);
}

/** VmRSS of the process in bytes (0 when it is gone). */
export function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU of this process (user + system) in microseconds, children not included. */
export function ownCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

export const MB = 1024 * 1024;
