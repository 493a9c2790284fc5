/**
 * CPU time of a server process from /proc, for benchmarks that report CPU per operation.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux nearly everywhere). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** user + system time in a `/proc/.../stat` line, in microseconds. */
function statCpuUs(stat: string): number {
  // Fields after the command name (which may contain spaces), from field 3 (state) on: utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}

/** CPU time (user + system, all threads) a process has used, in microseconds. */
export function processCpuUs(pid: number): number {
  return statCpuUs(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** CPU time so far of each thread name of process `pid`, in milliseconds. */
export function threadCpuMs(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      byName.set(name, (byName.get(name) ?? 0) + statCpuUs(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')) / 1000);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return byName;
}
