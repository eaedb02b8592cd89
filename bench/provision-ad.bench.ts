/**
 * Provisioning benchmark on a real Samba AD DC:
 *
 *   node --import tsx bench/provision-ad.bench.ts
 *
 * Needs root and the Samba packages (scripts/deps/samba.txt) and redis-server.
 * Starts its own DC, Redis and PGlite, measures request → account ready and
 * teardown latency (sequential, N rounds, every path interleaved in each
 * round so machine load hits them alike) for raw ldapts, the LDAP store,
 * the engine, and the full job path (JitQueue + worker); then throughput with
 * C concurrent sessions. Prints tables, cleans the DC up, and exits by itself
 * (the sequential phase stops early after BENCH_SEQUENTIAL_SECONDS, default 80,
 * and a hard limit BENCH_LIMIT_SECONDS, default 200, cleans up and exits 1).
 *
 * Knobs: BENCH_N (40), BENCH_CONCURRENCY (20), BENCH_CONCURRENT_SESSIONS (40), BENCH_JSON=1.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { generatePassword } from '../provisioner/account-names.js';
import { makeMarker } from '../provisioner/reconcile-plan.js';
import { JIT_PRESETS } from '../provisioner/jit-settings.js';
import type { ProvisionResult } from '../provisioner/jit-account.service.js';
import { sambaAdAvailable } from '../test/harness/samba-ad.js';
import { redisAvailable } from '../test/harness/redis.js';
import { MEMORY_STORE, RawLdap, startBenchEnv, type BenchEnv } from './lib/ad-bench-env.js';
import { formatTable, ms, summarize, timed, type Summary } from './lib/stats.js';

const N = Number(process.env.BENCH_N ?? 40);
const WARMUP = 3;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 20);
const CONCURRENT_SESSIONS = Number(process.env.BENCH_CONCURRENT_SESSIONS ?? 40);
const LIMIT_MS = Number(process.env.BENCH_LIMIT_SECONDS ?? 200) * 1000;
/** The sequential phase stops early past this, so a loaded machine still finishes in ~3 minutes. */
const SEQUENTIAL_BUDGET_MS = Number(process.env.BENCH_SEQUENTIAL_SECONDS ?? 80) * 1000;
const GROUP = 'JIT Admins';
const OVERHEAD_GOAL_MS = 15;

/** Progress on stderr, so stdout is only the report. */
const t00 = performance.now();
const progress = (what: string) => console.error(`[${((performance.now() - t00) / 1000).toFixed(1)} s] ${what}`);

const uniq = (p: string) => `${p}${randomBytes(4).toString('hex')}`;

type Samples = Record<string, number[]>;

/** Rounds of every path interleaved; stops early (fewer samples, shown as n) once `deadline` passes. */
async function sequential(env: BenchEnv, raw: RawLdap, rounds: number, record: boolean, s: Samples, deadline = Infinity): Promise<void> {
  const pc = await env.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: [GROUP] });
  const memPc = await env.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: [GROUP] }, MEMORY_STORE);
  const put = (k: string, v: number) => record && (s[k] ??= []).push(v);
  for (let i = 0; i < rounds && performance.now() < deadline; i++) {
    // raw ldapts: add + modify member, then modify (delete member) + del
    {
      const name = uniq('rb');
      put('raw', (await timed(() => raw.provision(name, generatePassword(name), GROUP)))[0]);
      put('raw-td', (await timed(() => raw.teardown(name, GROUP)))[0]);
    }
    // the LdapAccountStore alone
    {
      const name = uniq('sb');
      const [t] = await timed(async () => {
        await env.store.create({ name, password: generatePassword(name), marker: makeMarker(env.engine.installationId, randomUUID()), expiresAt: new Date(Date.now() + 3_600_000) });
        await env.store.addToGroup(name, GROUP);
      });
      put('store', t);
      put('store-td', (await timed(async () => {
        await env.store.removeFromGroup(name, GROUP);
        await env.store.delete(name);
      }))[0]);
    }
    // the engine, in-process: session row, account row, store, audit
    {
      const [t, id] = await timed(async () => {
        const session = await env.engine.requestSession({ personLogin: 'bench', computer: pc, protocol: 'rdp' });
        await env.engine.provision(session.id);
        return session.id;
      });
      put('engine', t);
      put('engine-td', (await timed(() => env.engine.teardown(id, 'bench')))[0]);
    }
    // the engine on an in-memory store: its own cost (database rows, audit chain) without a directory
    {
      const [t, id] = await timed(async () => {
        const session = await env.engine.requestSession({ personLogin: 'bench', computer: memPc, protocol: 'rdp' });
        await env.engine.provision(session.id);
        return session.id;
      });
      put('engine-mem', t);
      put('engine-mem-td', (await timed(() => env.engine.teardown(id, 'bench')))[0]);
    }
    // the full job path: enqueue provision, worker runs it, caller sees completion
    {
      const [t, id] = await timed(async () => {
        const session = await env.engine.requestSession({ personLogin: 'bench', computer: pc, protocol: 'rdp' });
        await env.queue.waitFor<ProvisionResult>(await env.queue.provision(session.id), 30_000);
        return session.id;
      });
      put('job', t);
      put('job-td', (await timed(async () => env.queue.waitFor(await env.queue.teardown(id, 'bench'), 30_000)))[0]);
    }
  }
}

interface Throughput {
  sessions: number;
  seconds: number;
  perSecond: number;
  latency: Summary;
  teardownPerSecond: number;
}

