import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { silentLogger } from '../core/logging.js';
import { redisOptions } from '../core/redis.js';
import { SecretBox } from '../core/secret-box.js';
import { AccessService } from '../gateway/access-policy.js';
import { apiRoutes } from '../gateway/api/index.js';
import { createAuth, createPerson } from '../gateway/auth/index.js';
import { tokenHash } from '../gateway/auth/identity.service.js';
import type { Role } from '../gateway/auth/principal.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { liveSessionEnder } from '../gateway/sessions/end-live-sessions.js';
import { RedisLiveSessions } from '../gateway/sessions/live-sessions.js';
import { signInAs, type SignedInClient } from './fixtures/signed-in.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Ending a sign-in ends what it opened (issue 12 item 7), and org admins
 * reach only their own organization's sign-ins (never a global admin's),
 * through the real sign-in (password + TOTP, cookie + CSRF), the real people
 * API and the real live-session registry on Redis with two gateways: the
 * sessions are held by registrations exactly as the session broker makes
 * them (person, and the sign-in that opened them).
 */

const redisSocket = inject('redisSocket');
const factories = databaseFactories();
const factory = factories.find((f) => f.label === 'postgres' && f.skip === '') ?? factories.find((f) => f.label === 'pglite')!;
const PASSWORD = 'correct horse battery staple';

