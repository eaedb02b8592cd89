import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isJitgateError } from '../core/errors.js';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import { MemoryAccountStore } from './stores/memory.store.js';
import { JitFixture } from '../test/fixtures/jit-fixture.js';
import { JIT_PRESETS } from './jit-settings.js';
import type { HolderLiveness } from './holder-liveness.js';
import { provablyOver } from './reconcile-plan.js';

/**
 * The reconciler against sessions that are live while it sweeps (issue 12,
 * items 1, 3, 4). Races are forced by order with MemoryAccountStore.hold, not
 * by timing.
 */
let db: PgliteDatabase;
let ad: MemoryAccountStore;
let fx: JitFixture;
let storeName: string;
const dead = new Set<string>();
const holders: HolderLiveness = { deadHolders: async (hs) => new Set(hs.filter((h) => dead.has(h))) };

beforeAll(async () => {
  db = await PgliteDatabase.open();
  await migrate(db);
});
afterAll(async () => db.close());
beforeEach(() => {
  ad = new MemoryAccountStore({ groups: ['JIT Admins', 'Helpdesk'] });
  storeName = `ad-${Math.random().toString(36).slice(2, 8)}`;
  fx = new JitFixture(db, new Map([[storeName, ad]]), { holders, provisioningTimeoutMs: 30_000 });
  dead.clear();
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

async function sessionCount(): Promise<number> {
  return Number((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM sessions'))[0]!.n);
}

describe('reconciler: live sessions are never swept (item 1)', () => {
  it('a session provisioned while the sweep lists a slow store keeps its account and its credentials', async () => {
    const pc = await fx.computer(maxSec);
    const hold = ad.hold('listManaged');
    const sweep = fx.service.reconcile();
    await hold.entered;
    const { sessionId, result } = await fx.open(pc, 'alice');
    hold.release();
    const r = await sweep;
    expect(r.actions.filter((a) => a.done)).toEqual([]);
    expect(await ad.get(result.account!)).toMatchObject({ enabled: true, groups: ['JIT Admins'] });
    const creds = await fx.service.credentials(sessionId);
    expect(ad.canLogOn(result.account!, creds.password.reveal())).toBe(true);
    expect((await fx.repo.getSession(sessionId))!.state).toBe('active');
  });

  it('a plan made from the listing is re-checked under the lock at the moment of acting: a reused account re-enabled meanwhile is left alone', async () => {
    const pc = await fx.computer(balanced);
    // bob and alice each have an idle kept account; both drifted (enabled by hand), so the listing says "disable" for both
    const bob = await fx.open(pc, 'bob');
    await fx.service.teardown(bob.sessionId, 'done');
    const alice1 = await fx.open(pc, 'alice');
    await fx.service.teardown(alice1.sessionId, 'done');
    await ad.enable(bob.result.account!, new Date(Date.now() + 3600_000));
    await ad.enable(alice1.result.account!, new Date(Date.now() + 3600_000));

    const hold = ad.hold('disable');
    const sweep = fx.service.reconcile();
    await hold.entered; // the sweep is acting on bob's account
    const alice2 = await fx.open(pc, 'alice'); // alice's account is re-enabled for a new session
    expect(alice2.result.account).toBe(alice1.result.account);
    hold.release();
    const r = await sweep;

    expect(r.actions.find((a) => a.name === bob.result.account && a.kind === 'disable')?.done).toBe(true);
    expect(r.skipped).toContainEqual({ store: storeName, name: alice1.result.account!, reason: 'in use by a live session' });
    const creds = await fx.service.credentials(alice2.sessionId);
    expect(ad.canLogOn(alice2.result.account!, creds.password.reveal())).toBe(true);
    expect((await ad.get(alice2.result.account!))!.groups).toEqual(['JIT Admins']);
  });

  it('never acts on an account created after the sweep began, even with no live lease', async () => {
    const sweepStartedAt = new Date();
    const base = { sweepStartedAt, now: new Date(sweepStartedAt.getTime() + 3600_000), leaseGraceMs: 1000, provisioningTimeoutMs: 30_000 };
    const ended = [{ state: 'ended', leaseExpiresAt: new Date(sweepStartedAt.getTime() - 1) }];
    expect(provablyOver({ ...base, createdAt: new Date(sweepStartedAt.getTime() + 5), sessions: ended })).toBe(false);
    expect(provablyOver({ ...base, createdAt: new Date(sweepStartedAt.getTime() - 5), sessions: ended })).toBe(true);
    // a live session whose lease (plus grace) has not passed
    const live = [{ state: 'active', leaseExpiresAt: new Date(base.now.getTime() + 10) }];
    expect(provablyOver({ ...base, createdAt: new Date(0), sessions: live })).toBe(false);
    expect(provablyOver({ ...base, createdAt: new Date(0), sessions: [{ state: 'active', leaseExpiresAt: new Date(base.now.getTime() - 1001) }] })).toBe(true);
    // a row no session links to yet: in the middle of provisioning until the timeout
    expect(provablyOver({ ...base, sweepStartedAt: base.now, createdAt: new Date(base.now.getTime() - 29_000), sessions: [] })).toBe(false);
    expect(provablyOver({ ...base, sweepStartedAt: base.now, createdAt: new Date(base.now.getTime() - 31_000), sessions: [] })).toBe(true);
  });

  it('a session closed while its account is being created leaves no account behind', async () => {
    const pc = await fx.computer(maxSec);
    const hold = ad.hold('create');
    const s = await fx.service.requestSession({ personLogin: 'carol', computer: pc, protocol: 'ssh' });
    const provisioning = fx.service.provision(s.id);
    await hold.entered;
    await fx.service.teardown(s.id, 'closed by user', 'carol');
    hold.release();
    expect(await codeOf(provisioning)).toBe('JIT_ERR_JIT_SESSION_CLOSED');
    expect(ad.accounts.size).toBe(0);
    expect((await fx.repo.getSession(s.id))!.state).toBe('ended');
    expect((await fx.service.reconcile()).actions).toEqual([]);
  });
});

describe('reconciler: a row is forgotten only on the store saying "no such account" (item 3)', () => {
  it('an account the listing cannot see, whose teardown failed, is neither forgotten nor left in its group', async () => {
    const pc = await fx.computer({ ...maxSec, container: 'OU=Servers,DC=example,DC=org' });
    const { sessionId, result } = await fx.open(pc, 'dave');
    ad.hiddenFromList.add(result.account!); // created outside the container the listing searches
    ad.failNext('removeFromGroup');
    expect(await codeOf(fx.service.teardown(sessionId, 'closed by user', 'dave'))).toBe('JIT_ERR_STORE_UNREACHABLE');
    // two sweeps while the lease is live: the row stays, the account is not forgotten
    for (let i = 0; i < 2; i++) {
      const r = await fx.service.reconcile();
      expect(r.actions.filter((a) => a.kind === 'forget')).toEqual([]);
    }
    const row = (await fx.repo.listAccounts()).find((a) => a.name === result.account);
    expect(row?.state).toBe('active');
    // lease over: the sweep ends the session and its teardown deletes the account where it is
    fx.clock = new Date(Date.now() + 2 * 3600_000);
    const r = await fx.service.reconcile();
    expect(r.sessions.filter((x) => x.sessionId === sessionId)).toMatchObject([{ sessionId, done: true }]);
    expect(ad.accounts.size).toBe(0);
  });

  it('an account the listing misses but the store still has is deleted, not forgotten; an unreachable store forgets nothing', async () => {
    const pc = await fx.computer(maxSec);
    const { sessionId, result } = await fx.open(pc, 'erin');
    // the session ended but its account survived (a store that lied about the delete)
    await db.query("UPDATE sessions SET state = 'ended', ended_at = now() WHERE id = $1", [sessionId]);
    ad.hiddenFromList.add(result.account!);
    ad.failNext('get');
    const r1 = await fx.service.reconcile();
    expect(r1.failures.length).toBe(1);
    expect((await fx.repo.listAccounts()).find((a) => a.name === result.account)?.state).toBe('active');
    const r2 = await fx.service.reconcile();
    expect(r2.actions).toMatchObject([{ kind: 'delete', name: result.account, done: true }]);
    expect(ad.accounts.size).toBe(0);
    // now truly gone: a later sweep has nothing to do, and a row whose account vanished is forgotten with an audit event
    const pc2 = await fx.computer(maxSec);
    const gone = await fx.open(pc2, 'frank');
    await db.query("UPDATE sessions SET state = 'ended', ended_at = now() WHERE id = $1", [gone.sessionId]);
    ad.accounts.delete(gone.result.account!);
    const r3 = await fx.service.reconcile();
    expect(r3.actions).toMatchObject([{ kind: 'forget', name: gone.result.account, done: true }]);
    const events = await fx.audit.list({});
    expect(events.some((e) => e.type === 'reconcile.forgotten' && e.account === gone.result.account)).toBe(true);
  });
});

describe('reconciler: crashed provisioning and dead gateways (item 4)', () => {
  it('a session stuck in provisioning after its group add is rolled back once the provisioning timeout passes', async () => {
    const pc = await fx.computer({ ...maxSec, adminGroups: ['JIT Admins', 'Helpdesk'] });
    const hold = ad.hold('addToGroup');
    const s = await fx.service.requestSession({ personLogin: 'gina', computer: pc, protocol: 'ssh' });
    // first group added, then the process "dies" in the second add
    const first = ad.hold('addToGroup');
    hold.release();
    const provisioning = fx.service.provision(s.id);
    await first.entered;
    const name = (await fx.repo.getSession(s.id))!.accountName!;
    expect((await ad.get(name))!.groups).toEqual(['JIT Admins']);

    const early = await fx.service.reconcile();
    expect(early.sessions.filter((x) => x.sessionId === s.id)).toEqual([]);
    expect(await ad.get(name)).not.toBeNull();

    fx.clock = new Date(Date.now() + 31_000);
    const r = await fx.service.reconcile();
    expect(r.sessions.filter((x) => x.sessionId === s.id)).toMatchObject([{ sessionId: s.id, done: true, reason: 'provisioning did not finish within 30 s' }]);
    expect(ad.accounts.size).toBe(0);
    expect((await fx.repo.getSession(s.id))!.state).toBe('ended');
    // the "dead" provisioning wakes up: it must not bring anything back
    first.release();
    expect(await codeOf(provisioning)).not.toBe('ok');
    expect(ad.accounts.size).toBe(0);
    expect([...ad.groups.values()].every((g) => g.size === 0)).toBe(true);
  });

  it('sessions whose gateway is gone end at once; live gateways and checkouts keep theirs', async () => {
    const pc = await fx.computer(maxSec);
    const a = await fx.open(pc, 'hank', { holder: 'gateway:gw-dead' });
    const b = await fx.open(pc, 'ivy', { holder: 'gateway:gw-live' });
    const c = await fx.open(pc, 'jack');
    dead.add('gateway:gw-dead');
    const dry = await fx.service.reapSessions({ dryRun: true });
    expect(dry.ended.filter((x) => x.sessionId !== b.sessionId && x.sessionId !== c.sessionId && x.sessionId === a.sessionId)).toMatchObject([{ sessionId: a.sessionId, done: false, reason: 'its gateway is gone' }]);
    expect(ad.accounts.size).toBe(3);
    const r = await fx.service.reapSessions();
    expect(r.ended.filter((x) => x.sessionId === a.sessionId)).toMatchObject([{ sessionId: a.sessionId, done: true }]);
    expect(r.ended.some((x) => x.sessionId === b.sessionId || x.sessionId === c.sessionId)).toBe(false);
    expect(await ad.get(a.result.account!)).toBeNull();
    expect(await ad.get(b.result.account!)).not.toBeNull();
    expect(await ad.get(c.result.account!)).not.toBeNull();
    expect((await fx.repo.getSession(a.sessionId))!.endReason).toBe('its gateway is gone');
  });

  it("a gone gateway's sessions are torn down side by side: one slow teardown does not hold up the others", async () => {
    const pc = await fx.computer(maxSec);
    const slow = await fx.open(pc, 'kate', { holder: 'gateway:gw-gone' });
    const quick = await fx.open(pc, 'liam', { holder: 'gateway:gw-gone' });
    dead.add('gateway:gw-gone');
    const hold = ad.hold('logOff'); // the first teardown to reach the store stops there
    const reap = fx.service.reapSessions();
    const remaining = () => [slow, quick].filter((x) => ad.accounts.has(x.result.account!.toLowerCase())).length;
    await hold.entered;
    // While one teardown waits in the store, the other finishes: its account is deleted (one at a time, it never would be).
    const deadline = Date.now() + 20_000;
    while (remaining() !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(remaining()).toBe(1);
    hold.release();
    const r = await reap;
    expect(r.failures).toEqual([]);
    expect(r.ended.filter((x) => x.sessionId === slow.sessionId || x.sessionId === quick.sessionId).map((x) => x.done)).toEqual([true, true]);
    expect(remaining()).toBe(0);
    for (const x of [slow, quick]) expect((await fx.repo.getSession(x.sessionId))!.endReason).toBe('its gateway is gone');
  }, 30_000);

  it('lease minutes are validated in the engine: nothing is created for 0, negative, fractional, NaN or over the maximum', async () => {
    const pc = await fx.computer({ ...maxSec, maxSessionMinutes: 120 });
    const before = await sessionCount();
    for (const minutes of [0, -5, 1.5, Number('abc')]) {
      expect(await codeOf(fx.service.requestSession({ personLogin: 'kim', computer: pc, protocol: 'ssh', minutes }))).toBe('JIT_ERR_VALIDATION');
    }
    expect(await codeOf(fx.service.requestSession({ personLogin: 'kim', computer: pc, protocol: 'ssh', minutes: 121 }))).toBe('JIT_ERR_JIT_LEASE_TOO_LONG');
    expect(await sessionCount()).toBe(before);
    expect(ad.accounts.size).toBe(0);
    const ok = await fx.service.requestSession({ personLogin: 'kim', computer: pc, protocol: 'ssh', minutes: 120 });
    expect(ok.leaseExpiresAt.getTime() - fx.clock.getTime()).toBe(120 * 60_000);
  });

  it('the reconcile report says what it did: sessions it ended are listed with their accounts', async () => {
    const pc = await fx.computer(maxSec);
    const { sessionId, result } = await fx.open(pc, 'lena', { minutes: 5 });
    fx.clock = new Date(Date.now() + 10 * 60_000);
    const dry = await fx.service.reconcile({ dryRun: true });
    expect(dry.sessions.filter((x) => x.sessionId === sessionId)).toMatchObject([{ sessionId, account: result.account, done: false }]);
    expect(dry.actions).toMatchObject([{ kind: 'delete', name: result.account, done: false }]);
    const real = await fx.service.reconcile();
    expect(real.sessions.filter((x) => x.sessionId === sessionId)).toMatchObject([{ sessionId, account: result.account, done: true, reason: 'lease expired (reconciler)' }]);
    expect(ad.accounts.size).toBe(0);
  });
});

describe('teardown logs the account off before its rights go (item 10)', () => {
  it('logs off, then removes the membership and deletes; a failed log-off is audited and does not keep the rights', async () => {
    const pc = await fx.computer(maxSec);
    const { sessionId, result } = await fx.open(pc, 'mona');
    ad.logOn(result.account!);
    ad.calls.length = 0;
    await fx.service.teardown(sessionId, 'closed by user', 'mona');
    expect(ad.logons.size).toBe(0);
    expect(ad.calls.map((c) => c.op)).toEqual(['logOff', 'removeFromGroup', 'delete']);

    const again = await fx.open(pc, 'nick');
    ad.logOn(again.result.account!);
    ad.failNext('logOff');
    await fx.service.teardown(again.sessionId, 'closed by user', 'nick');
    expect(ad.accounts.size).toBe(0);
    const events = await fx.audit.list({ sessionId: again.sessionId });
    expect(events.find((e) => e.type === 'account.logged_off')).toMatchObject({ outcome: 'failure' });
  });

  it('a shared account another live session uses is not logged off', async () => {
    const pc = await fx.computer({ ...balanced, accountMode: 'shared' });
    const one = await fx.open(pc, 'olga');
    const two = await fx.open(pc, 'pete');
    expect(two.result.account).toBe(one.result.account);
    ad.logOn(one.result.account!);
    await fx.service.teardown(one.sessionId, 'closed by user', 'olga');
    expect(ad.logons.has(one.result.account!.toLowerCase())).toBe(true);
    await fx.service.teardown(two.sessionId, 'closed by user', 'pete');
    expect(ad.logons.size).toBe(0);
  });

  it('credentials carry the domain of a domain store', async () => {
    class DomainStore extends MemoryAccountStore {
      readonly domain = 'JITTEST';
    }
    const dom = new DomainStore({ groups: ['JIT Admins'] });
    const f2 = new JitFixture(db, new Map([[`dom-${Math.random().toString(36).slice(2, 8)}`, dom]]));
    const pc = await f2.computer(maxSec);
    const { sessionId } = await f2.open(pc, 'quinn');
    expect((await f2.service.credentials(sessionId)).domain).toBe('JITTEST');
    expect((await fx.service.credentials((await fx.open(await fx.computer(maxSec), 'rita')).sessionId)).domain).toBeUndefined();
  });
});
