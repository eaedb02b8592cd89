/**
 * Another process's CPU time and RSS read from /proc (proc(5)), so a process
 * under test is measured alone and without being asked (no IPC round trip,
 * no work of its own), and what the figures per session come to.
 */
import { readFileSync } from 'node:fs';

/** USER_HZ: /proc/<pid>/stat counts in clock ticks, 100 a second on Linux (sysconf(_SC_CLK_TCK)). */
export const CLOCK_TICKS = 100;

/**
 * utime + stime (every thread of the process, fields 14 and 15 of
 * /proc/<pid>/stat) in seconds. The command name (field 2) is in parentheses
 * and may itself contain spaces and parentheses: fields are counted from
 * the last ')'.
 */
export function parseStatCpuSeconds(stat: string): number {
  const close = stat.lastIndexOf(')');
  if (close === -1) throw new Error('not a /proc/<pid>/stat line');
  // After ')': field 3 (state) is index 0, so field n is index n - 3.
  const f = stat.slice(close + 2).trim().split(/\s+/);
  const utime = Number(f[14 - 3]);
  const stime = Number(f[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('no utime/stime in /proc/<pid>/stat');
  return (utime + stime) / CLOCK_TICKS;
}

/** VmRSS of /proc/<pid>/status in bytes. */
export function parseStatusRssBytes(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!m) throw new Error('no VmRSS in /proc/<pid>/status');
  return Number(m[1]) * 1024;
}

export const procCpuSeconds = (pid: number): number => parseStatCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
export const procRssBytes = (pid: number): number => parseStatusRssBytes(readFileSync(`/proc/${pid}/status`, 'utf8'));

export interface CpuWindow {
  /** CPU seconds the process used during the window. */
  cpuSeconds: number;
  /** Wall seconds of the window. */
  seconds: number;
  /** Sessions held throughout the window. */
  sessions: number;
}

/**
 * CPU-seconds per session-minute: the window's CPU less what the process
 * spends with no session (`baselinePerSecond`, CPU-s per wall second, from
 * a window with none), shared out over the sessions and the minutes. Never
 * below zero (a baseline measured higher than the window is noise).
 */
export function cpuPerSessionMinute(w: CpuWindow, baselinePerSecond = 0): number {
  if (w.sessions <= 0 || w.seconds <= 0) return Number.NaN;
  const own = Math.max(0, w.cpuSeconds - baselinePerSecond * w.seconds);
  return own / w.sessions / (w.seconds / 60);
}

/** Sessions one fully busy core carries (60 CPU-seconds a minute), at `perSessionMinute` CPU-s each. */
export function sessionsPerCore(perSessionMinute: number): number {
  return perSessionMinute > 0 ? 60 / perSessionMinute : Number.POSITIVE_INFINITY;
}
