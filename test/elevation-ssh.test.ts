/**
 * Elevation (mode elevate) on an sshd test host, with a real process:
 * `jitgate checkout` is SIGKILLed while its `gpasswd -a` runs on the host
 * (held there on the shadow tools' own lock, /etc/.pwd.lock, by a process in
 * the host), the add then completes without it, and `jitgate reconcile`
 * after the provisioning timeout removes that membership while the one the
 * account had before stays. No test hook exists in product code.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import type { Database } from '../core/db/database.js';
import { migrate } from '../core/db/migrations.js';
import { openDatabase } from '../core/db/open.js';
import { silentLogger } from '../core/logging.js';
import type { AccountStore } from '../provisioner/account-store.js';
import type { ReconcileReport } from '../provisioner/jit-account.service.js';
import { SshAccountStore } from '../provisioner/stores/ssh.store.js';
import { JitFixture } from './fixtures/jit-fixture.js';
import { spawnCli } from './harness/cli.js';
import { createTestDatabase } from './harness/postgres.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from './harness/ssh-host.js';
import { runJitgate } from './harness/worker-process.js';

const avail = sshHostAvailable();
const pgUrl = inject('pgUrl');
const skipReason = !avail.ok ? avail.reason : !pgUrl ? `needs PostgreSQL: ${inject('missing')}` : undefined;
const STORE = 'linux';
const GROUPS = { admins: 'sudo', operators: 'adm' };
const TIMEOUT_S = 20;

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(skipReason !== undefined)(`elevation on an sshd host: checkout SIGKILLed mid-add${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let host: SshHostHandle;
  let db: Database;
  let fx: JitFixture;
  let store: SshAccountStore;
  let dir: string;
  let configPath: string;

  const must = async (cmd: string) => {
    const r = await host.exec(cmd);
    if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr}`);
    return r.stdout;
  };
  /** The group's own member list in /etc/group on the host. */
  const isMember = async (linuxGroup: string, name: string) => (await must(`getent group ${linuxGroup}`)).trim().split(':')[3]!.split(',').includes(name);

  beforeAll(async () => {
    host = await startSshHost();
    const dbUrl = await createTestDatabase(pgUrl, `jgt_elev_ssh_${randomBytes(4).toString('hex')}`);
    db = await openDatabase({ url: dbUrl, dataDir: '/nonexistent', poolSize: 4 });
    await migrate(db);
    store = new SshAccountStore({
      host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey, hostKeySha256: host.hostKeySha256, groups: GROUPS, logger: silentLogger(), timeoutMs: 20_000,
    });
    fx = new JitFixture(db, new Map<string, AccountStore>([[STORE, store]]));
    dir = mkdtempSync(join(tmpdir(), 'jgt-elev-ssh-'));
    const keyPath = join(dir, 'admin.key');
    writeFileSync(keyPath, host.adminPrivateKey, { mode: 0o600 });
    configPath = join(dir, 'jitgate.yaml');
    const cfg = {
      dataDir: join(dir, 'data'),
      log: { level: 'info' },
      database: { url: dbUrl, poolSize: 4 },
      secrets: { key: randomBytes(32).toString('base64') },
      jit: { installationId: fx.installationId, leaseGraceSeconds: 0, provisioningTimeoutSeconds: TIMEOUT_S },
      accountStores: [{ name: STORE, type: 'ssh', host: host.address, port: host.port, username: host.adminUser, privateKey: `file:${keyPath}`, hostKeySha256: host.hostKeySha256, groups: GROUPS }],
    };
    writeFileSync(configPath, stringify(cfg), { mode: 0o600 });
  });

  afterAll(async () => {
    await store?.close();
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await host?.stop();
  });

  it('the add lands after the process died: `jitgate reconcile` (dry run, then real) removes it after the provisioning timeout; the earlier membership stays', async () => {
    const name = `el${randomBytes(4).toString('hex')}`;
    // The person's own account, already in adm (operators) before any session.
    await must(`useradd -m -c 'a person' ${name} && gpasswd -a ${name} adm`);
    const pc = await fx.computer({ enabled: true, mode: 'elevate', deleteOnCheckIn: true, adminGroups: ['operators', 'admins'] });

    // Hold the shadow tools' lock inside the host: the next gpasswd waits on it (up to 15 s).
    await must(`/usr/bin/python3 -c "import fcntl,time; f=open('/etc/.pwd.lock','a'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)" >/run/jgt-pwlock.out 2>&1 & echo $! >/run/jgt-pwlock.pid`);
    await waitFor('the lock to be held', async () => (await host.exec('cat /run/jgt-pwlock.out')).stdout.includes('held'), 10_000);

    const child = spawnCli(['checkout', pc.name, '--for', name, '--elevate', '--config', configPath], {});
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, sig) => r(sig)));
    await waitFor('gpasswd to run on the host', async () => (await host.exec('pgrep -x gpasswd')).code === 0, 90_000);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const sessionId = /session ([0-9a-f-]{36}) requested on/.exec(err)?.[1];
    expect(sessionId, err).toBeDefined();
    // Release the lock: the add the dead process asked for completes on the host.
    await must('kill $(cat /run/jgt-pwlock.pid)');
    await waitFor('gpasswd to finish', async () => (await host.exec('pgrep -x gpasswd')).code !== 0, 30_000);
    expect(await isMember('sudo', name)).toBe(true);
    expect(await isMember('adm', name)).toBe(true);
    const s = (await fx.repo.getSession(sessionId!))!;
    expect(s.state).toBe('provisioning');
    const rows = await fx.repo.elevationsOfSession(s.id);
    expect(Object.fromEntries(rows.map((e) => [e.group, [e.addedByJitgate, e.state]]))).toEqual({ operators: [false, 'active'], admins: [true, 'adding'] });

    await waitFor('the provisioning timeout to pass', async () => Date.now() > s.createdAt.getTime() + TIMEOUT_S * 1000 + 1000);
    const reconcile = async (...args: string[]) => {
      const r = await runJitgate(['reconcile', '--json', ...args], configPath, {});
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const report = JSON.parse(r.stdout) as ReconcileReport;
      return Object.fromEntries(report.elevations.filter((e) => e.sessionId === s.id).map((e) => [e.group, { action: e.action, done: e.done }]));
    };
    expect(await reconcile('--dry-run')).toEqual({ operators: { action: 'kept', done: false }, admins: { action: 'removed', done: false } });
    expect(await isMember('sudo', name)).toBe(true);
    // The dead process's elevation lock is leased (60 s): the sweep waits it out, then acts.
    expect(await reconcile()).toEqual({ operators: { action: 'kept', done: true }, admins: { action: 'removed', done: true } });
    expect(await isMember('sudo', name)).toBe(false);
    expect(await isMember('adm', name)).toBe(true);
    expect((await fx.repo.getSession(s.id))!.state).toBe('ended');
  }, 300_000);
});
