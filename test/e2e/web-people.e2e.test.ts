import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AuditLog } from '../../core/audit.js';
import type { Database } from '../../core/db/database.js';
import { silentLogger } from '../../core/logging.js';
import { SecretBox } from '../../core/secret-box.js';
import { AccessService } from '../../gateway/access-policy.js';
import { apiRoutes } from '../../gateway/api/index.js';
import { createAuth, createPerson } from '../../gateway/auth/index.js';
import { createMetrics } from '../../gateway/metrics.js';
import { buildServer } from '../../gateway/server.js';
import { webStatic } from '../../gateway/web-static.js';
import { buildWeb } from '../../web/build.js';
import { MemoryLiveSessions } from '../fixtures/api-fixture.js';
import { databaseFactories } from '../harness/databases.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { enrollTotp, go, signIn, type Person } from './web-steps.js';

/**
 * People management in a real chromium against the real identity module and
 * administration API (issue 15): an admin invites a technician by link, the
 * invitee chooses a password and enrolls TOTP, the spent link is refused; a
 * person locked out after failed sign-ins is told until when, their admin
 * sees it on the People page and unlocks them after a confirmation.
 * Two browsers (two profiles): the admin's and the other person's.
 */
const browserOk = chromiumAvailable();
const pglite = databaseFactories().find((f) => f.label === 'pglite')!;
const MAX_FAILED = 3;

