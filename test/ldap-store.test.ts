/**
 * LdapAccountStore against a real Samba AD DC (scripts/samba-ad.sh).
 * Skips, saying why, on machines that cannot run the DC.
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { Attribute, Change, Client, ResultCodeError } from 'ldapts';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { isJitgateError, type ErrorDef } from '../core/errors.js';
import { describeAccountStoreContract } from '../provisioner/account-store.contract.js';
import { StoreErrors } from '../provisioner/errors.js';
import { LdapAccountStore, type LdapStoreOptions } from '../provisioner/stores/ldap.store.js';
import { escapeFilterValue } from '../provisioner/stores/ldap-escape.js';
import { LDAP_OP, startLdapPauseProxy } from './harness/ldap-pause-proxy.js';
import { sambaAdAvailable, startSambaAd, type SambaAdHandle } from './harness/samba-ad.js';

const avail = sambaAdAvailable();
const logger = pino({ level: 'silent' });
const HOUR = 3_600_000;

function uniqueName(prefix = 'jt'): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

function password(): string {
  return `Pw-${randomBytes(9).toString('base64url')}-9a`;
}

async function expectCode(p: Promise<unknown>, def: ErrorDef): Promise<void> {
  const err: unknown = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  if (!isJitgateError(err, def)) throw new Error(`expected ${def.code}`, { cause: err });
}

describe.skipIf(!avail.ok)(`LdapAccountStore on Samba AD${avail.ok ? '' : ` (skipped: ${avail.reason ?? ''})`}`, () => {
  let ad: SambaAdHandle;
  let store: LdapAccountStore;
  const marker = `jitgate:test:${randomBytes(4).toString('hex')}`;

  const options = (over: Partial<LdapStoreOptions> = {}): LdapStoreOptions => ({
    url: ad.url,
    caCert: ad.caCert,
    bindDn: ad.bindDn,
    bindPassword: ad.bindPassword,
    baseDn: ad.baseDn,
    accountsContainer: ad.jitOu,
    groups: ad.adminGroupDns,
    logger,
    ...over,
  });

  const spec = (name: string, pw = password()) => ({
    name,
    password: pw,
    marker: `${marker}:${name}`,
    expiresAt: new Date(Math.floor((Date.now() + 4 * HOUR) / 1000) * 1000),
    displayName: `JIT ${name}`,
  });

  async function asClient<T>(dn: string, pw: string, fn: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ url: ad.url, tlsOptions: { ca: [ad.caCert] }, timeout: 10_000, connectTimeout: 10_000 });
    try {
      await c.bind(dn, pw);
      return await fn(c);
    } finally {
      await c.unbind().catch(() => undefined);
    }
  }

  const asAdmin = <T>(fn: (c: Client) => Promise<T>): Promise<T> => asClient(ad.adminDn, ad.adminPassword, fn);

  /** Whether `name@realm` can bind with `pw` (false on LDAP 49). */
  async function canBind(name: string, pw: string): Promise<boolean> {
    try {
      await asClient(`${name}@${ad.upnSuffix}`, pw, async () => undefined);
      return true;
    } catch (err) {
      if (err instanceof ResultCodeError && err.code === 49) return false;
      throw err;
    }
  }

  async function groupMembers(group: string): Promise<string[]> {
    const dn = ad.adminGroupDns[group];
    if (dn === undefined) throw new Error(`unknown group ${group}`);
    return asAdmin(async (c) => {
      const { searchEntries } = await c.search(dn, { scope: 'base', attributes: ['member'] });
      const m = searchEntries[0]?.member;
      return (m === undefined ? [] : Array.isArray(m) ? m : [m]).map(String);
    });
  }

  async function countByFilter(filter: string): Promise<number> {
    return asAdmin(async (c) => (await c.search(ad.baseDn, { scope: 'sub', filter, attributes: ['dn'] })).searchEntries.length);
  }

  /** An account seeded by the Administrator, without a jitgate marker. */
  async function seedUnmanaged(name: string, description: string, container: string): Promise<string> {
    const dn = `CN=${name},${container}`;
    await asAdmin((c) =>
      c.add(dn, [
        new Attribute({ type: 'objectClass', values: ['user'] }),
        new Attribute({ type: 'sAMAccountName', values: [name] }),
        new Attribute({ type: 'description', values: [description] }),
        new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${password()}"`, 'utf16le')] }),
        new Attribute({ type: 'userAccountControl', values: ['512'] }),
      ]),
    );
    return dn;
  }

  beforeAll(async () => {
    ad = await startSambaAd();
    store = new LdapAccountStore(options());
  });

  afterAll(async () => {
    await store?.close();
    await ad?.stop();
  });

  it('check() binds and finds the base, container and groups', async () => {
    await store.check();
  });

  it('check() reports a wrong service password as JIT_ERR_STORE_AUTH with the AD data code', async () => {
    const bad = new LdapAccountStore(options({ bindPassword: 'wrong-password' }));
    try {
      const err = await bad.check().then(
        () => null,
        (e: unknown) => e,
      );
      expect(isJitgateError(err, StoreErrors.JIT_ERR_STORE_AUTH)).toBe(true);
      expect(isJitgateError(err) && String(err.details.reason)).toContain('52e');
    } finally {
      await bad.close();
    }
  });

  it('create → get shows an enabled account with marker and expiry; the password binds', async () => {
    const s = spec(uniqueName());
    await store.create(s);
    try {
      const got = await store.get(s.name);
      expect(got).toEqual({ name: s.name, location: expect.any(String), marker: s.marker, enabled: true, groups: [], expiresAt: s.expiresAt });
      expect(got?.location?.toLowerCase()).toBe(`CN=${s.name},${ad.jitOu}`.toLowerCase());
      expect(await canBind(s.name, s.password)).toBe(true);
    } finally {
      await store.delete(s.name);
    }
    expect(await store.get(s.name)).toBeNull();
  });

  it('adds and removes group membership, idempotently, visible via get and the group member attribute', async () => {
    const s = spec(uniqueName());
    await store.create(s);
    try {
      const dn = `CN=${s.name},${ad.jitOu}`;
      await store.addToGroup(s.name, 'JIT Admins');
      await store.addToGroup(s.name, 'JIT Admins');
      await store.addToGroup(s.name, 'Helpdesk');
      expect((await store.get(s.name))?.groups.slice().sort()).toEqual(['Helpdesk', 'JIT Admins']);
      expect((await groupMembers('JIT Admins')).map((m) => m.toLowerCase())).toContain(dn.toLowerCase());

      await store.removeFromGroup(s.name, 'JIT Admins');
      await store.removeFromGroup(s.name, 'JIT Admins');
      expect((await store.get(s.name))?.groups).toEqual(['Helpdesk']);
      expect((await groupMembers('JIT Admins')).map((m) => m.toLowerCase())).not.toContain(dn.toLowerCase());

      await expectCode(store.addToGroup(s.name, 'Domain Admins'), StoreErrors.JIT_ERR_STORE_NO_SUCH_GROUP);
    } finally {
      await store.delete(s.name);
    }
    // Missing account: removal is a no-op, addition is an error.
    await store.removeFromGroup(s.name, 'Helpdesk');
    await expectCode(store.addToGroup(s.name, 'Helpdesk'), StoreErrors.JIT_ERR_STORE_NO_SUCH_ACCOUNT);
  });

  it('setPassword replaces the password; disable stops logon; enable restores it with a new expiry', async () => {
    const s = spec(uniqueName());
    await store.create(s);
    try {
      const next = password();
      await store.setPassword(s.name, next);
      expect(await canBind(s.name, s.password)).toBe(false);
      expect(await canBind(s.name, next)).toBe(true);

      await store.disable(s.name);
      await store.disable(s.name);
      expect((await store.get(s.name))?.enabled).toBe(false);
      expect(await canBind(s.name, next)).toBe(false);

      const later = new Date(Math.floor((Date.now() + 8 * HOUR) / 1000) * 1000);
      await store.enable(s.name, later);
      const got = await store.get(s.name);
      expect(got?.enabled).toBe(true);
      expect(got?.expiresAt).toEqual(later);
      expect(await canBind(s.name, next)).toBe(true);

      await store.setMarker(s.name, `${marker}:renamed`);
      expect((await store.get(s.name))?.marker).toBe(`${marker}:renamed`);
    } finally {
      await store.delete(s.name);
    }
  });

  it('create fails with ACCOUNT_EXISTS on a collision and leaves the existing account alone', async () => {
    const s = spec(uniqueName());
    await store.create(s);
    try {
      await expectCode(store.create({ ...s, password: password(), marker: `${marker}:other` }), StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS);
      expect((await store.get(s.name))?.marker).toBe(s.marker);
      expect(await canBind(s.name, s.password)).toBe(true);
    } finally {
      await store.delete(s.name);
    }
    // Taken by someone else, in another container.
    const other = uniqueName('hm');
    const dn = await seedUnmanaged(other, 'hand made', ad.usersContainer);
    try {
      await expectCode(store.create(spec(other)), StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS);
      expect(await countByFilter(`(sAMAccountName=${escapeFilterValue(other)})`)).toBe(1);
    } finally {
      await asAdmin((c) => c.del(dn));
    }
  });

  it('maps a refused password to PASSWORD_POLICY and creates nothing', async () => {
    const s = spec(uniqueName(), 'short');
    await expectCode(store.create(s), StoreErrors.JIT_ERR_STORE_PASSWORD_POLICY);
    expect(await store.get(s.name)).toBeNull();
    const ok = spec(uniqueName());
    await store.create(ok);
    try {
      await expectCode(store.setPassword(ok.name, 'short'), StoreErrors.JIT_ERR_STORE_PASSWORD_POLICY);
      expect(await canBind(ok.name, ok.password)).toBe(true);
    } finally {
      await store.delete(ok.name);
    }
  });

  it('treats a UPN already used by another account as ACCOUNT_EXISTS', async () => {
    const name = uniqueName();
    const holder = uniqueName('hm');
    const dn = `CN=${holder},${ad.usersContainer}`;
    await asAdmin((c) =>
      c.add(dn, [
        new Attribute({ type: 'objectClass', values: ['user'] }),
        new Attribute({ type: 'sAMAccountName', values: [holder] }),
        new Attribute({ type: 'userPrincipalName', values: [`${name}@${ad.upnSuffix}`] }),
      ]),
    );
    try {
      await expectCode(store.create(spec(name)), StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS);
      expect(await store.get(name)).toBeNull();
    } finally {
      await asAdmin((c) => c.del(dn));
    }
  });

  it('rejects hostile names before sending anything', async () => {
    const hostile = ['x*)(cn=*', 'a,b', 'a=b', 'a+b', 'a"b', 'a\\b', 'a<b>', 'a;b', 'a\0b', 'a\nb', 'a/b', 'a[b]', 'a|b', 'a?b', 'a@b', '#abc', 'zoë', '*()\\,=+<>#;"'];
    for (const name of hostile) {
      await expectCode(store.create({ ...spec('x'), name }), StoreErrors.JIT_ERR_STORE_INVALID_NAME);
      await expectCode(store.delete(name), StoreErrors.JIT_ERR_STORE_INVALID_NAME);
      await expectCode(store.get(name), StoreErrors.JIT_ERR_STORE_INVALID_NAME);
    }
    expect(await countByFilter(`(description=${escapeFilterValue(`${marker}:x`)})`)).toBe(0);
  });

  it('refuses every mutation of an account it did not create', async () => {
    const name = uniqueName('hm');
    // Same OU, description looks almost like a marker (AD matches it case-insensitively).
    const dn = await seedUnmanaged(name, 'JITGATE:not-ours', ad.jitOu);
    try {
      const refused = StoreErrors.JIT_ERR_STORE_NOT_MANAGED;
      await expectCode(store.delete(name), refused);
      await expectCode(store.disable(name), refused);
      await expectCode(store.enable(name, new Date(Date.now() + HOUR)), refused);
      await expectCode(store.setPassword(name, password()), refused);
      await expectCode(store.setMarker(name, `${marker}:steal`), refused);
      await expectCode(store.addToGroup(name, 'JIT Admins'), refused);
      await expectCode(store.removeFromGroup(name, 'JIT Admins'), refused);
      const got = await store.get(name);
      expect(got).toMatchObject({ name, marker: 'JITGATE:not-ours', enabled: true, groups: [] });
      expect((await store.listManaged()).map((a) => a.name)).not.toContain(name);
    } finally {
      await asAdmin((c) => c.del(dn));
    }
  });

  it('delete is idempotent', async () => {
    const s = spec(uniqueName());
    await store.create(s);
    await store.delete(s.name);
    await store.delete(s.name);
    expect(await store.get(s.name)).toBeNull();
    await store.delete(uniqueName());
  });

  it('listManaged returns only marked accounts', async () => {
    const a = spec(uniqueName());
    const b = spec(uniqueName());
    const plain = uniqueName('hm');
    await store.create(a);
    await store.create(b);
    const dn = await seedUnmanaged(plain, 'someone else', ad.jitOu);
    try {
      const names = (await store.listManaged()).map((x) => x.name);
      expect(names).toEqual(expect.arrayContaining([a.name, b.name]));
      expect(names).not.toContain(plain);
      const listed = (await store.listManaged()).find((x) => x.name === a.name);
      expect(listed).toEqual({ name: a.name, location: expect.any(String), marker: a.marker, enabled: true, groups: [], expiresAt: a.expiresAt });
    } finally {
      await store.delete(a.name);
      await store.delete(b.name);
      await asAdmin((c) => c.del(dn));
    }
  });

  it('refuses to create or set passwords over plain ldap:// without StartTLS, even when the bind is allowed', async () => {
    const plain = new LdapAccountStore(options({ url: ad.startTlsUrl }));
    const allowed = new LdapAccountStore(options({ url: ad.startTlsUrl, allowInsecureTransport: true }));
    try {
      const s = spec(uniqueName());
      for (const st of [plain, allowed]) {
        await expectCode(st.create(s), StoreErrors.JIT_ERR_STORE_INSECURE);
        await expectCode(st.setPassword(s.name, password()), StoreErrors.JIT_ERR_STORE_INSECURE);
        // Refused by jitgate before connecting (plain), or by Samba ("ldap server require strong auth").
        await expectCode(st.check(), StoreErrors.JIT_ERR_STORE_INSECURE);
      }
      expect(await countByFilter(`(sAMAccountName=${escapeFilterValue(s.name)})`)).toBe(0);
    } finally {
      await plain.close();
      await allowed.close();
    }
  });

  it('finds accounts created in a per-computer container: create reports the DN, get and listManaged carry it', async () => {
    const ou = `OU=pc-${randomBytes(4).toString('hex')},${ad.baseDn}`;
    await asAdmin((c) => c.add(ou, [new Attribute({ type: 'objectClass', values: ['organizationalUnit'] })]));
    const s = spec(uniqueName());
    try {
      const created = await store.create({ ...s, container: ou });
      expect(created.location?.toLowerCase()).toBe(`CN=${s.name},${ou}`.toLowerCase());
      await store.addToGroup(s.name, 'JIT Admins');
      const listed = (await store.listManaged()).find((a) => a.name === s.name);
      expect(listed).toMatchObject({ name: s.name, marker: s.marker, groups: ['JIT Admins'] });
      expect(listed?.location?.toLowerCase()).toBe(created.location?.toLowerCase());
      expect((await store.get(s.name))?.location?.toLowerCase()).toBe(created.location?.toLowerCase());
      await store.removeFromGroup(s.name, 'JIT Admins');
      await store.delete(s.name);
      // A positive "no such account" from the directory: null.
      expect(await store.get(s.name)).toBeNull();
      expect((await store.listManaged()).map((a) => a.name)).not.toContain(s.name);
    } finally {
      await store.delete(s.name).catch(() => undefined);
      await asAdmin((c) => c.del(ou));
    }
  });

  it('get throws, never returns null, when the directory stops answering; the error says why', async () => {
    const proxy = await startLdapPauseProxy({ upstreamHost: ad.dcAddress, upstreamCa: ad.caCert });
    const viaProxy = new LdapAccountStore(options({ url: proxy.url, caCert: proxy.caCert, timeoutMs: 1_500 }));
    const s = spec(uniqueName());
    try {
      await store.create(s);
      expect((await viaProxy.get(s.name))?.name).toBe(s.name);
      // The search goes unanswered; so does the bind of the one retry on a fresh connection.
      const held = proxy.holdNext([LDAP_OP.search]);
      const pending = viaProxy.get(s.name).then(
        (v) => ({ value: v }),
        (e: unknown) => ({ error: e }),
      );
      await held;
      const heldAgain = proxy.holdNext([LDAP_OP.bind, LDAP_OP.search]);
      const outcome = await pending;
      await heldAgain;
      expect('error' in outcome && isJitgateError(outcome.error, StoreErrors.JIT_ERR_STORE_UNREACHABLE)).toBe(true);
      const err = (outcome as { error: { message: string } }).error;
      expect(err.message).toBe(`account store ${proxy.url} unreachable: no answer: timed out after 1.5 s`);
      // The directory itself still holds the account.
      expect((await store.get(s.name))?.name).toBe(s.name);
    } finally {
      await viaProxy.close();
      await proxy.close();
      await store.delete(s.name);
    }
  });

  it('a missing baseDn is a failure, not "no such account"', async () => {
    const wrongBase = new LdapAccountStore(options({ baseDn: `OU=gone-${randomBytes(3).toString('hex')},${ad.baseDn}` }));
    try {
      await expectCode(wrongBase.get('nobody_here'), StoreErrors.JIT_ERR_STORE_FAILED);
    } finally {
      await wrongBase.close();
    }
  });

  it('says "TLS certificate not trusted" when the directory presents a certificate from another CA', async () => {
    const proxy = await startLdapPauseProxy({ upstreamHost: ad.dcAddress, upstreamCa: ad.caCert });
    // Trusts the DC's CA, but the proxy answers with its own.
    const wrongCa = new LdapAccountStore(options({ url: proxy.url, timeoutMs: 2_000 }));
    try {
      const err = await wrongCa.check().then(
        () => null,
        (e: unknown) => e,
      );
      expect(isJitgateError(err, StoreErrors.JIT_ERR_STORE_UNREACHABLE)).toBe(true);
      expect(isJitgateError(err) && String(err.details.reason)).toMatch(/^TLS certificate not trusted \(/);
      expect(proxy.seen).toEqual([]);
    } finally {
      await wrongCa.close();
      await proxy.close();
    }
  });

  it('bounds the displayName to AD\'s 256 characters: a 256-character login still gets its account', async () => {
    const s = spec(uniqueName());
    const displayName = `JIT ${'l'.repeat(256)} (pc-with-a-name)`;
    await store.create({ ...s, displayName });
    try {
      const shown = await asAdmin(async (c) => {
        const { searchEntries } = await c.search(ad.baseDn, { scope: 'sub', filter: `(sAMAccountName=${escapeFilterValue(s.name)})`, attributes: ['displayName'] });
        return String(searchEntries[0]?.displayName ?? '');
      });
      expect(shown.length).toBe(256);
      expect(shown.startsWith(`JIT ${'l'.repeat(200)}`)).toBe(true);
      expect(shown.endsWith('…')).toBe(true);
      expect(await canBind(s.name, s.password)).toBe(true);
    } finally {
      await store.delete(s.name);
    }
  });

  it('works over StartTLS', async () => {
    const tls = new LdapAccountStore(options({ url: ad.startTlsUrl, startTls: true }));
    const s = spec(uniqueName());
    try {
      await tls.check();
      await tls.create(s);
      await tls.addToGroup(s.name, 'Helpdesk');
      expect(await tls.get(s.name)).toMatchObject({ name: s.name, enabled: true, groups: ['Helpdesk'] });
      expect(await canBind(s.name, s.password)).toBe(true);
    } finally {
      await tls.delete(s.name);
      await tls.close();
    }
  });

  it('reconnects and rebinds once after the connection was lost', async () => {
    // A loopback TCP proxy we can cut; the DC certificate also names 127.0.0.1.
    const sockets = new Set<Socket>();
    const proxy = createServer((down) => {
      const up = connect(636, ad.dcAddress);
      for (const sock of [down, up]) {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
        sock.on('error', () => undefined);
      }
      down.pipe(up).pipe(down);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const { port } = proxy.address() as AddressInfo;
    const viaProxy = new LdapAccountStore(options({ url: `ldaps://127.0.0.1:${port}` }));
    const s = spec(uniqueName());
    try {
      await viaProxy.create(s);
      for (const sock of sockets) sock.destroy();
      expect((await viaProxy.get(s.name))?.name).toBe(s.name);
      await viaProxy.disable(s.name);
      expect((await store.get(s.name))?.enabled).toBe(false);
      proxy.close();
      for (const sock of sockets) sock.destroy();
      await expectCode(viaProxy.get(s.name), StoreErrors.JIT_ERR_STORE_UNREACHABLE);
    } finally {
      await viaProxy.close();
      proxy.close();
      await store.delete(s.name);
    }
  });

  it('reports an unreachable directory as JIT_ERR_STORE_UNREACHABLE, saying "connection refused"', async () => {
    const dead = new LdapAccountStore(options({ url: `ldaps://${ad.hostAddress}:1636`, timeoutMs: 2_000 }));
    try {
      await expectCode(dead.check(), StoreErrors.JIT_ERR_STORE_UNREACHABLE);
      const err = await dead.get('nobody_here').then(
        () => null,
        (e: unknown) => e,
      );
      expect(isJitgateError(err) && err.message).toBe(`account store ldaps://${ad.hostAddress}:1636 unreachable: connection refused`);
    } finally {
      await dead.close();
    }
  });
});

describe('LdapAccountStore without a directory', () => {
  it('refuses to bind over ldap:// without StartTLS even when constructed directly: no connection is even opened', async () => {
    let connections = 0;
    const server = createServer((sock) => {
      connections++;
      sock.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const plain = new LdapAccountStore({
      url: `ldap://127.0.0.1:${port}`,
      caCert: '',
      bindDn: 'CN=svc,DC=x',
      bindPassword: 'not-to-be-sent',
      baseDn: 'DC=x',
      accountsContainer: 'OU=JIT,DC=x',
      groups: {},
      logger,
      timeoutMs: 1_000,
    });
    try {
      for (const op of [() => plain.check(), () => plain.get('alice'), () => plain.listManaged(), () => plain.delete('alice')]) {
        const err = await op().then(
          () => null,
          (e: unknown) => e,
        );
        expect(isJitgateError(err, StoreErrors.JIT_ERR_STORE_INSECURE)).toBe(true);
      }
      expect(connections).toBe(0);
    } finally {
      await plain.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('exposes the configured NetBIOS domain for credentials', () => {
    const base = { url: 'ldaps://dc:636', caCert: '', bindDn: 'a', bindPassword: 'b', baseDn: 'DC=x', accountsContainer: 'OU=J,DC=x', groups: {}, logger };
    expect(new LdapAccountStore({ ...base, domain: 'CORP' }).domain).toBe('CORP');
    expect(new LdapAccountStore(base).domain).toBeUndefined();
  });
});

describe.skipIf(!avail.ok)('Samba AD harness', () => {
  it('stop() is idempotent and removes the namespace and the state directory', async () => {
    const ad = await startSambaAd();
    expect(existsSync(`/run/netns/${ad.netns}`)).toBe(true);
    await ad.stop();
    await ad.stop();
    expect(existsSync(`/run/netns/${ad.netns}`)).toBe(false);
    expect(existsSync(ad.stateDir)).toBe(false);
  });
});

describeAccountStoreContract(
  'ldap on Samba AD',
  async () => {
    const ad = await startSambaAd();
    const withClient = async <T>(dn: string, pw: string, fn: (c: Client) => Promise<T>): Promise<T> => {
      const c = new Client({ url: ad.url, tlsOptions: { ca: [ad.caCert] }, timeout: 10_000, connectTimeout: 10_000 });
      try {
        await c.bind(dn, pw);
        return await fn(c);
      } finally {
        await c.unbind().catch(() => undefined);
      }
    };
    const asAdmin = <T>(fn: (c: Client) => Promise<T>): Promise<T> => withClient(ad.adminDn, ad.adminPassword, fn);
    // A protected group of this installation, nested: membership of the inner group counts too.
    const protectedDn = `CN=JIT Never Elevate,${ad.jitOu}`;
    const innerDn = `CN=JIT Never Elevate Inner,${ad.jitOu}`;
    await asAdmin(async (c) => {
      for (const dn of [protectedDn, innerDn]) {
        await c.add(dn, [
          new Attribute({ type: 'objectClass', values: ['group'] }),
          new Attribute({ type: 'sAMAccountName', values: [dn.slice(3, dn.indexOf(',')).replaceAll(' ', '')] }),
        ]);
      }
      await c.modify(protectedDn, new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [innerDn] }) }));
    });
    const store = new LdapAccountStore({
      url: ad.url,
      caCert: ad.caCert,
      bindDn: ad.bindDn,
      bindPassword: ad.bindPassword,
      baseDn: ad.baseDn,
      accountsContainer: ad.jitOu,
      groups: ad.adminGroupDns,
      protectedGroups: [protectedDn],
      logger,
    });
    const userDn = (name: string) => `CN=${name},${ad.jitOu}`;
    const groupDn = (g: string) => ad.adminGroupDns[g]!;
    const modify = (dn: string, operation: 'add' | 'replace', type: string, value: string) =>
      asAdmin((c) => c.modify(dn, new Change({ operation, modification: new Attribute({ type, values: [value] }) })));
    return {
      store,
      groups: ['JIT Admins', 'Helpdesk'],
      elevation: {
        builtInProtected: 'Administrator',
        makeProtectedByGroup: (name: string) => modify(innerDn, 'add', 'member', userDn(name)),
        makeProtectedByDirectory: (name: string) => modify(userDn(name), 'replace', 'adminCount', '1'),
        disableOutOfBand: (name: string) => modify(userDn(name), 'replace', 'userAccountControl', '514'),
        // A FILETIME (100 ns since 1601) one hour ago.
        expireOutOfBand: (name: string) => modify(userDn(name), 'replace', 'accountExpires', String((BigInt(Date.now() - 3_600_000) + 11_644_473_600_000n) * 10_000n)),
        addMemberOutOfBand: (name: string, g: string) => modify(groupDn(g), 'add', 'member', userDn(name)),
        memberOutOfBand: (name: string, g: string) =>
          asAdmin(async (c) => {
            const { searchEntries } = await c.search(groupDn(g), { scope: 'base', attributes: ['member'] });
            const m = searchEntries[0]?.member;
            return (m === undefined ? [] : Array.isArray(m) ? m : [m]).map((v) => String(v).toLowerCase()).includes(userDn(name).toLowerCase());
          }),
        alias: async (name: string) => {
          const upn = `${name}@${ad.upnSuffix}`;
          await modify(userDn(name), 'replace', 'userPrincipalName', upn);
          return upn;
        },
      },
      seedUnmanaged: (name: string) =>
        withClient(ad.adminDn, ad.adminPassword, (c) =>
          c.add(`CN=${name},${ad.jitOu}`, [
            new Attribute({ type: 'objectClass', values: ['user'] }),
            new Attribute({ type: 'sAMAccountName', values: [name] }),
            new Attribute({ type: 'description', values: ['seeded by hand'] }),
            new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${password()}"`, 'utf16le')] }),
            new Attribute({ type: 'userAccountControl', values: ['512'] }),
          ]),
        ),
      removeUnmanaged: (name: string) => withClient(ad.adminDn, ad.adminPassword, (c) => c.del(`CN=${name},${ad.jitOu}`)),
      canLogOn: async (name: string, pw: string) => {
        try {
          await withClient(`${name}@${ad.upnSuffix}`, pw, async () => undefined);
          return true;
        } catch (err) {
          if (err instanceof ResultCodeError && err.code === 49) return false;
          throw err;
        }
      },
      teardown: async () => {
        await store.close();
        await ad.stop();
      },
    };
  },
  { skip: avail.ok ? '' : (avail.reason ?? 'unavailable') },
);
