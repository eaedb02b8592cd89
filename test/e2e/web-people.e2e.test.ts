import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Database } from '../../core/db/database.js';
import { createPerson } from '../../gateway/auth/index.js';
import { startWebRig, type WebRig } from './web-rig.js';
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
const MAX_FAILED = 3;

describe.skipIf(!browserOk.ok)(`people management in the browser${browserOk.ok ? '' : ` (skipped: ${browserOk.reason})`}`, () => {
  let rig: WebRig;
  let db: Database;
  let base = '';
  let adminBrowser: BrowserHandle;
  let otherBrowser: BrowserHandle;
  const tag = randomBytes(3).toString('hex');
  const admin: Person = { login: `ga${tag}`, displayName: 'Gail Admin', password: `pw-${randomUUID()}` };
  let orgName = '';
  let orgId = '';

  beforeAll(async () => {
    rig = await startWebRig({ maxFailedSignIns: MAX_FAILED });
    ({ db, base } = rig);
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
    await rig?.close();
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

  it('Disable and Reset MFA ask first: Cancel changes nothing, the confirmation does what it says', async () => {
    const target: Person = { login: `dis${tag}`, displayName: 'Dana Disabled', password: `pw-${randomUUID()}` };
    await createPerson(db, { login: target.login, displayName: target.displayName, role: 'technician', organizationId: orgId, password: target.password });
    await otherBrowser.context.clearCookies(); // the previous test left its person signed in there
    const other = await otherBrowser.newPage();
    await signIn(other, base, target); // enrolls TOTP
    await other.close();
    const state = async (): Promise<{ disabled: boolean; totp_enabled: boolean }> => {
      const found = (await db.query<{ disabled: boolean; totp_enabled: boolean }>('SELECT disabled, totp_enabled FROM people WHERE login = $1', [target.login]))[0];
      if (!found) throw new Error(`no such person: ${target.login}`);
      return found;
    };
    expect(await state()).toEqual({ disabled: false, totp_enabled: true });

    const page = await adminBrowser.newPage();
    await page.goto(`${base}/admin/people`);
    const row = page.locator(`tr[data-login="${target.login}"]`);
    const confirm = page.getByTestId('confirm');
    // Reset MFA: the question names the person and the consequence; Cancel leaves TOTP enrolled.
    await row.getByRole('button', { name: 'Reset MFA' }).click();
    await confirm.getByText(`Reset ${target.login}'s two-factor sign-in? They are signed out and enroll again at their next sign-in.`).waitFor();
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await confirm.waitFor({ state: 'detached' });
    expect(await state()).toEqual({ disabled: false, totp_enabled: true });
    await row.getByRole('button', { name: 'Reset MFA' }).click();
    await confirm.getByRole('button', { name: 'Reset MFA' }).click();
    await page.getByRole('status').getByText(`${target.login} enrolls two-factor sign-in again at next sign-in.`).waitFor();
    expect(await state()).toEqual({ disabled: false, totp_enabled: false });
    // Disable: the same, and the row then says disabled.
    await row.getByRole('button', { name: 'Disable' }).click();
    await confirm.getByText(`Disable ${target.login}? They are signed out and their live sessions end.`).waitFor();
    await confirm.getByRole('button', { name: 'Cancel' }).click();
    await confirm.waitFor({ state: 'detached' });
    expect((await state()).disabled).toBe(false);
    await row.getByRole('button', { name: 'Disable' }).click();
    await confirm.getByRole('button', { name: 'Disable' }).click();
    await page.getByRole('status').getByText(`${target.login} is disabled and signed out.`).waitFor();
    await row.getByText('disabled', { exact: true }).waitFor();
    expect((await state()).disabled).toBe(true);
    await page.close();
  }, 300_000);

  it("shows times in the person's own time zone", async () => {
    // Kathmandu is UTC+05:45: its minutes differ from UTC's (and from this machine's zone) at every moment.
    const zoned: Person = { login: `tz${tag}`, displayName: 'Zed Zoned', password: `pw-${randomUUID()}` };
    await createPerson(db, { login: zoned.login, displayName: zoned.displayName, role: 'technician', organizationId: orgId, password: zoned.password });
    const until = new Date(Date.UTC(2031, 0, 15, 9, 0, 0)); // 09:00 UTC = 14:45 in Kathmandu
    await db.query('UPDATE people SET locked_until = $2 WHERE login = $1', [zoned.login, until]);
    const page = await adminBrowser.newPage();
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Emulation.setTimezoneOverride', { timezoneId: 'Asia/Kathmandu' });
    await page.goto(`${base}/admin/people`);
    const badge = page.locator(`tr[data-login="${zoned.login}"]`).getByText(/locked until/);
    await badge.waitFor();
    const text = (await badge.textContent()) ?? '';
    expect(text).toMatch(/\b(14:45|2:45(:00)?\s?PM)/);
    expect(text).not.toMatch(/\b0?9:00/);
    await cdp.detach();
    await page.close();
  }, 120_000);
});
