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
import { createAuth } from '../gateway/auth/index.js';
import type { Role } from '../gateway/auth/principal.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { MemoryLiveSessions, DirRecordingFiles } from './fixtures/api-fixture.js';
import { signIn, type SignedInClient } from './fixtures/signed-in.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Issue 12 item 2: an organization admin reaches only their own
 * organization's account stores, groups and containers. Two organizations
 * (acme, beta), stores owned by one each, one shared by both (named
 * explicitly) and one without owners (global admins only), configured
 * through the real config schema. Everyone signs in for real (password,
 * TOTP enrollment, session cookie, CSRF header): no test header. Every
 * refusal is checked for its code and for an unchanged database.
 */

const { accountStoreSchema } = buildConfigSchema({});
const ldap = (name: string, dc: string, organizations?: string[]) =>
  accountStoreSchema.parse({
    name, type: 'ldap', url: `ldaps://dc.${dc}.test`, caCert: 'PEM', bindDn: `CN=svc,DC=${dc},DC=test`, bindPassword: 'not-used',
    baseDn: `DC=${dc},DC=test`, accountsContainer: `OU=JIT,DC=${dc},DC=test`, groups: { [`${dc} Admins`]: `CN=JIT Admins,OU=Groups,DC=${dc},DC=test` },
    ...(organizations ? { organizations } : {}),
  });
const ssh = (name: string, organizations?: string[]) =>
  accountStoreSchema.parse({
    name, type: 'ssh', host: '192.0.2.20', privateKey: 'not-used', hostKeySha256: `SHA256:${'A'.repeat(43)}`, groups: { sudo: 'sudo' },
    ...(organizations ? { organizations } : {}),
  });
const STORES = [ldap('acme-ad', 'acme', ['acme']), ldap('beta-ad', 'beta', ['beta']), ssh('shared-linux', ['acme', 'beta']), ssh('global-linux')];

const PIN = `SHA256:${'k'.repeat(43)}`;
const acmeJit = { enabled: true, deleteOnCheckIn: true, adminGroups: ['acme Admins'], accountType: 'domain' };

