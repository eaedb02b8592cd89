import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { silentLogger } from '../core/logging.js';
import { SecretBox } from '../core/secret-box.js';
import { AccessService } from '../gateway/access-policy.js';
import { apiRoutes } from '../gateway/api/index.js';
import { createAuth, createPerson } from '../gateway/auth/index.js';
import { invitationTokenHash } from '../gateway/auth/invitations.js';
import type { Role } from '../gateway/auth/principal.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { MemoryLiveSessions } from './fixtures/api-fixture.js';
import { secondFactor, signInAs, SignedInClient } from './fixtures/signed-in.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Invitations and people management (issue 15) through the real sign-in
 * (password + TOTP, cookie + CSRF), the real people and invitation API and
 * real argon2id hashes, across two organizations: an org admin invites,
 * unlocks, resets and reads the access of their own organization's people
 * only; a link is used once and refused when used, expired or withdrawn; an
 * admin-set password holds back every API call until it is changed.
 */

const factories = databaseFactories();
const factory = factories.find((f) => f.label === 'postgres' && f.skip === '') ?? factories.find((f) => f.label === 'pglite')!;
const PASSWORD = 'correct horse battery staple';
const MAX_FAILED = 3;

describe(`invitations and people management through the real sign-in (${factory.label})`, () => {
  let db: Database;
  let app: FastifyInstance;
  let clock = Date.now();
  const tag = randomBytes(3).toString('hex');
  const secrets = new Map<string, string>();
  const live = new MemoryLiveSessions();

  beforeAll(async () => {
    db = await factory.open();
    const audit = new AuditLog(db);
    const auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit, log: silentLogger(), now: () => new Date(clock),
      cfg: { sessionHours: 12, idleMinutes: 6000, maxFailedSignIns: MAX_FAILED, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
      // Every test signs in many times from one address: the limiter is tested in test/auth.test.ts.
      attemptsPerMinute: 10_000,
    });
    app = await buildServer({
      log: silentLogger(), metrics: createMetrics(), version: 'test', readiness: [],
      rootPlugins: [auth.plugin],
      apiPlugins: [
        apiRoutes({
          db, audit, access: new AccessService(db, audit), stores: [], liveSessions: live,
          checkStore: async () => ({ ok: false, error: 'none' }),
          recordingFiles: { open: async () => null },
          revokeAuthSessions: auth.revokeAuthSessions, hashPassword: auth.hashPassword,
          extendSession: async () => {
            throw new Error('not used');
          },
        }),
      ],
    });
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await db?.close();
  });

  async function org(label: string): Promise<string> {
    const id = randomUUID();
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [id, `${label}-${tag}-${id.slice(0, 6)}`, id.slice(0, 6)]);
    return id;
  }

  async function person(label: string, role: Role, organizationId: string | null) {
    return createPerson(db, { login: `${label}-${tag}`, displayName: label, role, organizationId, password: PASSWORD });
  }

  const client = () => new SignedInClient(app, { followCsrf: true });

  /** Finish a half-done sign-in: enroll TOTP the first time, else a fresh code (each TOTP step is accepted once). */
  async function finishSignIn(c: SignedInClient, login: string, next: string): Promise<void> {
    await secondFactor(c, next, (clock += 31_000), secrets.get(login));
    secrets.set(login, c.secret);
  }

  async function signIn(login: string, password = PASSWORD): Promise<SignedInClient> {
    const c = await signInAs(app, login, password, { secret: secrets.get(login), totpTime: () => (clock += 31_000), followCsrf: true });
    secrets.set(login, c.secret);
    return c;
  }

  async function auditOf(type: string, login: string): Promise<{ actor: string; outcome: string; data: Record<string, unknown> }[]> {
    const rows = await db.query<{ actor: string; outcome: string; data: unknown }>(
      "SELECT actor, outcome, data FROM audit_events WHERE type = $1 AND (actor = $2 OR data->>'login' = $2) ORDER BY seq",
      [type, login],
    );
    return rows.map((r) => ({ ...r, data: (typeof r.data === 'string' ? JSON.parse(r.data) : r.data) as Record<string, unknown> }));
  }

  it('an org admin invites into their organization; the link signs the invitee up once, then TOTP enrollment; reuse is refused', async () => {
    const a = await org('a');
    const b = await org('b');
    await person('ada', 'org_admin', a);
    const adminA = await signIn(`ada-${tag}`);
    const login = `newbie-${tag}`;

    // Out of scope: another organization, a role above their own.
    expect((await adminA.req('POST', '/invitations', { login, role: 'technician', organizationId: b })).json()).toMatchObject({ code: 'JIT_ERR_FORBIDDEN' });
    expect((await adminA.req('POST', '/invitations', { login, role: 'global_admin', organizationId: null })).statusCode).toBe(403);
    // CSRF: a cookie alone does not invite.
    expect((await adminA.req('POST', '/invitations', { login, role: 'technician', organizationId: a }, { csrf: false })).json().code).toBe('JIT_ERR_AUTH_CSRF');

    const created = await adminA.req('POST', '/invitations', { login, displayName: 'New Bie', email: 'newbie@example.test', role: 'technician', organizationId: a });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.headers['cache-control']).toBe('no-store');
    const inv = created.json() as { id: string; path: string; state: string; expiresAt: string };
    expect(inv).toMatchObject({ login, role: 'technician', organizationId: a, state: 'open' });
    expect(inv.path).toMatch(/^\/invite#[A-Za-z0-9_-]{43}$/);
    const token = inv.path.split('#')[1]!;
    // Only the hash is stored.
    const stored = await db.query<{ token_hash: string }>('SELECT token_hash FROM invitations WHERE id = $1', [inv.id]);
    expect(stored[0]!.token_hash).toBe(invitationTokenHash(token));
    expect(JSON.stringify((await adminA.req('GET', '/invitations')).json())).not.toContain(token);
    expect(new Date(inv.expiresAt).getTime() - Date.now()).toBeGreaterThan(71 * 3_600_000);

    const invitee = client();
    const preview = await invitee.req('POST', '/auth/invitation', { token });
    expect(preview.statusCode, preview.body).toBe(200);
    expect(preview.json()).toMatchObject({ login, displayName: 'New Bie', role: 'technician', organizationName: expect.stringMatching(/^a-/) });
    // A weak password does not burn the link.
    expect((await invitee.req('POST', '/auth/invitation/accept', { token, password: 'short' })).json().code).toBe('JIT_ERR_AUTH_WEAK_PASSWORD');
    const accepted = await invitee.req('POST', '/auth/invitation/accept', { token, password: 'my own long passphrase' });
    expect(accepted.statusCode, accepted.body).toBe(200);
    expect(accepted.json()).toEqual({ next: 'totp-enrollment', login });
    expect(await invitee.me()).toBeNull(); // half-done until TOTP is enrolled
    await finishSignIn(invitee, login, 'totp-enrollment');
    expect(await invitee.me()).toMatchObject({ login, role: 'technician', organizationId: a, mustChangePassword: false });
    expect((await invitee.req('GET', '/computers')).statusCode).toBe(200);

    // The link is spent: refused on check and on use, whoever tries.
    for (const r of [await client().req('POST', '/auth/invitation', { token }), await client().req('POST', '/auth/invitation/accept', { token, password: 'another long passphrase' })]) {
      expect(r.statusCode).toBe(410);
      expect(r.json().code).toBe('JIT_ERR_AUTH_INVITATION_USED');
    }
    // The chosen password signs in (TOTP next), not the rejected one.
    expect((await client().req('POST', '/auth/sign-in', { login, password: 'another long passphrase' })).statusCode).toBe(401);
    expect((await client().req('POST', '/auth/sign-in', { login, password: 'my own long passphrase' })).json()).toEqual({ next: 'totp' });

    expect((await adminA.req('GET', '/invitations')).json()).toEqual(expect.arrayContaining([expect.objectContaining({ id: inv.id, state: 'used' })]));
    expect((await auditOf('auth.invitation_created', `ada-${tag}`)).map((e) => e.data.login)).toContain(login);
    expect(await auditOf('auth.invitation_used', login)).toHaveLength(1);
    expect((await auditOf('auth.invitation_refused', login)).map((e) => e.data.code)).toEqual(['JIT_ERR_AUTH_INVITATION_USED', 'JIT_ERR_AUTH_INVITATION_USED']);
  }, 120_000);

  it('expired, withdrawn and unknown links are refused with their own codes; admins see and withdraw only their organization\'s', async () => {
    const a = await org('a');
    const b = await org('b');
    await person('abe', 'org_admin', a);
    await person('bea', 'org_admin', b);
    const adminA = await signIn(`abe-${tag}`);
    const adminB = await signIn(`bea-${tag}`);

    const short = (await adminA.req('POST', '/invitations', { login: `brief-${tag}`, role: 'technician', organizationId: a, ttlHours: 1 })).json() as { id: string; path: string; expiresAt: string };
    const later = (await adminA.req('POST', '/invitations', { login: `later-${tag}`, role: 'auditor', organizationId: a })).json() as { id: string; path: string };
    const inB = (await adminB.req('POST', '/invitations', { login: `bee-${tag}`, role: 'technician', organizationId: b })).json() as { id: string };

    // Org admins list and withdraw their own organization's invitations only.
    const listA = (await adminA.req('GET', '/invitations')).json() as { id: string }[];
    expect(listA.map((i) => i.id)).toEqual(expect.arrayContaining([short.id, later.id]));
    expect(listA.map((i) => i.id)).not.toContain(inB.id);
    expect((await adminA.req('DELETE', `/invitations/${inB.id}`)).statusCode).toBe(404);

    expect((await adminA.req('DELETE', `/invitations/${later.id}`)).statusCode).toBe(204);
    const withdrawn = await client().req('POST', '/auth/invitation/accept', { token: later.path.split('#')[1]!, password: 'a long enough passphrase' });
    expect(withdrawn.statusCode).toBe(410);
    expect(withdrawn.json().code).toBe('JIT_ERR_AUTH_INVITATION_REVOKED');
    expect((await adminA.req('DELETE', `/invitations/${later.id}`)).statusCode).toBe(409);

    clock += 2 * 3_600_000; // past the one-hour link
    const expired = await client().req('POST', '/auth/invitation', { token: short.path.split('#')[1]! });
    expect(expired.statusCode).toBe(410);
    expect(expired.json()).toMatchObject({ code: 'JIT_ERR_AUTH_INVITATION_EXPIRED', details: { expiredAt: short.expiresAt } });
    expect((await client().req('POST', '/auth/invitation/accept', { token: short.path.split('#')[1]!, password: 'a long enough passphrase' })).json().code).toBe('JIT_ERR_AUTH_INVITATION_EXPIRED');
    expect((await db.query('SELECT 1 FROM people WHERE login = $1', [`brief-${tag}`])).length).toBe(0);

    const unknown = await client().req('POST', '/auth/invitation', { token: randomBytes(32).toString('base64url') });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('JIT_ERR_AUTH_INVITATION_UNKNOWN');
    // A login that exists cannot be invited again.
    expect((await adminA.req('POST', '/invitations', { login: `abe-${tag}`, role: 'technician', organizationId: a })).statusCode).toBe(409);
  }, 120_000);

  it('an admin-set password holds back every API call until it is changed, at creation and after a reset', async () => {
    const a = await org('a');
    await person('ann', 'org_admin', a);
    const adminA = await signIn(`ann-${tag}`);
    const login = `set-${tag}`;
    const made = await adminA.req('POST', '/people', { login, displayName: 'Set By Admin', role: 'technician', organizationId: a, password: 'admin chose this one' });
    expect(made.statusCode, made.body).toBe(201);
    expect(made.json()).toMatchObject({ mustChangePassword: true });

    const tech = await signIn(login, 'admin chose this one');
    expect(await tech.me()).toMatchObject({ login, mustChangePassword: true });
    for (const [m, u] of [['GET', '/computers'], ['GET', '/people'], ['GET', '/me/ssh-keys'], ['POST', '/me/ssh-keys']] as const) {
      const r = await tech.req(m, u, m === 'POST' ? { publicKey: 'x' } : undefined);
      expect(r.statusCode, `${m} ${u}`).toBe(403);
      expect(r.json().code).toBe('JIT_ERR_AUTH_PASSWORD_CHANGE_REQUIRED');
    }
    // The same password again is not a change.
    expect((await tech.req('POST', '/me/password', { current: 'admin chose this one', next: 'admin chose this one' })).json().code).toBe('JIT_ERR_AUTH_WEAK_PASSWORD');
    expect((await tech.req('POST', '/me/password', { current: 'admin chose this one', next: 'only I know this one' })).statusCode).toBe(204);
    expect(await tech.me()).toMatchObject({ mustChangePassword: false });
    expect((await tech.req('GET', '/computers')).statusCode).toBe(200);

    // A reset by the admin: signed out, and held back again at the next sign-in.
    const id = made.json().id as string;
    const reset = await adminA.req('PATCH', `/people/${id}`, { password: 'a fresh admin password' });
    expect(reset.statusCode, reset.body).toBe(200);
    expect(reset.json()).toMatchObject({ mustChangePassword: true });
    expect(await tech.me()).toBeNull();
    const again = await signIn(login, 'a fresh admin password');
    expect((await again.req('GET', '/computers')).json().code).toBe('JIT_ERR_AUTH_PASSWORD_CHANGE_REQUIRED');
    expect((await auditOf('admin.changed', login)).map((e) => e.data.action)).toContain('person.password_reset');
  }, 120_000);

  it('lockout: the person is told until when, their admin sees it and unlocks; another organization\'s admin cannot', async () => {
    const a = await org('a');
    const b = await org('b');
    await person('amy', 'org_admin', a);
    await person('bob', 'org_admin', b);
    const locked = await person('lou', 'technician', a);
    const adminA = await signIn(`amy-${tag}`);
    const adminB = await signIn(`bob-${tag}`);

    let last;
    for (let i = 0; i < MAX_FAILED; i++) last = await client().req('POST', '/auth/sign-in', { login: locked.login, password: 'wrong password here' });
    expect(last!.statusCode).toBe(423);
    const until = (last!.json() as { details: { until: string } }).details.until;
    expect(new Date(until).getTime()).toBe(clock + 15 * 60_000);
    // Even the right password is refused while locked, saying until when.
    const refused = await client().req('POST', '/auth/sign-in', { login: locked.login, password: PASSWORD });
    expect(refused.json()).toMatchObject({ code: 'JIT_ERR_AUTH_LOCKED', details: { until } });

    const seen = ((await adminA.req('GET', '/people')).json() as { login: string; locked: boolean; lockedUntil: string | null }[]).find((p) => p.login === locked.login);
    expect(seen).toMatchObject({ locked: true, lockedUntil: until });
    expect((await adminB.req('PATCH', `/people/${locked.id}`, { locked: false })).statusCode).toBe(404);
    expect((await adminB.req('GET', `/people/${locked.id}/access`)).statusCode).toBe(404);

    const unlocked = await adminA.req('PATCH', `/people/${locked.id}`, { locked: false });
    expect(unlocked.statusCode, unlocked.body).toBe(200);
    expect(unlocked.json()).toMatchObject({ locked: false, lockedUntil: null });
    await signIn(locked.login);
    expect((await auditOf('admin.changed', locked.login)).filter((e) => e.data.action === 'person.unlocked')).toEqual([
      expect.objectContaining({ actor: `amy-${tag}`, data: expect.objectContaining({ lockedUntil: until }) }),
    ]);
  }, 120_000);

  it('access overview: which computers, through which grant, with which JIT settings; in scope only', async () => {
    const a = await org('a');
    const b = await org('b');
    await person('alf', 'org_admin', a);
    await person('bo', 'org_admin', b);
    await person('aud', 'auditor', a);
    const tech = await person('tia', 'technician', a);
    const adminA = await signIn(`alf-${tag}`);
    const adminB = await signIn(`bo-${tag}`);
    const auditor = await signIn(`aud-${tag}`);
    const jit = { enabled: true, mode: 'create', deleteOnCheckIn: true, adminGroups: ['admins'], accountType: 'domain', maxSessionMinutes: 120 };
    const computer = async (orgId: string, name: string, restricted: boolean) => {
      const id = randomUUID();
      await db.query(`INSERT INTO computers (id, organization_id, name, address, jit, restricted) VALUES ($1,$2,$3,'10.0.0.5',$4,$5)`, [id, orgId, name, JSON.stringify(jit), restricted]);
      return id;
    };
    const open = await computer(a, `open-${tag}`, false);
    const shared = await computer(a, `shared-${tag}`, true);
    await computer(a, `closed-${tag}`, true);
    const elsewhere = await computer(b, `other-${tag}`, true);
    await db.query('INSERT INTO grants (computer_id, person_id) VALUES ($1,$2), ($3,$2)', [shared, tech.id, elsewhere]);

    const r = await adminA.req('GET', `/people/${tech.id}/access`);
    expect(r.statusCode, r.body).toBe(200);
    const body = r.json() as { blocked: string | null; computers: { id: string; via: string; grantedAt: string | null; jit: unknown }[] };
    expect(body.blocked).toBeNull();
    expect(body.computers.map((c) => [c.id, c.via])).toEqual([[open, 'organization'], [shared, 'grant']]);
    expect(body.computers[1]!.grantedAt).toEqual(expect.any(String));
    expect(body.computers[0]!.jit).toMatchObject({ mode: 'create', maxSessionMinutes: 120, adminGroups: ['admins'] });
    expect((await auditor.req('GET', `/people/${tech.id}/access`)).statusCode).toBe(200);
    expect((await adminB.req('GET', `/people/${tech.id}/access`)).statusCode).toBe(404);

    // The person's own view matches; an org admin reaches all of their organization's computers.
    const self = await signIn(tech.login);
    expect(((await self.req('GET', `/people/${tech.id}/access`)).json() as { computers: unknown[] }).computers).toHaveLength(2);
    const admins = (await adminA.req('GET', '/people')).json() as { id: string; login: string }[];
    const alf = admins.find((p) => p.login === `alf-${tag}`)!;
    const own = (await adminA.req('GET', `/people/${alf.id}/access`)).json() as { computers: { via: string }[] };
    expect(own.computers.map((c) => c.via)).toEqual(['organization-admin', 'organization-admin', 'organization-admin']);

    // Disabled: the list stays (what they would have), and says what stops them.
    expect((await adminA.req('PATCH', `/people/${tech.id}`, { disabled: true })).statusCode).toBe(200);
    expect((await adminA.req('GET', `/people/${tech.id}/access`)).json()).toMatchObject({ blocked: 'disabled' });
  }, 120_000);
});
