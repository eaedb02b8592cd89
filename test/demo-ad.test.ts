import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { Client } from 'ldapts';
import { generate } from 'otplib';
import { writeAskpass } from '../bench/ssh-front-door-rig.js';
import { demoDomainUnavailable } from '../app/demo-ad-target.js';
import { processesMentioning, ROOT, spawnCli } from './harness/cli.js';
import { redisAvailable } from './harness/redis.js';
import { sambaAdAvailable } from './harness/samba-ad.js';
import { sshHostAvailable } from './harness/ssh-host.js';
import { WsTerminal } from './harness/ws-terminal.js';

/**
 * `jitgate demo` with samba present: besides demo-linux it starts a
 * throw-away Samba AD DC whose sshd takes domain accounts (winbind), and a
 * newcomer's browser terminal on `demo-domain` runs as a JIT *domain* account
 * created in AD over LDAPS, in JIT Admins, deleted at check-in after being
 * logged off the host (its processes killed) through the computer's local store.
 */
const redis = redisAvailable();
const ssh = sshHostAvailable();
const samba = sambaAdAvailable();
const skip = !redis.ok ? 'no redis-server' : !ssh.ok ? ssh.reason : !samba.ok ? samba.reason : (demoDomainUnavailable() ?? undefined);

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A cookie-carrying client of the gateway's HTTP API (CSRF header on changes). */
class Api {
  cookie = '';
  csrf = '';
  constructor(readonly base: string) {}
  async call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const headers: Record<string, string> = {};
    if (this.cookie) headers.cookie = `jitgate_session=${this.cookie}`;
    if (method !== 'GET') headers['x-csrf-token'] = this.csrf;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(`${this.base}/api/v1${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const m = /jitgate_session=([^;]*)/.exec(r.headers.get('set-cookie') ?? '');
    if (m) this.cookie = m[1] ?? '';
    const text = await r.text();
    const json: unknown = text ? JSON.parse(text) : {};
    if (path === '/auth/me' && r.ok) this.csrf = (json as { csrfToken: string }).csrfToken;
    return { status: r.status, json };
  }
}

interface DomainEnv {
  netns: string;
  url: string;
  caCertPath: string;
  baseDn: string;
  jitOu: string;
  bindDn: string;
  bindPassword: string;
  adminGroupDns: Record<string, string>;
  initPid: number;
}

describe.skipIf(skip !== undefined)(`jitgate demo with a domain computer${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('demo-domain: a browser terminal, then OpenSSH through the front door, run as JIT AD accounts in JIT Admins that exist in AD only while the session is open and are logged off the host (processes killed) before deletion; Ctrl-C removes both hosts', async () => {
    const t0 = Date.now();
    const child = spawnCli(['demo', '--port', '0', '--ssh-port', '0'], { JITGATE_LOG__LEVEL: 'warn' });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    let dataDir: string | undefined;
    try {
      await waitFor(() => /data directory \((\S+)\)/.test(out) || child.exitCode !== null, 120_000, `demo to start (${err})`);
      const startMs = Date.now() - t0;
      dataDir = /data directory \((\S+)\)/.exec(out)?.[1];
      const url = /running on (http:\/\/\S+)/.exec(out)?.[1];
      const setup = /open (http:\/\/\S+\/setup#(\S+)) /.exec(out);
      expect(dataDir, out + err).toBeTruthy();
      expect(out, 'the startup text names the domain computer').toMatch(/demo-domain → SSH: .*domain account JITTEST\\<you>_xxxxxx/);
      expect(out).not.toMatch(/demo-domain skipped/);
      console.log(`jitgate demo with demo-domain ready in ${startMs} ms`);

      // Both demo computers are real, each in its own network namespace.
      const linux = JSON.parse(readFileSync(join(dataDir!, 'demo-host', 'env.json'), 'utf8')) as { netns: string };
      const dom = JSON.parse(readFileSync(join(dataDir!, 'demo-domain', 'env.json'), 'utf8')) as DomainEnv;
      expect(existsSync(`/run/netns/${linux.netns}`)).toBe(true);
      expect(existsSync(`/run/netns/${dom.netns}`)).toBe(true);
      const caCert = readFileSync(dom.caCertPath, 'utf8');
      const ldap = async <T>(fn: (c: Client) => Promise<T>): Promise<T> => {
        const c = new Client({ url: dom.url, tlsOptions: { ca: [caCert] } });
        try {
          await c.bind(dom.bindDn, dom.bindPassword);
          return await fn(c);
        } finally {
          await c.unbind().catch(() => undefined);
        }
      };
      const inAd = (name: string) =>
        ldap(async (c) => (await c.search(dom.baseDn, { filter: `(&(objectClass=user)(sAMAccountName=${name}))`, attributes: ['distinguishedName', 'memberOf', 'description'] })).searchEntries);

      // The newcomer: setup link → administrator with password + TOTP.
      const api = new Api(url!);
      await api.call('GET', '/auth/me');
      const boot = await api.call('POST', '/auth/bootstrap', { token: setup![2], login: 'newbie', displayName: 'New Admin', password: 'a long demo passphrase' });
      expect(boot.json).toEqual({ next: 'totp-enrollment' });
      await api.call('GET', '/auth/me');
      const enrollment = (await api.call('POST', '/auth/totp/enrollment')).json as { secret: string };
      expect((await api.call('POST', '/auth/totp/enrollment/confirm', { code: await generate({ secret: enrollment.secret }) })).status).toBe(200);
      const enrolledStep = Math.floor(Date.now() / 30_000);
      await api.call('GET', '/auth/me');
      const computers = JSON.stringify((await api.call('GET', '/computers')).json);
      const domainComputer = /"id":"([^"]+)"[^{}]*"name":"demo-domain"/.exec(computers)?.[1];
      expect(domainComputer, computers).toBeTruthy();
      expect(computers).toMatch(/"name":"demo-domain"[^{}]*"domainStore":"demo-ad"/);

      // Sessions → demo-domain → SSH, as the browser does it.
      const term = new WsTerminal(
        `${url!.replace(/^http/, 'ws')}/api/v1/terminal?computer=${domainComputer!}&accountType=domain&cols=120&rows=40&csrf=${encodeURIComponent(api.csrf)}`,
        { headers: { cookie: `jitgate_session=${api.cookie}` }, timeoutMs: 90_000 },
      );
      await term.opened();
      const ready = await term.waitForMessage('ready');
      const account = String(ready.account);
      expect(account).toMatch(/^newbie_[a-z0-9]{6}$/);

      // While the session is open the account is a real AD account, in the JIT OU and in JIT Admins.
      const open = await inAd(account);
      expect(open).toHaveLength(1);
      expect(String(open[0]!.distinguishedName)).toMatch(new RegExp(`,${dom.jitOu}$`, 'i'));
      expect(([] as unknown[]).concat(open[0]!.memberOf ?? []).map(String)).toContain(dom.adminGroupDns['JIT Admins']);
      expect(String(open[0]!.description)).toMatch(/^jitgate:/);

      // Inside the demo host winbind resolves it; this machine's own NSS (its /etc) knows nothing of it.
      const inHost = spawnSync('nsenter', ['-t', String(dom.initPid), '-m', '-p', '--', 'getent', 'passwd', account], { encoding: 'utf8' });
      expect(inHost.stdout, inHost.stderr).toMatch(new RegExp(`^JITTEST\\\\${account}:\\*:\\d+:\\d+:[^:]*:/home/${account}:/bin/bash$`, 'm'));
      expect(spawnSync('getent', ['passwd', account]).status).toBe(2);
      expect(readFileSync('/etc/nsswitch.conf', 'utf8')).not.toMatch(/winbind/);

      // The shell runs as that domain account (winbind on a DC names it JITTEST\name) and `id` shows the admin group.
      const mark = term.text.length;
      term.send('id; echo "home=$HOME"; echo done-$((6*7))\r');
      await term.waitForOutput(/done-42/, mark);
      const shown = term.text.slice(mark);
      expect(shown).toMatch(new RegExp(`uid=\\d+\\(JITTEST\\\\${account}\\)`));
      expect(shown).toMatch(/\(JITTEST\\jit admins\)/);
      expect(shown).toContain(`home=/home/${account}`);

      // A process that outlives the shell (own session, no terminal: the hang-up at close does not reach it).
      const uid = /:\*:(\d+):/.exec(inHost.stdout)?.[1];
      expect(uid, inHost.stdout).toBeTruthy();
      const inHostPs = (...args: string[]) => spawnSync('nsenter', ['-t', String(dom.initPid), '-m', '-p', '--', 'pgrep', '-a', ...args], { encoding: 'utf8' });
      const mark2 = term.text.length;
      term.send('setsid sleep 6007 </dev/null >/dev/null 2>&1 & echo started-$((6*8))\r');
      await term.waitForOutput(/started-48/, mark2);
      await waitFor(() => inHostPs('-u', uid!, '-f', '^sleep 6007$').status === 0, 10_000, 'the lingering process');

      // Closing the tab checks the session in: the account is logged off on the host (its processes
      // killed through the computer's local store, demo-domain-local), then deleted from AD.
      term.close();
      await term.waitClosed(30_000);
      await waitFor(async () => (await inAd(account)).length === 0, 60_000, `${account} to be deleted from AD`);
      // The log-off comes before the deletion, so nothing of the account may be left by now.
      const left = inHostPs('-u', uid!);
      expect(left.status, `processes of ${account} (uid ${uid!}) left on the host: ${left.stdout}`).toBe(1);
      const trail = ((await api.call('GET', `/audit?account=${account}&limit=1000`)).json as { events: { type: string; outcome: string; data: { stores?: string[] } }[] }).events.reverse();
      const loggedOff = trail.findIndex((e) => e.type === 'account.logged_off');
      expect(trail[loggedOff], JSON.stringify(trail)).toMatchObject({ outcome: 'success', data: { stores: ['demo-domain-local'] } });
      expect(loggedOff).toBeLessThan(trail.findIndex((e) => e.type === 'account.deleted'));

      // The session was recorded, and its recording verifies.
      await waitFor(async () => JSON.stringify((await api.call('GET', '/recordings?computer=demo-domain')).json).includes(account), 30_000, 'the recording');
      const recs = (await api.call('GET', '/recordings?computer=demo-domain')).json as { recordings: { id: string; account: string; integrity: string }[] };
      const rec = recs.recordings.find((r) => r.account === account);
      expect(rec?.integrity).toBe('ok');
      const cast = await fetch(`${url!}/api/v1/recordings/${rec!.id}/file`, { headers: { cookie: `jitgate_session=${api.cookie}` } });
      expect(cast.status).toBe(200);
      expect(await cast.text()).toContain('done-42');

      // Or from a terminal, as the startup text says: OpenSSH through the front door (public key + TOTP).
      const home = mkdtempSync(join(tmpdir(), 'jg-demo-ad-client-'));
      try {
        const key = join(home, 'id_ed25519');
        expect(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]).status).toBe(0);
        expect((await api.call('POST', '/me/ssh-keys', { publicKey: readFileSync(`${key}.pub`, 'utf8').trim(), label: 'laptop' })).status).toBe(201);
        const hostPub = spawnSync('ssh-keygen', ['-y', '-f', join(dataDir!, 'ssh_host_ed25519_key')], { encoding: 'utf8' }).stdout.trim();
        const sshPort = /ssh -p (\d+) \S+\+demo-domain@/.exec(out)?.[1];
        expect(sshPort, out).toBeTruthy();
        writeFileSync(join(home, 'known_hosts'), `[127.0.0.1]:${sshPort!} ${hostPub}\n`);
        // A TOTP code is good once: wait for the step after the one spent on enrollment.
        await waitFor(() => Math.floor(Date.now() / 30_000) > enrolledStep, 35_000, 'the next TOTP step');
        const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
          const c = spawn('ssh', ['-F', '/dev/null', '-o', `UserKnownHostsFile=${join(home, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes',
            '-o', 'IdentitiesOnly=yes', '-o', 'PreferredAuthentications=publickey,keyboard-interactive', '-i', key,
            '-p', sshPort!, '-n', 'newbie+demo-domain@127.0.0.1', 'id; sudo -n id -un'], {
            stdio: ['ignore', 'pipe', 'pipe'],
            env: { PATH: process.env.PATH, HOME: home, SSH_ASKPASS: writeAskpass(home, enrollment.secret), SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' },
          });
          let so = '';
          let se = '';
          const timer = setTimeout(() => c.kill('SIGKILL'), 90_000);
          c.stdout.on('data', (d: Buffer) => (so += d.toString()));
          c.stderr.on('data', (d: Buffer) => (se += d.toString()));
          c.on('error', reject);
          c.on('close', (code) => {
            clearTimeout(timer);
            resolve({ code, stdout: so, stderr: se });
          });
        });
        expect(run.code, run.stderr).toBe(0);
        const second = /uid=\d+\(JITTEST\\(newbie_[a-z0-9]{6})\)/.exec(run.stdout)?.[1];
        expect(second, run.stdout).toBeTruthy();
        expect(second).not.toBe(account);
        expect(run.stdout).toMatch(/\(JITTEST\\jit admins\)/);
        // The domain's JIT admin group may use sudo without a password (the person never sees it).
        expect(run.stdout.split('\n')).toContain('root');
        await waitFor(async () => (await inAd(second!)).length === 0, 60_000, `${second!} to be deleted from AD`);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }

      // Ctrl-C: both namespaces, every process in them and the data directory go.
      const pid = dom.initPid;
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(existsSync(`/run/netns/${linux.netns}`)).toBe(false);
      expect(existsSync(`/run/netns/${dom.netns}`)).toBe(false);
      expect(existsSync(dataDir!)).toBe(false);
      await waitFor(() => processesMentioning(dataDir!).length === 0, 10_000, 'demo children to exit');
      // The host's PID-namespace init (killed with the namespace; reaped a moment later).
      await waitFor(() => !existsSync(`/proc/${pid}/cmdline`) || !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('demo-ad-host-init'), 10_000, 'the domain host init to exit');
    } finally {
      if (child.exitCode === null) {
        child.kill('SIGINT');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 40_000))]);
      }
      // Nothing of the demo may remain on this machine (a failed run included).
      if (dataDir) spawnSync('bash', [join(ROOT, 'scripts/demo-ad-host.sh'), 'down', join(dataDir, 'demo-domain')], { stdio: 'ignore' });
    }
  }, 300_000);

  it('offline (the winbind modules cannot be fetched): demo-ad-host.sh exits 3 with the reason and leaves nothing behind', () => {
    const cache = mkdtempSync(join(tmpdir(), 'jg-demo-ad-cache-'));
    const state = join(mkdtempSync(join(tmpdir(), 'jg-demo-ad-state-')), 'h');
    const before = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    try {
      // A network namespace of its own has no route anywhere: apt-get download fails.
      const r = spawnSync('unshare', ['--net', 'bash', join(ROOT, 'scripts/demo-ad-host.sh'), 'up', state], {
        encoding: 'utf8', env: { ...process.env, JITGATE_TEST_CACHE: cache }, timeout: 120_000,
      });
      expect(r.status, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/could not fetch libnss-winbind and libpam-winbind/);
      expect(existsSync(join(state, 'env.json'))).toBe(false);
      expect(readdirSync(cache).filter((f) => f !== '.winbind-modules.lock')).toEqual([]);
      const after = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
      expect(after.split('\n').filter((l) => l.startsWith('jgt-ad-') && !before.includes(l.split(' ')[0]!))).toEqual([]);
    } finally {
      rmSync(cache, { recursive: true, force: true });
      rmSync(join(state, '..'), { recursive: true, force: true });
    }
  }, 150_000);
});
