/**
 * Elevation (mode elevate) on an sshd test host, with a real process:
 * `jitgate checkout` is SIGKILLed while its `gpasswd -a` runs on the host
 * (held there on the shadow tools' own lock, /etc/.pwd.lock, by a process in
 * the host), the add then completes without it, and `jitgate reconcile`
 * after the provisioning timeout removes that membership while the one the
 * account had before stays. No test hook exists in product code.
 * (Mid-remove and the host unreachable: test/elevation-ssh-faults.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawnCli } from './harness/cli.js';
import { sshHostAvailable } from './harness/ssh-host.js';
import { startElevationSshEnv, waitFor, type ElevationSshEnv } from './fixtures/elevation-ssh-env.js';

const avail = sshHostAvailable();
const pgUrl = inject('pgUrl');
const skipReason = !avail.ok ? avail.reason : !pgUrl ? `needs PostgreSQL: ${inject('missing')}` : undefined;
const TIMEOUT_S = 20;

describe.skipIf(skipReason !== undefined)(`elevation on an sshd host: checkout SIGKILLed mid-add${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let env: ElevationSshEnv;

  beforeAll(async () => {
    env = await startElevationSshEnv(pgUrl, { provisioningTimeoutSeconds: TIMEOUT_S });
  });

  afterAll(async () => {
    await env?.stop();
  });

  it('the add lands after the process died: `jitgate reconcile` (dry run, then real) removes it after the provisioning timeout; the earlier membership stays', async () => {
    const { fx, host, isMember, reconcile } = env;
    const name = await env.existingAccount();
    const pc = await fx.computer({ enabled: true, mode: 'elevate', deleteOnCheckIn: true, adminGroups: ['operators', 'admins'] });

    const lock = await env.holdPasswdLock();
    const child = spawnCli(['checkout', pc.name, '--for', name, '--elevate', '--config', env.configPath], {});
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, sig) => r(sig)));
    await waitFor('gpasswd to run on the host', async () => (await host.exec('pgrep -x gpasswd')).code === 0, 90_000);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const sessionId = /session ([0-9a-f-]{36}) requested on/.exec(err)?.[1];
    expect(sessionId, err).toBeDefined();
    // Release the lock: the add the dead process asked for completes on the host.
    await lock.release();
    await waitFor('gpasswd to finish', async () => (await host.exec('pgrep -x gpasswd')).code !== 0, 30_000);
    expect(await isMember('sudo', name)).toBe(true);
    expect(await isMember('adm', name)).toBe(true);
    const s = (await fx.repo.getSession(sessionId!))!;
    expect(s.state).toBe('provisioning');
    const rows = await fx.repo.elevationsOfSession(s.id);
    expect(Object.fromEntries(rows.map((e) => [e.group, [e.addedByJitgate, e.state]]))).toEqual({ operators: [false, 'active'], admins: [true, 'adding'] });

    await waitFor('the provisioning timeout to pass', async () => Date.now() > s.createdAt.getTime() + TIMEOUT_S * 1000 + 1000);
    expect(await reconcile(s.id, '--dry-run')).toEqual({ operators: { action: 'kept', done: false }, admins: { action: 'removed', done: false } });
    expect(await isMember('sudo', name)).toBe(true);
    // The dead process's elevation lock is leased (60 s): the sweep waits it out, then acts.
    expect(await reconcile(s.id)).toEqual({ operators: { action: 'kept', done: true }, admins: { action: 'removed', done: true } });
    expect(await isMember('sudo', name)).toBe(false);
    expect(await isMember('adm', name)).toBe(true);
    expect((await fx.repo.getSession(s.id))!.state).toBe('ended');
  }, 300_000);
});
