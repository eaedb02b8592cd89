/**
 * The Linux fail-safe of an elevation (docs/jit-engine.md, "What the
 * directory enforces by itself") on a real sshd host with Debian's sudo: the
 * SSH store's `addMember` with `until` writes a sudoers drop-in that makes
 * sudo refuse the account from that time, checked by `visudo -c`. Before it
 * the account has sudo through the group; after it, with the membership
 * still there and no jitgate call, sudo refuses; `removeMember` takes both
 * away. An account that had sudo before the add gets no such rule (what it
 * had is not jitgate's to take), and a re-add with a later time moves it.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/logging.js';
import { SshAccountStore, sudoersTime } from '../provisioner/stores/ssh.store.js';
import { waitFor } from './fixtures/elevation-ssh-env.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from './harness/ssh-host.js';

const avail = sshHostAvailable();

describe.skipIf(!avail.ok)(`sudo fail-safe of elevated memberships on an sshd host${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let host: SshHostHandle;
  let store: SshAccountStore;

  beforeAll(async () => {
    host = await startSshHost();
    store = new SshAccountStore({
      host: host.address, port: host.port, username: host.adminUser, privateKey: host.adminPrivateKey, hostKeySha256: host.hostKeySha256,
      groups: { admins: 'sudo', operators: 'adm' }, logger: silentLogger(), timeoutMs: 20_000,
    });
  });

  afterAll(async () => {
    await store?.close();
    await host?.stop();
  });

  const must = async (cmd: string) => {
    const r = await host.exec(cmd);
    if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr}`);
    return r.stdout;
  };
  /** Whether sudo (asked as root about the account: sudoers(5) rules, time bounds included) lets `name` run a command. */
  const maySudo = async (name: string) => (await host.exec(`sudo -n -l -U ${name} /usr/bin/true`)).code === 0;
  const inSudo = async (name: string) => (await must('getent group sudo')).trim().split(':')[3]!.split(',').includes(name);
  const person = async () => {
    const name = `sf${randomBytes(4).toString('hex')}`;
    await must(`useradd -m ${name}`);
    return name;
  };

  it('formats the time the way sudoers wants it', () => {
    expect(sudoersTime(new Date('2026-12-05T09:07:03.456Z'))).toBe('20261205090703Z');
  });

  it('after the time, sudo refuses the account although jitgate never removed the membership; removeMember removes the rule too', async () => {
    const name = await person();
    expect(await maySudo(name)).toBe(false);
    const until = new Date(Date.now() + 8_000);
    await store.addMember(name, 'admins', { until });
    expect(await inSudo(name)).toBe(true);
    expect(await maySudo(name)).toBe(true);
    const file = `/etc/sudoers.d/jitgate-elev-${name}`;
    expect((await must(`cat ${file}`)).trim()).toBe(`${name} ALL=(ALL:ALL) NOTBEFORE=${sudoersTime(until)} !ALL`);
    expect((await must(`stat -c %a ${file}`)).trim()).toBe('440');
    // The whole configuration still parses: a broken drop-in would take sudo from everybody.
    await must('visudo -c -q');

    await waitFor('the fail-safe time to pass', async () => Date.now() > until.getTime() + 1500, 30_000);
    expect(await inSudo(name)).toBe(true);
    expect(await maySudo(name)).toBe(false);

    await store.removeMember(name, 'admins');
    expect(await inSudo(name)).toBe(false);
    expect((await host.exec(`test -e ${file}`)).code).not.toBe(0);
    // Nothing left behind: a later elevation (or an admin's own add) gives sudo again.
    await must(`gpasswd -a ${name} sudo >/dev/null`);
    expect(await maySudo(name)).toBe(true);
  }, 90_000);

  it('a re-add with a later time (lease extended) moves the rule; an account with sudo before the add gets none', async () => {
    const name = await person();
    const first = new Date(Date.now() + 60_000);
    await store.addMember(name, 'admins', { until: first });
    const later = new Date(Date.now() + 120_000);
    await store.addMember(name, 'admins', { until: later });
    expect(await must(`cat /etc/sudoers.d/jitgate-elev-${name}`)).toContain(`NOTBEFORE=${sudoersTime(later)} `);
    await store.removeMember(name, 'admins');

    const admin = await person();
    await must(`gpasswd -a ${admin} sudo >/dev/null`);
    await store.addMember(admin, 'operators', { until: new Date(Date.now() + 1000) });
    expect((await host.exec(`test -e /etc/sudoers.d/jitgate-elev-${admin}`)).code).not.toBe(0);
    await new Promise((r) => setTimeout(r, 2000));
    expect(await maySudo(admin)).toBe(true);
    await store.removeMember(admin, 'operators');
    expect(await maySudo(admin)).toBe(true);
  }, 60_000);
});
