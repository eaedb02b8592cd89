import { expect } from 'vitest';
import type { Page } from 'playwright-core';
import { generate } from 'otplib';
import { screenshot } from './browser.js';

/**
 * What a person does in the web app, step by step, shared by the browser
 * tests. TOTP codes are computed from the secret the page shows, as an
 * authenticator app would; a code is never used twice (the gateway refuses
 * replays), so each person's last used time step is remembered.
 */
const lastStep = new Map<string, number>();

export async function totpCode(secret: string): Promise<string> {
  // wait for a time step this secret has not used yet
  for (;;) {
    const step = Math.floor(Date.now() / 30_000);
    if (lastStep.get(secret) !== step) {
      lastStep.set(secret, step);
      return generate({ secret, epoch: step * 30 });
    }
    await new Promise((r) => setTimeout(r, 30_000 - (Date.now() % 30_000) + 50));
  }
}

export interface Person {
  login: string;
  password: string;
  displayName: string;
  secret?: string;
}

/** On the enrollment form: read the secret shown as text, confirm a code, keep the recovery codes. */
export async function enrollTotp(page: Page, who: Person, shot: string): Promise<string[]> {
  const secretEl = page.getByTestId('totp-secret');
  await expect.poll(async () => (await secretEl.textContent())?.replace(/\s/g, '') ?? '', { timeout: 30_000 }).toMatch(/^[A-Z2-7]{16,}$/);
  who.secret = (await secretEl.textContent())!.replace(/\s/g, '');
  await page.getByRole('img', { name: /QR code/ }).waitFor();
  await screenshot(page, `${shot}-totp-enrollment`);
  await page.getByLabel('Code from your app').fill(await totpCode(who.secret));
  await page.getByRole('button', { name: 'Confirm' }).click();
  return keepRecoveryCodes(page, shot);
}

/** The ten recovery codes shown once (after TOTP enrollment or a first passkey): read them, tick "I saved them", go on. */
export async function keepRecoveryCodes(page: Page, shot: string): Promise<string[]> {
  const codes = page.getByTestId('recovery-codes').locator('li');
  await codes.first().waitFor();
  const list = await codes.allTextContents();
  expect(list).toHaveLength(10);
  await screenshot(page, `${shot}-recovery-codes`);
  const cont = page.getByRole('button', { name: 'Continue' });
  expect(await cont.isDisabled()).toBe(true);
  await page.getByLabel('I saved my recovery codes').check();
  await cont.click();
  return list;
}

/** First run: the bootstrap link creates the first global admin, who enrolls TOTP. */
export async function firstRunSetup(page: Page, setupUrl: string, admin: Person): Promise<void> {
  await page.goto(setupUrl);
  await page.getByRole('heading', { name: 'Set up jitgate' }).waitFor();
  await page.getByLabel('Login').waitFor();
  await screenshot(page, 'setup');
  await page.getByLabel('Login').fill(admin.login);
  await page.getByLabel('Display name').fill(admin.displayName);
  await page.getByLabel('Password', { exact: true }).fill(admin.password);
  await page.getByLabel('Password again').fill(admin.password);
  await page.getByRole('button', { name: 'Create administrator' }).click();
  await enrollTotp(page, admin, 'setup');
  // attached, not visible: at mobile width the links fold behind the Menu button
  await page.locator('nav[aria-label="Main"]').waitFor({ state: 'attached' });
  expect(new URL(page.url()).hash).toBe(''); // the spent token left the address bar
}

/** Sign in with password and TOTP; a person without TOTP enrolls on the way. */
export async function signIn(page: Page, base: string, who: Person, shot?: string): Promise<void> {
  await page.goto(`${base}/sign-in`);
  await page.getByLabel('Login').fill(who.login);
  await page.getByLabel('Password').fill(who.password);
  if (shot) await screenshot(page, `${shot}-sign-in`);
  await page.getByRole('button', { name: 'Continue' }).click();
  if (who.secret) {
    await page.getByLabel('Authentication code').fill(await totpCode(who.secret));
    await page.getByRole('button', { name: 'Sign in' }).click();
  } else {
    await enrollTotp(page, who, shot ?? who.login);
  }
  // attached, not visible: at mobile width the links fold behind the Menu button
  await page.locator('nav[aria-label="Main"], [data-testid="must-change-password"]').first().waitFor({ state: 'attached' });
  // An admin typed this person's password: the gateway holds everything back until they choose their own.
  if (await page.getByTestId('must-change-password').isVisible()) await changeAdminSetPassword(page, who);
  await page.locator('nav[aria-label="Main"]').waitFor({ state: 'attached' });
}

/** The forced change of an admin-set password at first sign-in; `who.password` becomes the new one. */
export async function changeAdminSetPassword(page: Page, who: Person): Promise<void> {
  const next = `${who.password}-own`;
  await page.getByLabel('Current password').fill(who.password);
  await page.getByLabel('New password', { exact: true }).fill(next);
  await page.getByLabel('New password again').fill(next);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByTestId('must-change-password').waitFor({ state: 'detached' });
  who.password = next;
}

export async function signOut(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to jitgate' }).waitFor();
}

