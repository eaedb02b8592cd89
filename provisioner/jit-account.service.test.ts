import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { JitgateError, isJitgateError } from '../core/errors.js';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import { StoreErrors } from './errors.js';
import { MemoryAccountStore } from './stores/memory.store.js';
import { JitFixture } from '../test/fixtures/jit-fixture.js';
import { makeMarker } from './reconcile-plan.js';
import { JIT_PRESETS } from './jit-settings.js';

const GROUPS = ['JIT Admins', 'Helpdesk'];
let db: PgliteDatabase;
let ad: MemoryAccountStore;
let local: MemoryAccountStore;
let fx: JitFixture;

beforeAll(async () => {
  db = await PgliteDatabase.open();
  await migrate(db);
});
afterAll(async () => db.close());
beforeEach(() => {
  ad = new MemoryAccountStore({ groups: GROUPS });
  local = new MemoryAccountStore({ groups: ['Administrators'] });
  // unique store names per test: rows of earlier tests belong to other stores
  const tag = Math.random().toString(36).slice(2, 8);
  fx = new JitFixture(db, new Map([[`ad-${tag}`, ad], [`local-${tag}`, local]]));
});

const maxSec = { ...JIT_PRESETS.maximumSecurity, adminGroups: ['JIT Admins'] };
const balanced = { ...JIT_PRESETS.balanced, adminGroups: ['JIT Admins'] };

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isJitgateError(e) ? e.code : String(e);
  }
}

describe('JIT engine: maximum security (create and delete per session)', () => {
  it('creates <login>_<random> in the admin group, injects working credentials, deletes at check-in', async () => {
    const pc = await fx.computer({ ...maxSec, adminGroups: ['JIT Admins', 'Helpdesk'] });
    const { sessionId, result } = await fx.open(pc, 'alice');
    expect(result.account).toMatch(/^alice_[a-z0-9]{6}$/);
    const acct = await ad.get(result.account!);
    expect(acct).toMatchObject({ enabled: true, groups: ['JIT Admins', 'Helpdesk'] });
    expect(acct!.marker).toMatch(new RegExp(`^jitgate:${fx.installationId}:`));
    const creds = await fx.service.credentials(sessionId);
    expect(creds.username).toBe(result.account);
    expect(String(creds.password)).toBe('[redacted]');
    expect(creds.password.reveal().length).toBeGreaterThanOrEqual(24);
    expect(ad.canLogOn(result.account!, creds.password.reveal())).toBe(true);

    await fx.service.teardown(sessionId, 'closed by user', 'alice');
    expect(ad.accounts.size).toBe(0);
    expect([...ad.groups.values()].every((g) => g.size === 0)).toBe(true);
    expect((await fx.repo.getSession(sessionId))!.state).toBe('ended');

    const trail = (await fx.audit.list({ sessionId })).map((e) => e.type);
    expect(trail).toEqual(['session.requested', 'account.created', 'account.group_added', 'account.group_added', 'session.started', 'account.logged_off', 'account.group_removed', 'account.group_removed', 'account.deleted', 'session.ended']);
    expect((await fx.audit.verify()).ok).toBe(true);
  });

  it('is idempotent: provision twice returns the same account; teardown twice is harmless', async () => {
    const pc = await fx.computer(maxSec);
    const { sessionId, result } = await fx.open(pc, 'bob');
    const again = await fx.service.provision(sessionId);
    expect(again.account).toBe(result.account);
    expect(ad.accounts.size).toBe(1);
    await fx.service.teardown(sessionId, 'x');
    await fx.service.teardown(sessionId, 'x');
    expect(ad.accounts.size).toBe(0);
    expect(await codeOf(fx.service.provision(sessionId))).toBe('JIT_ERR_JIT_SESSION_CLOSED');
    expect(ad.accounts.size).toBe(0);
  });

  it('picks another name on collision and never touches the existing account', async () => {
    const pc = await fx.computer(maxSec);
    ad.seedUnmanaged('carol_taken');
    ad.failNext('create', new JitgateError(StoreErrors.JIT_ERR_STORE_ACCOUNT_EXISTS, { name: 'carol_x' }));
    const { sessionId, result } = await fx.open(pc, 'carol');
    expect(result.account).toMatch(/^carol_/);
    expect(ad.calls.filter((c) => c.op === 'create')).toHaveLength(2);
    await fx.service.teardown(sessionId, 'x');
    expect([...ad.accounts.keys()]).toEqual(['carol_taken']);
  });

  it('rolls back when the group add fails: nothing is left, the session fails, the audit says why', async () => {
    const pc = await fx.computer(maxSec);
    ad.failNext('addToGroup');
    const s = await fx.service.requestSession({ personLogin: 'dave', computer: pc, protocol: 'ssh' });
    expect(await codeOf(fx.service.provision(s.id))).toBe('JIT_ERR_STORE_UNREACHABLE');
    expect(ad.accounts.size).toBe(0);
    const sess = (await fx.repo.getSession(s.id))!;
    expect(sess.state).toBe('failed');
    expect(sess.errorCode).toBe('JIT_ERR_STORE_UNREACHABLE');
    const types = (await fx.audit.list({ sessionId: s.id })).map((e) => e.type);
    expect(types).toContain('account.rolled_back');
    expect(types).toContain('session.failed');
  });
});

