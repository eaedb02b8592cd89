// Preloaded into each CLI run by bench/cli-startup.bench.ts: appends the process's CPU time
// (user + system, every thread, microseconds) to $BENCH_CPU_FILE when it exits. Node has no
// way to read a finished child's rusage, and CPU time depends far less on the machine's load
// than wall time does.
import { appendFileSync } from 'node:fs';

const out = process.env.BENCH_CPU_FILE;
if (out) {
  process.on('exit', () => {
    const c = process.cpuUsage();
    appendFileSync(out, `${c.user + c.system}\n`);
  });
}
