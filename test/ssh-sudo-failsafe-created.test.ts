/**
 * The Linux fail-safe of a created JIT account (mode create; docs/jit-engine.md,
 * "What the directory enforces by itself") on a real sshd host with Debian's
 * sudo. The engine creates the account for a short lease (the fixture's clock
 * is set back so that lease + grace ends seconds from now; the host judges the
 * rule by its own clock) and then nothing of jitgate runs: no worker, no
 * lease-expiry job, no teardown. sudo, run as the account with its own
 * password, works before the bound and is refused after it, while the account
 * and its membership of `sudo` are still there (and the group's passwordless
 * rule, named as `jitgate demo` names it, is in /etc/sudoers.d). The teardown that comes later
 * removes the rule with the account; a kept account's rule moves with `enable`
 * and goes with `disable`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../core/db/database.js';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import { silentLogger } from '../core/logging.js';
import { JIT_PRESETS } from '../provisioner/jit-settings.js';
import { shellQuote } from '../provisioner/stores/linux-names.js';
import { SshAccountStore, sudoersTime } from '../provisioner/stores/ssh.store.js';
import { waitFor } from './fixtures/elevation-ssh-env.js';
import { JitFixture } from './fixtures/jit-fixture.js';
import { hostAccounts } from './fixtures/linux-host-accounts.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from './harness/ssh-host.js';

const avail = sshHostAvailable();
const STORE = 'linux';
/** How far ahead of now the short lease (plus the fixture's 1 s grace) ends: room for provisioning on a loaded machine. */
const LEAD_MS = 25_000;

describe.skipIf(!avail.ok)(`sudo fail-safe of created JIT accounts on an sshd host${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let host: SshHostHandle;
  let store: SshAccountStore;
  let db: Database;
  let fx: JitFixture;

  beforeAll(async () => {
    host = await startSshHost();
    store = new SshAccountStore({
      host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey, hostKeySha256: host.hostKeySha256,
      groups: { admins: 'sudo' }, logger: silentLogger(), timeoutMs: 20_000,
    });
    // The admin group's passwordless rule as `jitgate demo` writes it (docs/ssh.md): the fail-safe must sort after it to win.
    const demo = await host.exec("printf '%%sudo ALL=(ALL:ALL) NOPASSWD: ALL\\n' >/etc/sudoers.d/jitgate-demo && chmod 0440 /etc/sudoers.d/jitgate-demo && visudo -c -q");
    if (demo.code !== 0) throw new Error(demo.stderr);
    db = await PgliteDatabase.open();
    await migrate(db);
    fx = new JitFixture(db, new Map([[STORE, store]]));
  }, 120_000);

  afterAll(async () => {
    await store?.close();
    await db?.close();
    await host?.stop();
  });

  const must = (cmd: string) => hostAccounts(host).must(cmd);
  const exists = (path: string) => hostAccounts(host).exists(path);
  const inSudo = async (name: string) => (await hostAccounts(host).members('sudo')).includes(name);
  const ruleFile = (name: string) => `/etc/sudoers.d/jitgate-lease-${name}`;
  /** sudo as the account itself (su from root needs no password; sudo then asks for the account's own, on stdin). */
  const sudoAs = (name: string, password: string) => host.exec(`su -s /bin/sh ${name} -c ${shellQuote("sudo -S -p '' /usr/bin/id -u")}`, { stdin: `${password}\n` });

  it('after lease + grace sudo refuses the account although jitgate never tore it down; the teardown removes the rule with the account', async () => {
    fx.clock = new Date(Date.now() - 60_000 + LEAD_MS);
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' });
    const { sessionId, result } = await fx.open(pc, `carol${randomBytes(2).toString('hex')}`, { minutes: 1 });
    const name = result.account!;
    const until = new Date(new Date(result.leaseExpiresAt).getTime() + 1000);
    expect(until.getTime()).toBeGreaterThan(Date.now());
    const password = (await fx.service.credentials(sessionId)).password.reveal();

    expect((await must(`cat ${ruleFile(name)}`)).trim()).toBe(`${name} ALL=(ALL:ALL) NOTBEFORE=${sudoersTime(until)} !ALL`);
    expect((await must(`stat -c %a ${ruleFile(name)}`)).trim()).toBe('440');
    await must('visudo -c -q');
    const before = await sudoAs(name, password);
    expect(before.code, before.stderr).toBe(0);
    expect(before.stdout.trim()).toBe('0');

    await waitFor('the lease and its grace to pass', async () => Date.now() > until.getTime() + 1500, LEAD_MS + 30_000);
    // Nothing of jitgate has run since: the session is live in the database, the account and its membership are on the host.
    expect((await fx.repo.getSession(sessionId))!.state).toBe('active');
    expect(await inSudo(name)).toBe(true);
    // The shadow expiry (whole days) has not stopped the account: only the sudo rule does.
    expect((await store.get(name))!.enabled).toBe(true);
    const after = await sudoAs(name, password);
    expect(after.code).not.toBe(0);
    expect(after.stdout.trim()).toBe('');
    expect(after.stderr).toMatch(/is not allowed to execute/);

    await fx.service.teardown(sessionId, 'test');
    expect(await store.get(name)).toBeNull();
    expect(await exists(ruleFile(name))).toBe(false);
    await must('visudo -c -q');
  }, 120_000);

  it('a kept account: disable removes the rule, enable writes it at the new expiry before unlocking, delete removes it', async () => {
    const name = `kp${randomBytes(4).toString('hex')}`;
    const first = new Date(Date.now() + 3_600_000);
    await store.create({ name, password: `Pw-${randomBytes(9).toString('base64url')}`, marker: `jitgate:${fx.installationId}:kept`, expiresAt: first, groups: ['admins'] });
    expect(await must(`cat ${ruleFile(name)}`)).toContain(`NOTBEFORE=${sudoersTime(first)} `);

    await store.disable(name);
    expect(await exists(ruleFile(name))).toBe(false);
    const second = new Date(Date.now() + 7_200_000);
    await store.enable(name, second);
    expect((await must(`cat ${ruleFile(name)}`)).trim()).toBe(`${name} ALL=(ALL:ALL) NOTBEFORE=${sudoersTime(second)} !ALL`);
    // A lease extended while the account is in use moves the time.
    const third = new Date(Date.now() + 10_800_000);
    await store.enable(name, third);
    expect(await must(`cat ${ruleFile(name)}`)).toContain(`NOTBEFORE=${sudoersTime(third)} `);

    await store.delete(name);
    expect(await store.get(name)).toBeNull();
    expect(await exists(ruleFile(name))).toBe(false);
  }, 60_000);

  it('an account jitgate does not own keeps a rule of that name: delete refuses to touch either', async () => {
    const name = `ot${randomBytes(4).toString('hex')}`;
    await must(`useradd -m ${name} && printf '%s ALL=(ALL:ALL) ALL\\n' ${name} >${ruleFile(name)} && chmod 0440 ${ruleFile(name)}`);
    await expect(store.delete(name)).rejects.toMatchObject({ code: 'JIT_ERR_STORE_NOT_MANAGED' });
    expect((await store.get(name))?.name).toBe(name);
    expect(await exists(ruleFile(name))).toBe(true);
    await must(`rm -f ${ruleFile(name)} && userdel -r ${name}`);
  }, 60_000);
});
