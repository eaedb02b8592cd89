/**
 * Where a bench process spends its CPU during one measured window: garbage
 * collection time (PerformanceObserver 'gc' entries: pause time on the main
 * thread; concurrent marking on V8's helper threads is in the process's CPU
 * time but not here) and, with `--profile <dir>`, a V8 CPU profile
 * (`node:inspector`, the same format as `node --cpu-prof`) written per window
 * and summarised by self time.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { PerformanceObserver } from 'node:perf_hooks';

let gcMs = 0;
let gcCount = 0;
let observing = false;

/** Milliseconds of GC pause and number of collections so far in this process (starts counting on first call). */
export function gcTotals(): { ms: number; count: number } {
  if (!observing) {
    observing = true;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gcMs += e.duration;
        gcCount++;
      }
    }).observe({ entryTypes: ['gc'] });
  }
  return { ms: gcMs, count: gcCount };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time by function (name + file:line), largest first, as a share of all samples. */
export function selfTimeTop(p: CpuProfile, n = 25): { share: number; ms: number; name: string }[] {
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const ms = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    if (!node) return;
    const f = node.callFrame;
    const file = f.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(?=[^/]+\/[^/]+$)/, '');
    const key = f.url ? `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}` : f.functionName;
    ms.set(key, (ms.get(key) ?? 0) + dt);
  });
  return [...ms.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, t]) => ({ share: total ? t / total : 0, ms: t, name }));
}

/** A CPU profile of this process while `fn` runs, written to `dir/<label>.cpuprofile`; a no-op without `dir`. */
export async function profiled<T>(dir: string | undefined, label: string, fn: () => Promise<T>): Promise<T> {
  if (!dir) return fn();
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.setSamplingInterval', { interval: 200 });
  await s.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = (await s.post('Profiler.stop')) as { profile: CpuProfile };
    s.disconnect();
    writeFileSync(join(dir, `${label}.cpuprofile`), JSON.stringify(profile));
    console.error(`  profile ${label}: self time, top 15`);
    for (const t of selfTimeTop(profile, 15)) console.error(`    ${(t.share * 100).toFixed(1).padStart(5)} %  ${t.name}`);
  }
}
