/**
 * SshAccountStore against real sshd test hosts (scripts/ssh-host.sh): accounts
 * are created inside a network/mount namespace with a private /etc, checked
 * from inside the host (nsenter) and by real password logins over SSH.
 * Skips, saying why, on machines that cannot run the hosts.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { Client } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isJitgateError } from '../core/errors.js';
import { describeAccountStoreContract } from '../provisioner/account-store.contract.js';
import { generatePassword } from '../provisioner/account-names.js';
import { SshAccountStore, type SshStoreOptions } from '../provisioner/stores/ssh.store.js';
import { sshFingerprintSha256 } from '../provisioner/stores/ssh-connection.js';
import { sshHostAvailable, startSshHost, type SshHostHandle } from './harness/ssh-host.js';

const avail = sshHostAvailable();
const logger = pino({ level: 'silent' });
const DAY = 86_400_000;
const GROUPS = { admins: 'sudo', operators: 'adm' } as const;

function uniqueName(prefix = 'jt'): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

function marker(name: string): string {
  return `jitgate:test:${name}`;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return isJitgateError(err) ? err.code : `untyped: ${String(err)}`;
  }
}

function storeOptions(host: SshHostHandle, over: Partial<SshStoreOptions> = {}): SshStoreOptions {
  return {
    host: host.address,
    port: host.port,
    username: host.adminUser,
    privateKey: host.adminPrivateKey,
    hostKeySha256: host.hostKeySha256,
    groups: GROUPS,
    logger,
    timeoutMs: 20_000,
    ...over,
  };
}

/** A password SSH login as `username`; resolves with the connected client (host key pinned too). */
function login(host: SshHostHandle, username: string, password: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once('ready', () => resolve(c));
    c.once('error', (err) => {
      c.destroy();
      reject(err);
    });
    c.connect({
      host: host.address,
      port: host.port,
      username,
      password,
      tryKeyboard: false,
      readyTimeout: 15_000,
      hostVerifier: (key: Buffer) => sshFingerprintSha256(key) === host.hostKeySha256,
    });
  });
}

function execOn(c: Client, cmd: string): Promise<{ stdout: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    c.exec(cmd, (err, stream) => {
      if (err) return reject(err);
      let stdout = '';
      let code: number | null = null;
      stream.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
      stream.stderr.resume();
      stream.on('exit', (c2: number | null) => (code = c2));
      stream.on('close', () => resolve({ stdout, code }));
    });
  });
}

async function canLogOn(host: SshHostHandle, name: string, password: string): Promise<boolean> {
  try {
    const c = await login(host, name, password);
    try {
      const { stdout } = await execOn(c, 'id -un');
      return stdout.trim() === name;
    } finally {
      c.end();
    }
  } catch (err) {
    if ((err as { level?: string }).level === 'client-authentication') return false;
    throw err;
  }
}

// One host for the whole file (the contract suite below included); started on first use.
let hostPromise: Promise<SshHostHandle> | null = null;
function sharedHost(): Promise<SshHostHandle> {
  hostPromise ??= startSshHost();
  return hostPromise;
}
const openStores: SshAccountStore[] = [];
function newStore(host: SshHostHandle, over: Partial<SshStoreOptions> = {}): SshAccountStore {
  const s = new SshAccountStore(storeOptions(host, over));
  openStores.push(s);
  return s;
}

afterAll(async () => {
  for (const s of openStores) await s.close().catch(() => undefined);
  if (hostPromise) await (await hostPromise.catch(() => null))?.stop();
});

