/**
 * People signing in against a real Samba AD DC (scripts/samba-ad.sh): the
 * service bind finds them, a bind as their DN checks the password, their
 * (nested) groups map to a role. Skips, saying why, where the DC cannot run.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { createLogger } from '../core/logging.js';
import { Secret } from '../core/secret.js';
import { SecretBox } from '../core/secret-box.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { createAuth } from '../gateway/auth/index.js';
import { LdapAccountStore } from '../provisioner/stores/ldap.store.js';
import { databaseFactories } from './harness/databases.js';
import { sambaAdAvailable, startSambaAd, type SambaAdHandle } from './harness/samba-ad.js';

const avail = sambaAdAvailable();
const factory = databaseFactories()[0]!;

describe.skipIf(!avail.ok)(`LDAP/AD sign-in on Samba AD${avail.ok ? '' : ` (skipped: ${avail.reason ?? ''})`}`, () => {
  let ad: SambaAdHandle;
  let store: LdapAccountStore;
  let db: Database;
  let app: FastifyInstance;
  let orgId: string;
  const logs: string[] = [];
  const created: string[] = [];
  const password = `Pw-${randomBytes(9).toString('base64url')}-9a`;
  const tech = `st${randomBytes(4).toString('hex')}`;
  const nobody = `sn${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    ad = await startSambaAd();
    store = new LdapAccountStore({ url: ad.url, caCert: ad.caCert, bindDn: ad.bindDn, bindPassword: ad.bindPassword, baseDn: ad.baseDn, accountsContainer: ad.jitOu, groups: ad.adminGroupDns, logger: pino({ level: 'silent' }) });
    const expiresAt = new Date(Math.floor((Date.now() + 4 * 3_600_000) / 1000) * 1000);
    for (const name of [tech, nobody]) {
      await store.create({ name, password, marker: `jitgate:test:${name}`, expiresAt, displayName: `Person ${name}` });
      created.push(name);
    }
    await store.addToGroup(tech, 'JIT Admins');
    db = await factory.open();
    orgId = randomUUID();
    const orgName = `ad-${orgId.slice(0, 6)}`;
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, orgName, orgId.slice(0, 6)]);
    const log = createLogger({ level: 'trace', destination: new Writable({ write(c: Buffer, _e, cb) { logs.push(c.toString()); cb(); } }) });
    const auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit: new AuditLog(db), log,
      cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 't', cookieSecure: 'auto' },
      attemptsPerMinute: 1000,
      identityProviders: {
        oidc: [],
        ldap: [{
          name: 'ad', displayName: 'Active Directory', url: ad.url, startTls: false, caCert: new Secret(ad.caCert),
          bindDn: ad.bindDn, bindPassword: new Secret(ad.bindPassword), baseDn: ad.baseDn, loginAttribute: 'sAMAccountName',
          roles: [{ group: ad.adminGroupDns['JIT Admins']!, role: 'technician' }],
          organization: { values: {}, emailDomains: {}, default: orgName },
          timeoutMs: 10_000,
        }],
      },
    });
    app = await buildServer({ log, metrics: createMetrics(), version: 'test', readiness: [], rootPlugins: [auth.plugin], apiPlugins: [] });
  }, 240_000);

  afterAll(async () => {
    for (const n of created) await store?.delete(n).catch(() => undefined);
    await store?.close();
    await app?.close();
    await db?.close();
    await ad?.stop();
  });

  const signIn = (login: string, pw: string) => app.inject({ method: 'POST', url: '/api/v1/auth/ldap/ad/sign-in', payload: { login, password: pw } });

  it('binds as the person, maps the group to a role and creates them; TOTP follows', async () => {
    const r = await signIn(tech, password);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ next: 'totp-enrollment' });
    const [p] = await db.query<{ role: string; organization_id: string }>("SELECT p.role, p.organization_id FROM people p JOIN person_identities i ON i.person_id = p.id WHERE i.issuer = 'ldap:ad' AND p.login = $1", [tech]);
    expect(p).toEqual({ role: 'technician', organization_id: orgId });
    expect(logs.join('\n')).not.toContain(password);
    expect(logs.join('\n')).not.toContain(ad.bindPassword);
  });

  it('puts the person in the teams whose synced groups hold them (directory DN in any case), at each sign-in', async () => {
    const teamId = randomUUID();
    const dn = ad.adminGroupDns['JIT Admins']!;
    await db.query('INSERT INTO teams (id, organization_id, name, sync_groups) VALUES ($1,$2,$3,$4)', [teamId, orgId, `admins-${teamId.slice(0, 4)}`, [dn.toUpperCase()]]);
    const other = randomUUID();
    await db.query('INSERT INTO teams (id, organization_id, name, sync_groups) VALUES ($1,$2,$3,$4)', [other, orgId, `other-${other.slice(0, 4)}`, ['CN=Nobody,DC=example,DC=test']]);
    expect((await signIn(tech, password)).statusCode).toBe(200);
    const rows = await db.query<{ team_id: string; source: string }>(
      "SELECT m.team_id, m.source FROM team_members m JOIN people p ON p.id = m.person_id WHERE p.login = $1 AND m.team_id = ANY($2::uuid[])",
      [tech, [teamId, other]],
    );
    expect(rows).toEqual([{ team_id: teamId, source: 'sync' }]);
  });

  it('refuses a wrong password, an empty password and a filter injection alike', async () => {
    for (const [login, pw] of [[tech, `${password}x`], [tech, ''], ['*', password], [`${tech})(|(sAMAccountName=*`, password]] as const) {
      const r = await signIn(login, pw);
      expect(r.statusCode).toBe(401);
      expect(r.json()).toMatchObject({ code: 'JIT_ERR_AUTH_INVALID_CREDENTIALS' });
    }
  });

  it('a person in no mapped group gets no access', async () => {
    const r = await signIn(nobody, password);
    expect(r.statusCode).toBe(403);
    expect(r.json()).toMatchObject({ code: 'JIT_ERR_AUTH_SSO_NOT_MAPPED' });
  });
});
