/**
 * Start-up time of the operator CLI as users run it (the built `bin/jitgate.js`): `--help`,
 * `accounts list` on the embedded database (PGlite) and on PostgreSQL, plus `node -e 0` for what
 * Node itself costs on this machine. Each command runs once to warm the page cache, then
 * `--runs` times one after the other; wall time from spawn to exit, and the process's CPU time
 * (all threads, from a preload that reports it at exit), which depends far less on the load.
 *
 * Run: npm run build (or npx tsc -p tsconfig.build.json), then
 *   node --import tsx bench/cli-startup.bench.ts [--runs 10] [--cli bin/jitgate.js] [--pg-url postgres://…]
 * Without --pg-url a throw-away PostgreSQL is started on a unix socket (test/harness/postgres.ts).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, postgresAvailable, startPostgres, type PostgresHandle } from '../test/harness/postgres.js';
import { formatTable, percentile } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    cli: { type: 'string', default: join(ROOT, 'bin/jitgate.js') },
    'pg-url': { type: 'string' },
  },
});
const runs = Number(args.runs);
const cli = resolve(args.cli);
const cpuPreload = join(ROOT, 'bench/lib/cpu-at-exit.mjs');

interface Sample {
  wallMs: number;
  cpuMs: number;
}

/** One process run: wall time from spawn to exit, CPU time reported by the preload. */
async function once(argv: string[], cpuFile: string): Promise<Sample> {
  writeFileSync(cpuFile, '');
  const t0 = performance.now();
  const child = spawn(process.execPath, ['--import', cpuPreload, ...argv], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', BENCH_CPU_FILE: cpuFile },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  const wallMs = performance.now() - t0;
  if (code !== 0) throw new Error(`node ${argv.join(' ')} exited with ${code}: ${stderr}`);
  return { wallMs, cpuMs: Number(readFileSync(cpuFile, 'utf8').trim()) / 1000 };
}

async function measure(label: string, argv: string[], goal: string, work: string): Promise<string[]> {
  const cpuFile = join(work, 'cpu.txt');
  await once(argv, cpuFile); // warm-up: page cache, first-run work
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) samples.push(await once(argv, cpuFile));
  const wall = samples.map((s) => s.wallMs);
  const cpu = samples.map((s) => s.cpuMs);
  process.stderr.write(`${label}: ${wall.map((w) => w.toFixed(0)).join(' ')} ms\n`);
  return [label, percentile(wall, 50).toFixed(0), `${Math.min(...wall).toFixed(0)}–${Math.max(...wall).toFixed(0)}`, percentile(cpu, 50).toFixed(0), goal];
}

if (!existsSync(join(ROOT, 'dist/app/cli.js')) && cli === join(ROOT, 'bin/jitgate.js')) {
  process.stderr.write('dist/ is missing: run `npm run build` (or `npx tsc -p tsconfig.build.json`) first\n');
  process.exit(1);
}

const work = mkdtempSync(join(tmpdir(), 'jg-bench-cli-'));
let pg: PostgresHandle | undefined;
const rows: string[][] = [];
try {
  rows.push(await measure('node -e 0 (Node alone)', ['-e', '0'], '—', work));
  rows.push(await measure('jitgate --help', [cli, '--help'], '—', work));

  const embedded = join(work, 'embedded.yaml');
  writeFileSync(embedded, `dataDir: ${JSON.stringify(join(work, 'data'))}\nlog: { level: warn }\n`);
  await once([cli, 'migrate', '--config', embedded], join(work, 'cpu.txt'));
  rows.push(await measure('accounts list, embedded PGlite', [cli, 'accounts', 'list', '--config', embedded], '≤ 1000', work));

  let pgUrl = args['pg-url'];
  if (!pgUrl && postgresAvailable().ok) {
    pg = await startPostgres();
    pgUrl = await createTestDatabase(pg.url, `bench_${randomBytes(5).toString('hex')}`);
  }
  if (pgUrl) {
    const onPg = join(work, 'postgres.yaml');
    writeFileSync(onPg, `dataDir: ${JSON.stringify(join(work, 'data-pg'))}\ndatabase: { url: ${JSON.stringify(pgUrl)} }\nlog: { level: warn }\n`);
    await once([cli, 'migrate', '--config', onPg], join(work, 'cpu.txt'));
    rows.push(await measure('accounts list, PostgreSQL', [cli, 'accounts', 'list', '--config', onPg], '≤ 300', work));
  } else {
    rows.push(['accounts list, PostgreSQL', 'skipped', postgresAvailable().reason ?? 'no PostgreSQL', '', '≤ 300']);
  }
} finally {
  await pg?.stop();
  rmSync(work, { recursive: true, force: true });
}

process.stdout.write(
  `\nCLI start-up, ${runs} runs each after one warm-up (${process.version}, ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at the end)\n\n` +
    formatTable(['command', 'wall p50 ms', 'wall min–max', 'CPU p50 ms', 'goal ms'], rows) +
    '\n',
);
