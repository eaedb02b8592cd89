import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { CDPSession, Page } from 'playwright-core';
import type { AuditLog } from '../../core/audit.js';
import type { Database } from '../../core/db/database.js';
import type { Computer } from '../../core/domain.js';
import { CoreErrors, isJitgateError, JitgateError } from '../../core/errors.js';
import { silentLogger } from '../../core/logging.js';
import { checkCsrfQuery, createPerson, stepUpCheck, type Auth } from '../../gateway/auth/index.js';
import { PasskeyService, type WebAuthnTarget } from '../../gateway/auth/passkey.service.js';
import { terminalRoutes } from '../../gateway/ssh/terminal.route.js';
import type { SessionRecorder } from '../../recorder/recorder.js';
import { MemoryLiveSessions } from '../fixtures/api-fixture.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { startWebRig, waitFor, type WebRig } from './web-rig.js';
import { firstRunSetup, keepRecoveryCodes, signIn, signOut, type Person } from './web-steps.js';

/**
 * Passkeys end to end in Debian chromium with a virtual authenticator
 * (DevTools Protocol WebAuthn domain: CTAP2, internal transport, resident
 * keys, user verification): enroll under My account, sign in with no
 * password, a response for another origin or RP ID refused, a counter that
 * went backwards refused, a revoked passkey refused. The page is served as
 * http://localhost:<port> (a secure context whose host name is a valid RP
 * ID; an IP address is not), and the RP ID and origin come from
 * server.publicUrl.
 */
const browserOk = chromiumAvailable();

/** In the page: a WebAuthn assertion for the gateway's passwordless options, as @simplewebauthn/browser would send it. */
async function rawAssertion(page: Page): Promise<AuthenticationResponseJSON> {
  // A string: the test is compiled without the DOM library.
  return page.evaluate(`(async () => {
    const b64 = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4)), (c) => c.charCodeAt(0));
    const enc = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
    const me = await (await fetch('/api/v1/auth/me')).json();
    const opts = await (await fetch('/api/v1/auth/passkey/options', { method: 'POST', headers: { 'x-csrf-token': me.csrfToken, 'content-type': 'application/json' }, body: '{}' })).json();
    const cred = await navigator.credentials.get({ publicKey: { challenge: b64(opts.challenge), rpId: opts.rpId, userVerification: 'required', timeout: 60000 } });
    const r = cred.response;
    return {
      id: cred.id, rawId: enc(cred.rawId), type: 'public-key', clientExtensionResults: {},
      response: { clientDataJSON: enc(r.clientDataJSON), authenticatorData: enc(r.authenticatorData), signature: enc(r.signature), ...(r.userHandle ? { userHandle: enc(r.userHandle) } : {}) },
    };
  })()`);
}

/** A platform authenticator in this page (CTAP2, resident keys, user verification that always succeeds). */
async function virtualAuthenticator(page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
  });
  return { cdp, authenticatorId };
}

/** First sign-in (from no cookie) of a person with no second factor: the password, then "Create a passkey instead" of TOTP; returns the recovery codes it shows. */
async function firstSignInWithPasskey(page: Page, base: string, who: { login: string; password: string }, passkeyName: string, shot: string): Promise<string[]> {
  // The browser's profile is shared by the tests: start from no sign-in, whatever the previous test left.
  await page.context().clearCookies();
  await page.goto(`${base}/sign-in`);
  await page.getByLabel('Login').fill(who.login);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByRole('button', { name: 'Create a passkey instead' }).click();
  await page.getByLabel('Passkey name').fill(passkeyName);
  await page.getByRole('button', { name: 'Create passkey' }).click();
  const codes = await keepRecoveryCodes(page, shot);
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  return codes;
}

