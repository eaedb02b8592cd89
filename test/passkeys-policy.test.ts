import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { generate } from 'otplib';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import type { Computer } from '../core/domain.js';
import { isJitgateError } from '../core/errors.js';
import { silentLogger } from '../core/logging.js';
import { SecretBox } from '../core/secret-box.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { createAuth, createPerson, requirePrincipal, stepUpCheck, type Auth } from '../gateway/auth/index.js';
import type { Principal } from '../gateway/auth/principal.js';
import { databaseFactories } from './harness/databases.js';

/**
 * The organization setting "require passkeys" enforced at sign-in, and
 * step-up at connect time (the check the terminal and RDP tunnel run beside
 * their access check), through the real HTTP server on PGlite with real TOTP
 * codes and an injected clock. The WebAuthn ceremonies themselves run in
 * chromium (test/e2e/passkeys.e2e.test.ts).
 */
const pglite = databaseFactories().find((f) => f.label === 'pglite')!;
const PASSWORD = 'correct horse battery staple';

describe('passkey policy and step-up (PGlite)', () => {
  let db: Database;
  let app: FastifyInstance;
  let auth: Auth;
  let clock = Date.now();
  const now = () => new Date(clock);
  const epoch = () => Math.floor(clock / 1000);
  let orgRequired = '';
  let orgOptional = '';

  class Client {
    cookie: string | undefined;
    csrf = '';
    async req(method: InjectOptions['method'], url: string, body?: unknown) {
      const headers: Record<string, string> = {};
      if (this.cookie) headers.cookie = `jitgate_session=${this.cookie}`;
      if (this.csrf && method !== 'GET') headers['x-csrf-token'] = this.csrf;
      const r = await app.inject({ method, url: `/api/v1${url}`, headers, ...(body !== undefined ? { payload: body as object } : {}) });
      const sc = r.headers['set-cookie'];
      for (const c of sc === undefined ? [] : Array.isArray(sc) ? sc : [sc]) {
        const m = /^jitgate_session=([^;]*)/.exec(c);
        if (m) this.cookie = m[1] || undefined;
      }
      return r;
    }
    async me() {
      const j = (await this.req('GET', '/auth/me')).json() as { person: { login: string } | null; pending: string | null; csrfToken: string };
      this.csrf = j.csrfToken;
      return j;
    }
  }

  /** A person of `org` with TOTP enrolled (the first sign-in enrolls it); returns the TOTP secret. */
  async function personWithTotp(login: string, org: string): Promise<{ id: string; secret: string }> {
    const p = await createPerson(db, { login, displayName: login, role: 'technician', organizationId: org, password: PASSWORD });
    const c = new Client();
    expect((await c.req('POST', '/auth/sign-in', { login, password: PASSWORD })).json()).toEqual({ next: 'totp-enrollment' });
    await c.me();
    const { secret } = (await c.req('POST', '/auth/totp/enrollment')).json() as { secret: string };
    const r = await c.req('POST', '/auth/totp/enrollment/confirm', { code: await generate({ secret, epoch: epoch() }) });
    expect(r.statusCode).toBe(200);
    clock += 31_000; // next TOTP step
    return { id: p.id, secret };
  }

  beforeAll(async () => {
    db = await pglite.open();
    const audit = new AuditLog(db);
    auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit, log: silentLogger(), now,
      cfg: { sessionHours: 12, idleMinutes: 600, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
    });
    app = await buildServer({
      log: silentLogger(), metrics: createMetrics(), version: 'test', readiness: [], rootPlugins: [auth.plugin],
      apiPlugins: [async (a) => void a.get('/probe/whoami', { preHandler: requirePrincipal }, async (req) => ({ login: req.principal!.login }))],
    });
    orgRequired = randomUUID();
    orgOptional = randomUUID();
    await db.query('INSERT INTO organizations (id, name, shared_code, require_passkeys) VALUES ($1,$2,$3,true), ($4,$5,$6,false)', [
      orgRequired, `req-${orgRequired.slice(0, 6)}`, '4711', orgOptional, `opt-${orgOptional.slice(0, 6)}`, '4712',
    ]);
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await db?.close();
  });

  it('where passkeys are required, TOTP does not complete a sign-in: it only lets the person enroll a passkey', async () => {
    // Enrolled while passkeys were optional, then the organization starts requiring them.
    await db.query('UPDATE organizations SET require_passkeys = false WHERE id = $1', [orgRequired]);
    const { secret } = await personWithTotp('pk-req-a', orgRequired);
    await db.query('UPDATE organizations SET require_passkeys = true WHERE id = $1', [orgRequired]);

    const c = new Client();
    expect((await c.req('POST', '/auth/sign-in', { login: 'pk-req-a', password: PASSWORD })).json()).toEqual({ next: 'totp' });
    await c.me();
    const r = await c.req('POST', '/auth/totp', { code: await generate({ secret, epoch: epoch() }) });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ next: 'passkey-enrollment' });
    const me = await c.me();
    expect(me.person).toBeNull();
    expect(me.pending).toBe('passkey-enrollment');
    expect((await c.req('GET', '/probe/whoami')).statusCode).toBe(401);
    // The half-done sign-in may ask for registration options (RP ID from the request's host without publicUrl).
    const opts = await c.req('POST', '/me/passkeys/options');
    expect(opts.statusCode).toBe(200);
    expect(opts.json()).toMatchObject({ rp: { id: 'localhost' }, authenticatorSelection: { residentKey: 'required', userVerification: 'required' } });
    // …but not list or manage passkeys.
    expect((await c.req('GET', '/me/passkeys')).statusCode).toBe(401);
  });

  it('where passkeys are required and the person has one, the password leads to the passkey and a TOTP code is refused', async () => {
    const p = await personWithTotp('pk-req-b', orgOptional);
    await db.query('UPDATE people SET organization_id = $2 WHERE id = $1', [p.id, orgRequired]);
    await db.query("INSERT INTO passkeys (id, person_id, credential_id, public_key, name, created_at) VALUES ($1,$2,$3,'AAAA','Phone',$4)", [randomUUID(), p.id, `cred-${randomUUID()}`, now()]);
    const c = new Client();
    expect((await c.req('POST', '/auth/sign-in', { login: 'pk-req-b', password: PASSWORD })).json()).toEqual({ next: 'passkey' });
    expect((await c.me()).pending).toBe('passkey');
    const r = await c.req('POST', '/auth/totp', { code: await generate({ secret: p.secret, epoch: epoch() }) });
    expect(r.statusCode).toBe(403);
    expect(r.json()).toMatchObject({ code: 'JIT_ERR_AUTH_PASSKEY_REQUIRED' });
    expect((await c.me()).person).toBeNull();
    // Registration is not open to this half-done sign-in (it has a passkey; the password alone proves too little).
    expect((await c.req('POST', '/me/passkeys/options')).statusCode).toBe(409);
    // Passwordless options for the same browser name this person's passkeys (second factor).
    const o = (await c.req('POST', '/auth/passkey/options')).json() as { allowCredentials: { id: string }[] };
    expect(o.allowCredentials).toHaveLength(1);
  });

  it('where passkeys are optional, TOTP completes the sign-in as before', async () => {
    const p = await personWithTotp('pk-opt-c', orgOptional);
    const c = new Client();
    expect((await c.req('POST', '/auth/sign-in', { login: 'pk-opt-c', password: PASSWORD })).json()).toEqual({ next: 'totp' });
    await c.me();
    expect((await c.req('POST', '/auth/totp', { code: await generate({ secret: p.secret, epoch: epoch() }) })).json()).toEqual({ next: 'done' });
    expect((await c.req('GET', '/probe/whoami')).json()).toEqual({ login: 'pk-opt-c' });
  });

  it('step-up: a computer asking for a confirmation within 5 min refuses an older sign-in until POST /auth/step-up', async () => {
    const p = await personWithTotp('pk-step-d', orgOptional);
    const c = new Client();
    await c.req('POST', '/auth/sign-in', { login: 'pk-step-d', password: PASSWORD });
    await c.me();
    await c.req('POST', '/auth/totp', { code: await generate({ secret: p.secret, epoch: epoch() }) });
    await c.me();
    const sessionId = (await db.query<{ id: string }>("SELECT s.id FROM auth_sessions s JOIN people p ON p.id = s.person_id WHERE p.login = 'pk-step-d' AND s.stage = 'done' AND s.revoked_at IS NULL ORDER BY s.created_at DESC LIMIT 1"))[0]!.id;
    const principal: Principal = { personId: p.id, login: 'pk-step-d', displayName: 'd', role: 'technician', organizationId: orgOptional, authSessionId: sessionId };
    const computer = (policy: Record<string, unknown>) => ({ name: 'web1', policy }) as unknown as Computer;
    const check = stepUpCheck(db, now);
    const refused = async (c2: Computer) => check(principal, c2).then(() => null, (e: unknown) => (isJitgateError(e) ? e.code : String(e)));

    expect(await refused(computer({ stepUpMinutes: 5 }))).toBeNull(); // the sign-in's TOTP is fresh
    clock += 6 * 60_000;
    expect(await refused(computer({ stepUpMinutes: 5 }))).toBe('JIT_ERR_AUTH_STEP_UP_REQUIRED');
    expect(await refused(computer({ stepUpMinutes: 10 }))).toBeNull();
    expect(await refused(computer({}))).toBeNull(); // no step-up asked

    clock += 31_000;
    const bad = await c.req('POST', '/auth/step-up', { code: '000000' });
    expect(bad.statusCode).toBe(401);
    expect(await refused(computer({ stepUpMinutes: 5 }))).toBe('JIT_ERR_AUTH_STEP_UP_REQUIRED');
    const ok = await c.req('POST', '/auth/step-up', { code: await generate({ secret: p.secret, epoch: epoch() }) });
    expect(ok.statusCode).toBe(204);
    expect(await refused(computer({ stepUpMinutes: 5 }))).toBeNull();
    // A revoked sign-in is never fresh.
    await db.query('UPDATE auth_sessions SET revoked_at = $2 WHERE id = $1', [sessionId, now()]);
    expect(await refused(computer({ stepUpMinutes: 5 }))).toBe('JIT_ERR_AUTH_STEP_UP_REQUIRED');
  });
});