for (const factory of databaseFactories()) {
  describe.skipIf(factory.skip)(`tenant isolation of account stores (${factory.label})`, () => {
    let db: Database;
    let app: FastifyInstance;
    const orgs: Record<'acme' | 'beta', string> = { acme: '', beta: '' };
    const password = `pw-${randomBytes(8).toString('hex')}-long enough`;
    let adminA: SignedInClient, adminB: SignedInClient, ga: SignedInClient, tech: SignedInClient, auditor: SignedInClient;

    const signedIn = (login: string, role: Role, organizationId: string | null) => signIn(app, db, { login, role, organizationId, password });

    beforeAll(async () => {
      db = await factory.open();
      const audit = new AuditLog(db);
      const log = silentLogger();
      const auth = createAuth({
        db, box: new SecretBox(randomBytes(32)), audit, log,
        cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
      });
      const files = new DirRecordingFiles();
      app = await buildServer({
        log, metrics: createMetrics(), version: 'test', readiness: [],
        rootPlugins: [auth.plugin],
        apiPlugins: [
          apiRoutes({
            db, audit, access: new AccessService(db, audit), liveSessions: new MemoryLiveSessions(), recordingFiles: files,
            stores: storeInfos(STORES),
            checkStore: async () => ({ ok: true }),
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
      const t = randomBytes(3).toString('hex');
      [adminA, adminB, ga, tech, auditor] = await Promise.all([
        signedIn(`acme-admin-${t}`, 'org_admin', orgs.acme),
        signedIn(`beta-admin-${t}`, 'org_admin', orgs.beta),
        signedIn(`global-${t}`, 'global_admin', null),
        signedIn(`acme-tech-${t}`, 'technician', orgs.acme),
        signedIn(`acme-aud-${t}`, 'auditor', orgs.acme),
      ]);
    }, 120_000);

    afterAll(async () => {
      await app?.close();
      await db?.close();
    });

    const row = async (id: string) => (await db.query('SELECT * FROM computers WHERE id = $1', [id]))[0];
    const named = async (name: string) => (await db.query('SELECT 1 FROM computers WHERE name = $1', [name])).length;
    const newComputer = (name: string, extra: Record<string, unknown> = {}) => ({
      name, address: '10.0.0.5', protocols: ['ssh', 'rdp'], domainStore: 'acme-ad', jit: acmeJit, policy: { sshHostKeySha256: PIN }, ...extra,
    });

    it("an org admin lists only their organization's stores, with group names and allowed containers", async () => {
      expect((await adminA.get('/account-stores')).json()).toEqual([
        { name: 'acme-ad', type: 'ldap', url: 'ldaps://dc.acme.test', organizations: ['acme'], groups: ['acme Admins'], allowedContainers: ['OU=JIT,DC=acme,DC=test'] },
        // Shared with beta: acme's admin sees only acme as owner.
        { name: 'shared-linux', type: 'ssh', url: 'ssh://192.0.2.20:22', organizations: ['acme'], groups: ['sudo'], allowedContainers: null },
      ]);
      expect(((await adminB.get('/account-stores')).json() as { name: string }[]).map((s) => s.name)).toEqual(['beta-ad', 'shared-linux']);
      const all = (await ga.get('/account-stores')).json() as { name: string; organizations: string[] | null }[];
      expect(all.map((s) => [s.name, s.organizations])).toEqual([['acme-ad', ['acme']], ['beta-ad', ['beta']], ['shared-linux', ['acme', 'beta']], ['global-linux', null]]);
      expect((await tech.get('/account-stores')).statusCode).toBe(403);
    });

    it('an org admin cannot create a computer with another customer\'s store, group or container, nor in another organization', async () => {
      const created = await adminA.post('/computers', newComputer('acme-ok', { localStore: 'shared-linux', jit: { ...acmeJit, container: 'OU=Team,OU=JIT,DC=acme,DC=test' } }));
      expect(created.statusCode).toBe(201);

      const refusals: [Record<string, unknown>, number, string, string][] = [
        [{ domainStore: 'beta-ad', jit: { ...acmeJit, adminGroups: ['beta Admins'] } }, 403, 'JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG', 'domainStore'],
        [{ localStore: 'global-linux' }, 403, 'JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG', 'localStore'],
        [{ localStore: 'beta-ad' }, 403, 'JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG', 'localStore'],
        [{ jit: { ...acmeJit, adminGroups: ['beta Admins'] } }, 422, 'JIT_ERR_STORE_GROUP_UNKNOWN', 'jit.adminGroups'],
        [{ jit: { ...acmeJit, adminGroups: ['acme Admins', 'Domain Admins'] } }, 422, 'JIT_ERR_STORE_GROUP_UNKNOWN', 'jit.adminGroups'],
        [{ localStore: 'shared-linux', jit: { ...acmeJit, accountType: 'choose' } }, 422, 'JIT_ERR_STORE_GROUP_UNKNOWN', 'jit.adminGroups'],
        [{ jit: { ...acmeJit, container: 'OU=JIT,DC=beta,DC=test' } }, 403, 'JIT_ERR_STORE_CONTAINER_NOT_ALLOWED', 'jit.container'],
        [{ jit: { ...acmeJit, container: 'OU=Domain Controllers,DC=acme,DC=test' } }, 403, 'JIT_ERR_STORE_CONTAINER_NOT_ALLOWED', 'jit.container'],
        [{ jit: { ...acmeJit, container: 'OU=x,OU=JIT,DC=acme,DC=test,DC=evil' } }, 403, 'JIT_ERR_STORE_CONTAINER_NOT_ALLOWED', 'jit.container'],
        [{ jit: { ...acmeJit, container: 'OU=JIT\\,DC=acme\\,DC=test,DC=evil' } }, 403, 'JIT_ERR_STORE_CONTAINER_NOT_ALLOWED', 'jit.container'],
        [{ organizationId: orgs.beta }, 403, 'JIT_ERR_FORBIDDEN', ''],
      ];
      for (const [i, [extra, status, code, field]] of refusals.entries()) {
        const name = `acme-bad-${i}`;
        const r = await adminA.post('/computers', newComputer(name, extra));
        expect([r.statusCode, r.json().code], JSON.stringify(extra)).toEqual([status, code]);
        if (field) expect(Object.keys(r.json().details.fields)).toEqual([field]);
        expect(await named(name), name).toBe(0);
      }
    });

    it('an org admin cannot patch their computer to another customer\'s store, group, container or organization; nothing changes', async () => {
      const c = (await adminA.post('/computers', newComputer('acme-patch'))).json() as { id: string };
      const before = await row(c.id);
      const refusals: [Record<string, unknown>, string][] = [
        [{ domainStore: 'beta-ad' }, 'JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG'],
        [{ domainStore: 'beta-ad', jit: { adminGroups: ['beta Admins'] } }, 'JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG'],
        [{ localStore: 'global-linux' }, 'JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG'],
        [{ jit: { adminGroups: ['beta Admins'] } }, 'JIT_ERR_STORE_GROUP_UNKNOWN'],
        [{ jit: { container: 'OU=JIT,DC=beta,DC=test' } }, 'JIT_ERR_STORE_CONTAINER_NOT_ALLOWED'],
        [{ jit: { container: 'CN=Users,DC=acme,DC=test' } }, 'JIT_ERR_STORE_CONTAINER_NOT_ALLOWED'],
        [{ organizationId: orgs.beta }, 'JIT_ERR_FORBIDDEN'],
        [{ organizationId: orgs.beta, domainStore: 'beta-ad', jit: { adminGroups: ['beta Admins'] } }, 'JIT_ERR_FORBIDDEN'],
      ];
      for (const [body, code] of refusals) {
        const r = await adminA.patch(`/computers/${c.id}`, body);
        expect(r.json().code, JSON.stringify(body)).toBe(code);
        expect(await row(c.id)).toEqual(before);
      }
      // What is theirs still works.
      expect((await adminA.patch(`/computers/${c.id}`, { localStore: 'shared-linux', jit: { container: 'OU=JIT,DC=acme,DC=test' } })).statusCode).toBe(200);
    });

    it('an org admin cannot import an inventory; nothing is created', async () => {
      const yaml = `computers:\n  - organization: acme\n    name: acme-inv\n    address: 10.1.1.1\n    domainStore: beta-ad\n    jit: { enabled: true, adminGroups: [beta Admins] }\n`;
      const r = await adminA.post('/inventory/import', yaml, { 'content-type': 'application/yaml' });
      expect([r.statusCode, r.json().code]).toEqual([403, 'JIT_ERR_FORBIDDEN']);
      expect(await named('acme-inv')).toBe(0);
    });

    it('global admins: groups must be on the store, owned stores stay with their owners, unowned stores are theirs to assign', async () => {
      const noGroup = await ga.post('/computers', { ...newComputer('ga-bad-group', { jit: { ...acmeJit, adminGroups: ['Enterprise Admins'] } }), organizationId: orgs.acme });
      expect([noGroup.statusCode, noGroup.json().code]).toEqual([422, 'JIT_ERR_STORE_GROUP_UNKNOWN']);
      expect(await named('ga-bad-group')).toBe(0);
      const foreign = await ga.post('/computers', { ...newComputer('ga-foreign', { domainStore: 'beta-ad', jit: { ...acmeJit, adminGroups: ['beta Admins'] } }), organizationId: orgs.acme });
      expect(foreign.json().code).toBe('JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG');
      expect(await named('ga-foreign')).toBe(0);

      const unowned = await ga.post('/computers', {
        name: 'ga-linux', organizationId: orgs.acme, address: '10.0.0.6', protocols: ['ssh'], localStore: 'global-linux',
        jit: { enabled: true, deleteOnCheckIn: true, adminGroups: ['sudo'], accountType: 'local' },
      });
      expect(unowned.statusCode).toBe(201);
      // ... which the org admin can then not re-save (the store is not theirs), while the row stays as it was.
      const before = await row(unowned.json().id);
      expect((await adminA.patch(`/computers/${unowned.json().id}`, { address: '10.0.0.7' })).json().code).toBe('JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG');
      expect(await row(unowned.json().id)).toEqual(before);

      // Moving acme's computer to beta keeps acme's store: refused for the global admin too.
      const acmeOnly = (await adminA.post('/computers', newComputer('acme-move'))).json() as { id: string };
      const moveBefore = await row(acmeOnly.id);
      expect((await ga.patch(`/computers/${acmeOnly.id}`, { organizationId: orgs.beta })).json().code).toBe('JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG');
      expect(await row(acmeOnly.id)).toEqual(moveBefore);

      const yaml = `computers:\n  - organization: acme\n    name: ga-inv\n    address: 10.1.1.1\n    domainStore: acme-ad\n    jit: { enabled: true, adminGroups: [Domain Admins] }\n`;
      const imported = await ga.post('/inventory/import', yaml, { 'content-type': 'application/yaml' });
      expect([imported.statusCode, imported.json().code, imported.json().details.field]).toEqual([422, 'JIT_ERR_STORE_GROUP_UNKNOWN', 'computers.0.jit.adminGroups']);
      const foreignYaml = yaml.replace('domainStore: acme-ad', 'domainStore: beta-ad').replace('Domain Admins', 'beta Admins');
      expect((await ga.post('/inventory/import', foreignYaml, { 'content-type': 'application/yaml' })).json().code).toBe('JIT_ERR_STORE_NOT_ALLOWED_FOR_ORG');
      expect(await named('ga-inv')).toBe(0);
      expect((await ga.post('/inventory/import', yaml.replace('Domain Admins', 'acme Admins'), { 'content-type': 'application/yaml' })).statusCode).toBe(200);
      expect(await named('ga-inv')).toBe(1);
    });

    it('a shared store serves both of its organizations', async () => {
      const r = await adminB.post('/computers', {
        name: 'beta-linux', address: '10.0.0.8', protocols: ['ssh'], localStore: 'shared-linux', jit: { enabled: true, deleteOnCheckIn: true, adminGroups: ['sudo'], accountType: 'local' },
      });
      expect(r.statusCode).toBe(201);
    });

    it('technicians see what they connect with: no stores, groups, containers or pinned keys; auditors keep the full view', async () => {
      const c = (await adminA.post('/computers', newComputer('acme-tech', { jit: { ...acmeJit, container: 'OU=Team,OU=JIT,DC=acme,DC=test' } }))).json() as { id: string };
      const list = await tech.get('/computers');
      const one = await tech.get(`/computers/${c.id}`);
      for (const r of [list, one]) {
        expect(r.statusCode).toBe(200);
        for (const secretish of ['acme-ad', 'acme Admins', 'OU=', PIN, 'policy', 'domainStore', 'sshPort']) expect(r.body).not.toContain(secretish);
      }
      expect(one.json()).toEqual({
        id: c.id, organizationId: orgs.acme, name: 'acme-tech', address: '10.0.0.5', protocols: ['ssh', 'rdp'],
        jit: { enabled: true, accountType: 'domain', maxSessionMinutes: 480 }, canConnect: true, accountTypes: ['domain'], labels: {},
      });
      const seen = (await auditor.get(`/computers/${c.id}`)).json();
      expect(seen).toMatchObject({ domainStore: 'acme-ad', jit: { adminGroups: ['acme Admins'], container: 'OU=Team,OU=JIT,DC=acme,DC=test' }, policy: { sshHostKeySha256: PIN } });
    });
  });
}