describe.skipIf(!avail.ok)(`SshAccountStore on an sshd test host${avail.ok ? '' : ` (skipped: ${avail.reason ?? ''})`}`, () => {
  let host: SshHostHandle;
  let store: SshAccountStore;

  beforeAll(async () => {
    host = await sharedHost();
    store = newStore(host);
  });

  async function hostPasswd(): Promise<string> {
    const r = await host.exec('cat /etc/passwd');
    expect(r.code).toBe(0);
    return r.stdout;
  }

  it('creates the account inside the host only, with marker, marker group and fail-safe expiry', async () => {
    const name = uniqueName();
    const exp = new Date(Date.now() + 2 * DAY);
    await store.create({ name, password: generatePassword(name), marker: marker(name), expiresAt: exp });
    try {
      const ent = await host.exec(`getent passwd ${name}`);
      expect(ent.code).toBe(0);
      const fields = ent.stdout.trim().split(':');
      expect(fields[4]).toBe(`jitgate;test;${name}`);
      expect(fields[6]).toBe('/bin/bash');
      expect((await host.exec(`test -d /home/${name}`)).code).toBe(0);
      expect((await host.exec(`id -nG ${name}`)).stdout.split(/\s+/)).toContain('jitgate-managed');
      // The test machine's own account database never sees it.
      expect(readFileSync('/etc/passwd', 'utf8')).not.toContain(name);
      expect(readFileSync('/etc/group', 'utf8')).not.toContain(name);

      const a = await store.get(name);
      expect(a).toMatchObject({ name, marker: marker(name), enabled: true, groups: [] });
      // shadow keeps days; the store writes the day after the lease end.
      const day = new Date(exp.getTime() + DAY).toISOString().slice(0, 10);
      expect(a!.expiresAt!.toISOString().slice(0, 10)).toBe(day);
      expect((await host.exec(`chage -l ${name} | grep 'Account expires'`)).stdout).toMatch(/\d{4}/);
    } finally {
      await store.delete(name);
    }
  });

  it('hashes JIT passwords with SHA-512 crypt by default (fast logins) and with the target default when passwordHash is system', async () => {
    const fast = uniqueName();
    const pw = generatePassword(fast);
    await store.create({ name: fast, password: pw, marker: marker(fast), expiresAt: new Date(Date.now() + DAY) });
    const sys = newStore(host, { passwordHash: 'system' });
    const slow = uniqueName();
    const pw2 = generatePassword(slow);
    try {
      await sys.create({ name: slow, password: pw2, marker: marker(slow), expiresAt: new Date(Date.now() + DAY) });
      const hashOf = async (n: string) => (await host.exec(`getent shadow ${n} | cut -d: -f2`)).stdout.trim();
      expect(await hashOf(fast)).toMatch(/^\$6\$(rounds=5000\$)?[^$]+\$/);
      // Debian 12's login.defs default (ENCRYPT_METHOD / PAM): yescrypt.
      expect(await hashOf(slow)).toMatch(/^\$y\$/);
      expect(await canLogOn(host, fast, pw)).toBe(true);
      expect(await canLogOn(host, slow, pw2)).toBe(true);
      // A rotated password keeps the configured hash.
      const pw3 = generatePassword(fast);
      await store.setPassword(fast, pw3);
      expect(await hashOf(fast)).toMatch(/^\$6\$(rounds=5000\$)?[^$]+\$/);
      expect(await canLogOn(host, fast, pw3)).toBe(true);
    } finally {
      await store.delete(fast);
      await sys.delete(slow).catch(() => undefined);
      await sys.close();
    }
  });

  it('logs in with the password over SSH and sees the admin group after addToGroup', async () => {
    const name = uniqueName();
    const password = generatePassword(name);
    await store.create({ name, password, marker: marker(name), expiresAt: new Date(Date.now() + DAY) });
    try {
      const c = await login(host, name, password);
      try {
        const before = await execOn(c, 'id -nG');
        expect(before.stdout.split(/\s+/)).not.toContain('sudo');
      } finally {
        c.end();
      }
      await store.addToGroup(name, 'admins');
      await store.addToGroup(name, 'admins');
      const c2 = await login(host, name, password);
      try {
        const after = await execOn(c2, 'id -nG');
        expect(after.stdout.split(/\s+/)).toContain('sudo');
      } finally {
        c2.end();
      }
      expect((await store.get(name))!.groups).toEqual(['admins']);
      await store.removeFromGroup(name, 'admins');
      await store.removeFromGroup(name, 'admins');
      expect((await host.exec(`id -nG ${name}`)).stdout.split(/\s+/)).not.toContain('sudo');
    } finally {
      await store.delete(name);
    }
  });

  it('disable blocks logon, enable restores it; setPassword swaps old for new', async () => {
    const name = uniqueName();
    const password = generatePassword(name);
    await store.create({ name, password, marker: marker(name), expiresAt: new Date(Date.now() + DAY) });
    try {
      expect(await canLogOn(host, name, password)).toBe(true);
      await store.disable(name);
      await store.disable(name);
      expect(await canLogOn(host, name, password)).toBe(false);
      expect((await store.get(name))!.enabled).toBe(false);

      // A reset while disabled must not unlock the account.
      const next = generatePassword(name);
      await store.setPassword(name, next);
      expect(await canLogOn(host, name, next)).toBe(false);
      expect((await store.get(name))!.enabled).toBe(false);

      await store.enable(name, new Date(Date.now() + 3 * DAY));
      expect((await store.get(name))!.enabled).toBe(true);
      expect(await canLogOn(host, name, next)).toBe(true);
      expect(await canLogOn(host, name, password)).toBe(false);

      const third = generatePassword(name);
      await store.setPassword(name, third);
      expect(await canLogOn(host, name, next)).toBe(false);
      expect(await canLogOn(host, name, third)).toBe(true);
    } finally {
      await store.delete(name);
    }
  });

  it('delete kills a live session and removes the user, home and memberships', async () => {
    const name = uniqueName();
    const password = generatePassword(name);
    await store.create({ name, password, marker: marker(name), expiresAt: new Date(Date.now() + DAY) });
    await store.addToGroup(name, 'admins');
    const session = await login(host, name, password);
    try {
      const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
      session.on('error', () => undefined);
      // A long-running command holds processes owned by the user: userdel alone would exit 8.
      session.exec('sleep 600', (err, stream) => {
        if (!err) stream.resume().stderr.resume();
      });
      await expect.poll(async () => (await host.exec(`pgrep -u ${name} -x sleep`)).code, { timeout: 5000 }).toBe(0);

      await store.delete(name);
      await closed;
    } finally {
      session.end();
    }
    expect((await host.exec(`getent passwd ${name}`)).code).toBe(2);
    expect((await host.exec(`test -e /home/${name}`)).code).not.toBe(0);
    // Anchored: an unanchored -f pattern would match this very shell's command line.
    expect((await host.exec(`pgrep -f '^sshd: ${name}'`)).code).not.toBe(0);
    expect((await host.exec('getent group sudo')).stdout).not.toContain(name);
    await store.delete(name);
    expect(await store.get(name)).toBeNull();
  });

  it('logOff kills a logged-in JIT user\'s session and processes, and leaves the account', async () => {
    const name = uniqueName();
    const password = generatePassword(name);
    await store.create({ name, password, marker: marker(name), expiresAt: new Date(Date.now() + DAY) });
    await store.addToGroup(name, 'admins');
    const session = await login(host, name, password);
    const other = uniqueName('u');
    expect((await host.exec(`useradd -m ${other}`)).code).toBe(0);
    try {
      const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
      session.on('error', () => undefined);
      session.exec('sleep 600', (err, stream) => {
        if (!err) stream.resume().stderr.resume();
      });
      // A process of a bystander (a human user) that must survive.
      await host.exec(`setsid setpriv --reuid=${other} --regid=${other} --init-groups sleep 600 >/dev/null 2>&1 < /dev/null &`);
      await expect.poll(async () => (await host.exec(`pgrep -u ${name} -x sleep`)).code, { timeout: 5000 }).toBe(0);
      await expect.poll(async () => (await host.exec(`pgrep -u ${other} -x sleep`)).code, { timeout: 5000 }).toBe(0);

      await store.logOff(name);
      await closed;
      expect((await host.exec(`pgrep -u ${name}`)).code).toBe(1);
      expect((await host.exec(`pgrep -f '^sshd: ${name}'`)).code).not.toBe(0);
      expect((await host.exec(`pgrep -u ${other} -x sleep`)).code).toBe(0);
      // Logged off, not removed: the account and its group stay until teardown goes on.
      expect(await store.get(name)).toMatchObject({ name, groups: ['admins'], enabled: true });
      await store.logOff(name);
      await store.logOff(uniqueName());
    } finally {
      session.end();
      await host.exec(`pkill -KILL -u ${other}; userdel -r ${other}`);
      await store.delete(name);
    }
  });

  it('logOff ends a domain account seen through NSS as DOMAIN\\name only when winbindDomain is configured, never a system account', async () => {
    // What winbind (without a default domain) shows: `JITTEST\name` with a uid from its idmap range.
    const name = uniqueName('dm');
    const uid = 3_000_000 + Math.floor(Math.random() * 100_000);
    const form = `JITTEST\\${name}`;
    expect((await host.exec(`printf '%s\\n' 'JITTEST\\${name}:x:${uid}:${uid}::/nonexistent:/bin/sh' 'JITTEST\\svc_${name}:x:5:5::/nonexistent:/bin/sh' >> /etc/passwd`)).code).toBe(0);
    const domainStore = newStore(host, { winbindDomain: 'JITTEST' });
    try {
      expect((await host.exec(`getent passwd '${form}'`)).stdout).toContain(`:${uid}:`);
      await host.exec(`setsid setpriv --reuid=${uid} --regid=${uid} --clear-groups sleep 600 >/dev/null 2>&1 < /dev/null &`);
      await expect.poll(async () => (await host.exec(`pgrep -U ${uid} -x sleep`)).code, { timeout: 5000 }).toBe(0);
      // Not configured: the plain name is unknown here, nothing is touched.
      await store.logOff(name);
      expect((await host.exec(`pgrep -U ${uid} -x sleep`)).code).toBe(0);
      await domainStore.logOff(name);
      expect((await host.exec(`pgrep -U ${uid}`)).code).toBe(1);
      // A DOMAIN\name with a system uid is refused, not killed.
      expect(await codeOf(domainStore.logOff(`svc_${name}`))).toBe('JIT_ERR_STORE_NOT_MANAGED');
      expect(() => newStore(host, { winbindDomain: "X'; id; '" })).toThrow();
    } finally {
      await host.exec(`pkill -KILL -U ${uid}; sed -i '/^JITTEST\\\\.*${name}:/d' /etc/passwd`);
    }
    expect((await host.exec(`grep -c '${name}' /etc/passwd`)).stdout.trim()).toBe('0');
  });

  it('logOff refuses a local account it did not create, and root', async () => {
    const plain = uniqueName('u');
    expect((await host.exec(`useradd -m ${plain}`)).code).toBe(0);
    try {
      await host.exec(`setsid setpriv --reuid=${plain} --regid=${plain} --init-groups sleep 600 >/dev/null 2>&1 < /dev/null &`);
      await expect.poll(async () => (await host.exec(`pgrep -u ${plain} -x sleep`)).code, { timeout: 5000 }).toBe(0);
      expect(await codeOf(store.logOff(plain))).toBe('JIT_ERR_STORE_NOT_MANAGED');
      expect(await codeOf(store.logOff('root'))).toBe('JIT_ERR_STORE_NOT_MANAGED');
      expect((await host.exec(`pgrep -u ${plain} -x sleep`)).code).toBe(0);
    } finally {
      await host.exec(`pkill -KILL -u ${plain}; userdel -r ${plain}`);
    }
  });

  it('rejects hostile names with a typed error and runs nothing', async () => {
    const before = await hostPasswd();
    const hostile = ['*()\\,=+<>#;"', '$(id)', '`id`', 'a\0b', 'a\nb', 'ünïcode', 'a'.repeat(300), "x'; touch /tmp/pwned; '", '-o', 'Root', ''];
    for (const name of hostile) {
      const codes = await Promise.all([
        codeOf(store.create({ name, password: 'Pw-123456789012345678901234', marker: marker('x'), expiresAt: new Date(Date.now() + DAY) })),
        codeOf(store.addToGroup(name, 'admins')),
        codeOf(store.delete(name)),
        codeOf(store.get(name)),
      ]);
      for (const code of codes) expect({ name, code }).toEqual({ name, code: 'JIT_ERR_STORE_INVALID_NAME' });
    }
    // Hostile markers and passwords are refused too.
    const name = uniqueName();
    expect(await codeOf(store.create({ name, password: 'a\nroot:x', marker: marker(name), expiresAt: new Date(Date.now() + DAY) }))).toBe(
      'JIT_ERR_STORE_PASSWORD_POLICY',
    );
    expect(await codeOf(store.create({ name, password: 'Pw-1234567890', marker: "jitgate:x'$(id)", expiresAt: new Date(Date.now() + DAY) }))).toBe(
      'JIT_ERR_VALIDATION',
    );
    expect(await hostPasswd()).toBe(before);
    expect((await host.exec('test -e /tmp/pwned')).code).not.toBe(0);
  });

  it('refuses every mutation on accounts it did not create, and will not create over them', async () => {
    const plain = uniqueName('u');
    const forged = uniqueName('u');
    // One without any marker; one with a marker-looking GECOS but outside the marker group.
    expect((await host.exec(`useradd -m -c 'Plain User' ${plain} && useradd -c 'jitgate;forged;x' ${forged}`)).code).toBe(0);
    try {
      for (const name of [plain, forged]) {
        const codes = await Promise.all([
          codeOf(store.addToGroup(name, 'admins')),
          codeOf(store.removeFromGroup(name, 'admins')),
          codeOf(store.disable(name)),
          codeOf(store.enable(name, new Date(Date.now() + DAY))),
          codeOf(store.setPassword(name, generatePassword(name))),
          codeOf(store.setMarker(name, marker(name))),
          codeOf(store.delete(name)),
        ]);
        for (const code of codes) expect({ name, code }).toEqual({ name, code: 'JIT_ERR_STORE_NOT_MANAGED' });
        expect(await codeOf(store.create({ name, password: generatePassword(name), marker: marker(name), expiresAt: new Date(Date.now() + DAY) }))).toBe(
          'JIT_ERR_STORE_ACCOUNT_EXISTS',
        );
      }
      expect((await host.exec(`getent passwd ${plain}`)).stdout).toContain(':Plain User:');
      expect((await host.exec(`getent shadow ${plain}`)).stdout.split(':')[1]).toBe('!');
      expect((await host.exec(`id -nG ${plain}`)).stdout.trim()).toBe(plain);
      expect((await store.get(plain))!.marker).toBe('Plain User');
    } finally {
      await host.exec(`userdel -r ${plain}; userdel -r ${forged}`);
    }
  });

  it('listManaged returns only marked members of the marker group', async () => {
    const mine = uniqueName();
    const plain = uniqueName('u');
    await store.create({ name: mine, password: generatePassword(mine), marker: marker(mine), expiresAt: new Date(Date.now() + DAY) });
    // In the marker group but without the marker: not ours either.
    expect((await host.exec(`useradd -G jitgate-managed -c 'Someone' ${plain}`)).code).toBe(0);
    try {
      const listed = await store.listManaged();
      const names = listed.map((a) => a.name);
      expect(names).toContain(mine);
      expect(names).not.toContain(plain);
      expect(names).not.toContain('root');
      expect(listed.every((a) => a.marker.startsWith('jitgate:'))).toBe(true);
      expect(listed.find((a) => a.name === mine)).toMatchObject({ marker: marker(mine), enabled: true });
    } finally {
      await store.delete(mine);
      await host.exec(`userdel -r ${plain}`);
    }
  });

  it('refuses a host whose key does not match the pin, before authenticating', async () => {
    const logBefore = readFileSync(host.log, 'utf8');
    const wrong = sshFingerprintSha256(randomBytes(51));
    const bad = newStore(host, { hostKeySha256: wrong });
    const name = uniqueName();
    let caught: unknown;
    try {
      await bad.create({ name, password: generatePassword(name), marker: marker(name), expiresAt: new Date(Date.now() + DAY) });
    } catch (err) {
      caught = err;
    }
    expect(isJitgateError(caught) && caught.code).toBe('JIT_ERR_STORE_AUTH');
    expect(isJitgateError(caught) && caught.details.reason).toBe('host key mismatch');
    expect((await host.exec(`getent passwd ${name}`)).code).toBe(2);
    // sshd never saw an authentication attempt from that connection.
    const newLog = readFileSync(host.log, 'utf8').slice(logBefore.length);
    expect(newLog).not.toMatch(/Accepted publickey|Failed publickey|Postponed publickey/);
    expect(await codeOf(bad.check())).toBe('JIT_ERR_STORE_AUTH');
    // A malformed pin is a configuration error.
    expect(() => new SshAccountStore(storeOptions(host, { hostKeySha256: 'MD5:aa:bb' }))).toThrow();
  });

  it('maps a wrong provisioning key and an unreachable host to typed errors', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const other = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' });
    const wrongKey = newStore(host, { privateKey: other });
    expect(await codeOf(wrongKey.check())).toBe('JIT_ERR_STORE_AUTH');
    const nowhere = newStore(host, { port: 2 });
    expect(await codeOf(nowhere.check())).toBe('JIT_ERR_STORE_UNREACHABLE');
  });

  it('check() verifies root and the configured groups', async () => {
    await store.check();
    const missing = newStore(host, { groups: { admins: 'no-such-group-x' } });
    expect(await codeOf(missing.check())).toBe('JIT_ERR_STORE_NO_SUCH_GROUP');
  });

  it('reconnects after the connection drops', async () => {
    const s = newStore(host);
    await s.check();
    // Kill the store's sshd session processes for root (not the listener).
    await host.exec("pkill -f 'sshd: root@notty' ; true");
    await expect.poll(() => codeOf(s.check()), { timeout: 10_000 }).toBe('ok');
  });

  it('times create, addToGroup and delete', async () => {
    const rounds = 5;
    const t = { create: [] as number[], addToGroup: [] as number[], delete: [] as number[] };
    for (let i = 0; i < rounds; i++) {
      const name = uniqueName('tm');
      let s = performance.now();
      await store.create({ name, password: generatePassword(name), marker: marker(name), expiresAt: new Date(Date.now() + DAY) });
      t.create.push(performance.now() - s);
      s = performance.now();
      await store.addToGroup(name, 'admins');
      t.addToGroup.push(performance.now() - s);
      s = performance.now();
      await store.delete(name);
      t.delete.push(performance.now() - s);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(
      `ssh store latency (median of ${rounds}): create ${median(t.create).toFixed(1)} ms, addToGroup ${median(t.addToGroup).toFixed(1)} ms, delete ${median(t.delete).toFixed(1)} ms`,
    );
  });
});

