import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { silentLogger } from '../core/logging.js';
import { SecretBox } from '../core/secret-box.js';
import { buildConfigSchema } from '../config/schema.js';
import { AccessService } from '../gateway/access-policy.js';
import { apiRoutes, storeInfos } from '../gateway/api/index.js';
import { createAuth, createPerson } from '../gateway/auth/index.js';
import type { Role } from '../gateway/auth/principal.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { MemoryAccountStore } from '../provisioner/stores/memory.store.js';
import { DirRecordingFiles, MemoryLiveSessions } from './fixtures/api-fixture.js';
import { signIn, type SignedInClient } from './fixtures/signed-in.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Issue 14: a person's existing account per store (what `jit.mode: elevate`
 * raises), set by the admins who manage the person, for the stores of the
 * person's organization only. Two organizations (acme, beta), stores owned
 * by one each, one shared, one without owners, configured through the real
 * config schema; everyone signs in for real (password, TOTP enrollment,
 * cookie, CSRF). Existing accounts are read from the in-memory store (the
 * engine's store for logic tests), so refusals at save time are the
 * engine's own: missing, disabled, protected.
 */

const { accountStoreSchema } = buildConfigSchema({});
const ldap = (name: string, dc: string, organizations?: string[]) =>
  accountStoreSchema.parse({
    name, type: 'ldap', url: `ldaps://dc.${dc}.test`, caCert: 'PEM', bindDn: `CN=svc,DC=${dc},DC=test`, bindPassword: 'not-used',
    baseDn: `DC=${dc},DC=test`, accountsContainer: `OU=JIT,DC=${dc},DC=test`, groups: { admins: `CN=JIT Admins,OU=Groups,DC=${dc},DC=test` },
    ...(organizations ? { organizations } : {}),
  });
const ssh = (name: string, organizations?: string[], accountName?: string) =>
  accountStoreSchema.parse({
    name, type: 'ssh', host: '192.0.2.20', privateKey: 'not-used', hostKeySha256: `SHA256:${'A'.repeat(43)}`, groups: { sudo: 'sudo' },
    ...(organizations ? { organizations } : {}), ...(accountName ? { elevation: { accountName } } : {}),
  });
const STORES = [ldap('acme-ad', 'acme', ['acme']), ldap('beta-ad', 'beta', ['beta']), ssh('shared-linux', ['acme', 'beta'], 'adm_{login}'), ssh('global-linux')];

for (const factory of databaseFactories()) {
  describe.skipIf(factory.skip)(`person → existing account mappings (${factory.label})`, () => {
    let db: Database;
    let app: FastifyInstance;
    const orgs: Record<'acme' | 'beta', string> = { acme: '', beta: '' };
    const ids: Record<string, string> = {};
    const password = `pw-${randomBytes(8).toString('hex')}-long enough`;
    const t = randomBytes(3).toString('hex');
    let adminA: SignedInClient, adminB: SignedInClient, ga: SignedInClient, techA: SignedInClient;
    /** One in-memory directory per store name. */
    const dirs = new Map(STORES.map((s) => [s.name, new MemoryAccountStore()]));
    const dir = (name: string) => dirs.get(name)!;

    async function signedIn(login: string, role: Role, organizationId: string | null): Promise<SignedInClient> {
      const c = await signIn(app, db, { login, role, organizationId, password });
      ids[login] = c.id;
      return c;
    }

    /** An account that exists in a store's directory (created around jitgate, as a person's own account is). */
    async function existing(store: string, name: string, extra: { enabled?: boolean; protectedReason?: string } = {}): Promise<void> {
      dir(store).accounts.set(name, { name, password: 'x', marker: '', enabled: extra.enabled ?? true, expiresAt: null, protectedReason: extra.protectedReason ?? null });
    }

    const mapping = async (person: string, store: string) =>
      (await db.query<{ account_name: string }>('SELECT account_name FROM person_accounts WHERE person_id = $1 AND store = $2', [ids[person], store]))[0]?.account_name ?? null;

    const alice = `alice-${t}`;
    const bob = `bob-${t}`;

    beforeAll(async () => {
      db = await factory.open();
      const audit = new AuditLog(db);
      const log = silentLogger();
      const auth = createAuth({
        db, box: new SecretBox(randomBytes(32)), audit, log,
        cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
      });
      app = await buildServer({
        log, metrics: createMetrics(), version: 'test', readiness: [],
        rootPlugins: [auth.plugin],
        apiPlugins: [
          apiRoutes({
            db, audit, access: new AccessService(db, audit), liveSessions: new MemoryLiveSessions(), recordingFiles: new DirRecordingFiles(),
            stores: storeInfos(STORES),
            checkStore: async () => ({ ok: true }),
            findExistingAccount: (store, name) => dir(store).findExisting(name),
            hashPassword: auth.hashPassword,
            extendSession: () => Promise.reject(new Error('not in this test')),
          }),
        ],
      });
      await app.ready();
      for (const name of ['acme', 'beta'] as const) {
        orgs[name] = randomUUID();
        await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1,$2,$3)', [orgs[name], name, String(10_000_000 + randomBytes(3).readUIntBE(0, 3))]);
      }
      [adminA, adminB, ga, techA] = await Promise.all([
        signedIn(`acme-admin-${t}`, 'org_admin', orgs.acme),
        signedIn(`beta-admin-${t}`, 'org_admin', orgs.beta),
        signedIn(`global-${t}`, 'global_admin', null),
        signedIn(alice, 'technician', orgs.acme),
      ]);
      ids[bob] = (await createPerson(db, { login: bob, displayName: bob, role: 'technician', organizationId: orgs.beta, password })).id;
      for (const s of ['acme-ad', 'beta-ad', 'shared-linux']) await existing(s, 'ops1');
    }, 120_000);

    afterAll(async () => {
      await app?.close();
      await db?.close();
    });

    it("an org admin lists their person's stores with the rule's default, sets and deletes a mapping; the engine's store is read", async () => {
      const list = await adminA.get(`/people/${ids[alice]}/accounts`);
      expect(list.statusCode).toBe(200);
      expect(list.json()).toEqual([
        { store: 'acme-ad', type: 'ldap', accountName: null, defaultAccountName: alice, effective: alice, updatedAt: null },
        { store: 'shared-linux', type: 'ssh', accountName: null, defaultAccountName: `adm_${alice}`, effective: `adm_${alice}`, updatedAt: null },
      ]);
      const before = dir('acme-ad').calls.length;
      const put = await adminA.put(`/people/${ids[alice]}/accounts/acme-ad`, { accountName: 'ops1' });
      expect(put.statusCode, put.body).toBe(200);
      expect(put.json()).toMatchObject({ store: 'acme-ad', accountName: 'ops1', effective: 'ops1', defaultAccountName: alice });
      expect(dir('acme-ad').calls.slice(before)).toEqual([{ op: 'findExisting', name: 'ops1' }]);
      expect(await mapping(alice, 'acme-ad')).toBe('ops1');
      const audited = await db.query<{ data: unknown }>("SELECT data FROM audit_events WHERE type = 'admin.changed' AND data->>'action' = 'person.account_mapped' AND data->>'id' = $1", [ids[alice]]);
      expect(audited).toHaveLength(1);
      // The person reads their own mapping; they may not change it.
      expect(((await techA.get(`/people/${ids[alice]}/accounts`)).json() as { effective: string }[])[0]!.effective).toBe('ops1');
      const selfPut = await techA.put(`/people/${ids[alice]}/accounts/acme-ad`, { accountName: 'root' });
      expect([selfPut.statusCode, selfPut.json().code]).toEqual([403, 'JIT_ERR_FORBIDDEN']);
      expect(await mapping(alice, 'acme-ad')).toBe('ops1');
    });

    it("another organization's admin cannot read, set or delete the mapping: 404 as for a person who does not exist; nothing changes", async () => {
      for (const r of [
        await adminB.get(`/people/${ids[alice]}/accounts`),
        await adminB.put(`/people/${ids[alice]}/accounts/acme-ad`, { accountName: 'ops1' }),
        await adminB.put(`/people/${ids[alice]}/accounts/shared-linux`, { accountName: 'ops1' }),
        await adminB.delete(`/people/${ids[alice]}/accounts/acme-ad`),
      ]) {
        expect([r.statusCode, r.json().code]).toEqual([404, 'JIT_ERR_NOT_FOUND']);
        expect(r.json().message).toContain('person');
      }
      expect(await mapping(alice, 'acme-ad')).toBe('ops1');
      expect(await mapping(alice, 'shared-linux')).toBeNull();
      // And the other way round, plus a technician reading someone else.
      expect((await adminA.get(`/people/${ids[bob]}/accounts`)).statusCode).toBe(404);
      expect((await adminA.put(`/people/${ids[bob]}/accounts/beta-ad`, { accountName: 'ops1' })).statusCode).toBe(404);
      expect((await techA.get(`/people/${ids[bob]}/accounts`)).statusCode).toBe(404);
      expect(await mapping(bob, 'beta-ad')).toBeNull();
    });

    it("an org admin cannot map their own person onto another customer's store or an unowned one (404, the store's existence not told)", async () => {
      for (const store of ['beta-ad', 'global-linux', 'no-such-store']) {
        const r = await adminA.put(`/people/${ids[alice]}/accounts/${store}`, { accountName: 'ops1' });
        expect([r.statusCode, r.json().code]).toEqual([404, 'JIT_ERR_NOT_FOUND']);
        expect(r.json().message).toContain(`account store ${store}`);
        expect(await mapping(alice, store)).toBeNull();
      }
      expect(dir('beta-ad').calls.filter((c) => c.op === 'findExisting')).toEqual([]);
    });

    it('a missing, disabled or protected account is refused in the engine\'s words and not saved', async () => {
      await existing('shared-linux', 'off1', { enabled: false });
      await existing('shared-linux', 'root', { protectedReason: 'root (uid 0)' });
      const cases: [string, number, string][] = [
        ['nobody1', 422, 'JIT_ERR_JIT_ELEVATE_NO_ACCOUNT'],
        ['off1', 422, 'JIT_ERR_JIT_ELEVATE_DISABLED'],
        ['root', 403, 'JIT_ERR_JIT_ELEVATE_PROTECTED'],
        ['Bad Name', 400, 'JIT_ERR_STORE_INVALID_NAME'],
      ];
      for (const [name, status, code] of cases) {
        const r = await adminA.put(`/people/${ids[alice]}/accounts/shared-linux`, { accountName: name });
        expect([name, r.statusCode, r.json().code]).toEqual([name, status, code]);
        expect(await mapping(alice, 'shared-linux')).toBeNull();
      }
      const bad = await adminA.put(`/people/${ids[alice]}/accounts/shared-linux`, { accountName: 'a\u0007b' });
      expect([bad.statusCode, bad.json().details.fields]).toEqual([400, { accountName: 'no control characters' }]);
    });

    it('YAML import sets and clears mappings in one transaction (global admins); export lists them; a store of another organization is refused', async () => {
      const yaml = (lines: string) => `accountMappings:\n${lines}`;
      const headers = { 'content-type': 'application/yaml' };
      expect((await adminA.post('/inventory/import', yaml(`  - { person: ${alice}, store: shared-linux, account: ops1 }\n`), headers)).statusCode).toBe(403);
      const ok = await ga.post('/inventory/import', yaml(`  - { person: ${alice}, store: shared-linux, account: ops1 }\n  - { person: ${bob}, store: shared-linux, account: ops2 }\n`), headers);
      expect([ok.statusCode, ok.json().accountMappings], ok.body).toEqual([200, 2]);
      expect([await mapping(alice, 'shared-linux'), await mapping(bob, 'shared-linux')]).toEqual(['ops1', 'ops2']);
      const exported = (await ga.get('/inventory/export')).body;
      expect(exported).toContain(`  - person: ${alice}\n    store: shared-linux\n    account: ops1\n`);
      // bob is beta's: acme's store is refused, and the whole document with it (alice's line is not applied either).
      const bad = await ga.post('/inventory/import', yaml(`  - { person: ${alice}, store: shared-linux, account: null }\n  - { person: ${bob}, store: acme-ad, account: ops1 }\n`), headers);
      expect([bad.statusCode, bad.json().code]).toEqual([400, 'JIT_ERR_VALIDATION']);
      expect(bad.json().message).toContain(`acme-ad is not a store of ${bob}'s organization`);
      expect(await mapping(alice, 'shared-linux')).toBe('ops1');
      for (const [doc, words] of [
        [`  - { person: nobody-${t}, store: shared-linux, account: ops1 }\n`, `no person with login nobody-${t}`],
        [`  - { person: ${alice}, store: no-such, account: ops1 }\n`, 'no account store named no-such'],
      ] as const) {
        const r = await ga.post('/inventory/import', yaml(doc), headers);
        expect([r.statusCode, r.json().message]).toEqual([400, expect.stringContaining(words)]);
      }
      // null clears: the rule applies again.
      expect((await ga.post('/inventory/import', yaml(`  - { person: ${alice}, store: shared-linux, account: null }\n`), headers)).statusCode).toBe(200);
      expect(await mapping(alice, 'shared-linux')).toBeNull();
      expect(await mapping(bob, 'shared-linux')).toBe('ops2');
    });

    it('the global admin maps anyone on any store their organization may use; only a managing admin deletes', async () => {
      expect((await ga.put(`/people/${ids[bob]}/accounts/beta-ad`, { accountName: 'ops1' })).statusCode).toBe(200);
      expect(await mapping(bob, 'beta-ad')).toBe('ops1');
      // bob is beta's: acme's store is not his.
      expect((await ga.put(`/people/${ids[bob]}/accounts/acme-ad`, { accountName: 'ops1' })).statusCode).toBe(404);
      expect((await adminA.delete(`/people/${ids[bob]}/accounts/beta-ad`)).statusCode).toBe(404);
      expect(await mapping(bob, 'beta-ad')).toBe('ops1');
      expect((await adminB.delete(`/people/${ids[bob]}/accounts/beta-ad`)).statusCode).toBe(204);
      expect(await mapping(bob, 'beta-ad')).toBeNull();
      expect((await adminA.delete(`/people/${ids[alice]}/accounts/acme-ad`)).statusCode).toBe(204);
      expect(await mapping(alice, 'acme-ad')).toBeNull();
    });
  });
}
