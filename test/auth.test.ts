import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { generate } from 'otplib';
import { generateParsableEd25519 } from '../gateway/ssh/front-door-host-key.js';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { createLogger } from '../core/logging.js';
import { SecretBox } from '../core/secret-box.js';
import type { Config } from '../config/schema.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { checkCsrfQuery, createAuth, createPerson, ensureBootstrap, requirePrincipal, requireRole, type Auth } from '../gateway/auth/index.js';
import type { Role } from '../gateway/auth/principal.js';
import { databaseFactories, type DbFactory } from './harness/databases.js';

/**
 * The identity module end to end through the real HTTP server (app.inject),
 * on PGlite and PostgreSQL, with real argon2id hashes and real TOTP codes
 * computed from the enrolled secret. The clock is injected so lockout
 * expiry, idle timeouts and TOTP steps are exact instead of slept for.
 */

type AuthCfg = Config['auth'];
const baseCfg: AuthCfg = { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: 3, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' };

interface Env {
  db: Database;
  app: FastifyInstance;
  auth: Auth;
  logs: string[];
  audit: AuditLog;
  /** Every secret the test saw: must appear in no log line. */
  secrets: Set<string>;
  advance(ms: number): void;
  epoch(): number;
  orgId: string;
}

class Client {
  cookie: string | undefined;
  csrf = '';
  setCookies: string[] = [];
  constructor(
    private readonly env: Env,
    readonly headers: Record<string, string> = {},
  ) {}

  async req(method: InjectOptions['method'], url: string, body?: unknown, extra: Record<string, string> = {}) {
    const headers: Record<string, string> = { ...this.headers, ...extra };
    if (this.cookie) headers.cookie = `jitgate_session=${this.cookie}`;
    if (this.csrf && method !== 'GET' && !('x-csrf-token' in extra)) headers['x-csrf-token'] = this.csrf;
    const r = await this.env.app.inject({ method, url: `/api/v1${url}`, headers, ...(body !== undefined ? { payload: body as object } : {}) });
    const sc = r.headers['set-cookie'];
    const list = sc === undefined ? [] : Array.isArray(sc) ? sc : [sc];
    for (const c of list) {
      this.setCookies.push(c);
      const m = /^jitgate_session=([^;]*)/.exec(c);
      if (m) {
        this.cookie = m[1] || undefined;
        if (this.cookie) this.env.secrets.add(this.cookie);
      }
    }
    return r;
  }

  async me() {
    const r = await this.req('GET', '/auth/me');
    expect(r.statusCode).toBe(200);
    const j = r.json() as { person: { id: string; login: string; role: Role; totpEnabled: boolean } | null; pending: string | null; csrfToken: string };
    this.csrf = j.csrfToken;
    if (j.csrfToken) this.env.secrets.add(j.csrfToken);
    return j;
  }

  async signIn(login: string, password: string) {
    const r = await this.req('POST', '/auth/sign-in', { login, password });
    if (r.statusCode === 200) await this.me();
    return r;
  }
}

/**
 * Opening PGlite takes seconds on a loaded machine: each group shares one
 * database; tests use their own logins and organization, and filter what
 * they read by them.
 */
const sharedDbs = new Map<string, Promise<Database>>();
function sharedDb(f: DbFactory, group: string): Promise<Database> {
  const key = `${f.label}:${group}`;
  if (!sharedDbs.has(key)) sharedDbs.set(key, f.open());
  return sharedDbs.get(key)!;
}
afterAll(async () => {
  for (const db of sharedDbs.values()) await (await db).close();
});

async function setup(dbp: Promise<Database>, cfg: Partial<AuthCfg> = {}, attemptsPerMinute?: number): Promise<Env> {
  const db = await dbp;
  const logs: string[] = [];
  const log = createLogger({
    level: 'trace',
    destination: new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    }),
  });
  let clock = Date.now();
  const now = () => new Date(clock);
  const audit = new AuditLog(db);
  const box = new SecretBox(randomBytes(32));
  const auth = createAuth({ db, box, audit, log, cfg: { ...baseCfg, ...cfg }, now, ...(attemptsPerMinute ? { attemptsPerMinute } : {}) });
  const app = await buildServer({
    log,
    metrics: createMetrics(),
    version: 'test',
    readiness: [],
    rootPlugins: [auth.plugin],
    apiPlugins: [
      async (a) => {
        a.get('/probe/whoami', { preHandler: requirePrincipal }, async (req) => ({ login: req.principal!.login, role: req.principal!.role }));
        a.post('/probe/admin-only', { preHandler: requireRole('global_admin') }, async () => ({ ok: true }));
        a.get('/probe/ws-csrf', async (req) => ({ ok: checkCsrfQuery(req) }));
      },
    ],
  });
  const orgId = randomUUID();
  await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, `org-${orgId.slice(0, 8)}`, orgId.slice(0, 6)]);
  return {
    db, app, auth, logs, audit, orgId,
    secrets: new Set(),
    advance: (ms) => {
      clock += ms;
    },
    epoch: () => Math.floor(clock / 1000),
  };
}