describe('JIT engine: login names', () => {
  it.each([
    ['*()\\,=+<>#;"evil', /^evil_[a-z0-9]{6}$/],
    ['Ünïcødé', /^unicde_[a-z0-9]{6}$/],
    ['a'.repeat(200), /^a{13}_[a-z0-9]{6}$/],
    ['123bob', /^u123bob_[a-z0-9]{6}$/],
  ])('folds %j to a safe name of at most 20 characters', async (login, re) => {
    const pc = await fx.computer(maxSec);
    const { sessionId, result } = await fx.open(pc, login);
    expect(result.account).toMatch(re);
    expect(result.account!.length).toBeLessThanOrEqual(20);
    await fx.service.teardown(sessionId, 'x');
  });

  it('rejects control characters (NUL, newline) in a login before anything is stored', async () => {
    const pc = await fx.computer(maxSec);
    for (const login of ['x\u0000y', 'x\ny', '', 'a'.repeat(300)]) {
      expect(await codeOf(fx.service.requestSession({ personLogin: login, computer: pc, protocol: 'ssh' }))).toBe('JIT_ERR_VALIDATION');
    }
    expect(ad.calls).toHaveLength(0);
  });

  it('rejects a login with nothing usable and creates nothing', async () => {
    const pc = await fx.computer(maxSec);
    const s = await fx.service.requestSession({ personLogin: '*()\\,=+<>#;"', computer: pc, protocol: 'ssh' });
    expect(await codeOf(fx.service.provision(s.id))).toBe('JIT_ERR_VALIDATION');
    expect(ad.calls.filter((c) => c.op === 'create')).toHaveLength(0);
  });
});

describe('JIT engine: balanced (reuse per person, disabled and rotated between sessions)', () => {
  it('disables and rotates at check-in, then re-enables the same account with a new password', async () => {
    const pc = await fx.computer(balanced);
    const first = await fx.open(pc, 'erin');
    const pw1 = (await fx.service.credentials(first.sessionId)).password.reveal();
    await fx.service.teardown(first.sessionId, 'x');
    const name = first.result.account!;
    expect(await ad.get(name)).toMatchObject({ enabled: false, groups: [] });
    expect(ad.canLogOn(name, pw1)).toBe(false);
    // the stored password is erased between sessions
    expect((await fx.repo.listAccounts()).find((a) => a.name === name)!.passwordEnc).toBeNull();

    const second = await fx.open(pc, 'erin');
    expect(second.result.account).toBe(name);
    const pw2 = (await fx.service.credentials(second.sessionId)).password.reveal();
    expect(pw2).not.toBe(pw1);
    expect(ad.canLogOn(name, pw2)).toBe(true);
    expect((await ad.get(name))!.groups).toEqual(['JIT Admins']);

    const other = await fx.open(pc, 'frank');
    expect(other.result.account).not.toBe(name);
    await fx.service.teardown(second.sessionId, 'x');
    await fx.service.teardown(other.sessionId, 'x');
    expect([...ad.accounts.values()].every((a) => !a.enabled)).toBe(true);
  });

  it('keeps an account (disabled) but does not reuse it when reuse is off', async () => {
    const pc = await fx.computer({ ...balanced, reuseExistingAccount: false });
    const a = await fx.open(pc, 'gina');
    await fx.service.teardown(a.sessionId, 'x');
    const b = await fx.open(pc, 'gina');
    expect(b.result.account).not.toBe(a.result.account);
    expect(await ad.get(a.result.account!)).toMatchObject({ enabled: false, groups: [] });
    await fx.service.teardown(b.sessionId, 'x');
  });
});