describe.skipIf(!redisSocket)(`signing out, revoking a sign-in, a password change and an MFA reset end live sessions (Redis, ${factory.label})`, () => {
  let db: Database;
  let gwA: RedisLiveSessions;
  let gwB: RedisLiveSessions;
  let app: FastifyInstance;
  let clock = Date.now();
  const tag = randomBytes(3).toString('hex');
  const secrets = new Map<string, string>();
  /** session id → who ended it (the `by` the holding gateway was told). */
  const ended = new Map<string, string>();

  beforeAll(async () => {
    db = await factory.open();
    const prefix = `jgt-signins-${tag}`;
    const redis = redisOptions({ path: redisSocket });
    gwA = new RedisLiveSessions({ redis, prefix, gatewayId: `gw-a-${tag}`, log: silentLogger() });
    gwB = new RedisLiveSessions({ redis, prefix, gatewayId: `gw-b-${tag}`, log: silentLogger() });
    await gwA.start();
    await gwB.start();
    const audit = new AuditLog(db);
    const auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit, log: silentLogger(), now: () => new Date(clock),
      cfg: { sessionHours: 12, idleMinutes: 600, maxFailedSignIns: 50, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
      endLiveSessions: liveSessionEnder(gwA),
    });
    app = await buildServer({
      log: silentLogger(), metrics: createMetrics(), version: 'test', readiness: [],
      rootPlugins: [auth.plugin],
      apiPlugins: [
        apiRoutes({
          db, audit, access: new AccessService(db, audit), stores: [], liveSessions: gwA,
          checkStore: async () => ({ ok: false, error: 'none' }),
          recordingFiles: { open: async () => null },
          revokeAuthSessions: auth.revokeAuthSessions, hashPassword: auth.hashPassword,
          extendSession: async () => {
            throw new Error('not used');
          },
        }),
      ],
    });
  });
  afterAll(async () => {
    await app?.close();
    await gwA?.close();
    await gwB?.close();
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

  /** A complete sign-in (enrolling TOTP the first time); returns the client and its sign-in id. */
  async function signIn(login: string): Promise<{ client: SignedInClient; authSessionId: string }> {
    clock += 31_000; // each TOTP step is accepted once
    const c = await signInAs(app, login, PASSWORD, { secret: secrets.get(login), totpTime: () => clock, followCsrf: true });
    secrets.set(login, c.secret);
    const rows = await db.query<{ id: string }>('SELECT id FROM auth_sessions WHERE token_hash = $1', [tokenHash(c.cookie)]);
    return { client: c, authSessionId: rows[0]!.id };
  }

  /** A live session held by `gw` as the session broker registers it; its proxy closes when told to terminate. */
  async function hold(gw: RedisLiveSessions, p: { id: string; login: string }, authSessionId: string): Promise<string> {
    const sessionId = randomUUID();
    const reg = await gw.register(
      { sessionId, personLogin: p.login, personId: p.id, authSessionId, computerName: `pc-${tag}`, protocol: 'ssh', account: 'x_abc123', startedAt: new Date().toISOString() },
      (_reason, by) => {
        ended.set(sessionId, by);
        void reg.unregister();
      },
    );
    return sessionId;
  }

  /**
   * Wait until every terminate published so far has reached both gateways:
   * terminate a sentinel on each through gwA's connection (the one the
   * identity service publishes on; Redis delivers one connection's messages
   * in order).
   */
  async function settle(): Promise<void> {
    for (const gw of [gwA, gwB]) {
      const id = randomUUID();
      let arrived!: () => void;
      const done = new Promise<void>((r) => (arrived = r));
      const reg = await gw.register({ sessionId: id, personLogin: 'sentinel', computerName: 'x', protocol: 'ssh', account: null, startedAt: new Date().toISOString() }, () => arrived());
      expect(await gwA.terminate(id, 'sentinel')).toBe(true);
      await done;
      await reg.unregister();
    }
  }

  it('sign-out and a revoked sign-in end the sessions they opened; a password change ends the others; an MFA reset ends all', async () => {
    const orgId = await org('a');
    const lena = await person('lena', 'technician', orgId);
    const mark = await person('mark', 'technician', orgId);
    const gus = await person('gus', 'global_admin', null);
    const admin = (await signIn(gus.login)).client;
    const s1 = await signIn(lena.login);
    const s2 = await signIn(lena.login);
    const s3 = await signIn(lena.login);
    const sm = await signIn(mark.login);

    const l1 = await hold(gwA, lena, s1.authSessionId);
    const l2 = await hold(gwB, lena, s2.authSessionId);
    const l3 = await hold(gwB, lena, s3.authSessionId);
    const l4 = await hold(gwA, lena, `ssh:${randomUUID()}`); // the SSH front door
    const lm = await hold(gwB, mark, sm.authSessionId);

    // Sign-out: that sign-in's session only, on the gateway that holds it.
    expect((await s1.client.req('POST', '/auth/sign-out')).statusCode).toBe(204);
    await settle();
    expect(Object.fromEntries(ended)).toEqual({ [l1]: lena.login });

    // An admin revokes another sign-in: what it opened ends, on the other gateway.
    expect((await admin.req('DELETE', `/auth-sessions/${s2.authSessionId}`)).statusCode).toBe(204);
    await settle();
    expect(Object.fromEntries(ended)).toEqual({ [l1]: lena.login, [l2]: gus.login });
    expect((await s2.client.me())?.login ?? null).toBeNull();

    // Her own password change: the SSH front door session ends, the tab she uses stays.
    expect((await s3.client.req('POST', '/me/password', { current: PASSWORD, next: 'another long passphrase' })).statusCode).toBe(204);
    await settle();
    expect(ended.get(l4)).toBe(lena.login);
    expect(ended.has(l3)).toBe(false);
    expect((await s3.client.me())?.login ?? null).toBe(lena.login);

    // An MFA reset by an admin: every session of hers ends; Mark keeps his.
    expect((await admin.req('POST', `/people/${lena.id}/reset-mfa`)).statusCode).toBe(204);
    await settle();
    expect(ended.get(l3)).toBe(gus.login);
    expect(ended.has(lm)).toBe(false);
    expect((await gwA.list()).map((l) => l.sessionId)).toEqual([lm]);
  });

  it('org admins list and revoke sign-ins of their organization only, never a global admin', async () => {
    const orgA = await org('a');
    const orgB = await org('b');
    const otto = await person('otto', 'org_admin', orgA);
    const tess = await person('tess', 'technician', orgA);
    const bert = await person('bert', 'technician', orgB);
    // A global admin with a home organization (allowed: organizationId is optional for them).
    const gwen = await person('gwen', 'global_admin', orgA);
    const ottoC = await signIn(otto.login);
    const tessS = await signIn(tess.login);
    const bertS = await signIn(bert.login);
    const gwenS = await signIn(gwen.login);

    const listed = ((await ottoC.client.req('GET', '/auth-sessions')).json() as { login: string }[]).map((s) => s.login);
    expect(listed).toContain(tess.login);
    expect(listed).toContain(otto.login);
    expect(listed).not.toContain(gwen.login);
    expect(listed).not.toContain(bert.login);

    const denied = await ottoC.client.req('DELETE', `/auth-sessions/${gwenS.authSessionId}`);
    expect(denied.statusCode).toBe(404);
    expect((await gwenS.client.me())?.login ?? null).toBe(gwen.login);
    expect((await ottoC.client.req('DELETE', `/auth-sessions/${bertS.authSessionId}`)).statusCode).toBe(404);
    expect((await bertS.client.me())?.login ?? null).toBe(bert.login);

    expect((await ottoC.client.req('DELETE', `/auth-sessions/${tessS.authSessionId}`)).statusCode).toBe(204);
    expect((await tessS.client.me())?.login ?? null).toBeNull();
    // The global admin may revoke the org admin's.
    expect((await gwenS.client.req('DELETE', `/auth-sessions/${ottoC.authSessionId}`)).statusCode).toBe(204);
    expect((await ottoC.client.me())?.login ?? null).toBeNull();
  });

  /** A stored passkey (the WebAuthn ceremonies themselves run in chromium: test/e2e/passkeys.e2e.test.ts). */
  async function passkey(personId: string, name: string): Promise<void> {
    await db.query('INSERT INTO passkeys (id, person_id, credential_id, public_key, name, created_at) VALUES ($1, $2, $3, $4, $5, now())', [randomUUID(), personId, randomBytes(16).toString('base64url'), randomBytes(32).toString('base64url'), name]);
  }
  const passkeysOf = async (personId: string) => (await db.query<{ name: string }>('SELECT name FROM passkeys WHERE person_id = $1 ORDER BY name', [personId])).map((r) => r.name);

  it('an admin resets a person\'s passkeys within their organization only (issue 15): audited, signed out, live sessions ended; never their own, a global admin\'s or another customer\'s', async () => {
    const orgA = await org('pa');
    const orgB = await org('pb');
    const otto = await person('pk-otto', 'org_admin', orgA);
    const tess = await person('pk-tess', 'technician', orgA);
    const bert = await person('pk-bert', 'technician', orgB);
    const gwen = await person('pk-gwen', 'global_admin', orgA);
    // Signed in first: with a passkey stored, the sign-in would ask for it as the second factor.
    const ottoS = await signIn(otto.login);
    const tessS = await signIn(tess.login);
    const gwenS = await signIn(gwen.login);
    for (const [who, names] of [[tess, ['laptop', 'phone']], [bert, ['key']], [gwen, ['gwen key']], [otto, ['otto key']]] as const) {
      for (const n of names) await passkey(who.id, n);
    }
    const live = await hold(gwB, tess, tessS.authSessionId);

    // Another customer's technician, a global admin and oneself are out of reach; nothing is removed.
    expect((await ottoS.client.req('POST', `/people/${bert.id}/reset-passkeys`)).statusCode).toBe(404);
    expect([403, 404]).toContain((await ottoS.client.req('POST', `/people/${gwen.id}/reset-passkeys`)).statusCode);
    expect((await ottoS.client.req('POST', `/people/${otto.id}/reset-passkeys`)).statusCode).toBe(403);
    // A technician resets nobody's.
    expect([403, 404]).toContain((await tessS.client.req('POST', `/people/${otto.id}/reset-passkeys`)).statusCode);
    // The cookie alone is not enough: the CSRF token is checked.
    const noCsrf = await app.inject({ method: 'POST', url: `/api/v1/people/${tess.id}/reset-passkeys`, headers: { cookie: `jitgate_session=${ottoS.client.cookie}` } });
    expect(noCsrf.statusCode).toBe(403);
    expect(await passkeysOf(bert.id)).toEqual(['key']);
    expect(await passkeysOf(gwen.id)).toEqual(['gwen key']);
    expect(await passkeysOf(otto.id)).toEqual(['otto key']);
    expect(await passkeysOf(tess.id)).toEqual(['laptop', 'phone']);

    const r = await ottoS.client.req('POST', `/people/${tess.id}/reset-passkeys`);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ removed: 2 });
    expect(await passkeysOf(tess.id)).toEqual([]);
    expect((await tessS.client.me())?.login ?? null).toBeNull();
    await settle();
    expect(ended.get(live)).toBe(otto.login);
    const [ev] = await db.query<{ actor: string; data: { action: string; login: string; passkeys: string[] } }>(
      "SELECT actor, data FROM audit_events WHERE type = 'admin.changed' AND data->>'action' = 'person.passkeys_reset' AND data->>'id' = $1",
      [tess.id],
    );
    expect(ev).toMatchObject({ actor: otto.login, data: { login: tess.login, passkeys: ['laptop', 'phone'] } });

    // A global admin reaches every organization.
    expect((await gwenS.client.req('POST', `/people/${bert.id}/reset-passkeys`)).json()).toEqual({ removed: 1 });
    expect(await passkeysOf(bert.id)).toEqual([]);
  });
});