const PASSWORD = 'correct horse battery staple';

async function person(env: Env, login: string, role: Role = 'technician', password = PASSWORD) {
  env.secrets.add(password);
  return createPerson(env.db, { login, displayName: login.toUpperCase(), role, organizationId: role === 'global_admin' ? null : env.orgId, password });
}

/** Password, enrollment with a real code, recovery codes: returns the signed-in client and the TOTP secret. */
async function enroll(env: Env, login: string, password = PASSWORD) {
  const c = new Client(env);
  const r = await c.signIn(login, password);
  expect(r.statusCode).toBe(200);
  expect(r.json()).toEqual({ next: 'totp-enrollment' });
  expect((await c.me()).pending).toBe('totp-enrollment');
  const e = await c.req('POST', '/auth/totp/enrollment');
  expect(e.statusCode).toBe(200);
  const { otpauthUri, qrDataUrl, secret } = e.json() as { otpauthUri: string; qrDataUrl: string; secret: string };
  env.secrets.add(secret);
  expect(otpauthUri).toContain(`secret=${secret}`);
  expect(qrDataUrl).toMatch(/^data:image\/png;base64,[A-Za-z0-9+/=]{200,}$/);
  const conf = await c.req('POST', '/auth/totp/enrollment/confirm', { code: await generate({ secret, epoch: env.epoch() }) });
  expect(conf.statusCode).toBe(200);
  const { recoveryCodes } = conf.json() as { recoveryCodes: string[] };
  expect(recoveryCodes).toHaveLength(10);
  for (const rc of recoveryCodes) env.secrets.add(rc);
  return { client: c, secret, recoveryCodes };
}

function expectNoSecretsLeaked(env: Env, extra: string[] = []) {
  const text = env.logs.join('');
  expect(text.length).toBeGreaterThan(0);
  for (const s of [...env.secrets, ...extra]) expect(text, 'secret in logs').not.toContain(s);
  expect(text).not.toContain('$argon2');
  expect(text).not.toMatch(/v1\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]+/);
}

const factories = databaseFactories();
const pglite = factories.find((f) => f.label === 'pglite')!;

let env: Env | undefined;
afterEach(async () => {
  await env?.app.close();
  env = undefined;
});