describe('JIT engine: shared msp-NNNN accounts', () => {
  it('shares one account per organization, enabled only while a session uses it', async () => {
    const org = await fx.organization();
    const settings = { enabled: true, deleteOnCheckIn: false, accountMode: 'shared' as const, adminGroups: ['JIT Admins'] };
    const pc1 = await fx.computer(settings, { orgId: org.id });
    const pc2 = await fx.computer(settings, { orgId: org.id });
    const [a, b] = await Promise.all([fx.open(pc1, 'hank'), fx.open(pc2, 'ivy')]);
    expect(a.result.account).toBe(`msp-${org.code}`);
    expect(b.result.account).toBe(`msp-${org.code}`);
    expect(ad.accounts.size).toBe(1);
    const pw = (await fx.service.credentials(b.sessionId)).password.reveal();
    expect(ad.canLogOn(`msp-${org.code}`, pw)).toBe(true);
    await fx.service.teardown(a.sessionId, 'x');
    expect(await ad.get(`msp-${org.code}`)).toMatchObject({ enabled: true, groups: ['JIT Admins'] });
    await fx.service.teardown(b.sessionId, 'x');
    expect(await ad.get(`msp-${org.code}`)).toMatchObject({ enabled: false, groups: [] });
    expect(ad.canLogOn(`msp-${org.code}`, pw)).toBe(false);
  });
});

describe('JIT engine: account type', () => {
  it('uses an existing account when JIT is off (nothing created)', async () => {
    const pc = await fx.computer({ enabled: false, adminGroups: [] });
    const { result } = await fx.open(pc, 'jack');
    expect(result).toMatchObject({ accountType: 'existing', account: null });
    expect(ad.calls).toHaveLength(0);
  });

  it('lets the person choose domain or local when the computer says choose', async () => {
    const pc = await fx.computer({ ...maxSec, accountType: 'choose', adminGroups: ['Administrators', 'JIT Admins'] });
    expect(await codeOf(fx.service.requestSession({ personLogin: 'kim', computer: pc, protocol: 'rdp' }))).toBe('JIT_ERR_JIT_CHOOSE_ACCOUNT_TYPE');
    const pcLocal = await fx.computer({ ...maxSec, accountType: 'choose', adminGroups: ['Administrators'] });
    const { sessionId, result } = await fx.open(pcLocal, 'kim', { accountType: 'local' });
    expect(result.store).toBe(fx.localStore);
    expect((await local.get(result.account!))!.groups).toEqual(['Administrators']);
    expect(ad.accounts.size).toBe(0);
    await fx.service.teardown(sessionId, 'x');
    expect(local.accounts.size).toBe(0);
  });

  it('refuses a type the computer does not allow', async () => {
    const pc = await fx.computer(maxSec);
    expect(await codeOf(fx.service.requestSession({ personLogin: 'kim', computer: pc, protocol: 'ssh', accountType: 'local' }))).toBe('JIT_ERR_JIT_ACCOUNT_TYPE_NOT_ALLOWED');
  });
});