describe.skipIf(!avail.ok)('ssh test host harness', () => {
  it('starts and stops a host with a private /etc, and cleans up', async () => {
    const t0 = performance.now();
    const h = await startSshHost();
    const startMs = performance.now() - t0;
    try {
      console.log(`ssh test host start: ${startMs.toFixed(0)} ms`);
      expect(h.netns).toMatch(/^jgt-ssh-\d+$/);
      expect(h.hostKeySha256).toMatch(/^SHA256:/);
      expect(h.hostKeyPublic.startsWith('ssh-ed25519 ')).toBe(true);
      const r = await h.exec('useradd probe_user && grep -c probe_user /etc/passwd; hostname');
      expect(r.stdout).toContain('1');
      expect(r.stdout).toContain(h.netns);
      expect(readFileSync('/etc/passwd', 'utf8')).not.toContain('probe_user');
    } finally {
      await h.stop();
      await h.stop();
    }
    const { existsSync } = await import('node:fs');
    expect(existsSync(h.stateDir)).toBe(false);
    expect(existsSync(`/run/netns/${h.netns}`)).toBe(false);
  });
});

/**
 * The contract's "refuses to modify" case creates several calls at once and
 * awaits them one by one, so later rejections are briefly unhandled and vitest
 * reports them as errors. Attach a no-op handler to each returned promise (the
 * test still awaits and sees the rejection). Drop once the contract collects
 * results with Promise.all.
 */