for (const f of factories) {
  describe.skipIf(f.skip !== '')(`sign-in with MFA on ${f.label}`, () => {
    beforeAll(async () => {
      await sharedDb(f, 'core');
    });

    it('password → TOTP enrollment → signed in; next sign-in takes a fresh code once; sign-out ends it', async () => {
      env = await setup(sharedDb(f, 'core'));
      const e = env;
      await person(e, 'alice');
      const anon = new Client(e);
      expect(await anon.me()).toEqual({ person: null, pending: null, csrfToken: '' });
      expect((await anon.req('GET', '/probe/whoami')).statusCode).toBe(401);

      const { client, secret } = await enroll(e, 'alice');
      const me = await client.me();
      expect(me.pending).toBeNull();
      expect(me.person).toMatchObject({ login: 'alice', displayName: 'ALICE', role: 'technician', totpEnabled: true });
      expect(Object.keys(me.person!).sort()).toEqual(['displayName', 'id', 'login', 'mustChangePassword', 'organizationId', 'role', 'totpEnabled']);
      expect((await client.req('GET', '/probe/whoami')).json()).toEqual({ login: 'alice', role: 'technician' });

      // A second device: the code of the step used for enrollment is spent.
      const other = new Client(e);
      expect((await other.signIn('alice', PASSWORD)).json()).toEqual({ next: 'totp' });
      expect((await other.me()).pending).toBe('totp');
      expect((await other.req('GET', '/probe/whoami')).statusCode).toBe(401);
      const spent = await generate({ secret, epoch: e.epoch() });
      const replay = await other.req('POST', '/auth/totp', { code: spent });
      expect(replay.statusCode).toBe(401);
      expect(replay.json().code).toBe('JIT_ERR_AUTH_INVALID_CODE');
      e.advance(30_000);
      const fresh = await generate({ secret, epoch: e.epoch() });
      expect((await other.req('POST', '/auth/totp', { code: fresh })).json()).toEqual({ next: 'done' });
      expect((await other.me()).person?.login).toBe('alice');

      // The same code again on a third device: refused (accepted once).
      const third = new Client(e);
      await third.signIn('alice', PASSWORD);
      expect((await third.req('POST', '/auth/totp', { code: fresh })).statusCode).toBe(401);

      expect((await other.req('POST', '/auth/sign-out')).statusCode).toBe(204);
      expect((await other.me()).person).toBeNull();
      expect((await client.me()).person?.login).toBe('alice');

      const types = (await e.audit.list()).map((a) => a.type);
      expect(types).toEqual(expect.arrayContaining(['auth.totp_enrolled', 'auth.signed_in', 'auth.sign_in_failed', 'auth.signed_out']));
      expect((await e.audit.verify()).ok).toBe(true);
      expectNoSecretsLeaked(e);
    });

    it('locks after maxFailedSignIns failures (passwords or codes), for lockoutMinutes', async () => {
      env = await setup(sharedDb(f, 'core'));
      const e = env;
      await person(e, 'bob');
      const c = new Client(e);
      for (const expected of [401, 401, 423]) {
        const r = await c.req('POST', '/auth/sign-in', { login: 'bob', password: 'wrong password!' });
        expect(r.statusCode).toBe(expected);
      }
      const locked = await c.req('POST', '/auth/sign-in', { login: 'bob', password: PASSWORD });
      expect(locked.statusCode).toBe(423);
      expect(locked.json().code).toBe('JIT_ERR_AUTH_LOCKED');
      e.advance(15 * 60_000 - 2_000);
      expect((await c.req('POST', '/auth/sign-in', { login: 'bob', password: PASSWORD })).statusCode).toBe(423);
      e.advance(3_000);
      expect((await c.signIn('bob', PASSWORD)).json()).toEqual({ next: 'totp-enrollment' });
      expect(await e.audit.list({ type: 'auth.locked', actor: 'bob' })).toHaveLength(1);
      // Unknown logins answer like wrong passwords.
      const unknown = await c.req('POST', '/auth/sign-in', { login: 'nobody', password: PASSWORD });
      expect(unknown.statusCode).toBe(401);
      expect(unknown.json().code).toBe('JIT_ERR_AUTH_INVALID_CREDENTIALS');
    });

    it('bootstrap: the setup token creates the first global admin once', async () => {
      env = await setup(sharedDb(f, 'core'));
      const e = env;
      const path = await ensureBootstrap(e.db);
      expect(path).toMatch(/^\/setup#[A-Za-z0-9_-]{32}$/);
      const token = path!.split('#')[1]!;
      e.secrets.add(token);
      const c = new Client(e);
      expect((await c.req('GET', `/auth/bootstrap/${token}`)).json()).toEqual({ valid: true });
      expect((await c.req('GET', `/auth/bootstrap/${'A'.repeat(32)}`)).json()).toEqual({ valid: false });
      // a weak password does not burn the link
      const weak = await c.req('POST', '/auth/bootstrap', { token, login: 'root', displayName: 'Root', password: 'short' });
      expect(weak.statusCode).toBe(400);
      expect(weak.json().code).toBe('JIT_ERR_AUTH_WEAK_PASSWORD');
      e.secrets.add('a long enough admin password');
      const ok = await c.req('POST', '/auth/bootstrap', { token, login: 'root', displayName: 'Root', password: 'a long enough admin password' });
      expect(ok.statusCode).toBe(200);
      expect(ok.json()).toEqual({ next: 'totp-enrollment' });
      expect((await c.me()).pending).toBe('totp-enrollment');
      const again = await new Client(e).req('POST', '/auth/bootstrap', { token, login: 'root2', displayName: 'x', password: 'another long password' });
      expect(again.statusCode).toBe(410);
      expect(again.json().code).toBe('JIT_ERR_AUTH_BOOTSTRAP_INVALID');
      expect((await c.req('GET', `/auth/bootstrap/${token}`)).json()).toEqual({ valid: false });
      expect(await ensureBootstrap(e.db)).toBeNull();
      const { client } = await enroll(e, 'root', 'a long enough admin password');
      expect((await client.me()).person).toMatchObject({ login: 'root', role: 'global_admin', organizationId: null });
      expect((await e.audit.list({ type: 'auth.bootstrap' })).map((a) => a.actor)).toEqual(['root']);
      expectNoSecretsLeaked(e);
    });
  });
}

describe('sign-in details (PGlite)', () => {
  beforeAll(async () => {
    await sharedDb(pglite, 'details');
  });

  it('wrong TOTP codes count towards the lockout; a recovery code works once', async () => {
    env = await setup(sharedDb(pglite, 'details'));
    const e = env;
    await person(e, 'carol');
    const { recoveryCodes, secret } = await enroll(e, 'carol');
    const c = new Client(e);
    await c.signIn('carol', PASSWORD);
    expect((await c.req('POST', '/auth/totp', { code: '000000' === (await generate({ secret, epoch: e.epoch() })) ? '111111' : '000000' })).statusCode).toBe(401);
    expect((await c.req('POST', '/auth/totp', { code: 'zzzz-zzzz-zzzz' })).statusCode).toBe(401);
    expect((await c.req('POST', '/auth/totp', { code: recoveryCodes[0]!.toUpperCase() })).json()).toEqual({ next: 'done' });
    // success resets the counter: two more failures do not lock
    const d = new Client(e);
    await d.signIn('carol', PASSWORD);
    expect((await d.req('POST', '/auth/totp', { code: recoveryCodes[0]! })).statusCode).toBe(401);
    expect((await d.req('POST', '/auth/totp', { code: recoveryCodes[0]! })).statusCode).toBe(401);
    expect((await d.req('POST', '/auth/totp', { code: recoveryCodes[1]! })).json()).toEqual({ next: 'done' });
    const used = await e.audit.list({ type: 'auth.recovery_code_used', actor: 'carol' });
    expect(used.map((u) => u.data.remaining)).toEqual([9, 8]);
    // three wrong codes in a row lock (a minute later: the rate limit is 10 codes a minute per IP and person)
    e.advance(60_000);
    const x = new Client(e);
    await x.signIn('carol', PASSWORD);
    const statuses = [];
    for (const code of ['000001', '000002', '000003']) statuses.push((await x.req('POST', '/auth/totp', { code })).statusCode);
    expect(statuses).toEqual([401, 401, 423]);
    expect((await x.req('POST', '/auth/totp', { code: recoveryCodes[2]! })).statusCode).toBe(423);
    expectNoSecretsLeaked(e);
  });

  it('rate-limits sign-in per IP and login (10 a minute)', async () => {
    env = await setup(sharedDb(pglite, 'details'), { maxFailedSignIns: 100 });
    const e = env;
    await person(e, 'dave');
    const c = new Client(e);
    for (let i = 0; i < 10; i++) expect((await c.req('POST', '/auth/sign-in', { login: 'dave', password: `wrong-${i}-password` })).statusCode).toBe(401);
    const limited = await c.req('POST', '/auth/sign-in', { login: 'dave', password: PASSWORD });
    expect(limited.statusCode).toBe(429);
    expect(limited.json().code).toBe('JIT_ERR_AUTH_RATE_LIMITED');
    // another login from the same address is not affected
    expect((await c.req('POST', '/auth/sign-in', { login: 'someone', password: PASSWORD })).statusCode).toBe(401);
    e.advance(6_000);
    expect((await c.signIn('dave', PASSWORD)).statusCode).toBe(200);
  });

  it('sets HttpOnly SameSite=Strict cookies, Secure except plain http on loopback', async () => {
    env = await setup(sharedDb(pglite, 'details'));
    const e = env;
    await person(e, 'erin');
    const local = new Client(e, { host: '127.0.0.1:8080' });
    await local.signIn('erin', PASSWORD);
    const lc = local.setCookies.find((s) => s.startsWith('jitgate_session='))!;
    expect(lc).toMatch(/; HttpOnly/);
    expect(lc).toMatch(/; SameSite=Strict/);
    expect(lc).toMatch(/; Path=\//);
    expect(lc).toMatch(/; Max-Age=43200/);
    expect(lc).not.toMatch(/; Secure/);
    // a half-done sign-in (TOTP pending) lapses after 10 minutes
    expect((await local.me()).pending).toBe('totp-enrollment');
    e.advance(10 * 60_000 + 1_000);
    expect((await local.me()).pending).toBeNull();
    const remote = new Client(e, { host: 'jitgate.example.com' });
    await remote.signIn('erin', PASSWORD);
    expect(remote.setCookies[0]).toMatch(/; Secure/);
    // The cookie carries a random token; the database keeps only a hash of it.
    const rows = await e.db.query<{ token_hash: string }>("SELECT s.token_hash FROM auth_sessions s JOIN people p ON p.id = s.person_id WHERE p.login = 'erin'");
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      expect(r.token_hash).toMatch(/^[0-9a-f]{64}$/);
      expect([local.cookie, remote.cookie]).not.toContain(r.token_hash);
    }
  });

  it('requires the CSRF token on every cookie-authenticated change and websocket upgrade', async () => {
    env = await setup(sharedDb(pglite, 'details'));
    const e = env;
    await person(e, 'frank', 'global_admin');
    const { client } = await enroll(e, 'frank');
    const noHeader = await client.req('POST', '/probe/admin-only', undefined, { 'x-csrf-token': '' });
    expect(noHeader.statusCode).toBe(403);
    expect(noHeader.json().code).toBe('JIT_ERR_AUTH_CSRF');
    expect((await client.req('POST', '/probe/admin-only', undefined, { 'x-csrf-token': 'x'.repeat(43) })).statusCode).toBe(403);
    expect((await client.req('POST', '/probe/admin-only')).json()).toEqual({ ok: true });
    expect((await client.req('POST', '/auth/sign-out', undefined, { 'x-csrf-token': '' })).statusCode).toBe(403);
    // half-done sign-ins too
    const half = new Client(e);
    await half.signIn('frank', PASSWORD);
    expect((await half.req('POST', '/auth/totp', { code: '123456' }, { 'x-csrf-token': '' })).statusCode).toBe(403);
    // websocket upgrades: the route checks the `csrf` query parameter with checkCsrfQuery
    expect((await client.req('GET', '/probe/ws-csrf')).json()).toEqual({ ok: false });
    expect((await client.req('GET', `/probe/ws-csrf?csrf=${client.csrf}`)).json()).toEqual({ ok: true });
    expect((await client.req('GET', `/probe/ws-csrf?csrf=${client.csrf.slice(1)}x`)).json()).toEqual({ ok: false });
    // no cookie: nothing to forge
    expect((await new Client(e).req('GET', '/probe/ws-csrf')).json()).toEqual({ ok: true });
  });

  it('admins list and revoke sign-in sessions; a revoked, idle or expired session stops working', async () => {
    env = await setup(sharedDb(pglite, 'details'));
    const e = env;
    await person(e, 'gina', 'global_admin');
    await person(e, 'hank');
    const oscar = await person(e, 'oscar', 'org_admin');
    const admin = (await enroll(e, 'gina')).client;
    const tech = await enroll(e, 'hank');
    const orgAdmin = (await enroll(e, 'oscar')).client;
    expect((await tech.client.req('GET', '/auth-sessions')).statusCode).toBe(403);
    const list = (await admin.req('GET', '/auth-sessions')).json() as { id: string; login: string; current: boolean }[];
    expect(list.map((s) => s.login).filter((l) => ['gina', 'hank', 'oscar'].includes(l)).sort()).toEqual(['gina', 'hank', 'oscar']);
    expect(list.find((s) => s.login === 'gina')!.current).toBe(true);
    expect(JSON.stringify(list)).not.toMatch(/token|hash/i);
    // org admins see their organization only
    const orgList = (await orgAdmin.req('GET', '/auth-sessions')).json() as { login: string }[];
    expect(orgList.map((s) => s.login).sort()).toEqual(['hank', 'oscar']);
    const hankSession = list.find((s) => s.login === 'hank')!.id;
    expect((await admin.req('DELETE', `/auth-sessions/${hankSession}`)).statusCode).toBe(204);
    expect((await tech.client.req('GET', '/probe/whoami')).statusCode).toBe(401);
    expect((await tech.client.me()).person).toBeNull();
    expect((await admin.req('DELETE', `/auth-sessions/${hankSession}`)).statusCode).toBe(404);
    expect(await e.audit.list({ type: 'auth.session_revoked', actor: 'gina' })).toMatchObject([{ data: { person: 'hank' } }]);

    // what the people API calls after disable / role change / MFA reset
    await e.auth.revokeAuthSessions(oscar.id);
    expect((await orgAdmin.me()).person).toBeNull();
    expect((await admin.me()).person?.login).toBe('gina');

    // idle timeout (60 min)
    e.advance(59 * 60_000);
    expect((await admin.me()).person?.login).toBe('gina');
    e.advance(61 * 60_000);
    expect((await admin.me()).person).toBeNull();
  });

  it('a session ends after sessionHours even when active', async () => {
    env = await setup(sharedDb(pglite, 'details'), { sessionHours: 2 });
    const e = env;
    await person(e, 'ivy');
    const { client } = await enroll(e, 'ivy');
    for (let i = 0; i < 3; i++) {
      e.advance(35 * 60_000);
      expect((await client.me()).person?.login).toBe('ivy');
    }
    e.advance(20 * 60_000);
    expect((await client.me()).person).toBeNull();
  });

  it('changes the password: wrong current refused, other sessions end, new one works', async () => {
    env = await setup(sharedDb(pglite, 'details'));
    const e = env;
    await person(e, 'jack');
    const { client, secret } = await enroll(e, 'jack');
    e.advance(30_000);
    const other = new Client(e);
    await other.signIn('jack', PASSWORD);
    await other.req('POST', '/auth/totp', { code: await generate({ secret, epoch: e.epoch() }) });
    expect((await other.me()).person?.login).toBe('jack');
    const wrong = await client.req('POST', '/me/password', { current: 'not my password', next: 'a brand new password' });
    expect(wrong.statusCode).toBe(401);
    expect((await client.req('POST', '/me/password', { current: PASSWORD, next: 'short' })).statusCode).toBe(400);
    e.secrets.add('a brand new password');
    expect((await client.req('POST', '/me/password', { current: PASSWORD, next: 'a brand new password' })).statusCode).toBe(204);
    expect((await client.me()).person?.login).toBe('jack');
    expect((await other.me()).person).toBeNull();
    expect((await new Client(e).req('POST', '/auth/sign-in', { login: 'jack', password: PASSWORD })).statusCode).toBe(401);
    expect((await new Client(e).signIn('jack', 'a brand new password')).json()).toEqual({ next: 'totp' });
    expectNoSecretsLeaked(e);
  });

  it('SSH keys per person, and the SSH front door identity with the same TOTP and lockout', async () => {
    env = await setup(sharedDb(pglite, 'details'));
    const e = env;
    const kate = await person(e, 'kate');
    const { client, secret } = await enroll(e, 'kate');
    const kp = generateParsableEd25519('kate@laptop');
    e.secrets.add(kp.private.split('\n')[1]!);
    const add = await client.req('POST', '/me/ssh-keys', { publicKey: kp.public, label: 'laptop' });
    expect(add.statusCode).toBe(201);
    const key = add.json() as { id: string; label: string; fingerprint: string; algorithm: string; createdAt: string };
    expect(key).toMatchObject({ label: 'laptop', algorithm: 'ssh-ed25519' });
    expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect((await client.req('POST', '/me/ssh-keys', { publicKey: kp.public, label: 'again' })).statusCode).toBe(409);
    const priv = await client.req('POST', '/me/ssh-keys', { publicKey: kp.private, label: 'oops' });
    expect(priv.statusCode).toBe(400);
    expect(priv.json().code).toBe('JIT_ERR_AUTH_SSH_KEY_INVALID');
    expect(priv.body).not.toContain(kp.private.split('\n')[1]!.slice(0, 16));
    expect((await client.req('POST', '/me/ssh-keys', { publicKey: 'ssh-ed25519 AAAAnotakey', label: 'x' })).statusCode).toBe(400);
    expect((await client.req('GET', '/me/ssh-keys')).json()).toEqual([key]);

    const blob = Buffer.from(kp.public.split(' ')[1]!, 'base64');
    const fd = e.auth.frontDoor;
    expect(await fd.personByPublicKey('kate', 'ssh-ed25519', blob)).toMatchObject({ personId: kate.id, login: 'kate', role: 'technician' });
    expect(await fd.personByPublicKey('someone', 'ssh-ed25519', blob)).toBeNull();
    const other = generateParsableEd25519();
    expect(await fd.personByPublicKey('kate', 'ssh-ed25519', Buffer.from(other.public.split(' ')[1]!, 'base64'))).toBeNull();

    e.advance(30_000);
    const code = await generate({ secret, epoch: e.epoch() });
    expect(await fd.verifySecondFactor(kate.id, code)).toBe(true);
    expect(await fd.verifySecondFactor(kate.id, code)).toBe(false); // replay
    expect(await fd.verifySecondFactor(kate.id, '000000')).toBe(false);
    expect(await fd.verifySecondFactor(kate.id, '999999')).toBe(false);
    // third failure (replay counted too) → locked for web and SSH alike
    expect((await e.audit.list({ type: 'auth.locked', actor: 'kate' })).map((a) => a.data.via)).toEqual(['ssh']);
    expect((await new Client(e).req('POST', '/auth/sign-in', { login: 'kate', password: PASSWORD })).statusCode).toBe(423);
    expect(await fd.personByPublicKey('kate', 'ssh-ed25519', blob)).toBeNull();
    // The front door tells the key's proven holder until when; another key or login learns nothing.
    expect(await fd.keyOwnerLockedUntil?.('kate', 'ssh-ed25519', blob)).toBeInstanceOf(Date);
    expect(await fd.keyOwnerLockedUntil?.('kate', 'ssh-ed25519', Buffer.from(other.public.split(' ')[1]!, 'base64'))).toBeNull();
    expect(await fd.keyOwnerLockedUntil?.('someone', 'ssh-ed25519', blob)).toBeNull();

    expect((await client.req('DELETE', `/me/ssh-keys/${key.id}`)).statusCode).toBe(204);
    expect((await client.req('DELETE', `/me/ssh-keys/${key.id}`)).statusCode).toBe(404);
    expect((await e.audit.list()).map((a) => a.type)).toEqual(expect.arrayContaining(['auth.ssh_key_added', 'auth.ssh_key_removed']));
    expectNoSecretsLeaked(e, [kp.private.split('\n')[1]!]);
  });

  it('stores TOTP secrets encrypted and recovery codes hashed', async () => {
    env = await setup(sharedDb(pglite, 'details'));
    const e = env;
    await person(e, 'liam');
    const { secret, recoveryCodes } = await enroll(e, 'liam');
    const rows = await e.db.query<{ totp_secret_enc: string; recovery_codes: string[]; password_hash: string }>(
      "SELECT totp_secret_enc, recovery_codes, password_hash FROM people WHERE login = 'liam'",
    );
    const dump = JSON.stringify(rows);
    expect(rows[0]!.totp_secret_enc).toMatch(/^v1\./);
    expect(rows[0]!.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(dump).not.toContain(secret);
    for (const rc of recoveryCodes) expect(dump).not.toContain(rc.replace(/-/g, ''));
    const audit = JSON.stringify(await e.audit.list());
    for (const s of [secret, PASSWORD, ...recoveryCodes]) expect(audit).not.toContain(s);
  });
});