describe('JIT engine: leases, crashes and the reconciler', () => {
  it('expires a lease: before its end nothing happens, after it the account is gone', async () => {
    const pc = await fx.computer(maxSec);
    const { sessionId, result } = await fx.open(pc, 'leo', { minutes: 5 });
    expect(await fx.service.expireLease(sessionId)).toEqual({ expired: false });
    expect(await ad.get(result.account!)).not.toBeNull();
    fx.clock = new Date(fx.clock.getTime() + 6 * 60_000);
    expect(await fx.service.expireLease(sessionId)).toEqual({ expired: true });
    expect(await ad.get(result.account!)).toBeNull();
    expect((await fx.audit.list({ sessionId, type: 'lease.expired' }))).toHaveLength(1);
  });

  it('crash between create and group add (rollback also failing): reconcile after the lease leaves nothing', async () => {
    const pc = await fx.computer(maxSec);
    ad.failNext('addToGroup');
    ad.failNext('delete');
    const s = await fx.service.requestSession({ personLogin: 'mia', computer: pc, protocol: 'ssh', minutes: 5 });
    await expect(fx.service.provision(s.id)).rejects.toThrow();
    expect(ad.accounts.size).toBe(1);
    // while the lease is live the reconciler leaves it alone
    const early = await fx.service.reconcile();
    expect(early.actions).toEqual([]);
    expect(ad.accounts.size).toBe(1);
    fx.clock = new Date(fx.clock.getTime() + 10 * 60_000);
    const report = await fx.service.reconcile();
    expect(report.failures).toEqual([]);
    expect(ad.accounts.size).toBe(0);
    expect([...ad.groups.values()].every((g) => g.size === 0)).toBe(true);
  });

  it('teardown failing half-way is retried to completion', async () => {
    const pc = await fx.computer({ ...maxSec, adminGroups: ['JIT Admins', 'Helpdesk'] });
    const { sessionId } = await fx.open(pc, 'nina');
    ad.failNext('removeFromGroup');
    await expect(fx.service.teardown(sessionId, 'x')).rejects.toThrow();
    expect((await fx.repo.getSession(sessionId))!.state).toBe('ending');
    await fx.service.teardown(sessionId, 'x');
    expect(ad.accounts.size).toBe(0);
  });

  it('removes orphans marked by this installation only; never unmarked or foreign accounts; dry run changes nothing', async () => {
    const orphanId = '11111111-2222-3333-4444-555555555555';
    await ad.create({ name: 'orphan_abc123', password: 'Xx1!xxxxxxxxxxxxxxxxxxxxxx', marker: makeMarker(fx.installationId, orphanId), expiresAt: new Date(Date.now() + 3600_000) });
    await ad.addToGroup('orphan_abc123', 'JIT Admins');
    await ad.create({ name: 'foreign_abc123', password: 'Xx1!xxxxxxxxxxxxxxxxxxxxxx', marker: makeMarker('otherinst', orphanId), expiresAt: new Date(Date.now() + 3600_000) });
    ad.seedUnmanaged('admin');
    const dry = await fx.service.reconcile({ dryRun: true });
    expect(dry.actions.map((a) => [a.kind, a.name, a.done])).toEqual([['delete', 'orphan_abc123', false]]);
    expect(ad.accounts.size).toBe(3);
    const real = await fx.service.reconcile();
    expect(real.actions.map((a) => [a.kind, a.name, a.done])).toEqual([['delete', 'orphan_abc123', true]]);
    expect([...ad.accounts.keys()].sort()).toEqual(['admin', 'foreign_abc123']);
  });

  it('a kept account found enabled or still in a group while idle is disabled and cleaned', async () => {
    const pc = await fx.computer(balanced);
    const { sessionId, result } = await fx.open(pc, 'olga');
    await fx.service.teardown(sessionId, 'x');
    // someone re-enabled it and put it back into the group behind our back
    await ad.enable(result.account!, new Date(Date.now() + 86_400_000));
    await ad.addToGroup(result.account!, 'Helpdesk');
    const r = await fx.service.reconcile();
    expect(r.actions.map((a) => a.kind).sort()).toEqual(['disable', 'remove-group']);
    expect(await ad.get(result.account!)).toMatchObject({ enabled: false, groups: [] });
  });

  it('keeps going when one store fails and reports it', async () => {
    const pc = await fx.computer(maxSec);
    const { sessionId } = await fx.open(pc, 'pam', { minutes: 1 });
    local.failNext('listManaged');
    fx.clock = new Date(fx.clock.getTime() + 5 * 60_000);
    const r = await fx.service.reconcile();
    expect(r.failures).toEqual([{ item: `store ${fx.localStore}`, code: 'JIT_ERR_STORE_UNREACHABLE' }]);
    expect(r.expiredSessions).toBe(1);
    expect((await fx.repo.getSession(sessionId))!.state).toBe('ended');
    expect(ad.accounts.size).toBe(0);
  });
});

