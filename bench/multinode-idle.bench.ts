/**
 * Many idle browser SSH sessions spread over two gateways (issue 18), on the
 * multi-node deployment of scripts/multinode.sh: PostgreSQL, Redis, two
 * `--role gateway` and two `--role worker` processes, HAProxy (leastconn) in
 * front; an sshd test host as the computer, the Linux (SSH) store, a fresh JIT
 * account per session (maximum-security preset), one technician per session
 * signed in with password + TOTP through HAProxy.
 *
 *   node --import tsx bench/multinode-idle.bench.ts [--sessions 500] [--parallel 8]
 *
 * Prints: session start p50/p95 (websocket open → the shell proved the JIT
 * account) per band of sessions already held; each gateway's RSS before and
 * with the sessions held and the RSS per session; then SIGKILLs the gateway
 * holding the most sessions and times until the workers have ended all of its
 * sessions and removed every one of their accounts from the host. Needs root,
 * PostgreSQL, Redis, HAProxy and sshd. Bounded by a hard deadline.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { generate, generateSecret } from 'otplib';
import { stringify } from 'yaml';
import type { Database } from '../core/db/database.js';
import { openDatabase } from '../core/db/open.js';
import { SecretBox } from '../core/secret-box.js';
import { createPerson } from '../gateway/auth/index.js';
import { JIT_PRESETS } from '../provisioner/jit-settings.js';
import { multinodeAvailable, startMultinode, type Multinode } from '../test/harness/multinode.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from '../test/harness/ssh-host.js';
import { WsTerminal } from '../test/harness/ws-terminal.js';
import { runBench } from './lib/run.js';
import { formatTable, percentile } from './lib/stats.js';

const { values: args } = parseArgs({ options: { sessions: { type: 'string', default: '500' }, parallel: { type: 'string', default: '8' } } });
const SESSIONS = Number(args.sessions);
const PARALLEL = Number(args.parallel);
if (!Number.isInteger(SESSIONS) || SESSIONS < 2 || !Number.isInteger(PARALLEL) || PARALLEL < 1) throw new Error('--sessions ≥ 2 and --parallel ≥ 1, integers');
const DEADLINE_MS = 40 * 60_000;
const PASSWORD = 'correct horse battery staple 18';
const ADMIN_GROUP = 'sudo';
const t00 = performance.now();
const progress = (what: string) => console.error(`[${((performance.now() - t00) / 1000).toFixed(1)} s] ${what}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Held {
  term: WsTerminal;
  login: string;
  account: string;
  sessionId: string;
  startMs: number;
}

/** Resident set size of a process, KiB, from /proc. */
function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

/** Median of 5 samples a second apart: RSS moves with the collector between samples. */
async function steadyRss(pid: number): Promise<number> {
  const s: number[] = [];
  for (let i = 0; i < 5; i++) {
    s.push(rssKiB(pid));
    await sleep(1000);
  }
  return percentile(s, 50);
}

