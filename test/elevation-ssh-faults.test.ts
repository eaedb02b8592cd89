/**
 * Elevation (mode elevate) on an sshd test host, the faults at removal:
 * `jitgate checkin` SIGKILLed while its `gpasswd -d` waits on the host (held
 * on the shadow tools' own lock, /etc/.pwd.lock; the waiting gpasswd is then
 * killed too, so the removal never happens), and the host unreachable during
 * teardown (its network link down). After `jitgate reconcile` / the sweep,
 * the membership jitgate added is gone and the one the account had before
 * the session survives. No test hook exists in product code.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { silentLogger } from '../core/logging.js';
import type { AccountStore } from '../provisioner/account-store.js';
import { SshAccountStore } from '../provisioner/stores/ssh.store.js';
import { JitFixture } from './fixtures/jit-fixture.js';
import { ELEVATION_SSH_GROUPS, ELEVATION_SSH_STORE, startElevationSshEnv, waitFor, type ElevationSshEnv } from './fixtures/elevation-ssh-env.js';
import { spawnCli } from './harness/cli.js';
import { sshHostAvailable } from './harness/ssh-host.js';
import { runJitgate } from './harness/worker-process.js';

const avail = sshHostAvailable();
const pgUrl = inject('pgUrl');
const skipReason = !avail.ok ? avail.reason : !pgUrl ? `needs PostgreSQL: ${inject('missing')}` : undefined;

describe.skipIf(skipReason !== undefined)(`elevation on an sshd host: faults at removal${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let env: ElevationSshEnv;

  beforeAll(async () => {
    env = await startElevationSshEnv(pgUrl, { provisioningTimeoutSeconds: 20 });
  });

  afterAll(async () => {
    await env?.stop();
  });

  it('`jitgate checkin` SIGKILLed mid-remove: `jitgate reconcile` after the lease removes what jitgate added and keeps the earlier membership', async () => {
    const { fx, host, isMember } = env;
    const name = await env.existingAccount();
    // admins (sudo) first: the first removal at teardown is the one jitgate added.
    const pc = await fx.computer({ enabled: true, mode: 'elevate', deleteOnCheckIn: true, adminGroups: ['admins', 'operators'] });
    const out = await runJitgate(['checkout', pc.name, '--for', name, '--elevate', '--json'], env.configPath, {});
    expect(out.code, out.stderr).toBe(0);
    const sessionId = (JSON.parse(out.stdout) as { sessionId: string }).sessionId;
    expect(await isMember('sudo', name)).toBe(true);
    expect(await isMember('adm', name)).toBe(true);

    const lock = await env.holdPasswdLock();
    const child = spawnCli(['checkin', sessionId, '--config', env.configPath], {});
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, sig) => r(sig)));
    await waitFor('gpasswd -d to run on the host', async () => (await host.exec('pgrep -x gpasswd')).code === 0, 90_000);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    // The removal dies with it: nothing reaches /etc/group.
    await env.must('pkill -KILL -x gpasswd');
    await lock.release();
    expect(await isMember('sudo', name)).toBe(true);
    expect((await fx.repo.getSession(sessionId))!.state).toBe('ending');
    const open = await fx.repo.elevationsOfSession(sessionId);
    expect(open.find((e) => e.group === 'admins')?.state).not.toBe('removed');

    // The lease ends (a checkout lease is whole minutes: moved to now so the test need not wait).
    const leaseEnd = new Date(Date.now() + 1000);
    await fx.repo.extendLease(sessionId, leaseEnd);
    await waitFor('the lease to end', async () => Date.now() > leaseEnd.getTime() + 1500, 10_000);
    // The dead process's locks are leased (60 s): the sweep waits them out, then acts.
    expect(await env.reconcile(sessionId)).toEqual({ admins: { action: 'removed', done: true }, operators: { action: 'kept', done: true } });
    expect(await isMember('sudo', name)).toBe(false);
    expect(await isMember('adm', name)).toBe(true);
    expect((await fx.repo.getSession(sessionId))!.state).toBe('ended');
    expect(await env.reconcile(sessionId)).toEqual({});
  }, 240_000);

  it('host unreachable during teardown: the teardown fails and keeps the records; the sweep fails while it is down and removes the added membership once it is back', async () => {
    const { host, isMember } = env;
    // A store with a short deadline, so a host that does not answer fails fast.
    const store = new SshAccountStore({
      host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey, hostKeySha256: host.hostKeySha256,
      groups: ELEVATION_SSH_GROUPS, logger: silentLogger(), timeoutMs: 4_000,
    });
    try {
      const local = new JitFixture(env.db, new Map<string, AccountStore>([[ELEVATION_SSH_STORE, store]]));
      const name = await env.existingAccount();
      const pc = await local.computer({ enabled: true, mode: 'elevate', deleteOnCheckIn: true, adminGroups: ['admins', 'operators'] });
      local.clock = new Date();
      const { sessionId, result } = await local.open(pc, name, { minutes: 5 });
      expect(result).toMatchObject({ state: 'active', elevated: true, account: name });
      expect(await isMember('sudo', name)).toBe(true);

      // The host's only link goes down (inside its namespace): connections time out, nothing is refused politely.
      await env.must('ip link set eth0 down');
      const down = await local.service.teardown(sessionId, 'closed by user').then(
        () => 'ok',
        (e: unknown) => (e as { code?: string }).code ?? String(e),
      );
      expect(down).toMatch(/^JIT_ERR_STORE_/);
      expect((await local.repo.getSession(sessionId))!.state).toBe('ending');
      expect((await local.repo.elevationsOfSession(sessionId)).filter((e) => e.state !== 'removed').map((e) => e.group)).toContain('admins');

      local.clock = new Date(Date.now() + 6 * 60_000);
      const failed = await local.service.reconcile();
      expect(failed.failures.length).toBeGreaterThan(0);
      expect((await local.repo.elevationsOfSession(sessionId)).filter((e) => e.state !== 'removed').map((e) => e.group)).toContain('admins');
      await env.must('ip link set eth0 up');
      expect(await isMember('sudo', name)).toBe(true);

      // The next sweeps after the link is back (the first may still meet a connection the outage left dead) remove it.
      const sweeps = [failed];
      for (let i = 0; i < 5; i++) {
        const r = await local.service.reconcile();
        sweeps.push(r);
        if (r.failures.length === 0) break;
        await new Promise((res) => setTimeout(res, 2000));
      }
      expect(sweeps.at(-1)!.failures).toEqual([]);
      const items = sweeps.flatMap((r) => r.elevations).filter((e) => e.sessionId === sessionId && e.done).map((e) => [e.group, e.action]);
      expect(Object.fromEntries(items)).toEqual({ admins: 'removed', operators: 'kept' });
      expect(await isMember('sudo', name)).toBe(false);
      expect(await isMember('adm', name)).toBe(true);
      expect((await local.repo.getSession(sessionId))!.state).toBe('ended');
    } finally {
      await env.must('ip link set eth0 up').catch(() => undefined);
      await store.close();
    }
  }, 180_000);
});
