import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isJitgateError } from '../core/errors.js';
import type { AccountStore } from './account-store.js';
import { generatePassword } from './account-names.js';

/**
 * One contract, every AccountStore (in-memory, Samba AD, sshd hosts, the
 * WinRM test server). Use from a test file:
 *
 *   describeAccountStoreContract('ldap on Samba AD', async () => ({ store, groups: ['JIT Admins', 'Helpdesk'], seedUnmanaged, canLogOn }), { skip });
 *
 * The fixture's store must be configured with both `groups`. Every test uses
 * fresh names and deletes what it created.
 */
export interface ContractFixture {
  store: AccountStore;
  /** Two group names the store is configured with. */
  groups: [string, string];
  /** Create an account out of band, without a jitgate marker. */
  seedUnmanaged(name: string): Promise<void>;
  /** Remove an account seeded out of band. */
  removeUnmanaged(name: string): Promise<void>;
  /** Whether `password` logs on as `name` right now (a real logon where the backend allows). */
  canLogOn?(name: string, password: string): Promise<boolean>;
  /** Log `name` on with `password` so it holds a session and processes (stores with `logOff`). */
  startLogon?(name: string, password: string): Promise<void>;
  /** Whether `name` still has a session or a process on the computer. */
  hasLogon?(name: string): Promise<boolean>;
  /** Expiry precision of the backend in ms (Linux keeps days). */
  expiryPrecisionMs?: number;
  /** Elevation of existing accounts; the elevation cases are skipped without it. */
  elevation?: ElevationFixture;
  teardown?(): Promise<void>;
}

/**
 * What the elevation cases need besides the store. Every check of the
 * directory goes out of band (the backend's own tools or an administrator
 * connection), never through the store under test.
 */
export interface ElevationFixture {
  /** An existing account the backend itself marks as never to be elevated (root; the built-in Administrator). */
  builtInProtected: string;
  /** Put `name` (seeded with `seedUnmanaged`) in a group the store is configured to protect (its `protectedGroups`). */
  makeProtectedByGroup(name: string): Promise<void>;
  /** Mark `name` protected the way the directory itself does (AD: adminCount=1); absent where the backend has no such mark. */
  makeProtectedByDirectory?(name: string): Promise<void>;
  /** Disable `name` out of band (AD: userAccountControl; Linux: lock and expire; Windows: Disable-LocalUser). */
  disableOutOfBand(name: string): Promise<void>;
  /** Set `name`'s own expiry in the past out of band, leaving it otherwise enabled (AD: accountExpires; Linux: shadow expiry; Windows: AccountExpires). */
  expireOutOfBand?(name: string): Promise<void>;
  /** Make `name` a member of the configured group `group` out of band: a membership jitgate did not add. */
  addMemberOutOfBand(name: string, group: string): Promise<void>;
  /** Whether `name` is a direct member of the configured group `group`, read out of band. */
  memberOutOfBand(name: string, group: string): Promise<boolean>;
  /** Another name the store finds the same account by (AD: the UPN); absent elsewhere. */
  alias?(name: string): Promise<string>;
}

export const HOSTILE_NAMES = [
  'a*b',
  'a(b)',
  'a\\b',
  'a,b=c',
  'a+b',
  'a<b>',
  '#abc',
  'a;b',
  'a"b',
  'a\u0000b',
  'ünïcode',
  'a'.repeat(300),
  '$(id)',
  '`id`',
  "a'b",
  'a b',
  'a\nb',
  '*',
  '',
];

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return isJitgateError(err) ? err.code : `untyped: ${String(err)}`;
  }
}