async function concurrent(env: BenchEnv, via: 'engine' | 'job'): Promise<Throughput> {
  const pc = await env.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: [GROUP] });
  const latencies: number[] = [];
  const ids: string[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < CONCURRENT_SESSIONS) {
        next++;
        const [t, id] = await timed(async () => {
          const session = await env.engine.requestSession({ personLogin: 'bench', computer: pc, protocol: 'rdp' });
          if (via === 'engine') await env.engine.provision(session.id);
          else await env.queue.waitFor(await env.queue.provision(session.id), 60_000);
          return session.id;
        });
        latencies.push(t);
        ids.push(id);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  let k = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (k < ids.length) {
        const id = ids[k++]!;
        if (via === 'engine') await env.engine.teardown(id, 'bench');
        else await env.queue.waitFor(await env.queue.teardown(id, 'bench'), 60_000);
      }
    }),
  );
  const tdSeconds = (performance.now() - t1) / 1000;
  return { sessions: ids.length, seconds, perSecond: ids.length / seconds, latency: summarize(latencies), teardownPerSecond: ids.length / tdSeconds };
}

async function main(): Promise<number> {
  for (const a of [sambaAdAvailable(), redisAvailable()]) {
    if (!a.ok) {
      console.error(`bench skipped: ${a.reason ?? 'missing dependency'}`);
      return 2;
    }
  }
  const started = performance.now();
  let env: BenchEnv | undefined;
  let raw: RawLdap | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await raw?.close();
      const left = await env?.sweepDirectory().catch((err: unknown) => {
        console.error(`could not sweep the DC (it is discarded anyway): ${String(err)}`);
        return 0;
      });
      if (left) console.error(`swept ${left} leftover account(s) from the DC`);
      await env?.close();
    })());
  const limit = setTimeout(() => {
    console.error(`bench exceeded ${LIMIT_MS / 1000} s; cleaning up`);
    void cleanup().finally(() => process.exit(1));
  }, LIMIT_MS);
  limit.unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().finally(() => process.exit(130)));
  try {
    const [setupMs, e] = await timed(() => startBenchEnv({ workerConcurrency: CONCURRENCY }));
    env = e;
    raw = new RawLdap(env.ad);
    console.log(`Samba AD DC ${env.ad.dcAddress} (netns ${env.ad.netns}), Redis, PGlite ready in ${ms(setupMs)} ms; N=${N}, concurrency ${CONCURRENCY}`);
    console.log(`machine: ${cpus().length} CPU(s), load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at start`);
    const samples: Samples = {};
    progress('warm-up');
    await sequential(env, raw, WARMUP, false, samples);
    progress(`${N} sequential rounds`);
    await sequential(env, raw, N, true, samples, performance.now() + SEQUENTIAL_BUDGET_MS);
    const sum = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])) as Record<string, Summary>;
    const row = (label: string, k: string) => [label, String(sum[k]!.n), ms(sum[k]!.p50), ms(sum[k]!.p95), ms(sum[k]!.mean), ms(sum[k]!.max)];
    const head = ['', 'n', 'p50 ms', 'p95 ms', 'mean ms', 'max ms'];
    console.log('\nProvisioning: request → account ready (created with password, in JIT Admins), sequential');
    console.log(formatTable(head, [
      row('raw ldapts: add + modify member', 'raw'),
      row('LdapAccountStore: create + addToGroup', 'store'),
      row('engine: requestSession + provision', 'engine'),
      row('job path: JitQueue + worker', 'job'),
      row('engine on an in-memory store (no directory)', 'engine-mem'),
    ]));
    console.log('\nTeardown: membership removed, account deleted, sequential');
    console.log(formatTable(head, [
      row('raw ldapts: modify member + del', 'raw-td'),
      row('LdapAccountStore: removeFromGroup + delete', 'store-td'),
      row('engine: teardown', 'engine-td'),
      row('job path: teardown job', 'job-td'),
      row('engine on an in-memory store (no directory)', 'engine-mem-td'),
    ]));
    const overhead = sum.engine!.p50 - sum.raw!.p50;
    console.log(`\nengine overhead at p50 = ${ms(overhead)} ms (goal < ${OVERHEAD_GOAL_MS} ms)`);
    console.log(`  store vs raw ${ms(sum.store!.p50 - sum.raw!.p50)} ms (its lookups), engine vs store ${ms(sum.engine!.p50 - sum.store!.p50)} ms; job path vs engine ${ms(sum.job!.p50 - sum.engine!.p50)} ms`);
    console.log(`  engine alone on an in-memory store (PGlite rows + 4 audit events): p50 ${ms(sum['engine-mem']!.p50)} ms, p95 ${ms(sum['engine-mem']!.p95)} ms`);

    progress('concurrent sessions through the engine');
    const te = await concurrent(env, 'engine');
    progress('concurrent sessions through the job path');
    const tj = await concurrent(env, 'job');
    console.log(`\nThroughput: ${CONCURRENT_SESSIONS} sessions, ${CONCURRENCY} concurrent`);
    const trow = (label: string, t: Throughput) => [label, t.perSecond.toFixed(1), ms(t.latency.p50), ms(t.latency.p95), t.teardownPerSecond.toFixed(1)];
    console.log(formatTable(['', 'sessions/s', 'p50 ms', 'p95 ms', 'teardowns/s'], [trow('engine', te), trow(`job path (worker concurrency ${CONCURRENCY})`, tj)]));
    console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} at end`);
    const left = await env.store.listManaged();
    console.log(`\nJIT accounts left in the DC: ${left.length}; total ${((performance.now() - started) / 1000).toFixed(1)} s`);
    if (process.env.BENCH_JSON) console.log(JSON.stringify({ sequential: sum, overheadP50: overhead, throughput: { engine: te, job: tj } }));
    return left.length === 0 ? 0 : 1;
  } finally {
    await cleanup();
    clearTimeout(limit);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