export async function go(page: Page, linkName: string): Promise<void> {
  // at mobile width the navigation is folded behind the Menu button
  const menu = page.getByRole('button', { name: 'Menu', exact: true });
  if ((await menu.isVisible()) && (await menu.getAttribute('aria-expanded')) !== 'true') await menu.click();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: linkName, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: linkName === 'Sessions' ? 'Sessions' : linkName }).waitFor();
}

export async function addOrganization(page: Page, name: string, code: string): Promise<void> {
  await go(page, 'Organizations');
  await page.getByRole('button', { name: 'Add organization' }).click();
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Shared account code').fill(code);
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('cell', { name, exact: true }).waitFor();
}

export async function addPerson(page: Page, p: Person & { role: 'technician' | 'auditor' | 'org_admin'; organization: string }): Promise<void> {
  await go(page, 'People');
  await page.getByRole('button', { name: 'Add person' }).click();
  await page.getByLabel('Login').fill(p.login);
  await page.getByLabel('Display name').fill(p.displayName);
  await page.getByLabel('Role').selectOption(p.role);
  if (await page.getByLabel('Organization').isEnabled()) await page.getByLabel('Organization').selectOption({ label: p.organization });
  await page.getByLabel('Initial password').fill(p.password);
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator(`tr[data-login="${p.login}"]`).waitFor();
}

export interface NewComputer {
  organization: string;
  name: string;
  address: string;
  sshPort?: number;
  localStore: string;
  adminGroups: string;
  accountType: 'domain' | 'local' | 'choose';
}

/** Add a computer with the "maximum security" preset; checks a server-side field error is shown beside its field first. */
export async function addComputer(page: Page, c: NewComputer): Promise<void> {
  await go(page, 'Computers');
  await page.getByRole('button', { name: 'Add computer' }).click();
  const form = page.locator('form.editor');
  await form.getByLabel('Organization').selectOption({ label: c.organization });
  await form.getByLabel('Name', { exact: true }).fill(c.name);
  await form.getByLabel('Address (host name or IP)').fill(c.address);
  if (c.sshPort) await form.getByLabel('SSH port').fill(String(c.sshPort));
  await form.getByLabel('Local account store (SSH / WinRM)').selectOption(c.localStore);
  await form.getByRole('button', { name: /Maximum security/ }).click();
  await form.getByLabel('Account type').selectOption(c.accountType);
  // The chosen store's configured groups are the choices the editor offers (GET /account-stores).
  expect(await form.locator('#j-groups-choices option').evaluateAll((os) => os.map((o) => o.getAttribute('value') ?? ''))).toContain(c.adminGroups);
  // no admin group yet: the gateway refuses and the message sits next to the field
  await form.getByRole('button', { name: 'Save' }).click();
  const groupError = page.locator('#j-groups-error');
  await groupError.waitFor();
  expect(await groupError.textContent()).toMatch(/admin group/i);
  expect(await form.getByLabel(/Admin groups/).getAttribute('aria-invalid')).toBe('true');
  await screenshot(page, 'computer-validation-error');
  await form.getByLabel(/Admin groups/).fill(c.adminGroups);
  await screenshot(page, 'computer-editor');
  await form.getByRole('button', { name: 'Save' }).click();
  await page.locator(`tr[data-computer="${c.name}"]`).waitFor();
  await screenshot(page, 'computers');
}

/**
 * Pin the computer's SSH host key the way an admin does: Edit → Host key → Scan, compare the
 * fingerprint with the one the host shows on its console (`expected`), Confirm pin.
 */
export async function pinHostKey(page: Page, computer: string, expected: string): Promise<void> {
  await go(page, 'Computers');
  await page.locator(`tr[data-computer="${computer}"]`).getByRole('button', { name: 'Edit' }).click();
  const box = page.getByTestId('host-key');
  await box.getByTestId('host-key-unpinned').waitFor();
  await box.getByRole('button', { name: 'Scan' }).click();
  expect(await box.getByTestId('host-key-scanned').textContent()).toBe(expected);
  await screenshot(page, 'computer-host-key-scanned');
  await box.getByRole('button', { name: 'Confirm pin' }).click();
  expect(await box.getByTestId('host-key-pinned').textContent()).toBe(expected);
  await page.locator('form.editor').getByRole('button', { name: 'Cancel' }).click();
}

/** Make the computer restricted and share it with a named technician. */
export async function restrictAndShare(page: Page, computer: string, technicianLogin: string): Promise<void> {
  await go(page, 'Computers');
  await page.locator(`tr[data-computer="${computer}"]`).getByRole('button', { name: 'Edit' }).click();
  const form = page.locator('form.editor');
  await form.getByLabel(/^Restricted/).check();
  await form.getByRole('button', { name: 'Save' }).click();
  await page.locator(`tr[data-computer="${computer}"]`).getByText('restricted').waitFor();
  await page.locator(`tr[data-computer="${computer}"]`).getByRole('button', { name: 'Edit' }).click();
  const value = await form.locator('#grant-person option', { hasText: `${technicianLogin} (` }).getAttribute('value');
  await form.getByLabel('Technician', { exact: true }).selectOption(value!);
  await form.getByRole('button', { name: 'Share' }).click();
  await form.locator('ul.grants li', { hasText: technicianLogin }).waitFor();
  await screenshot(page, 'computer-grants');
  await form.getByRole('button', { name: 'Cancel' }).click();
}
