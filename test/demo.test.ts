import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from 'otplib';
import { writeAskpass } from '../bench/ssh-front-door-rig.js';
import { redisAvailable } from './harness/redis.js';
import { sshHostAvailable } from './harness/ssh-host.js';
import { processesMentioning, spawnCli } from './harness/cli.js';

const redis = redisAvailable();
const ssh = sshHostAvailable();

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A cookie-carrying client of the gateway's HTTP API (CSRF header on changes). */
class Api {
  cookie = '';
  csrf = '';
  constructor(readonly base: string) {}
  async call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const headers: Record<string, string> = {};
    if (this.cookie) headers.cookie = `jitgate_session=${this.cookie}`;
    if (method !== 'GET') headers['x-csrf-token'] = this.csrf;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(`${this.base}/api/v1${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const m = /jitgate_session=([^;]*)/.exec(r.headers.get('set-cookie') ?? '');
    if (m) this.cookie = m[1] ?? '';
    const text = await r.text();
    const me = path === '/auth/me' && r.ok ? (JSON.parse(text) as { csrfToken: string }) : null;
    if (me) this.csrf = me.csrfToken;
    return { status: r.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }
}

describe.skipIf(!redis.ok || !ssh.ok)(`jitgate demo${ssh.ok ? '' : ` (skipped: ${ssh.reason ?? ''})`}`, () => {
  it('starts a demo computer and the gateway; the setup link makes an admin who opens a JIT session through the SSH front door; Ctrl-C removes everything', async () => {
    const child = spawnCli(['demo', '--port', '0', '--ssh-port', '0'], { JITGATE_LOG__LEVEL: 'warn' });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    await waitFor(() => /data directory \((\S+)\)/.test(out) || child.exitCode !== null, 120_000, `demo to start (${err})`);
    const dataDir = /data directory \((\S+)\)/.exec(out)?.[1];
    const url = /running on (http:\/\/\S+)/.exec(out)?.[1];
    const setup = /open (http:\/\/\S+\/setup#(\S+)) /.exec(out);
    expect(dataDir, out + err).toBeTruthy();
    expect(url).toBeTruthy();
    expect(setup).toBeTruthy();

    // The demo computer is a real sshd in its own network namespace, pinned in the inventory.
    const env = JSON.parse(readFileSync(join(dataDir!, 'demo-host', 'env.json'), 'utf8')) as { netns: string };
    expect(existsSync(`/run/netns/${env.netns}`)).toBe(true);
    expect((await fetch(`${url!}/readyz`)).status).toBe(200);
    expect((await fetch(`${url!}/`)).status).toBe(200);
    const check = (await (await fetch(`${url!}/api/v1/auth/bootstrap/${setup![2]!}`)).json()) as { valid: boolean };
    expect(check.valid).toBe(true);

    // A newcomer's first session: the setup link makes the administrator (password + TOTP),
    // they register an SSH key and open a session on the demo computer through the SSH front door.
    const api = new Api(url!);
    await api.call('GET', '/auth/me');
    const boot = await api.call('POST', '/auth/bootstrap', { token: setup![2], login: 'newbie', displayName: 'New Admin', password: 'a long demo passphrase' });
    expect(boot.json).toEqual({ next: 'totp-enrollment' });
    await api.call('GET', '/auth/me');
    const enrollment = await api.call('POST', '/auth/totp/enrollment');
    const secret = String(enrollment.json.secret);
    const confirmed = await api.call('POST', '/auth/totp/enrollment/confirm', { code: await generate({ secret }) });
    expect(confirmed.status).toBe(200);
    const enrolledStep = Math.floor(Date.now() / 30_000);
    await api.call('GET', '/auth/me');
    const home = mkdtempSync(join(tmpdir(), 'jg-demo-client-'));
    const key = join(home, 'id_ed25519');
    expect(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]).status).toBe(0);
    const added = await api.call('POST', '/me/ssh-keys', { publicKey: readFileSync(`${key}.pub`, 'utf8').trim(), label: 'laptop' });
    expect(added.status).toBe(201);
    const computers = await api.call('GET', '/computers');
    expect(JSON.stringify(computers.json)).toContain('demo-linux');

    // The front door's host key, pinned for the client (generated in the data directory).
    const hostPub = spawnSync('ssh-keygen', ['-y', '-f', join(dataDir!, 'ssh_host_ed25519_key')], { encoding: 'utf8' }).stdout.trim();
    const sshPort = /ssh -p (\d+) /.exec(out)?.[1];
    expect(hostPub).toMatch(/^ssh-ed25519 /);
    writeFileSync(join(home, 'known_hosts'), `[127.0.0.1]:${sshPort!} ${hostPub}\n`);
    // A TOTP code is good once: wait for the step after the one spent on enrollment.
    await waitFor(() => Math.floor(Date.now() / 30_000) > enrolledStep, 35_000, 'the next TOTP step');
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const c = spawn('ssh', ['-F', '/dev/null', '-o', `UserKnownHostsFile=${join(home, 'known_hosts')}`, '-o', 'StrictHostKeyChecking=yes',
        '-o', 'IdentitiesOnly=yes', '-o', 'PreferredAuthentications=publickey,keyboard-interactive', '-i', key,
        '-p', sshPort!, '-n', 'newbie+demo-linux@127.0.0.1', 'id; sudo -n id -un'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH, HOME: home, SSH_ASKPASS: writeAskpass(home, secret), SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' },
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
    const account = /uid=\d+\((newbie_[a-z0-9]{6})\)/.exec(run.stdout)?.[1];
    expect(account, run.stdout).toBeTruthy();
    expect(run.stdout).toMatch(/\(sudo\)/);
    // The admin group really is admin: passwordless sudo on the demo computer (the person never knows the password).
    expect(run.stdout.split('\n')).toContain('root');
    // The demo computer's own name resolves inside its namespace: sudo prints no "unable to resolve host".
    expect(run.stderr).not.toMatch(/unable to resolve host/);
    // Checked in: the account is gone from the demo computer.
    const hostPid = (JSON.parse(readFileSync(join(dataDir!, 'demo-host', 'env.json'), 'utf8')) as { pid: number }).pid;
    await waitFor(
      () => spawnSync('nsenter', ['-t', String(hostPid), '-m', '-u', '-i', '-n', '-p', '--', 'getent', 'passwd', account!]).status === 2,
      60_000, `${account!} to be deleted on the demo computer`,
    );

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    // Ctrl-C ends with a final line saying it is done, not at "stopping the demo…".
    expect(out.trimEnd().split('\n').at(-1)).toMatch(/^stopped: /);
    expect(existsSync(`/run/netns/${env.netns}`)).toBe(false);
    expect(existsSync(dataDir!)).toBe(false);
    await waitFor(() => processesMentioning(dataDir!).length === 0, 10_000, 'demo children to exit');
  }, 240_000);

  it('refuses at once, before starting any demo computer, when the web port is taken, and says how to pick another', async () => {
    const { createServer } = await import('node:net');
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    try {
      const child = spawnCli(['demo', '--port', String(port), '--ssh-port', '0'], { JITGATE_LOG__LEVEL: 'warn' });
      let out = '';
      let err = '';
      child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      expect(code).toBe(1);
      expect(err).toContain(`port ${port} on 127.0.0.1 is already in use`);
      expect(err).toMatch(/--port/);
      expect(out).not.toMatch(/starting the demo computer/);
    } finally {
      busy.close();
    }
  }, 60_000);
});