describe.skipIf(!browserOk.ok)(`people management in the browser${browserOk.ok ? '' : ` (skipped: ${browserOk.reason})`}`, () => {
  let dist = '';
  let db: Database;
  let app: FastifyInstance;
  let base = '';
  let adminBrowser: BrowserHandle;
  let otherBrowser: BrowserHandle;
  const tag = randomBytes(3).toString('hex');
  const admin: Person = { login: `ga${tag}`, displayName: 'Gail Admin', password: `pw-${randomUUID()}` };
  let orgName = '';
  let orgId = '';

  beforeAll(async () => {
    dist = mkdtempSync(join(tmpdir(), 'jg-web-dist-'));
    await buildWeb(dist);
    db = await pglite.open();
    const audit = new AuditLog(db);
    const log = silentLogger();
    const auth = createAuth({
      db, box: new SecretBox(randomBytes(32)), audit, log,
      cfg: { sessionHours: 12, idleMinutes: 60, maxFailedSignIns: MAX_FAILED, lockoutMinutes: 15, totpIssuer: 'jitgate-e2e', cookieSecure: 'auto' },
    });
    app = await buildServer({
      log, metrics: createMetrics(), version: 'e2e', readiness: [],
      rootPlugins: [auth.plugin, webStatic(dist)],
      apiPlugins: [
        apiRoutes({
          db, audit, access: new AccessService(db, audit), liveSessions: new MemoryLiveSessions(), recordingFiles: { open: async () => null },
          stores: [], checkStore: async () => ({ ok: true }),
          revokeAuthSessions: auth.revokeAuthSessions, hashPassword: auth.hashPassword,
          extendSession: () => Promise.reject(new Error('no sessions here')),
        }),
      ],
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    if (!addr || typeof addr === 'string') throw new Error('no address');
    base = `http://127.0.0.1:${addr.port}`;
    orgId = randomUUID();
    orgName = `acme${tag}`;
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, orgName, String(1000 + Math.floor(Math.random() * 8999))]);
    await createPerson(db, { login: admin.login, displayName: admin.displayName, role: 'global_admin', organizationId: null, password: admin.password });
    adminBrowser = await launchBrowser();
    otherBrowser = await launchBrowser();
  }, 240_000);

  afterAll(async () => {
    await adminBrowser?.close();
    await otherBrowser?.close();
    await app?.close();
    await db?.close();
    if (dist) rmSync(dist, { recursive: true, force: true });
  });

  it('an admin invites by link; the invitee sets a password, enrolls TOTP and is signed in; the link then is refused', async () => {
    const page = await adminBrowser.newPage();
    await signIn(page, base, admin, 'people-admin');
    await go(page, 'People');
    const invitee: Person = { login: `inv${tag}`, displayName: 'Ivy Invited', password: `own-${randomUUID()}` };
    await page.getByRole('button', { name: 'Invite person' }).click();
    const form = page.locator('form[aria-labelledby="invite-title"]');
    await form.getByLabel('Login').fill(invitee.login);
    await form.getByLabel('Display name').fill(invitee.displayName);
    await form.getByLabel('Role').selectOption('technician');
    await form.getByLabel('Organization').selectOption({ label: orgName });
    await form.getByRole('button', { name: 'Create invitation link' }).click();
    const linkInput = page.getByTestId('invitation-link');
    await linkInput.waitFor();
    const link = await linkInput.inputValue();
    expect(link).toMatch(new RegExp(`^${base}/invite#[A-Za-z0-9_-]{43}$`));
    await page.locator(`tr[data-invitation="${invitee.login}"]`).waitFor();
    await screenshot(page, 'people-invitation-link');

    const other = await otherBrowser.newPage();
    await other.goto(link);
    await other.getByTestId('invitation').getByText(invitee.login).waitFor();
    expect(await other.getByTestId('invitation').textContent()).toContain(orgName);
    await screenshot(other, 'invite-choose-password');
    await other.getByLabel('Password', { exact: true }).fill(invitee.password);
    await other.getByLabel('Password again').fill(invitee.password);
    await other.getByRole('button', { name: 'Create my account' }).click();
    await enrollTotp(other, invitee, 'invite');
    await other.getByRole('navigation', { name: 'Main' }).waitFor();
    expect(new URL(other.url()).hash).toBe(''); // the spent token left the address bar
    await other.getByRole('button', { name: 'Sign out' }).click();
    await other.getByRole('heading', { name: 'Sign in to jitgate' }).waitFor();

    // Used once: the same link now says so.
    await other.goto(link);
    await other.getByTestId('invitation-problem').getByText('already used').waitFor();
    await screenshot(other, 'invite-used');
    // The invitee signs in with the password they chose; the admin sees them, no longer as an open invitation.
    await signIn(other, base, invitee);
    await page.reload();
    await page.locator(`tr[data-login="${invitee.login}"]`).waitFor();
    expect(await page.locator(`tr[data-invitation="${invitee.login}"]`).count()).toBe(0);
    await other.getByRole('button', { name: 'Sign out' }).click();
    await other.close();
    await page.close();
  }, 300_000);

  it('a locked-out person is told until when; their admin sees it, confirms the unlock, and the person signs in', async () => {
    const locked: Person = { login: `lock${tag}`, displayName: 'Lou Locked', password: `pw-${randomUUID()}` };
    await createPerson(db, { login: locked.login, displayName: locked.displayName, role: 'technician', organizationId: orgId, password: locked.password });
    const other = await otherBrowser.newPage();
    await signIn(other, base, locked); // enroll TOTP once, so the person is real
    await other.getByRole('button', { name: 'Sign out' }).click();
    for (let i = 0; i < MAX_FAILED; i++) {
      await other.goto(`${base}/sign-in`);
      await other.getByLabel('Login').fill(locked.login);
      await other.getByLabel('Password').fill('not the password');
      await other.getByRole('button', { name: 'Continue' }).click();
      await other.getByRole('alert').waitFor();
    }
    await other.getByRole('alert').getByText(/locked until/).waitFor();
    // The right password too is refused while locked, with the end time.
    await other.getByLabel('Password').fill(locked.password);
    await other.getByRole('button', { name: 'Continue' }).click();
    await expect.poll(async () => other.getByRole('alert').textContent()).toMatch(/This account is locked until .+ after too many failed attempts/);
    await screenshot(other, 'sign-in-locked-until');

    const page = await adminBrowser.newPage();
    await page.goto(`${base}/admin/people`);
    const row = page.locator(`tr[data-login="${locked.login}"]`);
    await row.getByText(/locked until/).waitFor();
    await row.getByRole('button', { name: 'Unlock' }).click();
    const confirm = page.getByTestId('confirm');
    await confirm.getByText(`Unlock ${locked.login} now?`).waitFor();
    await screenshot(page, 'people-unlock-confirm');
    await confirm.getByRole('button', { name: 'Unlock' }).click();
    await page.getByRole('status').getByText(`${locked.login} is unlocked.`).waitFor();
    await row.getByText('active').waitFor();

    // The editor shows the access overview for the person (no computers here) and offers no unlock any more.
    await row.getByRole('button', { name: 'Edit' }).click();
    const editor = page.getByTestId('person-editor');
    await editor.getByRole('heading', { name: 'Access overview' }).waitFor();
    expect(await editor.getByRole('button', { name: 'Unlock' }).count()).toBe(0);

    await signIn(other, base, locked);
    await other.close();
    await page.close();
  }, 300_000);
});
