/**
 * Search across sessions (issue 19): generate recorded SSH sessions with
 * realistic shell output (asciicast v2, prompts, typed commands echoed back,
 * listings, logs, service status, a sudo password typed without echo), index
 * them with the indexer the search-index job runs (extraction + one
 * transaction per recording), then time GET /search through the real route
 * for a mix of queries and scopes.
 *
 *   node --import tsx bench/search.bench.ts                       # 10,000 sessions on PGlite and, when found, PostgreSQL
 *   node --import tsx bench/search.bench.ts --sessions 2000 --queries 100
 *   node --import tsx bench/search.bench.ts --pg-url 'postgres://…' --only postgres
 *
 * Prints indexing throughput (MiB/s of recording bytes, lines/s) and search
 * latency p50/p95 per query family. Goal: search p95 < 200 ms.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import type { Database } from '../core/db/database.js';
import { migrate } from '../core/db/migrations.js';
import { openDatabase } from '../core/db/open.js';
import type { Principal } from '../gateway/auth/principal.js';
import { searchRoutes } from '../gateway/api/search.js';
import { extractAsciicast } from '../recorder/search-extract.js';
import { replaceIndexedLines } from '../recorder/search-index.js';
import { createTestDatabase, postgresAvailable, startPostgres, type PostgresHandle } from '../test/harness/postgres.js';
import { formatTable, ms, summarize } from './lib/stats.js';

const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '10000' },
    queries: { type: 'string', default: '200' },
    'pg-url': { type: 'string' },
    only: { type: 'string' },
  },
});
const SESSIONS = Number(args.sessions);
const QUERIES = Number(args.queries);
const MiB = 1 << 20;
const ORGS = 5;
const COMPUTERS_PER_ORG = 20;
const PEOPLE_PER_ORG = 10;

// ---- deterministic generator (xorshift), so runs compare ----
let seed = 0x2545f491;
function rnd(n: number): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
}
const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;

const SERVICES = ['nginx', 'postgresql', 'sshd', 'cron', 'docker', 'redis-server', 'haproxy', 'chronyd', 'rsyslog', 'node-exporter'];
const FILES = ['/etc/nginx/nginx.conf', '/etc/hosts', '/var/log/syslog', '/etc/ssh/sshd_config', '/etc/fstab', '/srv/app/.env', '/etc/sudoers', '/var/log/nginx/error.log', '/etc/resolv.conf'];
const USERS = ['root', 'www-data', 'postgres', 'deploy', 'backup', 'nobody'];
const WORDS = ['connection', 'timeout', 'refused', 'started', 'stopped', 'reloading', 'worker', 'listening', 'accepted', 'failed', 'session', 'opened', 'closed', 'request', 'upstream', 'certificate', 'expired', 'renewed'];

const ip = () => `10.${rnd(256)}.${rnd(256)}.${1 + rnd(254)}`;
const pad = (n: number, w: number) => String(n).padStart(w, '0');
const time = () => `${pad(rnd(24), 2)}:${pad(rnd(60), 2)}:${pad(rnd(60), 2)}`;

/** One command and what it printed, as a shell on a Linux server would. */
function commandAndOutput(host: string): [string, string[]] {
  switch (rnd(10)) {
    case 0: {
      const svc = pick(SERVICES);
      return [`sudo systemctl status ${svc}`, [
        `● ${svc}.service - ${svc} daemon`, `     Loaded: loaded (/lib/systemd/system/${svc}.service; enabled; vendor preset: enabled)`,
        `     Active: active (running) since Tue 2026-12-01 ${time()} UTC; 3 days ago`, `   Main PID: ${1000 + rnd(60000)} (${svc})`,
        `      Tasks: ${1 + rnd(40)} (limit: 4557)`, `     Memory: ${rnd(900)}.${rnd(10)}M`,
        ...Array.from({ length: 3 }, () => `Dec 04 ${time()} ${host} ${svc}[${1000 + rnd(60000)}]: ${pick(WORDS)} ${pick(WORDS)} from ${ip()}`),
      ]];
    }
    case 1: {
      const dir = pick(['/etc', '/var/log', '/srv/app', '/home/deploy', '/opt']);
      return [`ls -la ${dir}`, [`total ${rnd(400)}`, ...Array.from({ length: 4 + rnd(12) }, () =>
        `${pick(['drwxr-xr-x', '-rw-r--r--', '-rw-------', 'lrwxrwxrwx'])} ${1 + rnd(5)} ${pick(USERS)} ${pick(USERS)} ${rnd(100000)} Dec  ${1 + rnd(4)} ${time().slice(0, 5)} ${pick(WORDS)}${rnd(2) ? '.conf' : '.log'}`)]];
    }
    case 2:
      return ['df -h', ['Filesystem      Size  Used Avail Use% Mounted on', `/dev/sda1        ${20 + rnd(200)}G   ${rnd(100)}G   ${rnd(100)}G  ${rnd(100)}% /`, 'tmpfs           2.0G     0  2.0G   0% /dev/shm', `/dev/sdb1       ${rnd(2000)}G  ${rnd(900)}G  ${rnd(900)}G  ${rnd(100)}% /srv`]];
    case 3: {
      const f = pick(FILES);
      return [`sudo tail -n 5 ${f}`, Array.from({ length: 5 }, () => `Dec  4 ${time()} ${host} ${pick(SERVICES)}[${rnd(60000)}]: ${pick(WORDS)} ${pick(WORDS)} ${ip()} port ${1024 + rnd(60000)}`)];
    }
    case 4:
      return ['ps aux --sort=-%cpu | head -5', ['USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND', ...Array.from({ length: 4 }, () => `${pick(USERS).padEnd(10)} ${pad(rnd(60000), 6)} ${rnd(100)}.${rnd(10)}  ${rnd(50)}.${rnd(10)} ${rnd(900000)} ${rnd(90000)} ?        Ssl  Dec01  ${rnd(60)}:${pad(rnd(60), 2)} /usr/sbin/${pick(SERVICES)}`)]];
    case 5: {
      const svc = pick(SERVICES);
      return [`sudo systemctl restart ${svc}`, []];
    }
    case 6:
      return [`grep -i ${pick(WORDS)} ${pick(FILES)}`, Array.from({ length: rnd(6) }, () => `${pick(WORDS)} ${pick(WORDS)} ${ip()} ${pick(WORDS)}`)];
    case 7:
      return [`ping -c 2 ${ip()}`, ['PING 10.0.0.1 56(84) bytes of data.', `64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=0.${rnd(999)} ms`, `64 bytes from 10.0.0.1: icmp_seq=2 ttl=64 time=0.${rnd(999)} ms`]];
    case 8:
      return [`journalctl -u ${pick(SERVICES)} --since today | tail -3`, Array.from({ length: 3 }, () => `Dec 04 ${time()} ${host} systemd[1]: ${pick(WORDS)} ${pick(SERVICES)}.service`)];
    default:
      return [`cat ${pick(FILES)} | wc -l`, [String(rnd(5000))]];
  }
}