function markRejectionsHandled<T extends object>(target: T): T {
  return new Proxy(target, {
    get(obj, prop) {
      const v: unknown = Reflect.get(obj, prop, obj);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]): unknown => {
        const r: unknown = Reflect.apply(v, obj, args);
        if (r instanceof Promise) r.catch(() => undefined);
        return r;
      };
    },
  });
}

describeAccountStoreContract(
  'ssh on an sshd test host',
  async () => {
    const host = await sharedHost();
    const must = async (cmd: string) => {
      const r = await host.exec(cmd);
      if (r.code !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
      return r.stdout;
    };
    await must('groupadd -f jgtprot');
    const store = markRejectionsHandled(newStore(host, { protectedGroups: ['jgtprot'] }));
    const linux = (g: string) => GROUPS[g as keyof typeof GROUPS];
    return {
      store,
      groups: ['admins', 'operators'],
      elevation: {
        builtInProtected: 'root',
        makeProtectedByGroup: async (name: string) => void (await must(`gpasswd -a ${name} jgtprot`)),
        disableOutOfBand: async (name: string) => void (await must(`usermod -e 1 ${name}`)),
        // 1970-01-02: long past, the password and shell untouched.
        expireOutOfBand: async (name: string) => void (await must(`usermod -e 1970-01-02 ${name}`)),
        addMemberOutOfBand: async (name: string, g: string) => void (await must(`gpasswd -a ${name} ${linux(g)}`)),
        // The group's own member list in /etc/group, not what the store reads.
        memberOutOfBand: async (name: string, g: string) => (await must(`getent group ${linux(g)}`)).trim().split(':')[3]!.split(',').includes(name),
      },
      seedUnmanaged: async (name: string) => {
        const r = await host.exec(`useradd -m -c 'Seeded' ${name}`);
        if (r.code !== 0) throw new Error(`useradd failed: ${r.stderr}`);
      },
      removeUnmanaged: async (name: string) => {
        await host.exec(`userdel -r ${name}`);
      },
      canLogOn: (name: string, password: string) => canLogOn(host, name, password),
      startLogon: async (name: string, password: string) => {
        const c = await login(host, name, password);
        c.on('error', () => undefined);
        c.exec('sleep 600', (err, stream) => {
          if (!err) stream.resume().stderr.resume();
        });
        await expect.poll(async () => (await host.exec(`pgrep -u ${name} -x sleep`)).code, { timeout: 5000 }).toBe(0);
      },
      hasLogon: async (name: string) => (await host.exec(`pgrep -u ${name}`)).code === 0,
      // shadow(5) keeps whole days, and the store writes the day after the lease end.
      expiryPrecisionMs: 2 * DAY,
    };
  },
  { skip: avail.ok ? '' : avail.reason ?? 'unavailable' },
);