describe.skipIf(!browserOk.ok)(`passkeys in chromium with a virtual authenticator${browserOk.ok ? '' : ` (skipped: ${browserOk.reason})`}`, () => {
  let rig: WebRig;
  let db: Database;
  let auth: Auth;
  let audit: AuditLog;
  let base = '';
  let b: BrowserHandle;
  const live = new MemoryLiveSessions();
  const tag = randomBytes(3).toString('hex');

  beforeAll(async () => {
    // http://localhost:<port>: RP ID localhost from server.publicUrl.
    rig = await startWebRig({
      hostname: 'localhost',
      api: { liveSessions: live },
      apiPlugins: ({ db: d, audit: a, log }) => [
        // The real terminal route and step-up check; the broker stands in for access + provisioning only as far as
        // its `admit` hook (the check runs there, before anything is provisioned), then refuses with its own code.
        terminalRoutes({
          broker: {
            open: async (req) => {
              const computer = { id: req.computerRef, name: req.computerRef, policy: { stepUpMinutes: 5, sshHostKeySha256: `SHA256:${'A'.repeat(43)}` } } as unknown as Computer;
              await req.admit?.(computer);
              throw new JitgateError(CoreErrors.JIT_ERR_CONFLICT, { reason: 'step-up passed; nothing is provisioned in this test' });
            },
          },
          recorder: {} as SessionRecorder,
          audit: a,
          checkCsrf: checkCsrfQuery,
          log,
          stepUp: stepUpCheck(d),
        }),
      ],
    });
    ({ db, auth, audit, base } = rig);
    b = await launchBrowser();
  }, 240_000);

  afterAll(async () => {
    await b?.close();
    await rig?.close();
  });

  /** A technician with a password and no second factor, in a new organization of their own (`requirePasskeys` or not). */
  let orgs = 0;
  async function newTechnician(name: string, displayName: string, requirePasskeys: boolean): Promise<{ id: string; login: string; password: string }> {
    const orgId = randomUUID();
    // Shared account codes are unique: a fresh one per organization.
    await db.query('INSERT INTO organizations (id, name, shared_code, require_passkeys) VALUES ($1,$2,$3,$4)', [orgId, `${name}${tag}`, String(5100 + ++orgs), requirePasskeys]);
    const who = { login: `${name}${tag}`, password: `pw-${randomUUID()}` };
    const p = await createPerson(db, { login: who.login, displayName, role: 'technician', organizationId: orgId, password: who.password });
    return { id: p.id, ...who };
  }

  it('enrolls a passkey, signs in with it and no password; wrong origin/RP ID, a counter gone back and a revoked passkey are refused', async () => {
    const page = await b.newPage();
    const { cdp, authenticatorId } = await virtualAuthenticator(page);
    const admin: Person = { login: `admin${tag}`, displayName: 'Passkey Admin', password: `pw-${randomUUID()}` };
    await firstRunSetup(page, base + (await rig.setupPath()), admin);

    // 1. Enroll under My account (named), listed there; the authenticator holds one discoverable credential.
    await page.goto(`${base}/account`);
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await page.getByLabel('Passkey name').fill('Laptop');
    await page.getByRole('button', { name: 'Create passkey' }).click();
    await page.locator('[data-passkey="Laptop"]').waitFor();
    await screenshot(page, 'passkeys-account');
    const creds = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    expect(creds.credentials).toHaveLength(1);
    expect(creds.credentials[0]!.isResidentCredential).toBe(true);
    expect(creds.credentials[0]!.rpId).toBe('localhost');
    const stored = await db.query<{ credential_id: string; name: string; counter: string | number }>('SELECT credential_id, name, counter FROM passkeys');
    expect(stored).toHaveLength(1);
    expect(stored[0]!.name).toBe('Laptop');

    // 2. Passwordless: no login typed.
    await signOut(page);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    const me = (await (await page.request.get(`${base}/api/v1/auth/me`)).json()) as { person: { login: string } | null };
    expect(me.person?.login).toBe(admin.login);
    const signedIn = await audit.list({ type: 'auth.signed_in', actor: admin.login });
    expect(signedIn.some((e) => e.data.factor === 'passkey')).toBe(true);
    await screenshot(page, 'passkeys-signed-in');

    // 3. Verification-level: a real assertion checked against another RP ID, then another origin, is refused; the same kind with the right ones is accepted.
    const passkeys = new PasskeyService({ db, audit, log: silentLogger(), identity: auth.identity });
    const client = { ip: '127.0.0.1', userAgent: 'test' };
    const right: WebAuthnTarget = { rpId: 'localhost', origins: [base], rpName: 'jitgate' };
    const refusal = async (t: WebAuthnTarget): Promise<string> => {
      try {
        await passkeys.signIn(await rawAssertion(page), t, null, client);
        return 'accepted';
      } catch (err) {
        if (!isJitgateError(err)) throw err;
        expect(err.code).toBe('JIT_ERR_AUTH_PASSKEY_INVALID');
        return String(err.details.reason);
      }
    };
    expect(await refusal({ ...right, rpId: 'jitgate.example' })).toMatch(/RP ID/i);
    expect(await refusal({ ...right, origins: ['https://jitgate.example'] })).toMatch(/origin/i);
    expect(await refusal(right)).toBe('accepted');

    // 4. Counter regression: a stored counter above the authenticator's (a clone that fell behind) is refused, in the browser too.
    await signOut(page);
    await db.query('UPDATE passkeys SET counter = 1000000');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByText('This passkey was not accepted').waitFor();
    const counterRefusal = await audit.list({ type: 'auth.sign_in_failed', actor: admin.login });
    expect(counterRefusal.some((e) => e.data.factor === 'passkey' && /counter/.test(String(e.data.reason)))).toBe(true);
    expect((await db.query<{ counter: string | number }>('SELECT counter FROM passkeys'))[0]!.counter).toBe(1_000_000);
    await db.query('UPDATE passkeys SET counter = 0');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();

    // 5. Revoked: removed under My account, the authenticator still offers it, the gateway refuses it.
    await page.goto(`${base}/account`);
    page.once('dialog', (d) => void d.accept());
    await page.locator('[data-passkey="Laptop"]').getByRole('button', { name: 'Revoke' }).click();
    await page.getByText('No passkeys.').waitFor();
    expect(await db.query('SELECT 1 FROM passkeys')).toHaveLength(0);
    expect((await audit.list({ type: 'auth.passkey_revoked', actor: admin.login })).length).toBe(1);
    expect((await audit.list({ type: 'auth.passkey_enrolled', actor: admin.login })).filter((e) => e.outcome === 'success')).toHaveLength(1);
    await signOut(page);
    expect((await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials).toHaveLength(1);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByText('This passkey was not accepted').waitFor();
    await screenshot(page, 'passkeys-revoked-refused');
    const after = (await (await page.request.get(`${base}/api/v1/auth/me`)).json()) as { person: unknown };
    expect(after.person).toBeNull();
    // Refusals show as failed requests in the console; nothing threw in the page.
    expect(b.errors.filter((e) => e.startsWith('pageerror'))).toEqual([]);
    await page.close();
  }, 300_000);

  it('an organization that requires passkeys: a new person signs in with the password, must create a passkey, then is in; step-up before connecting asks for a fresh passkey', async () => {
    const tech = await newTechnician('strict', 'Strict Tech', true);
    const p = tech;
    const page = await b.newPage();
    await virtualAuthenticator(page);
    await page.goto(`${base}/sign-in`);
    await page.getByLabel('Login').fill(tech.login);
    await page.getByLabel('Password').fill(tech.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByText('Your organization requires a passkey').waitFor();
    // Not signed in yet: the half-done sign-in opens nothing but passkey enrollment.
    expect(((await (await page.request.get(`${base}/api/v1/auth/me`)).json()) as { person: unknown; pending: string }).pending).toBe('passkey-enrollment');
    expect((await page.request.get(`${base}/api/v1/computers`)).status()).toBe(401);
    await screenshot(page, 'passkeys-required-enroll');
    await page.getByLabel('Passkey name').fill('Work laptop');
    await page.getByRole('button', { name: 'Create passkey' }).click();
    // The first passkey of someone without TOTP brings recovery codes, shown once before going on.
    await keepRecoveryCodes(page, 'passkeys-required');
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    const me = (await (await page.request.get(`${base}/api/v1/auth/me`)).json()) as { person: { login: string } | null };
    expect(me.person?.login).toBe(tech.login);
    expect(await db.query('SELECT 1 FROM passkeys WHERE person_id = $1', [p.id])).toHaveLength(1);
    const signedIn = await audit.list({ type: 'auth.signed_in', actor: tech.login });
    expect(signedIn.map((e) => e.data.factor)).toEqual(['passkey-enrollment']);
    // From now on the password leads to the passkey.
    await signOut(page);
    await page.getByLabel('Login').fill(tech.login);
    await page.getByLabel('Password').fill(tech.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Use your passkey' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    expect((await audit.list({ type: 'auth.signed_in', actor: tech.login })).map((e) => e.data.factor).sort()).toEqual(['passkey', 'passkey-enrollment']);
    expect(b.errors.filter((e) => e.startsWith('pageerror'))).toEqual([]);

    // Step-up: a computer asking for a confirmation within 5 min; this sign-in's passkey is an hour old.
    await db.query("UPDATE auth_sessions SET step_up_at = step_up_at - interval '1 hour' WHERE person_id = $1 AND revoked_at IS NULL", [p.id]);
    await page.goto(`${base}/terminal/stepup${tag}`);
    const prompt = page.getByTestId('step-up');
    await prompt.getByText('asks you to confirm it is you').waitFor();
    await screenshot(page, 'passkeys-step-up');
    expect(await audit.list({ type: 'auth.step_up', actor: tech.login })).toHaveLength(0);
    await prompt.getByRole('button', { name: 'Confirm with a passkey' }).click();
    // Connected again: past the step-up check, the stand-in broker answers (nothing to provision here).
    await page.getByTestId('close-reason').getByText('nothing is provisioned in this test').waitFor();
    expect(await prompt.count()).toBe(0);
    expect((await audit.list({ type: 'auth.step_up', actor: tech.login })).map((e) => e.data.factor)).toEqual(['passkey']);
    await page.close();
  }, 300_000);
  it('a passkey-only person: codes shown with the first passkey; authenticator gone, a code after the password leads only to a new passkey; new codes under My account after a passkey confirmation', async () => {
    const who = await newTechnician('solo', 'Solo Passkey', false);
    const p = who;
    const page = await b.newPage();
    const laptop = await virtualAuthenticator(page);
    const codes = await firstSignInWithPasskey(page, base, who, 'Laptop', 'passkeys-first-passkey');
    expect((await db.query<{ totp_enabled: boolean }>('SELECT totp_enabled FROM people WHERE id = $1', [p.id]))[0]!.totp_enabled).toBe(false);
    expect((await audit.list({ type: 'auth.recovery_codes_issued', actor: who.login })).map((e) => e.data.reason)).toEqual(['first-passkey']);

    // The laptop is lost: its authenticator is gone.
    await laptop.cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: laptop.authenticatorId });
    await signOut(page);
    await page.getByLabel('Login').fill(who.login);
    await page.getByLabel('Password').fill(who.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
    await page.getByLabel('Authentication code').fill(codes[0]!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('recovered').waitFor();
    await screenshot(page, 'passkeys-recovered-enroll');
    // Not signed in: the code opened nothing but creating a new passkey.
    expect(((await (await page.request.get(`${base}/api/v1/auth/me`)).json()) as { person: unknown; pending: string })).toMatchObject({ person: null, pending: 'passkey-enrollment' });
    expect((await page.request.get(`${base}/api/v1/computers`)).status()).toBe(401);
    expect((await audit.list({ type: 'auth.recovery_code_used', actor: who.login })).map((e) => e.data.remaining)).toEqual([9]);

    await virtualAuthenticator(page);
    await page.getByLabel('Passkey name').fill('Phone');
    await page.getByRole('button', { name: 'Create passkey' }).click();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    expect(await page.getByTestId('recovery-codes').count()).toBe(0); // not starting over: no new codes
    expect((await audit.list({ type: 'auth.signed_in', actor: who.login })).map((e) => e.data.factor).sort()).toEqual(['passkey-enrollment', 'passkey-enrollment']);
    expect(await db.query('SELECT 1 FROM passkeys WHERE person_id = $1', [p.id])).toHaveLength(2);

    // My account: 9 left. New codes need a fresh confirmation once the sign-in's own passkey is over 5 minutes old.
    await page.goto(`${base}/account`);
    await page.getByTestId('recovery-remaining').getByText('9 unused recovery codes left.').waitFor();
    await db.query("UPDATE auth_sessions SET step_up_at = step_up_at - interval '1 hour' WHERE person_id = $1 AND revoked_at IS NULL", [p.id]);
    await page.getByRole('button', { name: 'Make new recovery codes' }).click();
    const prompt = page.getByTestId('step-up');
    await prompt.getByText('before making new recovery codes').waitFor();
    await screenshot(page, 'passkeys-recovery-confirm');
    await prompt.getByRole('button', { name: 'Confirm with a passkey' }).click();
    const fresh = await keepRecoveryCodes(page, 'passkeys-regenerated');
    expect(fresh).not.toContain(codes[1]);
    await page.getByTestId('recovery-remaining').getByText('10 unused recovery codes left.').waitFor();
    expect((await audit.list({ type: 'auth.recovery_codes_issued', actor: who.login })).map((e) => e.data.reason).sort()).toEqual(['first-passkey', 'regenerated']);
    expect((await audit.list({ type: 'auth.step_up', actor: who.login })).map((e) => e.data.factor)).toEqual(['passkey']);
    expect(b.errors.filter((e) => e.startsWith('pageerror'))).toEqual([]);
    await signOut(page);
    await page.close();
  }, 300_000);

  it('an admin resets a person\'s passkeys on the People page: confirmed and audited; the old passkey no longer signs in; the person\'s sign-ins and live sessions end', async () => {
    const tech = await newTechnician('lost', 'Lost Laptop', false);
    const p = tech;
    const techPage = await b.newPage();
    await virtualAuthenticator(techPage);
    await firstSignInWithPasskey(techPage, base, tech, 'Laptop', 'passkeys-reset-person');
    // Also signed in with the passkey alone in the same browser (a second sign-in), and a terminal open under it.
    const [signIn1] = await db.query<{ id: string }>('SELECT id FROM auth_sessions WHERE person_id = $1 AND revoked_at IS NULL', [p.id]);
    live.live.set(`live-${tag}`, {
      sessionId: `live-${tag}`, personLogin: tech.login, personId: p.id, authSessionId: signIn1!.id, computerName: 'web1', protocol: 'ssh', account: null, startedAt: new Date().toISOString(), gateway: 'gw-e2e',
    });

    // The admin, in another browser.
    const adminBrowser = await launchBrowser();
    try {
      const admin: Person = { login: `resetter${tag}`, displayName: 'Reset Admin', password: `pw-${randomUUID()}` };
      await createPerson(db, { login: admin.login, displayName: admin.displayName, role: 'global_admin', organizationId: null, password: admin.password });
      const page = await adminBrowser.newPage();
      await signIn(page, base, admin);
      await page.goto(`${base}/admin/people`);
      const row = page.locator(`tr[data-login="${tech.login}"]`);
      await row.getByRole('button', { name: 'Reset passkeys' }).click();
      const confirm = page.getByTestId('confirm');
      await confirm.getByText(`Revoke every passkey of ${tech.login}?`).waitFor();
      await screenshot(page, 'passkeys-admin-reset-confirm');
      expect(await db.query('SELECT 1 FROM passkeys WHERE person_id = $1', [p.id])).toHaveLength(1); // nothing before the confirmation
      await confirm.getByRole('button', { name: 'Reset passkeys' }).click();
      await page.getByRole('status').getByText(`${tech.login}'s passkeys are revoked.`).waitFor();

      expect(await db.query('SELECT 1 FROM passkeys WHERE person_id = $1', [p.id])).toHaveLength(0);
      expect(await db.query('SELECT 1 FROM auth_sessions WHERE person_id = $1 AND revoked_at IS NULL', [p.id])).toHaveLength(0);
      expect(live.terminated).toContainEqual({ sessionId: `live-${tag}`, by: admin.login });
      const resets = (await audit.list({ type: 'admin.changed', actor: admin.login })).filter((e) => e.data.action === 'person.passkeys_reset');
      expect(resets.map((e) => ({ login: e.data.login, passkeys: e.data.passkeys }))).toEqual([{ login: tech.login, passkeys: ['Laptop'] }]);
      // A passkey-only person's recovery codes went with the passkeys.
      expect((await db.query<{ n: number }>('SELECT jsonb_array_length(recovery_codes) AS n FROM people WHERE id = $1', [p.id]))[0]!.n).toBe(0);
    } finally {
      await adminBrowser.close();
    }

    // The person's tab: signed out; the authenticator still offers the passkey, the gateway refuses it.
    await techPage.goto(`${base}/account`);
    await techPage.getByRole('heading', { name: 'Sign in to jitgate' }).waitFor();
    // A passkey no longer stored names nobody: its refusal is audited as anonymous.
    const revokedRefusals = async () => (await audit.list({ type: 'auth.sign_in_failed', actor: 'anonymous' })).filter((e) => e.data.factor === 'passkey' && /unknown or revoked/.test(String(e.data.reason))).length;
    const before = await revokedRefusals();
    await techPage.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await techPage.getByText('This passkey was not accepted').waitFor();
    await screenshot(techPage, 'passkeys-after-admin-reset');
    expect(((await (await techPage.request.get(`${base}/api/v1/auth/me`)).json()) as { person: unknown }).person).toBeNull();
    await waitFor('the refused passkey sign-in audited', 10_000, async () => ((await revokedRefusals()) > before ? true : undefined));
    await techPage.close();
  }, 300_000);
});