/** An asciicast v2 of one session: prompt, each command typed (input recorded) and echoed, its output; a sudo password typed without echo. */
function sessionCast(user: string, host: string, needle: string | null): string {
  const ev: string[] = [JSON.stringify({ version: 2, width: 120, height: 32, timestamp: 1764900000 })];
  let t = 0.3;
  const o = (s: string) => ev.push(JSON.stringify([Number(t.toFixed(6)), 'o', s]));
  const i = (s: string) => ev.push(JSON.stringify([Number(t.toFixed(6)), 'i', s]));
  const prompt = `\x1b[01;32m${user}@${host}\x1b[00m:\x1b[01;34m~\x1b[00m$ `;
  o(`Welcome to Ubuntu 24.04.1 LTS (GNU/Linux 6.8.0-49-generic x86_64)\r\n\r\nLast login: Wed Dec  3 ${time()} 2026 from ${ip()}\r\n${prompt}`);
  const n = 6 + rnd(8);
  for (let k = 0; k < n; k++) {
    let [cmd, out] = commandAndOutput(host);
    if (needle && k === 2) [cmd, out] = [`echo ${needle} > /tmp/marker`, []];
    for (const ch of cmd) {
      t += 0.05 + rnd(10) / 100;
      i(ch);
      o(ch);
    }
    t += 0.3;
    i('\r');
    o('\r\n');
    if (cmd.startsWith('sudo') && k < 2) {
      o(`[sudo] password for ${user}: `);
      t += 1;
      i(`Secret-${rnd(1e9)}`);
      i('\r');
      o('\r\n');
    }
    t += 0.1;
    if (out.length) o(out.join('\r\n') + '\r\n');
    o(prompt);
    t += 1 + rnd(20);
  }
  return ev.join('\n') + '\n';
}