describe('JIT engine: secrets', () => {
  it('never stores a password in clear and erases it after the session logs in', async () => {
    const pc = await fx.computer(maxSec);
    const { sessionId } = await fx.open(pc, 'quinn');
    const pw = (await fx.service.credentials(sessionId)).password.reveal();
    const dump = JSON.stringify(await db.query('SELECT * FROM jit_accounts')) + JSON.stringify(await db.query('SELECT * FROM sessions')) + JSON.stringify(await db.query('SELECT * FROM audit_events'));
    expect(dump).not.toContain(pw);
    await fx.service.releaseCredentials(sessionId);
    expect(await codeOf(fx.service.credentials(sessionId))).toBe('JIT_ERR_JIT_NO_CREDENTIALS');
    await fx.service.teardown(sessionId, 'x');
  });
});

describe('JIT engine: misconfigured group', () => {
  it('rolls back completely when the admin group does not exist in the store', async () => {
    const pc = await fx.computer({ ...maxSec, adminGroups: ['No Such Group'] });
    const s = await fx.service.requestSession({ personLogin: 'rita', computer: pc, protocol: 'ssh' });
    expect(await codeOf(fx.service.provision(s.id))).toBe('JIT_ERR_STORE_NO_SUCH_GROUP');
    expect(ad.accounts.size).toBe(0);
    expect((await fx.repo.getSession(s.id))!.state).toBe('failed');
  });
});

describe('JIT engine: stores that join groups while creating (groupsOnCreate)', () => {
  it('creates the account already in every admin group (no separate add), audits each membership, and cleans up as before', async () => {
    const joinStore = new MemoryAccountStore({ groups: GROUPS, groupsOnCreate: true });
    const f = new JitFixture(db, new Map([[`join-${Math.random().toString(36).slice(2, 8)}`, joinStore]]));
    const pc = await f.computer({ ...maxSec, adminGroups: ['JIT Admins', 'Helpdesk'] });
    const { sessionId, result } = await f.open(pc, 'gina');
    expect(joinStore.calls.map((c) => c.op)).toEqual(['create']);
    expect(await joinStore.get(result.account!)).toMatchObject({ enabled: true, groups: ['JIT Admins', 'Helpdesk'] });
    expect((await f.repo.getSession(sessionId))!.groups).toEqual(['JIT Admins', 'Helpdesk']);
    await f.service.teardown(sessionId, 'closed by user', 'gina');
    expect(joinStore.accounts.size).toBe(0);
    expect([...joinStore.groups.values()].every((g) => g.size === 0)).toBe(true);
    const trail = (await f.audit.list({ sessionId })).map((e) => e.type);
    expect(trail).toEqual(['session.requested', 'account.created', 'account.group_added', 'account.group_added', 'session.started', 'account.logged_off', 'account.group_removed', 'account.group_removed', 'account.deleted', 'session.ended']);
  });

  it('a missing group fails the creation itself: nothing is created, the session fails', async () => {
    const joinStore = new MemoryAccountStore({ groups: GROUPS, groupsOnCreate: true });
    const f = new JitFixture(db, new Map([[`join-${Math.random().toString(36).slice(2, 8)}`, joinStore]]));
    const pc = await f.computer({ ...maxSec, adminGroups: ['JIT Admins', 'No Such Group'] });
    const s = await f.service.requestSession({ personLogin: 'gina', computer: pc, protocol: 'ssh' });
    expect(await codeOf(f.service.provision(s.id))).toBe('JIT_ERR_STORE_NO_SUCH_GROUP');
    expect(joinStore.accounts.size).toBe(0);
    expect([...joinStore.groups.values()].every((g) => g.size === 0)).toBe(true);
    expect((await f.repo.getSession(s.id))!.state).toBe('failed');
  });

  it('reused (balanced) accounts still join through addToGroup', async () => {
    const joinStore = new MemoryAccountStore({ groups: GROUPS, groupsOnCreate: true });
    const f = new JitFixture(db, new Map([[`join-${Math.random().toString(36).slice(2, 8)}`, joinStore]]));
    const pc = await f.computer(balanced);
    const { result } = await f.open(pc, 'hana');
    expect(await joinStore.get(result.account!)).toMatchObject({ groups: ['JIT Admins'] });
    expect(joinStore.calls.map((c) => c.op)).toContain('addToGroup');
  });
});

