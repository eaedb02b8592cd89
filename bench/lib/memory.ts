/**
 * Memory per held session, measured so it cannot come out negative: the
 * figure of record is the growth of heapUsed + external (V8's live objects and
 * the memory Buffers hold, Node's `external` already includes `arrayBuffers`)
 * after a forced full GC, which only counts what is still referenced. RSS is
 * printed next to it, but it also moves when the allocator hands back memory
 * that earlier work freed, so it is taken with the same care (median of
 * several samples after GC, slope over several points) and not used alone.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { percentile } from './stats.js';

export interface MemPoint {
  /** Sessions held when the sample was taken. */
  n: number;
  rss: number;
  /** heapUsed + external, bytes. */
  live: number;
}

let gcFn: (() => void) | null = null;
/** `gc()` without starting node with --expose-gc. */
export function forceGc(): void {
  if (!gcFn) {
    setFlagsFromString('--expose_gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
  gcFn();
}

/** Median of `k` samples of this process, each after a full GC and a short pause. */
export async function sampleSelf(n: number, k = 5): Promise<MemPoint> {
  const got: MemPoint[] = [];
  for (let i = 0; i < k; i++) {
    forceGc();
    await new Promise((res) => setTimeout(res, 200));
    const m = process.memoryUsage();
    got.push({ n, rss: m.rss, live: m.heapUsed + m.external });
  }
  return { n, rss: percentile(got.map((g) => g.rss), 50), live: percentile(got.map((g) => g.live), 50) };
}

/** Wait until RSS changes by less than `tolerance` between two samples `everyMs` apart (at most `maxMs`). */
export async function settle(sample: () => Promise<MemPoint>, tolerance = 512 * 1024, everyMs = 2000, maxMs = 60_000): Promise<void> {
  for (let prev = (await sample()).rss, t0 = Date.now(); Date.now() - t0 < maxMs; ) {
    await new Promise((res) => setTimeout(res, everyMs));
    const cur = (await sample()).rss;
    if (Math.abs(cur - prev) < tolerance) return;
    prev = cur;
  }
}

/** Least-squares slope of `f` over the points' session counts (bytes per session). */
export function slope(points: readonly MemPoint[], f: (p: MemPoint) => number): number {
  const xs = points.map((p) => p.n);
  const ys = points.map(f);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const num = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0);
  const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return den > 0 ? num / den : Number.NaN;
}

/** "live 41.2 KiB, rss 60.3 KiB per session" and the method, for a table row. */
export function perSession(points: readonly MemPoint[]): { live: number; rss: number; text: string; method: string } {
  const live = slope(points, (p) => p.live) / 1024;
  const rss = slope(points, (p) => p.rss) / 1024;
  return {
    live, rss,
    // RSS also moves with V8's new space and the allocator giving memory back: a slope below zero is that
    // noise, not sessions freeing memory, and is not printed as a figure.
    text: `${live.toFixed(1)} KiB heap+external (RSS slope ${rss >= 0 ? `${rss.toFixed(1)} KiB` : 'within the allocator\'s noise, not a figure'})`,
    method: `slope over ${points.map((p) => p.n).join('/')} held; each point the median of 5 samples after a forced GC`,
  };
}