interface World {
  orgs: string[];
  people: { id: string; login: string; org: string }[];
  computers: { id: string; name: string; org: string }[];
  needles: string[];
}

async function populate(db: Database): Promise<{ world: World; bytes: number; lines: number; indexSeconds: number; generateSeconds: number }> {
  const world: World = { orgs: [], people: [], computers: [], needles: [] };
  for (let o = 0; o < ORGS; o++) {
    const id = randomUUID();
    world.orgs.push(id);
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1,$2,$3)', [id, `bench-org-${o}-${randomBytes(2).toString('hex')}`, String(20_000_000 + rnd(9_000_000))]);
    for (let c = 0; c < COMPUTERS_PER_ORG; c++) {
      const comp = { id: randomUUID(), name: `srv-${o}-${pad(c, 2)}`, org: id };
      world.computers.push(comp);
      await db.query("INSERT INTO computers (id, organization_id, name, address, jit) VALUES ($1,$2,$3,$4,'{}')", [comp.id, id, comp.name, ip()]);
    }
    for (let p = 0; p < PEOPLE_PER_ORG; p++) {
      const person = { id: randomUUID(), login: `tech-${o}-${p}-${randomBytes(2).toString('hex')}`, org: id };
      world.people.push(person);
      await db.query("INSERT INTO people (id, login, role, organization_id) VALUES ($1,$2,'technician',$3)", [person.id, person.login, id]);
    }
  }
  let bytes = 0;
  let lines = 0;
  let indexMs = 0;
  let genMs = 0;
  const base = Date.now() - 90 * 86_400_000;
  for (let s = 0; s < SESSIONS; s++) {
    const g0 = performance.now();
    const comp = world.computers[rnd(world.computers.length)]!;
    const orgPeople = world.people.filter((p) => p.org === comp.org);
    const person = orgPeople[rnd(orgPeople.length)]!;
    const needle = s % 100 === 7 ? `needle${randomBytes(4).toString('hex')}` : null;
    if (needle) world.needles.push(needle);
    const cast = sessionCast(person.login.slice(0, 12), comp.name, needle);
    const sessionId = randomUUID();
    const recordingId = randomUUID();
    const at = new Date(base + s * 777_000);
    await db.query(
      `INSERT INTO sessions (id, person_id, person_login, computer_id, computer_name, organization_id, protocol, account_type, account_name, state, lease_expires_at, created_at, started_at, ended_at)
       VALUES ($1,$2,$3,$4,$5,$6,'ssh','local',$7,'ended',$8,$8,$8,$8)`,
      [sessionId, person.id, person.login, comp.id, comp.name, comp.org, `${person.login.slice(0, 10)}_x`, at],
    );
    await db.query("INSERT INTO recordings (id, session_id, kind, path, size_bytes, started_at, ended_at) VALUES ($1,$2,'terminal',$3,$4,$5,$5)", [
      recordingId, sessionId, `2026/12/05/${sessionId}-${recordingId}.cast`, Buffer.byteLength(cast), at,
    ]);
    genMs += performance.now() - g0;
    // What the search-index job does for one sealed recording: extract, then replace its lines in one transaction.
    const t0 = performance.now();
    const ex = extractAsciicast(cast);
    await db.transaction((tx) => replaceIndexedLines(tx, { recordingId, sessionId }, ex, Buffer.byteLength(cast)));
    indexMs += performance.now() - t0;
    bytes += Buffer.byteLength(cast);
    lines += ex.lines.length;
    if ((s + 1) % 1000 === 0) process.stderr.write(`  ${s + 1}/${SESSIONS} sessions indexed (${(bytes / MiB / (indexMs / 1000)).toFixed(1)} MiB/s)\n`);
  }
  await db.query('ANALYZE');
  return { world, bytes, lines, indexSeconds: indexMs / 1000, generateSeconds: genMs / 1000 };
}