export function describeAccountStoreContract(label: string, setup: () => Promise<ContractFixture>, opts: { skip?: string } = {}): void {
  describe.skipIf(!!opts.skip)(`AccountStore contract: ${label}`, () => {
    let fx: ContractFixture;
    const created: string[] = [];
    const prefix = `c${randomBytes(2).toString('hex')}`;
    let n = 0;
    const fresh = () => `${prefix}${(n++).toString(36)}${randomBytes(3).toString('hex')}`.slice(0, 18);
    const marker = (name: string) => `jitgate:contract:${name}`;
    const expires = () => new Date(Date.now() + 2 * 86_400_000);

    async function make(name = fresh(), password = generatePassword(name)) {
      created.push(name);
      await fx.store.create({ name, password, marker: marker(name), expiresAt: expires(), displayName: `JIT ${name}` });
      return { name, password };
    }

    beforeAll(async () => {
      fx = await setup();
    });
    afterAll(async () => {
      if (!fx) return;
      for (const name of created) await fx.store.delete(name).catch(() => undefined);
      await fx.teardown?.();
    });

    it('creates an enabled account carrying the marker and the fail-safe expiry', async () => {
      const exp = expires();
      const name = fresh();
      created.push(name);
      const password = generatePassword(name);
      await fx.store.create({ name, password, marker: marker(name), expiresAt: exp });
      const a = await fx.store.get(name);
      expect(a).not.toBeNull();
      expect(a!.name.toLowerCase()).toBe(name);
      expect(a!.marker).toBe(marker(name));
      expect(a!.enabled).toBe(true);
      expect(a!.groups).toEqual([]);
      expect(a!.expiresAt).not.toBeNull();
      expect(Math.abs(a!.expiresAt!.getTime() - exp.getTime())).toBeLessThanOrEqual(fx.expiryPrecisionMs ?? 1000);
      if (fx.canLogOn) expect(await fx.canLogOn(name, password)).toBe(true);
    });

    it('refuses to create over an existing name and leaves it untouched', async () => {
      const { name, password } = await make();
      expect(await codeOf(fx.store.create({ name, password: generatePassword(name), marker: marker(name), expiresAt: expires() }))).toBe('JIT_ERR_STORE_ACCOUNT_EXISTS');
      if (fx.canLogOn) expect(await fx.canLogOn(name, password)).toBe(true);
    });

    it('adds and removes group memberships idempotently', async () => {
      const { name } = await make();
      const [g1, g2] = fx.groups;
      await fx.store.addToGroup(name, g1);
      await fx.store.addToGroup(name, g1);
      await fx.store.addToGroup(name, g2);
      expect([...(await fx.store.get(name))!.groups].sort()).toEqual([g1, g2].sort());
      await fx.store.removeFromGroup(name, g1);
      await fx.store.removeFromGroup(name, g1);
      expect((await fx.store.get(name))!.groups).toEqual([g2]);
      await fx.store.removeFromGroup(name, g2);
      expect((await fx.store.get(name))!.groups).toEqual([]);
    });

    it('joins groups as part of creating, when the store says it can (groupsOnCreate)', async (ctx) => {
      if (!fx.store.groupsOnCreate) ctx.skip();
      const [g1, g2] = fx.groups;
      const name = fresh();
      created.push(name);
      const password = generatePassword(name);
      await fx.store.create({ name, password, marker: marker(name), expiresAt: expires(), groups: [g1, g2] });
      expect([...(await fx.store.get(name))!.groups].sort()).toEqual([g1, g2].sort());
      if (fx.canLogOn) expect(await fx.canLogOn(name, password)).toBe(true);
      // An unknown group fails the whole creation: nothing is left behind.
      const other = fresh();
      expect(await codeOf(fx.store.create({ name: other, password, marker: marker(other), expiresAt: expires(), groups: [g1, 'no-such-group-q'] }))).toBe('JIT_ERR_STORE_NO_SUCH_GROUP');
      expect(await fx.store.get(other)).toBeNull();
    });

    it('reports an unknown group with a typed error', async () => {
      const { name } = await make();
      expect(await codeOf(fx.store.addToGroup(name, 'No Such Group 9x'))).toBe('JIT_ERR_STORE_NO_SUCH_GROUP');
    });

    it('disables and enables logon, moving the expiry', async () => {
      const { name, password } = await make();
      await fx.store.disable(name);
      await fx.store.disable(name);
      expect((await fx.store.get(name))!.enabled).toBe(false);
      if (fx.canLogOn) expect(await fx.canLogOn(name, password)).toBe(false);
      const later = new Date(Date.now() + 5 * 86_400_000);
      await fx.store.enable(name, later);
      const a = (await fx.store.get(name))!;
      expect(a.enabled).toBe(true);
      expect(Math.abs(a.expiresAt!.getTime() - later.getTime())).toBeLessThanOrEqual(fx.expiryPrecisionMs ?? 1000);
      if (fx.canLogOn) expect(await fx.canLogOn(name, password)).toBe(true);
    });

    it('resets the password: the new one logs on, the old one no longer does', async () => {
      const { name, password } = await make();
      const next = generatePassword(name);
      await fx.store.setPassword(name, next);
      if (fx.canLogOn) {
        expect(await fx.canLogOn(name, next)).toBe(true);
        expect(await fx.canLogOn(name, password)).toBe(false);
      }
    });

    it('deletes idempotently, removing memberships', async () => {
      const { name } = await make();
      await fx.store.addToGroup(name, fx.groups[0]);
      await fx.store.delete(name);
      await fx.store.delete(name);
      expect(await fx.store.get(name)).toBeNull();
      expect((await fx.store.listManaged()).map((a) => a.name.toLowerCase())).not.toContain(name);
      // removing a membership of a missing account is a no-op
      await fx.store.removeFromGroup(name, fx.groups[0]);
    });

    it('lists only accounts carrying a jitgate marker', async () => {
      const { name } = await make();
      const other = fresh();
      await fx.seedUnmanaged(other);
      try {
        const names = (await fx.store.listManaged()).map((a) => a.name.toLowerCase());
        expect(names).toContain(name);
        expect(names).not.toContain(other);
      } finally {
        await fx.removeUnmanaged(other);
      }
    });

    it('refuses to modify or delete an account it did not create', async () => {
      const other = fresh();
      await fx.seedUnmanaged(other);
      try {
        const g = fx.groups[0];
        // one at a time, each awaited at once (no unhandled rejections)
        const attempts = [
          () => fx.store.addToGroup(other, g),
          () => fx.store.removeFromGroup(other, g),
          () => fx.store.disable(other),
          () => fx.store.enable(other, expires()),
          () => fx.store.setPassword(other, generatePassword(other)),
          () => fx.store.setMarker(other, marker(other)),
          () => fx.store.delete(other),
          ...(fx.store.logOff ? [() => fx.store.logOff!(other)] : []),
        ];
        for (const attempt of attempts) expect(await codeOf(attempt())).toBe('JIT_ERR_STORE_NOT_MANAGED');
        const still = await fx.store.get(other);
        expect(still).not.toBeNull();
        expect(still!.groups).toEqual([]);
        expect(still!.marker.startsWith('jitgate:')).toBe(false);
      } finally {
        await fx.removeUnmanaged(other);
      }
    });

    it('logOff ends the account\'s sessions and processes, idempotently; a missing account is no error', async (ctx) => {
      if (!fx.store.logOff || !fx.startLogon || !fx.hasLogon) ctx.skip();
      const { name, password } = await make();
      await fx.store.addToGroup(name, fx.groups[0]);
      await fx.startLogon!(name, password);
      expect(await fx.hasLogon!(name)).toBe(true);
      await fx.store.logOff!(name);
      expect(await fx.hasLogon!(name)).toBe(false);
      await fx.store.logOff!(name);
      // Only logged off: the account itself is untouched.
      expect((await fx.store.get(name))?.groups).toEqual([fx.groups[0]]);
      await fx.store.logOff!(fresh());
      for (const hostile of HOSTILE_NAMES) {
        expect({ hostile, code: await codeOf(fx.store.logOff!(hostile)) }).toEqual({ hostile, code: 'JIT_ERR_STORE_INVALID_NAME' });
      }
    });

    describe('elevation of existing accounts', () => {
      const el = (ctx: { skip: () => void }): ElevationFixture => {
        if (!fx.elevation) ctx.skip();
        return fx.elevation!;
      };
      /** Seed an existing account jitgate did not create; removed after the suite. */
      const seeded: string[] = [];
      async function existing(): Promise<string> {
        const name = fresh();
        await fx.seedUnmanaged(name);
        seeded.push(name);
        return name;
      }
      afterAll(async () => {
        for (const name of seeded) await fx.removeUnmanaged(name).catch(() => undefined);
      });

      it('findExisting reads an existing account it did not create, and null for a missing one', async (ctx) => {
        el(ctx);
        const name = await existing();
        const found = await fx.store.findExisting(name);
        expect(found).not.toBeNull();
        expect(found!.name.toLowerCase()).toBe(name);
        expect(found!.enabled).toBe(true);
        expect(found!.protectedReason).toBeNull();
        expect(found!.groups).toEqual([]);
        expect(await fx.store.findExisting(fresh())).toBeNull();
        const alias = fx.elevation!.alias;
        if (alias) expect((await fx.store.findExisting(await alias(name)))?.name.toLowerCase()).toBe(name);
      });

      it('findExisting reports a disabled account as not enabled', async (ctx) => {
        const e = el(ctx);
        const name = await existing();
        await e.disableOutOfBand(name);
        const found = await fx.store.findExisting(name);
        expect(found?.enabled).toBe(false);
      });

      it('findExisting reports an account past its expiry as not enabled, and the same account before it as enabled', async (ctx) => {
        const e = el(ctx);
        if (!e.expireOutOfBand) ctx.skip();
        const name = await existing();
        expect((await fx.store.findExisting(name))?.enabled).toBe(true);
        await e.expireOutOfBand!(name);
        expect((await fx.store.findExisting(name))?.enabled).toBe(false);
      });

      it('refuses the backend\'s built-in protected account: reported by findExisting, addMember adds nothing', async (ctx) => {
        const e = el(ctx);
        const [, g] = fx.groups;
        const found = await fx.store.findExisting(e.builtInProtected);
        expect(found).not.toBeNull();
        expect(found!.protectedReason).toMatch(/\w/);
        const before = await e.memberOutOfBand(e.builtInProtected, g);
        expect(await codeOf(fx.store.addMember(e.builtInProtected, g))).toBe('JIT_ERR_STORE_PROTECTED_ACCOUNT');
        expect(await e.memberOutOfBand(e.builtInProtected, g)).toBe(before);
      });

      it('refuses an account in a configured protected group', async (ctx) => {
        const e = el(ctx);
        const name = await existing();
        await e.makeProtectedByGroup(name);
        expect((await fx.store.findExisting(name))?.protectedReason).toMatch(/protected group/);
        expect(await codeOf(fx.store.addMember(name, fx.groups[0]))).toBe('JIT_ERR_STORE_PROTECTED_ACCOUNT');
        expect(await e.memberOutOfBand(name, fx.groups[0])).toBe(false);
      });

      it('refuses an account the directory itself marks protected', async (ctx) => {
        const e = el(ctx);
        if (!e.makeProtectedByDirectory) ctx.skip();
        const name = await existing();
        await e.makeProtectedByDirectory!(name);
        expect((await fx.store.findExisting(name))?.protectedReason).toMatch(/\w/);
        expect(await codeOf(fx.store.addMember(name, fx.groups[0]))).toBe('JIT_ERR_STORE_PROTECTED_ACCOUNT');
        expect(await e.memberOutOfBand(name, fx.groups[0])).toBe(false);
      });

      it('addMember then removeMember, idempotently, as the directory sees it', async (ctx) => {
        const e = el(ctx);
        const name = await existing();
        const [g1, g2] = fx.groups;
        expect(await fx.store.isMember(name, g1)).toBe(false);
        await fx.store.addMember(name, g1);
        await fx.store.addMember(name, g1);
        expect(await fx.store.isMember(name, g1)).toBe(true);
        expect(await fx.store.isMember(name, g2)).toBe(false);
        expect(await e.memberOutOfBand(name, g1)).toBe(true);
        expect((await fx.store.findExisting(name))?.groups).toEqual([g1]);
        await fx.store.removeMember(name, g1);
        await fx.store.removeMember(name, g1);
        expect(await fx.store.isMember(name, g1)).toBe(false);
        expect(await e.memberOutOfBand(name, g1)).toBe(false);
        expect((await fx.store.findExisting(name))?.groups).toEqual([]);
        // The account itself is untouched: still there, still enabled, carrying no jitgate marker.
        expect((await fx.store.findExisting(name))?.enabled).toBe(true);
        const after = await fx.store.get(name);
        expect(after).not.toBeNull();
        expect(after!.marker.startsWith('jitgate:')).toBe(false);
      });

      it('a membership the account had before is reported as such, and addMember leaves it as it was', async (ctx) => {
        const e = el(ctx);
        const name = await existing();
        const [g1] = fx.groups;
        await e.addMemberOutOfBand(name, g1);
        expect(await fx.store.isMember(name, g1)).toBe(true);
        expect((await fx.store.findExisting(name))?.groups).toEqual([g1]);
        await fx.store.addMember(name, g1);
        expect(await e.memberOutOfBand(name, g1)).toBe(true);
      });

      it('a missing account: isMember false, removeMember a no-op, addMember refused', async (ctx) => {
        el(ctx);
        const name = fresh();
        expect(await fx.store.isMember(name, fx.groups[0])).toBe(false);
        await fx.store.removeMember(name, fx.groups[0]);
        expect(await codeOf(fx.store.addMember(name, fx.groups[0]))).toBe('JIT_ERR_STORE_NO_SUCH_ACCOUNT');
      });

      it('rejects hostile names in every elevation call with a typed error', async (ctx) => {
        el(ctx);
        const g = fx.groups[0];
        for (const hostile of HOSTILE_NAMES) {
          const codes = {
            findExisting: await codeOf(fx.store.findExisting(hostile)),
            isMember: await codeOf(fx.store.isMember(hostile, g)),
            addMember: await codeOf(fx.store.addMember(hostile, g)),
            removeMember: await codeOf(fx.store.removeMember(hostile, g)),
          };
          const want = 'JIT_ERR_STORE_INVALID_NAME';
          expect({ hostile, codes }).toEqual({ hostile, codes: { findExisting: want, isMember: want, addMember: want, removeMember: want } });
        }
      });
    });

    it('rejects hostile names with a typed error and creates nothing', async () => {
      const before = (await fx.store.listManaged()).length;
      for (const name of HOSTILE_NAMES) {
        const code = await codeOf(fx.store.create({ name, password: generatePassword('x'), marker: 'jitgate:contract:hostile', expiresAt: expires() }));
        expect({ name, code }).toEqual({ name, code: 'JIT_ERR_STORE_INVALID_NAME' });
      }
      expect((await fx.store.listManaged()).length).toBe(before);
    });
  });
}
