import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isJitgateError } from '../core/errors.js';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import { MemoryAccountStore } from './stores/memory.store.js';
import { JitFixture } from '../test/fixtures/jit-fixture.js';
import { jitSettingsSchema } from './jit-settings.js';

/**
 * mode: elevate on the in-memory store (real users and groups in maps): the
 * person's existing account joins the groups for the lease and leaves them
 * at teardown; a membership it had before is never removed, on any path.
 */
const GROUPS = ['JIT Admins', 'Helpdesk'];
let db: PgliteDatabase;
let ad: MemoryAccountStore;
let fx: JitFixture;
let storeName: string;

beforeAll(async () => {
  db = await PgliteDatabase.open();
  await migrate(db);
});
afterAll(async () => db.close());
beforeEach(() => {
  ad = new MemoryAccountStore({ groups: GROUPS });
  const tag = Math.random().toString(36).slice(2, 8);
  storeName = `ad-${tag}`;
  fx = new JitFixture(db, new Map([[storeName, ad], [`local-${tag}`, new MemoryAccountStore({ groups: ['Administrators'] })]]));
});

const elevate = { enabled: true, mode: 'elevate' as const, adminGroups: ['JIT Admins', 'Helpdesk'] };

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return isJitgateError(e) ? e.code : String(e);
  }
}

function unique(prefix: string): string {
  return `${prefix}${Math.random().toString(36).slice(2, 7)}`;
}

async function person(login: string): Promise<string> {
  const id = randomUUID();
  await db.query("INSERT INTO people (id, login, display_name, role) VALUES ($1, $2, $2, 'technician')", [id, login]);
  return id;
}

describe('JIT settings: mode', () => {
  it('defaults to create (today\'s behaviour) and accepts elevate; elevate refuses a shared account and a container', () => {
    expect(jitSettingsSchema.parse({ adminGroups: ['g'] }).mode).toBe('create');
    expect(jitSettingsSchema.parse(elevate).mode).toBe('elevate');
    expect(jitSettingsSchema.safeParse({ ...elevate, accountMode: 'shared', deleteOnCheckIn: false }).success).toBe(false);
    expect(jitSettingsSchema.safeParse({ ...elevate, container: 'OU=x,DC=y' }).success).toBe(false);
    expect(jitSettingsSchema.safeParse({ ...elevate, mode: 'borrow' }).success).toBe(false);
  });
});