async function searchLatencies(db: Database, world: World): Promise<string[][]> {
  const app = Fastify();
  let as: Principal | null = null;
  app.decorateRequest('principal', null);
  app.addHook('onRequest', async (req) => void (req.principal = as));
  await app.register(searchRoutes({ db }));
  await app.ready();
  const principal = (role: Principal['role'], org: string | null, personId: string = randomUUID()): Principal => ({ personId, login: 'bench', displayName: 'bench', role, organizationId: org, authSessionId: 'bench' });
  const families: [string, () => { q: string; extra?: string; who: Principal }][] = [
    ['rare word (a needle), global admin', () => ({ q: pick(world.needles), who: principal('global_admin', null) })],
    ['common command, auditor of one org', () => ({ q: `systemctl restart ${pick(SERVICES)}`, who: principal('auditor', pick(world.orgs)) })],
    ['phrase, global admin', () => ({ q: `"connection refused"`, who: principal('global_admin', null) })],
    ['word + computer filter, org admin', () => {
      const c = pick(world.computers);
      return { q: pick(WORDS), extra: `&computer=${c.name}`, who: principal('org_admin', c.org) };
    }],
    ['file path, technician (own sessions)', () => {
      const p = pick(world.people);
      return { q: pick(FILES), who: principal('technician', p.org, p.id) };
    }],
  ];
  const rows: string[][] = [];
  const all: number[] = [];
  const per = Math.max(1, Math.floor(QUERIES / families.length));
  for (const [label, gen] of families) {
    const samples: number[] = [];
    let hits = 0;
    for (let k = 0; k < per + 3; k++) {
      const { q, extra, who } = gen();
      as = who;
      const t0 = performance.now();
      const r = await app.inject({ method: 'GET', url: `/search?q=${encodeURIComponent(q)}${extra ?? ''}&limit=50` });
      const dt = performance.now() - t0;
      if (r.statusCode !== 200) throw new Error(`search ${q}: ${r.statusCode} ${r.body}`);
      if (k < 3) continue; // warm-up
      hits += (r.json() as { hits: unknown[] }).hits.length;
      samples.push(dt);
      all.push(dt);
    }
    const s = summarize(samples);
    rows.push([label, String(s.n), ms(s.p50), ms(s.p95), ms(s.max), (hits / s.n).toFixed(1)]);
  }
  const s = summarize(all);
  rows.push(['all queries', String(s.n), ms(s.p50), ms(s.p95), ms(s.max), '']);
  await app.close();
  return rows;
}

async function run(label: string, db: Database): Promise<string> {
  await migrate(db);
  process.stderr.write(`${label}: generating and indexing ${SESSIONS} sessions\n`);
  const pop = await populate(db);
  const [{ n }] = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM search_lines')) as [{ n: number }];
  process.stderr.write(`${label}: searching\n`);
  const rows = await searchLatencies(db, pop.world);
  return [
    `\n### ${label}\n`,
    `${SESSIONS} sessions, ${(pop.bytes / MiB).toFixed(1)} MiB of asciicast, ${n} indexed lines (generation ${pop.generateSeconds.toFixed(1)} s, not counted)`,
    `indexing: ${(pop.bytes / MiB / pop.indexSeconds).toFixed(2)} MiB/s, ${Math.round(pop.lines / pop.indexSeconds)} lines/s, ${(pop.indexSeconds * 1000 / SESSIONS).toFixed(1)} ms per recording (extract + one transaction each)\n`,
    formatTable(['search (GET /search, limit 50)', 'n', 'p50 ms', 'p95 ms', 'max ms', 'hits/query'], rows),
  ].join('\n');
}

const out: string[] = [];
const work = mkdtempSync(join(tmpdir(), 'jg-bench-search-'));
let pg: PostgresHandle | undefined;
try {
  if (args.only !== 'postgres') {
    const db = await openDatabase({ dataDir: work });
    try {
      out.push(await run('PGlite (embedded)', db));
    } finally {
      await db.close();
    }
  }
  if (args.only !== 'pglite') {
    let url = args['pg-url'];
    if (!url && postgresAvailable().ok) {
      pg = await startPostgres();
      url = await createTestDatabase(pg.url, `bench_${randomBytes(5).toString('hex')}`);
    }
    if (url) {
      const db = await openDatabase({ dataDir: work, url });
      try {
        out.push(await run('PostgreSQL', db));
      } finally {
        await db.close();
      }
    } else out.push(`\n### PostgreSQL\n\nskipped: ${postgresAvailable().reason ?? 'no PostgreSQL'}`);
  }
} finally {
  await pg?.stop();
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(`\nSearch across sessions (${process.version}, ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at the end); goal: search p95 < 200 ms\n${out.join('\n')}\n`);
