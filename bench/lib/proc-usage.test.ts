import { describe, expect, it } from 'vitest';
import { cpuPerSessionMinute, parseStatCpuSeconds, parseStatusRssBytes, procCpuSeconds, procRssBytes, sessionsPerCore } from './proc-usage.js';

describe('reading another process from /proc', () => {
  it('takes utime + stime (fields 14, 15) in clock ticks, counting fields after the last ")" of the command name', () => {
    // comm "node (x) y" holds spaces and parentheses; utime 1234, stime 566 ticks.
    const line = '4242 (node (x) y) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 566 0 0 20 0 11 0 100 1000000 2000 18446744073709551615';
    expect(parseStatCpuSeconds(line)).toBeCloseTo(18.0, 6);
    expect(() => parseStatCpuSeconds('garbage')).toThrow();
  });

  it('reads VmRSS in bytes', () => {
    expect(parseStatusRssBytes('Name:\tnode\nVmHWM:\t  90000 kB\nVmRSS:\t   81920 kB\nRssAnon:\t 1 kB\n')).toBe(81920 * 1024);
    expect(() => parseStatusRssBytes('Name:\tnode\n')).toThrow();
  });

  it('agrees with the process\'s own count of its CPU time and with its RSS', () => {
    const own = (): number => {
      const c = process.cpuUsage();
      return (c.user + c.system) / 1e6;
    };
    const p0 = procCpuSeconds(process.pid);
    const o0 = own();
    let x = 0;
    for (const end = own() + 0.15; own() < end; ) x += Math.sqrt(x + 1);
    expect(x).toBeGreaterThan(0);
    const dProc = procCpuSeconds(process.pid) - p0;
    const dOwn = own() - o0;
    expect(dOwn).toBeGreaterThanOrEqual(0.15);
    // Ticks of 10 ms on both ends, and the kernel's and getrusage's accounting round differently.
    expect(Math.abs(dProc - dOwn)).toBeLessThan(0.05);
    const rss = procRssBytes(process.pid);
    expect(Math.abs(rss - process.memoryUsage().rss)).toBeLessThan(16 << 20);
  });
});

describe('CPU per session-minute', () => {
  it('subtracts the process\'s own rate with no session, then shares out over sessions and minutes', () => {
    // 12 CPU-s in 30 s with 10 sessions; 0.1 CPU-s/s without any: (12 - 3) / 10 / 0.5 min.
    expect(cpuPerSessionMinute({ cpuSeconds: 12, seconds: 30, sessions: 10 }, 0.1)).toBeCloseTo(1.8, 9);
    expect(cpuPerSessionMinute({ cpuSeconds: 12, seconds: 30, sessions: 10 })).toBeCloseTo(2.4, 9);
    expect(sessionsPerCore(1.8)).toBeCloseTo(33.33, 2);
  });

  it('never goes below zero, and has no figure without sessions or time', () => {
    expect(cpuPerSessionMinute({ cpuSeconds: 1, seconds: 30, sessions: 10 }, 0.1)).toBe(0);
    expect(sessionsPerCore(0)).toBe(Number.POSITIVE_INFINITY);
    expect(cpuPerSessionMinute({ cpuSeconds: 1, seconds: 30, sessions: 0 })).toBeNaN();
    expect(cpuPerSessionMinute({ cpuSeconds: 1, seconds: 0, sessions: 3 })).toBeNaN();
  });
});