describe('JIT engine: mode elevate', () => {
  it('adds the existing account for the lease, creates nothing, asks the person for the password, and removes what it added at teardown', async () => {
    const login = unique('eva');
    ad.seedExisting(login);
    const pc = await fx.computer(elevate);
    const { sessionId, result } = await fx.open(pc, login);
    expect(result).toMatchObject({ account: login, elevated: true, passwordTypedByPerson: true, groups: GROUPS });
    expect(ad.calls.filter((c) => c.op === 'create')).toEqual([]);
    expect(ad.memberOf(login, 'JIT Admins') && ad.memberOf(login, 'Helpdesk')).toBe(true);
    expect(await codeOf(fx.service.credentials(sessionId))).toBe('JIT_ERR_JIT_PASSWORD_FROM_PERSON');
    const rows = await fx.repo.elevationsOfSession(sessionId);
    expect(rows.map((r) => [r.group, r.addedByJitgate, r.state])).toEqual([['JIT Admins', true, 'active'], ['Helpdesk', true, 'active']]);

    await fx.service.teardown(sessionId, 'closed by user', login);
    expect(ad.memberOf(login, 'JIT Admins') || ad.memberOf(login, 'Helpdesk')).toBe(false);
    expect(ad.accounts.has(login)).toBe(true);
    expect((await fx.repo.getSession(sessionId))!.state).toBe('ended');
    expect((await fx.repo.elevationsOfSession(sessionId)).every((r) => r.state === 'removed')).toBe(true);
    expect((await fx.audit.verify()).ok).toBe(true);
  });

  it('never removes a membership the account had before: teardown keeps it and removes only the one it added', async () => {
    const login = unique('pre');
    ad.seedExisting(login, { groups: ['Helpdesk'] });
    const pc = await fx.computer(elevate);
    const { sessionId } = await fx.open(pc, login);
    const rows = await fx.repo.elevationsOfSession(sessionId);
    expect(rows.find((r) => r.group === 'Helpdesk')!.addedByJitgate).toBe(false);
    await fx.service.teardown(sessionId, 'x');
    expect(ad.memberOf(login, 'Helpdesk')).toBe(true);
    expect(ad.memberOf(login, 'JIT Admins')).toBe(false);
    expect(ad.calls.filter((c) => c.op === 'removeMember').length).toBe(1);
  });

  it('refuses a missing, disabled or protected account with a typed error, adds nothing, and fails the session', async () => {
    const pc = await fx.computer(elevate);
    const missing = unique('nob');
    expect(await codeOf(fx.open(pc, missing))).toBe('JIT_ERR_JIT_ELEVATE_NO_ACCOUNT');
    const off = unique('off');
    ad.seedExisting(off, { enabled: false });
    expect(await codeOf(fx.open(pc, off))).toBe('JIT_ERR_JIT_ELEVATE_DISABLED');
    const adm = unique('adm');
    ad.seedExisting(adm, { protectedReason: 'the built-in Administrator (RID 500)' });
    const s = await fx.service.requestSession({ personLogin: adm, computer: pc, protocol: 'rdp' });
    const err = await fx.service.provision(s.id).catch((e: unknown) => e);
    expect(isJitgateError(err) && err.code).toBe('JIT_ERR_JIT_ELEVATE_PROTECTED');
    expect(String((err as Error).message)).toContain('RID 500');
    expect((await fx.repo.getSession(s.id))!.state).toBe('failed');
    expect(ad.calls.filter((c) => c.op === 'addMember')).toEqual([]);
    // And the store refuses by itself too (defence in depth).
    expect(await codeOf(ad.addMember(adm, 'JIT Admins'))).toBe('JIT_ERR_STORE_PROTECTED_ACCOUNT');
  });

  it('uses the admin\'s mapping first, else the store\'s name rule', async () => {
    const login = unique('map');
    const id = await person(login);
    ad.seedExisting(`${login}-a`);
    ad.seedExisting(`${login}-m`);
    const tag = Math.random().toString(36).slice(2, 8);
    const name = `ad-${tag}`;
    const fx2 = new JitFixture(db, new Map([[name, ad]]), { elevation: new Map([[name, { accountName: '{login}-a' }]]) });
    const pc = await fx2.computer(elevate);
    const byRule = await fx2.open(pc, login, { personId: id });
    expect(byRule.result.account).toBe(`${login}-a`);
    await fx2.service.teardown(byRule.sessionId, 'x');
    await db.query('INSERT INTO person_accounts (person_id, store, account_name) VALUES ($1, $2, $3)', [id, name, `${login}-m`]);
    const mapped = await fx2.open(pc, login, { personId: id });
    expect(mapped.result.account).toBe(`${login}-m`);
    await fx2.service.teardown(mapped.sessionId, 'x');
  });

  it('shares a membership it added between two live sessions: the first teardown keeps it, the last removes it', async () => {
    const login = unique('two');
    ad.seedExisting(login);
    const pc1 = await fx.computer({ ...elevate, adminGroups: ['JIT Admins'] });
    const pc2 = await fx.computer({ ...elevate, adminGroups: ['JIT Admins'] });
    const a = await fx.open(pc1, login);
    const b = await fx.open(pc2, login);
    // b found the membership a added: it is jitgate's, not "already a member".
    expect((await fx.repo.elevationsOfSession(b.sessionId))[0]!.addedByJitgate).toBe(true);
    await fx.service.teardown(a.sessionId, 'x');
    expect(ad.memberOf(login, 'JIT Admins')).toBe(true);
    await fx.service.teardown(b.sessionId, 'x');
    expect(ad.memberOf(login, 'JIT Admins')).toBe(false);
  });

  it('crash mid-add (the add happened, nothing after it): the reconciler removes it once the lease is provably over, and the earlier membership survives', async () => {
    const login = unique('cra');
    ad.seedExisting(login, { groups: ['Helpdesk'] });
    const pc = await fx.computer(elevate);
    const s = await fx.service.requestSession({ personLogin: login, computer: pc, protocol: 'ssh', minutes: 5 });
    // The worker "dies" right after its first add reached the store: the add lands, then every store call fails (no rollback).
    const held = ad.hold('addMember');
    const provisioning = fx.service.provision(s.id).catch(() => undefined);
    await held.entered;
    ad.failNext('removeMember');
    ad.failNext('isMember');
    held.release();
    await provisioning;
    expect(ad.memberOf(login, 'JIT Admins')).toBe(true);
    expect(ad.memberOf(login, 'Helpdesk')).toBe(true);
    // Still live (rollback failed): the sweep leaves it alone.
    const early = await fx.service.reconcile();
    expect(early.elevations).toEqual([]);
    expect(ad.memberOf(login, 'JIT Admins')).toBe(true);
    // After the lease: the session is ended and its membership removed; the pre-existing one is untouched.
    fx.clock = new Date(fx.clock.getTime() + 10 * 60_000);
    await fx.service.reconcile();
    expect(ad.memberOf(login, 'JIT Admins')).toBe(false);
    expect(ad.memberOf(login, 'Helpdesk')).toBe(true);
    expect(['ended', 'failed']).toContain((await fx.repo.getSession(s.id))!.state);
  });

  it('crash mid-remove: a teardown that dies after the first removal leaves records the sweep finishes, never touching the pre-existing membership', async () => {
    const login = unique('rem');
    ad.seedExisting(login, { groups: ['Helpdesk'] });
    const pc = await fx.computer({ ...elevate, adminGroups: ['Helpdesk', 'JIT Admins'] });
    const { sessionId } = await fx.open(pc, login, { minutes: 5 });
    ad.failNext('removeMember');
    expect(await codeOf(fx.service.teardown(sessionId, 'x'))).toBe('JIT_ERR_STORE_UNREACHABLE');
    expect(ad.memberOf(login, 'JIT Admins')).toBe(true);
    fx.clock = new Date(fx.clock.getTime() + 10 * 60_000);
    // The session is 'ending' with its lease over: the sweep ends it; the sweep's elevation pass finds nothing left open.
    await fx.service.reconcile();
    expect(ad.memberOf(login, 'JIT Admins')).toBe(false);
    expect(ad.memberOf(login, 'Helpdesk')).toBe(true);
    expect(ad.calls.filter((c) => c.op === 'removeMember').every((c) => c.name === login)).toBe(true);
    expect((await fx.repo.getSession(sessionId))!.state).toBe('ended');
  });

  it('the sweep closes an orphaned record directly (session ended without its teardown): removes jitgate\'s membership, only closes a pre-existing one', async () => {
    const login = unique('orp');
    ad.seedExisting(login, { groups: ['Helpdesk'] });
    const pc = await fx.computer(elevate);
    const { sessionId } = await fx.open(pc, login, { minutes: 5 });
    // A teardown that ended the session but died before releasing (state moved behind the engine's back).
    await db.query("UPDATE sessions SET state = 'ended' WHERE id = $1", [sessionId]);
    fx.clock = new Date(fx.clock.getTime() + 10 * 60_000);
    const report = await fx.service.reconcile();
    expect(report.elevations.map((e) => [e.group, e.action, e.done]).sort()).toEqual([['Helpdesk', 'kept', true], ['JIT Admins', 'removed', true]]);
    expect(ad.memberOf(login, 'JIT Admins')).toBe(false);
    expect(ad.memberOf(login, 'Helpdesk')).toBe(true);
    expect(ad.calls.filter((c) => c.op === 'removeMember').length).toBe(1);
  });

  it('does not move the expiry of an account it does not own when the lease is extended', async () => {
    const login = unique('ext');
    ad.seedExisting(login);
    const pc = await fx.computer(elevate);
    const { sessionId } = await fx.open(pc, login, { minutes: 5 });
    await fx.service.extendLease(sessionId, 5, login);
    expect(ad.calls.filter((c) => c.op === 'enable')).toEqual([]);
    await fx.service.teardown(sessionId, 'x');
  });
});