describe('JIT engine: extending a session', () => {
  it('moves the lease and the account expiry, caps at the computer maximum, audits, and refuses once ended', async () => {
    const pc = await fx.computer({ ...maxSec, maxSessionMinutes: 90 });
    const { sessionId, result } = await fx.open(pc, 'ella', { minutes: 60 });
    const before = (await fx.repo.getSession(sessionId))!.leaseExpiresAt;
    const r1 = await fx.service.extendLease(sessionId, 20, 'ella');
    expect(r1.leaseExpiresAt.getTime() - before.getTime()).toBe(20 * 60_000);
    expect((await fx.repo.getSession(sessionId))!.leaseExpiresAt.toISOString()).toBe(r1.leaseExpiresAt.toISOString());
    // the account's own expiry follows (lease + grace), so it cannot end the session early
    expect((await ad.get(result.account!))!.expiresAt!.getTime()).toBe(r1.leaseExpiresAt.getTime() + 1000);
    // 90 minutes from the request at most
    const created = (await fx.repo.getSession(sessionId))!.createdAt;
    const r2 = await fx.service.extendLease(sessionId, 60, 'ella');
    expect(r2.leaseExpiresAt.getTime()).toBe(created.getTime() + 90 * 60_000);
    expect(await codeOf(fx.service.extendLease(sessionId, 10, 'ella'))).toBe('JIT_ERR_JIT_MAX_DURATION');
    expect(await codeOf(fx.service.extendLease(sessionId, 0, 'ella'))).toBe('JIT_ERR_VALIDATION');
    const ext = (await fx.audit.list({ sessionId })).filter((e) => e.type === 'session.extended');
    expect(ext.map((e) => (e.data as { to: string }).to)).toEqual([r1.leaseExpiresAt.toISOString(), r2.leaseExpiresAt.toISOString()]);
    await fx.service.teardown(sessionId, 'done', 'ella');
    expect(await codeOf(fx.service.extendLease(sessionId, 10, 'ella'))).toBe('JIT_ERR_JIT_SESSION_CLOSED');
  });
});

describe('JIT engine: concurrent teardowns', () => {
  it('the lease job, the reconciler and a check-in racing on one session tear it down once: one deletion, session.ended last', async () => {
    const pc = await fx.computer({ ...maxSec, adminGroups: ['JIT Admins', 'Helpdesk'] });
    const { sessionId } = await fx.open(pc, 'rosa');
    await Promise.all([
      fx.service.teardown(sessionId, 'lease expired', 'system:lease'),
      fx.service.teardown(sessionId, 'lease expired (reconciler)', 'system:reconciler'),
      fx.service.teardown(sessionId, 'closed by user', 'rosa'),
    ]);
    const types = (await fx.audit.list({ sessionId })).map((e) => e.type);
    expect(types.filter((t) => t === 'account.deleted')).toHaveLength(1);
    expect(types.filter((t) => t === 'account.group_removed')).toHaveLength(2);
    expect(types.filter((t) => t === 'session.ended')).toHaveLength(1);
    expect(types.at(-1)).toBe('session.ended');
    expect(ad.accounts.size).toBe(0);
    expect(ad.calls.filter((c) => c.op === 'delete')).toHaveLength(1);
  });
});