async function main(): Promise<void> {
  for (const a of [sshHostAvailable(), multinodeAvailable()]) if (!a.ok) throw new Error(`cannot run: ${a.reason ?? ''}`);
  const dir = mkdtempSync(join(tmpdir(), 'jgt-mnidle-'));
  let host: SshHostHandle | null = null;
  let nodes: Multinode | null = null;
  let db: Database | null = null;
  const held: Held[] = [];
  try {
    progress('starting the sshd host and scripts/multinode.sh up…');
    host = await startSshHost();
    const orgName = `org-${randomBytes(3).toString('hex')}`;
    const configPath = join(dir, 'jitgate.yaml');
    writeFileSync(configPath, stringify({
      log: { level: 'info' },
      accountStores: [{
        name: 'linux', type: 'ssh', host: host.address, port: host.port, username: host.adminUser, privateKey: `file:${host.adminKeyPath}`,
        hostKeySha256: host.hostKeySha256, groups: { admins: ADMIN_GROUP }, organizations: [orgName],
      }],
    }), { mode: 0o600 });
    nodes = await startMultinode({ configPath });
    const n = nodes;
    const h = host;
    const box = SecretBox.fromBase64(n.secretKey);
    db = await openDatabase({ url: n.databaseUrl, dataDir: '/nonexistent', poolSize: 4 });
    const d = db;
    const orgId = randomUUID();
    await d.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, orgName, String(100_000 + Math.floor(Math.random() * 800_000))]);
    const computerId = randomUUID();
    await d.query(
      `INSERT INTO computers (id, organization_id, name, address, protocols, ssh_port, local_store, jit, policy)
       VALUES ($1, $2, $3, $4, '{ssh}', $5, 'linux', $6, $7)`,
      [computerId, orgId, `idle-${randomBytes(3).toString('hex')}`, h.address, h.port,
        JSON.stringify({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' }), JSON.stringify({ sshHostKeySha256: h.hostKeySha256 })],
    );

    async function http(method: string, path: string, cookie: string, body?: object, csrf?: string): Promise<{ status: number; json: Record<string, unknown>; setCookie: string[] }> {
      const res = await fetch(`${n.httpUrl}${path}`, {
        method, headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(cookie ? { cookie } : {}), ...(csrf ? { 'x-csrf-token': csrf } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown>, setCookie: res.headers.getSetCookie() };
    }

    /** A technician signed in through HAProxy with password + TOTP (not timed). */
    async function signedIn(): Promise<{ login: string; cookie: string; csrf: string }> {
      const login = `t${randomBytes(4).toString('hex')}`;
      const { id } = await createPerson(d, { login, displayName: login, role: 'technician', organizationId: orgId, password: PASSWORD });
      const secret = generateSecret();
      await d.query('UPDATE people SET totp_secret_enc = $2, totp_enabled = true WHERE id = $1', [id, box.encrypt(secret, `totp:${id}`)]);
      const first = await http('POST', '/api/v1/auth/sign-in', '', { login, password: PASSWORD });
      if (first.status !== 200) throw new Error(`sign-in answered ${first.status}`);
      const cookie = first.setCookie.map((c) => c.split(';')[0]!).find((c) => c.startsWith('jitgate_session='))!;
      const csrf = String((await http('GET', '/api/v1/auth/me', cookie)).json.csrfToken);
      const totp = await http('POST', '/api/v1/auth/totp', cookie, { code: await generate({ secret }) }, csrf);
      if (totp.status !== 200) throw new Error(`TOTP step answered ${totp.status}`);
      return { login, cookie, csrf: String((await http('GET', '/api/v1/auth/me', cookie)).json.csrfToken) };
    }

    /** Open one browser terminal through HAProxy; timed from websocket open to the shell naming its JIT account. */
    async function open(): Promise<Held> {
      const who = await signedIn();
      const t0 = performance.now();
      const term = new WsTerminal(`${n.httpUrl.replace('http', 'ws')}/api/v1/terminal?computer=${computerId}&csrf=${encodeURIComponent(who.csrf)}`, { headers: { cookie: who.cookie }, timeoutMs: 180_000 });
      await term.opened();
      await term.waitForMessage('ready');
      term.send('echo "who=$(id -un)"\n');
      const m = await term.waitForOutput(new RegExp(`who=(${who.login}_[a-z0-9]{6})`));
      const startMs = performance.now() - t0;
      const row = (await d.query<{ id: string }>("SELECT id FROM sessions WHERE person_login = $1 AND state <> 'ended'", [who.login]))[0]!;
      return { term, login: who.login, account: m[1]!, sessionId: row.id, startMs };
    }

    const gws = ['gw1', 'gw2'] as const;
    const pid = (g: (typeof gws)[number]) => n.pid(g) ?? (() => { throw new Error(`${g} has no pid`); })();
    const rssBefore = Object.fromEntries(await Promise.all(gws.map(async (g) => [g, await steadyRss(pid(g))] as const))) as Record<(typeof gws)[number], number>;

    progress(`opening ${SESSIONS} sessions, ${PARALLEL} at a time…`);
    const bands: { from: number; to: number; ms: number[] }[] = [];
    const bandSize = Math.max(1, Math.ceil(SESSIONS / 5));
    for (let from = 0; from < SESSIONS; from += bandSize) bands.push({ from, to: Math.min(SESSIONS, from + bandSize), ms: [] });
    let next = 0;
    let failed = 0;
    await Promise.all(Array.from({ length: PARALLEL }, async () => {
      while (next < SESSIONS) {
        const i = next++;
        try {
          const s = await open();
          held.push(s);
          bands.find((b) => i >= b.from && i < b.to)!.ms.push(s.startMs);
        } catch (err) {
          failed++;
          progress(`session ${i} failed: ${String(err).slice(0, 1500)}`);
          // What the gateways and workers said about it (warnings, errors), to tell why.
          for (const p of [...gws, 'w1', 'w2'] as const) for (const l of n.log(p).split('\n').filter((x) => /"level":(40|50)/.test(x)).slice(-3)) progress(`  ${p}: ${l.slice(0, 1500)}`);
        }
        if ((i + 1) % 50 === 0) progress(`${i + 1} opened (load ${loadavg()[0]!.toFixed(1)})`);
      }
    }));

    // Which gateway holds each session: the `holder` column names the gateway's id; a process's log names its sessions.
    const holders = await d.query<{ id: string; holder: string | null }>('SELECT id, holder FROM sessions WHERE id = ANY($1)', [held.map((s) => s.sessionId)]);
    const holderOf = new Map(holders.map((r) => [r.id, r.holder ?? '']));
    const gwOfHolder = new Map<string, (typeof gws)[number]>();
    for (const g of gws) {
      const log = n.log(g);
      const sample = held.find((s) => !gwOfHolder.has(holderOf.get(s.sessionId)!) && log.includes(s.sessionId));
      if (sample) gwOfHolder.set(holderOf.get(sample.sessionId)!, g);
    }
    const byGw = Object.fromEntries(gws.map((g) => [g, held.filter((s) => gwOfHolder.get(holderOf.get(s.sessionId)!) === g)])) as Record<(typeof gws)[number], Held[]>;
    const rssHeld = Object.fromEntries(await Promise.all(gws.map(async (g) => [g, await steadyRss(pid(g))] as const))) as Record<(typeof gws)[number], number>;

    // Every held session is still alive end to end before the kill.
    const victim = byGw.gw1.length >= byGw.gw2.length ? 'gw1' : 'gw2';
    const gone = byGw[victim];
    progress(`SIGKILL ${victim} with ${gone.length} sessions…`);
    const tKill = performance.now();
    await n.kill(victim);
    const ids = gone.map((s) => s.sessionId);
    let endedAllMs = 0;
    for (;;) {
      const live = await d.query<{ c: string }>("SELECT count(*)::text AS c FROM sessions WHERE id = ANY($1) AND state <> 'ended'", [ids]);
      if (Number(live[0]!.c) === 0) {
        endedAllMs ||= performance.now() - tKill;
        const left = (await h.exec('getent passwd | cut -d: -f1')).stdout.split('\n');
        const accounts = new Set(gone.map((s) => s.account));
        if (!left.some((a) => accounts.has(a))) break;
      }
      if (performance.now() - tKill > 15 * 60_000) throw new Error('the killed gateway\'s sessions were not torn down within 15 minutes');
      await sleep(500);
    }
    const tornDownMs = performance.now() - tKill;

    const starts = held.map((s) => s.startMs);
    const rows: string[][] = bands.map((b) => [`${b.from + 1}–${b.to}`, String(b.ms.length), percentile(b.ms, 50).toFixed(0), percentile(b.ms, 95).toFixed(0)]);
    rows.push(['all', String(starts.length), percentile(starts, 50).toFixed(0), percentile(starts, 95).toFixed(0)]);
    console.log(`\n${SESSIONS} idle browser SSH sessions through HAProxy over two gateways, ${PARALLEL} opening at a time (load average ${loadavg()[0]!.toFixed(1)}; ${failed} failed)\n`);
    console.log(formatTable(['sessions held when opened', 'n', 'start p50 ms', 'start p95 ms'], rows));
    console.log('');
    console.log(formatTable(['gateway', 'sessions', 'RSS before MiB', 'RSS held MiB', 'RSS per session KiB'], gws.map((g) => [
      g, String(byGw[g].length), (rssBefore[g] / 1024).toFixed(1), (rssHeld[g] / 1024).toFixed(1), byGw[g].length ? ((rssHeld[g] - rssBefore[g]) / byGw[g].length).toFixed(1) : '—',
    ])));
    console.log('');
    console.log(formatTable(['SIGKILL of', 'its sessions', 'all ended s', 'all accounts removed s'], [[victim, String(gone.length), (endedAllMs / 1000).toFixed(1), (tornDownMs / 1000).toFixed(1)]]));
  } finally {
    progress('closing…');
    for (const s of held) s.term.close();
    await db?.close().catch(() => undefined);
    await nodes?.down().catch(() => undefined);
    await host?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

runBench(main, DEADLINE_MS);
