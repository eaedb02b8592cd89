import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrate } from '../core/db/migrations.js';
import { PgliteDatabase } from '../core/db/pglite.database.js';
import type { MembershipOptions } from './account-store.js';
import { MemoryAccountStore } from './stores/memory.store.js';
import { JitFixture } from '../test/fixtures/jit-fixture.js';

/**
 * What the engine asks of a directory that removes memberships by itself
 * (AD with Privileged Access Management; the LDAP encoding is tested in
 * test/ldap-time-bound-membership.test.ts): every membership it adds for a
 * lease carries `until` = lease end + grace, an extension moves it before
 * the new lease is recorded, and a membership the account had before the
 * session is never rewritten. The in-memory store, told it has the feature,
 * records the `until` it is given.
 */
class TimeBoundMemoryStore extends MemoryAccountStore {
  readonly untils: { op: 'addToGroup' | 'addMember'; name: string; group: string; until: string | null }[] = [];
  async timeBoundMembership(): Promise<boolean> {
    return true;
  }
  override async addToGroup(name: string, group: string, opts: MembershipOptions = {}): Promise<void> {
    this.untils.push({ op: 'addToGroup', name, group, until: opts.until?.toISOString() ?? null });
    return super.addToGroup(name, group);
  }
  override async addMember(name: string, group: string, opts: MembershipOptions = {}): Promise<void> {
    this.untils.push({ op: 'addMember', name, group, until: opts.until?.toISOString() ?? null });
    return super.addMember(name, group);
  }
}

const GRACE_MS = 1000; // the fixture's leaseGraceMs
let db: PgliteDatabase;
let ad: TimeBoundMemoryStore;
let fx: JitFixture;

beforeAll(async () => {
  db = await PgliteDatabase.open();
  await migrate(db);
});
afterAll(async () => db.close());
beforeEach(() => {
  ad = new TimeBoundMemoryStore({ groups: ['JIT Admins', 'Helpdesk'] });
  const tag = Math.random().toString(36).slice(2, 8);
  fx = new JitFixture(db, new Map([[`ad-${tag}`, ad], [`local-${tag}`, new MemoryAccountStore({ groups: ['Administrators'] })]]));
});
const plus = (iso: string, ms: number) => new Date(new Date(iso).getTime() + ms).toISOString();
const unique = (p: string) => `${p}${Math.random().toString(36).slice(2, 7)}`;

describe('time-bound memberships (directory with PAM)', () => {
  it('create: each group is joined with until = lease + grace; an extension re-adds with the new lease + grace', async () => {
    const pc = await fx.computer({ enabled: true, adminGroups: ['JIT Admins', 'Helpdesk'] });
    const { sessionId, result } = await fx.open(pc, unique('cara'), { minutes: 30 });
    const until = plus(result.leaseExpiresAt, GRACE_MS);
    expect(ad.untils).toEqual([
      { op: 'addToGroup', name: result.account, group: 'JIT Admins', until },
      { op: 'addToGroup', name: result.account, group: 'Helpdesk', until },
    ]);
    ad.untils.length = 0;
    const { leaseExpiresAt } = await fx.service.extendLease(sessionId, 30, 'cara');
    expect(leaseExpiresAt.toISOString()).toBe(plus(result.leaseExpiresAt, 30 * 60_000));
    const moved = plus(leaseExpiresAt.toISOString(), GRACE_MS);
    expect(ad.untils.map((u) => [u.group, u.until]).sort()).toEqual([['Helpdesk', moved], ['JIT Admins', moved]]);
  });

  it('elevate: only the membership jitgate adds carries a TTL; the one the account had before is never rewritten, not even on extension', async () => {
    const login = unique('eli');
    ad.seedExisting(login, { groups: ['Helpdesk'] });
    const pc = await fx.computer({ enabled: true, mode: 'elevate', adminGroups: ['JIT Admins', 'Helpdesk'] });
    const { sessionId, result } = await fx.open(pc, login, { minutes: 20 });
    expect(ad.untils).toEqual([{ op: 'addMember', name: login, group: 'JIT Admins', until: plus(result.leaseExpiresAt, GRACE_MS) }]);
    ad.untils.length = 0;
    const { leaseExpiresAt } = await fx.service.extendLease(sessionId, 10, login);
    expect(ad.untils).toEqual([{ op: 'addMember', name: login, group: 'JIT Admins', until: plus(leaseExpiresAt.toISOString(), GRACE_MS) }]);
    await fx.service.teardown(sessionId, 'done', login);
    expect([ad.memberOf(login, 'JIT Admins'), ad.memberOf(login, 'Helpdesk')]).toEqual([false, true]);
  });

  it('elevate, shared by two sessions: the TTL covers the later lease, whichever session adds or refreshes it', async () => {
    const login = unique('sha');
    ad.seedExisting(login);
    const pc = await fx.computer({ enabled: true, mode: 'elevate', adminGroups: ['JIT Admins'] });
    const long = await fx.open(pc, login, { minutes: 60 });
    ad.untils.length = 0;
    const short = await fx.open(pc, login, { minutes: 5 });
    // The second session finds jitgate's membership and refreshes its TTL, to the first session's later lease.
    expect(ad.untils).toEqual([{ op: 'addMember', name: login, group: 'JIT Admins', until: plus(long.result.leaseExpiresAt, GRACE_MS) }]);
    expect(new Date(short.result.leaseExpiresAt).getTime()).toBeLessThan(new Date(long.result.leaseExpiresAt).getTime());
  });

  it('a store without the feature is never asked to move anything on extension', async () => {
    const plain = new MemoryAccountStore({ groups: ['JIT Admins'] });
    const tag = Math.random().toString(36).slice(2, 8);
    const f2 = new JitFixture(db, new Map([[`ad-${tag}`, plain], [`local-${tag}`, new MemoryAccountStore({ groups: ['Administrators'] })]]));
    const pc = await f2.computer({ enabled: true, adminGroups: ['JIT Admins'] });
    const { sessionId } = await f2.open(pc, unique('pla'), { minutes: 30 });
    const before = plain.calls.filter((c) => c.op === 'addToGroup').length;
    await f2.service.extendLease(sessionId, 30, 'pla');
    expect(plain.calls.filter((c) => c.op === 'addToGroup').length).toBe(before);
  });
});
