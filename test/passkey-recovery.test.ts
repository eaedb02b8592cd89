import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { AuditLog } from '../core/audit.js';
import type { Database } from '../core/db/database.js';
import { silentLogger } from '../core/logging.js';
import { SecretBox } from '../core/secret-box.js';
import { createMetrics } from '../gateway/metrics.js';
import { buildServer } from '../gateway/server.js';
import { createAuth, createPerson } from '../gateway/auth/index.js';
import { SignedInClient } from './fixtures/signed-in.js';
import { SoftPasskey } from './fixtures/soft-authenticator.js';
import { databaseFactories } from './harness/databases.js';

/**
 * Recovery codes for people who sign in with passkeys only (no TOTP; issue
 * 15, docs/auth.md): issued once with their first passkey, a code after the
 * password opens nothing but enrolling a new passkey, each code once and
 * audited, new codes under My account only after a fresh confirmation. Through
 * the real sign-in (cookie + CSRF) on PGlite, with real WebAuthn ceremonies
 * from a software authenticator checked by @simplewebauthn/server.
 */
const pglite = databaseFactories().find((f) => f.label === 'pglite')!;
const PASSWORD = 'correct horse battery staple';
const ORIGIN = 'https://jitgate.test';

describe('recovery codes of passkey-only people (PGlite)', () => {
  let db: Database;
  let app: FastifyInstance;
  let audit: AuditLog;
  let clock = Date.now();
  let orgOptional = '';
  let orgRequired = '';

  beforeAll(async () => {
    db = await pglite.open();
    audit = new AuditLog(db);
    const auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit, log: silentLogger(), now: () => new Date(clock), publicUrl: ORIGIN, attemptsPerMinute: 1000,
      cfg: { sessionHours: 12, idleMinutes: 600, maxFailedSignIns: 5, lockoutMinutes: 15, totpIssuer: 'jitgate-test', cookieSecure: 'auto' },
    });
    app = await buildServer({ log: silentLogger(), metrics: createMetrics(), version: 'test', readiness: [], rootPlugins: [auth.plugin] });
    orgOptional = randomUUID();
    orgRequired = randomUUID();
    await db.query('INSERT INTO organizations (id, name, shared_code, require_passkeys) VALUES ($1,$2,$3,false), ($4,$5,$6,true)', [
      orgOptional, `opt-${orgOptional.slice(0, 6)}`, '4811', orgRequired, `req-${orgRequired.slice(0, 6)}`, '4812',
    ]);
  }, 120_000);
  afterAll(async () => {
    await app?.close();
    await db?.close();
  });

  const passwordStep = async (login: string): Promise<{ c: SignedInClient; next: string }> => {
    const c = new SignedInClient(app, { login, followCsrf: true });
    const r = await c.post('/auth/sign-in', { login, password: PASSWORD });
    expect(r.statusCode).toBe(200);
    return { c, next: (r.json() as { next: string }).next };
  };
  const enroll = async (c: SignedInClient, key: SoftPasskey, name: string) => {
    const o = await c.post('/me/passkeys/options', undefined);
    expect(o.statusCode).toBe(200);
    const r = await c.post('/me/passkeys', { name, response: key.register(o.json()) });
    expect(r.statusCode).toBe(201);
    return r.json() as { next: string; recoveryCodes: string[] | null };
  };
  const storedHashes = async (login: string) => {
    const [r] = await db.query<{ recovery_codes: string[] | string }>('SELECT recovery_codes FROM people WHERE login = $1', [login]);
    return typeof r!.recovery_codes === 'string' ? (JSON.parse(r!.recovery_codes) as string[]) : r!.recovery_codes;
  };

  it('codes come once with the first passkey; a code after the password only lets the person enroll a new passkey, each code once', async () => {
    const login = `pkonly-${randomBytes(2).toString('hex')}`;
    await createPerson(db, { login, displayName: login, role: 'technician', organizationId: orgOptional, password: PASSWORD });
    const lost = new SoftPasskey(ORIGIN);

    // First sign-in: a passkey instead of TOTP; its answer carries ten codes, stored only as hashes.
    const first = await passwordStep(login);
    expect(first.next).toBe('totp-enrollment');
    const made = await enroll(first.c, lost, 'Laptop');
    expect(made.next).toBe('done');
    const codes = made.recoveryCodes!;
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    expect((await first.c.me())?.login).toBe(login);
    const hashes = await storedHashes(login);
    expect(hashes).toHaveLength(10);
    expect(JSON.stringify(hashes)).not.toContain(codes[0]!.replace(/-/g, ''));
    expect((await audit.list({ type: 'auth.recovery_codes_issued', actor: login })).map((e) => e.data.reason)).toEqual(['first-passkey']);
    // A second passkey brings no new codes, and the old ones stay.
    expect((await enroll(first.c, new SoftPasskey(ORIGIN), 'Spare key')).recoveryCodes).toBeNull();
    expect((await first.c.get('/me/recovery-codes')).json()).toEqual({ remaining: 10 });
    const spare = (await first.c.get('/me/passkeys')).json() as { id: string; name: string }[];
    expect((await first.c.delete(`/me/passkeys/${spare.find((k) => k.name === 'Spare key')!.id}`)).statusCode).toBe(204);

    // The laptop is lost. The password leads to the passkey step; a wrong code is refused and counted.
    const s = await passwordStep(login);
    expect(s.next).toBe('passkey');
    const wrong = await s.c.post('/auth/totp', { code: 'aaaa-bbbb-cccc' });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toMatchObject({ code: 'JIT_ERR_AUTH_INVALID_CODE' });
    expect((await audit.list({ type: 'auth.sign_in_failed', actor: login })).some((e) => e.data.factor === 'recovery-code')).toBe(true);
    // A recovery code: not signed in, only a new passkey may follow.
    const used = await s.c.post('/auth/totp', { code: codes[0]!.toUpperCase() });
    expect(used.statusCode).toBe(200);
    expect(used.json()).toEqual({ next: 'passkey-enrollment' });
    const half = (await s.c.get('/auth/me')).json() as { person: unknown; pending: string };
    expect(half).toMatchObject({ person: null, pending: 'passkey-enrollment' });
    expect((await s.c.get('/me/passkeys')).statusCode).toBe(401);
    expect((await s.c.get('/me/recovery-codes')).statusCode).toBe(401);
    expect((await s.c.post('/me/recovery-codes', undefined)).statusCode).toBe(401);
    // A second code on the same half-done sign-in is refused without being spent.
    expect((await s.c.post('/auth/totp', { code: codes[1] })).statusCode).toBe(409);
    expect(await storedHashes(login)).toHaveLength(9);
    const used1 = await audit.list({ type: 'auth.recovery_code_used', actor: login });
    expect(used1.map((e) => e.data.remaining)).toEqual([9]);

    // The new passkey completes the sign-in (no new codes: the person is not starting over).
    const phone = new SoftPasskey(ORIGIN);
    const renewed = await enroll(s.c, phone, 'Phone');
    expect(renewed).toMatchObject({ next: 'done', recoveryCodes: null });
    expect((await s.c.me())?.login).toBe(login);
    expect((await audit.list({ type: 'auth.signed_in', actor: login })).map((e) => e.data.factor)).toContain('passkey-enrollment');
    expect((await s.c.get('/me/recovery-codes')).json()).toEqual({ remaining: 9 });

    // A used code never works again.
    const again = await passwordStep(login);
    expect((await again.c.post('/auth/totp', { code: codes[0] })).statusCode).toBe(401);
    expect(await again.c.me()).toBeNull();
  });

  it('new codes under My account need a passkey confirmation of the last 5 minutes; the old ones then stop working', async () => {
    const login = `pkregen-${randomBytes(2).toString('hex')}`;
    await createPerson(db, { login, displayName: login, role: 'technician', organizationId: orgOptional, password: PASSWORD });
    const key = new SoftPasskey(ORIGIN);
    const { c } = await passwordStep(login);
    const old = (await enroll(c, key, 'Laptop')).recoveryCodes!;

    // The sign-in's own passkey counts for 5 minutes; after that a fresh confirmation is needed.
    clock += 6 * 60_000;
    const noCsrf = await c.req('POST', '/me/recovery-codes', undefined, { csrf: false });
    expect(noCsrf.statusCode).toBe(403);
    expect(noCsrf.json()).toMatchObject({ code: 'JIT_ERR_AUTH_CSRF' });
    const stale = await c.post('/me/recovery-codes', undefined);
    expect(stale.statusCode).toBe(403);
    expect(stale.json()).toMatchObject({ code: 'JIT_ERR_AUTH_CONFIRMATION_REQUIRED', details: { minutes: 5 } });
    expect(await storedHashes(login)).toHaveLength(10);
    const o = await c.post('/auth/step-up/options', undefined);
    expect((await c.post('/auth/step-up', { response: key.assert(o.json()) })).statusCode).toBe(204);
    const fresh = await c.post('/me/recovery-codes', undefined);
    expect(fresh.statusCode).toBe(200);
    const codes = (fresh.json() as { recoveryCodes: string[] }).recoveryCodes;
    expect(codes).toHaveLength(10);
    expect(codes).not.toContain(old[0]);
    expect((await audit.list({ type: 'auth.recovery_codes_issued', actor: login })).map((e) => e.data.reason).sort()).toEqual(['first-passkey', 'regenerated']);

    // An old code is refused at sign-in; a new one opens the passkey enrollment.
    const s = await passwordStep(login);
    expect((await s.c.post('/auth/totp', { code: old[1] })).statusCode).toBe(401);
    expect((await s.c.post('/auth/totp', { code: codes[0] })).json()).toEqual({ next: 'passkey-enrollment' });
  });

  it('where the organization requires passkeys: the first passkey brings codes, a TOTP-looking code is refused, a recovery code leads to a new passkey only', async () => {
    const login = `pkreq-${randomBytes(2).toString('hex')}`;
    await createPerson(db, { login, displayName: login, role: 'technician', organizationId: orgRequired, password: PASSWORD });
    const first = await passwordStep(login);
    expect(first.next).toBe('passkey-enrollment');
    const codes = (await enroll(first.c, new SoftPasskey(ORIGIN), 'Laptop')).recoveryCodes!;
    expect(codes).toHaveLength(10);

    const s = await passwordStep(login);
    expect(s.next).toBe('passkey');
    expect((await s.c.post('/auth/totp', { code: '123456' })).json()).toMatchObject({ code: 'JIT_ERR_AUTH_PASSKEY_REQUIRED' });
    expect((await s.c.post('/auth/totp', { code: codes[3] })).json()).toEqual({ next: 'passkey-enrollment' });
    expect(await s.c.me()).toBeNull();
    expect((await enroll(s.c, new SoftPasskey(ORIGIN), 'Phone')).next).toBe('done');
    expect((await s.c.me())?.login).toBe(login);
    // A code is no step-up here (passkeys only), so it cannot mint new codes either.
    clock += 6 * 60_000;
    expect((await s.c.post('/auth/step-up', { code: codes[4] })).json()).toMatchObject({ code: 'JIT_ERR_AUTH_PASSKEY_REQUIRED' });
    expect((await s.c.post('/me/recovery-codes', undefined)).json()).toMatchObject({ code: 'JIT_ERR_AUTH_CONFIRMATION_REQUIRED' });
  });
});
