import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'ldapts';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import { silentLogger } from '../core/logging.js';
import type { AccountStore } from '../provisioner/account-store.js';
import { JitAccountService } from '../provisioner/jit-account.service.js';
import { JIT_PRESETS } from '../provisioner/jit-settings.js';
import { LdapAccountStore } from '../provisioner/stores/ldap.store.js';
import { JitFixture } from './fixtures/jit-fixture.js';
import { sambaAdAvailable, startSambaAd, type SambaAdHandle } from './harness/samba-ad.js';

/**
 * The JIT engine end to end on a real Active Directory (Samba AD DC in a
 * network namespace): the account really binds, really sits in the group,
 * and after a crash at the worst moments the reconciler leaves nothing.
 */
const avail = sambaAdAvailable();

describe.skipIf(!avail.ok)(`JIT engine on Samba AD${avail.ok ? '' : ` (skipped: ${avail.reason ?? ''})`}`, () => {
  let ad: SambaAdHandle;
  let db: PgliteDatabase;
  let store: LdapAccountStore;
  let fx: JitFixture;
  const storeName = 'corp-ad';

  const newStore = () =>
    new LdapAccountStore({
      url: ad.url, caCert: ad.caCert, bindDn: ad.bindDn, bindPassword: ad.bindPassword, baseDn: ad.baseDn,
      accountsContainer: ad.jitOu, groups: ad.adminGroupDns, logger: silentLogger(),
    });

  async function ldap<T>(fn: (c: Client) => Promise<T>, asDn = ad.bindDn, pw = ad.bindPassword): Promise<T> {
    const c = new Client({ url: ad.url, tlsOptions: { ca: [ad.caCert] } });
    try {
      await c.bind(asDn, pw);
      return await fn(c);
    } finally {
      await c.unbind().catch(() => undefined);
    }
  }

  async function groupMembers(group: string): Promise<string[]> {
    return ldap(async (c) => {
      const { searchEntries } = await c.search(ad.adminGroupDns[group]!, { scope: 'base', attributes: ['member'] });
      const m = searchEntries[0]?.member;
      return (Array.isArray(m) ? m : m ? [m] : []).map(String);
    });
  }

  async function canBind(name: string, password: string): Promise<boolean> {
    const c = new Client({ url: ad.url, tlsOptions: { ca: [ad.caCert] } });
    try {
      await c.bind(`${name}@${ad.upnSuffix}`, password);
      return true;
    } catch {
      return false;
    } finally {
      await c.unbind().catch(() => undefined);
    }
  }

  async function jitAccountsInAd(): Promise<string[]> {
    return ldap(async (c) => {
      const { searchEntries } = await c.search(ad.baseDn, { filter: '(&(objectClass=user)(description=jitgate:*))', attributes: ['sAMAccountName'] });
      return searchEntries.map((e) => String(e.sAMAccountName));
    });
  }

  beforeAll(async () => {
    ad = await startSambaAd();
    db = await PgliteDatabase.open();
    await migrate(db);
    store = newStore();
    fx = new JitFixture(db, new Map<string, AccountStore>([[storeName, store]]));
  });
  afterAll(async () => {
    await store?.close();
    await db?.close();
    await ad?.stop();
  });

  it('maximum security: the JIT account binds, is in JIT Admins during the session, and is gone after check-in', async () => {
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins'] });
    const { sessionId, result } = await fx.open(pc, 'alice');
    expect(result.account).toMatch(/^alice_[a-z0-9]{6}$/);
    const creds = await fx.service.credentials(sessionId);
    expect(await canBind(result.account!, creds.password.reveal())).toBe(true);
    expect((await groupMembers('JIT Admins')).some((dn) => dn.toLowerCase().includes(`cn=${result.account}`))).toBe(true);
    await fx.service.teardown(sessionId, 'closed');
    expect(await jitAccountsInAd()).not.toContain(result.account);
    expect(await canBind(result.account!, creds.password.reveal())).toBe(false);
    expect((await groupMembers('JIT Admins')).some((dn) => dn.toLowerCase().includes(`cn=${result.account}`))).toBe(false);
    const types = (await fx.audit.list({ sessionId })).map((e) => e.type);
    expect(types).toEqual(['session.requested', 'account.created', 'account.group_added', 'session.started', 'account.group_removed', 'account.deleted', 'session.ended']);
  });

  it('balanced: between sessions the account is disabled with a password nobody knows; next time it is re-enabled', async () => {
    const pc = await fx.computer({ ...JIT_PRESETS.balanced, adminGroups: ['JIT Admins'] });
    const first = await fx.open(pc, 'bob');
    const pw1 = (await fx.service.credentials(first.sessionId)).password.reveal();
    await fx.service.teardown(first.sessionId, 'closed');
    expect(await canBind(first.result.account!, pw1)).toBe(false);
    expect(await store.get(first.result.account!)).toMatchObject({ enabled: false, groups: [] });
    const second = await fx.open(pc, 'bob');
    expect(second.result.account).toBe(first.result.account);
    const pw2 = (await fx.service.credentials(second.sessionId)).password.reveal();
    expect(await canBind(second.result.account!, pw2)).toBe(true);
    await fx.service.teardown(second.sessionId, 'closed');
    await store.delete(second.result.account!);
  });

  /** The real store, with its listing paused until released (a slow directory) and removals failing on demand. */
  function slowStore(real: LdapAccountStore) {
    let gate: { entered: () => void; release: Promise<void> } | null = null;
    let failRemovals = 0;
    const wrapped: AccountStore = {
      kind: real.kind,
      nameRules: real.nameRules,
      create: (spec) => real.create(spec),
      addToGroup: (n, g) => real.addToGroup(n, g),
      disable: (n) => real.disable(n),
      enable: (n, at) => real.enable(n, at),
      setPassword: (n, pw) => real.setPassword(n, pw),
      setMarker: (n, m) => real.setMarker(n, m),
      delete: (n) => real.delete(n),
      get: (n) => real.get(n),
      findExisting: (n) => real.findExisting(n),
      isMember: (n, g) => real.isMember(n, g),
      addMember: (n, g) => real.addMember(n, g),
      removeMember: (n, g) => real.removeMember(n, g),
      check: () => real.check(),
      close: async () => undefined,
      listManaged: async () => {
        const g = gate;
        gate = null;
        if (g) {
          g.entered();
          await g.release;
        }
        return real.listManaged();
      },
      removeFromGroup: async (name: string, group: string) => {
        if (failRemovals > 0) {
          failRemovals--;
          throw new Error('directory went away');
        }
        return real.removeFromGroup(name, group);
      },
    };
    return {
      store: wrapped,
      holdListing() {
        let release!: () => void;
        let entered!: () => void;
        const e = new Promise<void>((r) => (entered = r));
        gate = { entered, release: new Promise<void>((r) => (release = r)) };
        return { entered: e, release };
      },
      failNextRemoval() {
        failRemovals++;
      },
    };
  }

  it('a session started while the sweep lists the directory is left alone: its account binds and stays in JIT Admins', async () => {
    const slow = slowStore(store);
    const f = new JitFixture(db, new Map<string, AccountStore>([[storeName, slow.store]]));
    const pc = await f.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins'] });
    const hold = slow.holdListing();
    const sweep = f.service.reconcile();
    await hold.entered;
    const { sessionId, result } = await f.open(pc, 'erin');
    hold.release();
    const r = await sweep;
    expect(r.actions.filter((a) => a.name === result.account)).toEqual([]);
    const creds = await f.service.credentials(sessionId);
    expect(await canBind(result.account!, creds.password.reveal())).toBe(true);
    expect((await groupMembers('JIT Admins')).some((dn) => dn.toLowerCase().includes(`cn=${result.account}`))).toBe(true);
    await f.service.teardown(sessionId, 'closed');
    expect(await jitAccountsInAd()).not.toContain(result.account);
  });

  it("an account created in a computer's own OU is found by the sweep, never forgotten while it exists, and removed after its lease", async () => {
    const ou = `OU=Servers${Math.random().toString(36).slice(2, 7)},${ad.baseDn}`;
    await ldap((c) => c.add(ou, { objectClass: ['top', 'organizationalUnit'] }));
    const slow = slowStore(store);
    const f = new JitFixture(db, new Map<string, AccountStore>([[storeName, slow.store]]));
    const pc = await f.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins'], container: ou });
    const { sessionId, result } = await f.open(pc, 'fred', { minutes: 5 });
    const row = (await f.repo.listAccounts()).find((a) => a.name === result.account)!;
    expect(row.location?.toLowerCase()).toBe(`cn=${result.account},${ou}`.toLowerCase());
    expect((await store.listManaged()).map((a) => a.name)).toContain(result.account);
    // the teardown fails half-way (the directory went away during the group removal)
    slow.failNextRemoval();
    await expect(f.service.teardown(sessionId, 'closed')).rejects.toThrow();
    for (let i = 0; i < 2; i++) {
      const r = await f.service.reconcile();
      expect(r.actions.filter((a) => a.name === result.account && a.kind === 'forget')).toEqual([]);
    }
    expect((await f.repo.getAccount(row.id))!.state).toBe('active');
    expect(await jitAccountsInAd()).toContain(result.account);
    // after the lease the sweep ends the session; its teardown removes the account from its own OU
    f.clock = new Date(Date.now() + 10 * 60_000);
    const r = await f.service.reconcile();
    expect(r.sessions.filter((x) => x.sessionId === sessionId)).toMatchObject([{ done: true }]);
    expect(await jitAccountsInAd()).not.toContain(result.account);
    expect((await groupMembers('JIT Admins')).some((dn) => dn.toLowerCase().includes(`cn=${result.account}`))).toBe(false);
    expect((await f.repo.getAccount(row.id))!.state).toBe('deleted');
  });

  it('worker dies between create and group add, and the gateway dies mid-session: after the leases, reconcile leaves zero JIT accounts and memberships', async () => {
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins', 'Helpdesk'] });
    // (1) a "worker" whose process dies right after the account is created:
    // its store connection vanishes before the group add and before any rollback.
    const dying = newStore();
    const crashingStore: AccountStore = {
      kind: dying.kind,
      nameRules: dying.nameRules,
      create: (spec) => dying.create(spec),
      addToGroup: async () => {
        await dying.close();
        throw new Error('worker killed');
      },
      removeFromGroup: async () => { throw new Error('worker killed'); },
      disable: async () => { throw new Error('worker killed'); },
      enable: async () => { throw new Error('worker killed'); },
      setPassword: async () => { throw new Error('worker killed'); },
      setMarker: async () => { throw new Error('worker killed'); },
      delete: async () => { throw new Error('worker killed'); },
      get: (n) => dying.get(n),
      findExisting: (n) => dying.findExisting(n),
      isMember: (n, g) => dying.isMember(n, g),
      addMember: async () => { throw new Error('worker killed'); },
      removeMember: async () => { throw new Error('worker killed'); },
      listManaged: () => dying.listManaged(),
      check: () => dying.check(),
      close: () => dying.close(),
    };
    const crashEngine = new JitAccountService({
      repo: fx.repo, audit: fx.audit, box: fx.box, stores: new Map([[storeName, crashingStore]]), log: silentLogger(),
      installationId: fx.installationId, leaseGraceMs: 1000, now: () => fx.clock,
    });
    const s1 = await fx.service.requestSession({ personLogin: 'carol', computer: pc, protocol: 'rdp', minutes: 5 });
    await expect(crashEngine.provision(s1.id)).rejects.toThrow();
    const orphan = (await fx.repo.getSession(s1.id))!.accountName!;
    expect(await jitAccountsInAd()).toContain(orphan);

    // (2) a live session whose gateway dies: no teardown is ever called
    const s2 = await fx.open(pc, 'dave', { minutes: 5 });
    expect((await groupMembers('Helpdesk')).length).toBeGreaterThan(0);

    // while the leases are live, the reconciler touches nothing
    const early = await fx.service.reconcile();
    expect(early.actions.filter((a) => a.kind !== 'forget')).toEqual([]);
    expect(await jitAccountsInAd()).toEqual(expect.arrayContaining([orphan, s2.result.account]));

    // a fresh process after the leases ran out (new store connection, same database)
    fx.clock = new Date(fx.clock.getTime() + 10 * 60_000);
    const report = await fx.service.reconcile();
    expect(report.failures).toEqual([]);
    expect(await jitAccountsInAd()).toEqual([]);
    expect(await groupMembers('JIT Admins')).toEqual([]);
    expect(await groupMembers('Helpdesk')).toEqual([]);
    expect((await fx.repo.getSession(s2.sessionId))!.state).toBe('ended');
    expect((await fx.audit.verify()).ok).toBe(true);
  });
});
