import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Page } from 'playwright-core';
import type { Database } from '../../core/db/database.js';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import { checkCsrfQuery, createPerson } from '../../gateway/auth/index.js';
import { terminalRoutes } from '../../gateway/ssh/terminal.route.js';
import type { SessionRecorder } from '../../recorder/recorder.js';
import { axeProblems } from './axe.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { startWebRig, type WebRig } from './web-rig.js';
import { enrollTotp, go, signIn, type Person } from './web-steps.js';

/**
 * The web app as people use it (issue 17): forms that say what is wrong and
 * take you there, the sign-in code step, route guards by role, the terminal's
 * access-denied message, and an axe-core accessibility check of every page
 * as an admin and as a technician. Real identity module and admin API on
 * PGlite; the terminal websocket is the real route with a broker that refuses
 * access (what the gateway answers for a computer the person may not use).
 */
const browserOk = chromiumAvailable();
// page-side code as strings: the test project's TypeScript has no DOM library
const inViewport = (page: Page, selector: string) =>
  page.evaluate<boolean>(`(() => { const r = document.querySelector(${JSON.stringify(selector)}).getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; })()`);

const focusedId = (page: Page) => page.evaluate<string>(`document.activeElement ? document.activeElement.id : ''`);

describe.skipIf(!browserOk.ok)(`web app usability and accessibility${browserOk.ok ? '' : ` (skipped: ${browserOk.reason})`}`, () => {
  let rig: WebRig;
  let db: Database;
  let base = '';
  let bAdmin: BrowserHandle;
  let bTech: BrowserHandle;
  let admin: Page;
  let tech: Page;
  let orgId = '';
  const tag = randomBytes(3).toString('hex');
  const adminP: Person = { login: `ua${tag}`, displayName: 'Ada Admin', password: `pw-${randomUUID()}` };
  const techP: Person = { login: `ut${tag}`, displayName: 'Tom Tech', password: `pw-${randomUUID()}` };
  const csrfOf = async (page: Page) => ((await (await page.request.get(`${base}/api/v1/auth/me`)).json()) as { csrfToken: string }).csrfToken;

  beforeAll(async () => {
    const refuse = (computer: string) => Promise.reject(new JitgateError(CoreErrors.JIT_ERR_ACCESS_DENIED, { computer }));
    rig = await startWebRig({
      stores: [{ name: 'linux-ssh', type: 'ssh', url: 'ssh://192.0.2.10:22', organizations: null, groups: ['sudo'], allowedContainers: null }],
      apiPlugins: ({ audit, log }) => [
        terminalRoutes({
          broker: { open: (req) => refuse(req.computerRef) },
          recorder: {} as SessionRecorder, // never reached: the broker refuses first
          audit, checkCsrf: checkCsrfQuery, log,
        }),
      ],
    });
    ({ db, base } = rig);
    orgId = randomUUID();
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, `org${tag}`, '4321']);
    await createPerson(db, { login: adminP.login, displayName: adminP.displayName, role: 'global_admin', organizationId: null, password: adminP.password });
    await createPerson(db, { login: techP.login, displayName: techP.displayName, role: 'technician', organizationId: orgId, password: techP.password });
    bAdmin = await launchBrowser();
    bTech = await launchBrowser();
    admin = await bAdmin.newPage();
    tech = await bTech.newPage();
  }, 300_000);

  // The first sign-in enrolls TOTP (web-steps uses expect, which belongs inside a test): done once, by whichever test runs first.
  let signedIn: Promise<void> | null = null;
  const ready = () => (signedIn ??= (async () => {
    await signIn(admin, base, adminP);
    await signIn(tech, base, techP);
  })());

  afterAll(async () => {
    await bAdmin?.close();
    await bTech?.close();
    await rig?.close();
  });

  it('computer editor: a failed Save shows a summary on top and takes focus, scrolled into view, to the first field in error', async () => {
    await ready();
    await admin.setViewportSize({ width: 1280, height: 600 });
    await go(admin, 'Computers');
    await admin.getByRole('button', { name: 'Add computer' }).click();
    const form = admin.locator('form.editor');
    await form.getByLabel('Address (host name or IP)').fill('192.0.2.20');
    await form.getByLabel('Local account store (SSH / WinRM)').selectOption('linux-ssh');
    await form.getByLabel('Account type').selectOption('local');
    const save = form.getByRole('button', { name: 'Save' });
    await save.scrollIntoViewIfNeeded();
    // an empty name: "required", said before anything is sent
    await save.click();
    const summary = form.getByTestId('form-errors');
    await summary.getByRole('link', { name: 'Name: required' }).waitFor();
    expect(await focusedId(admin)).toBe('c-name');
    expect(await inViewport(admin, '#c-name')).toBe(true);
    expect(await admin.locator('#c-name-error').textContent()).toBe('required');
    // too long, and no admin group: the gateway's field errors, by path, each in the summary and beside its field
    await form.getByLabel('Name', { exact: true }).fill(`n${'x'.repeat(69)}`);
    await save.scrollIntoViewIfNeeded();
    await save.click();
    await summary.getByRole('link', { name: 'Name: at most 63 characters' }).waitFor();
    expect(await summary.getByRole('link').allTextContents()).toEqual(['Name: at most 63 characters', expect.stringMatching(/^Admin groups: .*admin group/i)]);
    expect(await focusedId(admin)).toBe('c-name');
    expect(await inViewport(admin, '#c-name')).toBe(true);
    expect(await admin.locator('#j-groups').getAttribute('aria-invalid')).toBe('true');
    await screenshot(admin, 'computer-editor-error-summary');
    // the summary's links take you to the field
    await summary.getByRole('link', { name: /^Admin groups/ }).click();
    expect(await focusedId(admin)).toBe('j-groups');
    await form.getByRole('button', { name: 'Cancel' }).click();
    await admin.setViewportSize({ width: 1280, height: 800 });
  });

  it('people, organization and account forms share the summary and focus', async () => {
    await ready();
    await go(admin, 'People');
    await admin.getByRole('button', { name: 'Add person' }).click();
    await admin.getByRole('button', { name: 'Create' }).click();
    const people = admin.locator('form.editor').getByTestId('form-errors');
    await people.getByRole('link', { name: 'Login: required' }).waitFor();
    expect(await focusedId(admin)).toBe('p-login');
    await admin.getByRole('button', { name: 'Cancel' }).click();

    await go(admin, 'Organizations');
    await admin.getByRole('button', { name: 'Add organization' }).click();
    await admin.getByLabel('Name').fill(`o${'y'.repeat(70)}`);
    await admin.getByLabel('Shared account code').fill('1234');
    await admin.locator('form.editor').getByRole('button', { name: 'Save', exact: true }).click();
    await admin.locator('form.editor').getByTestId('form-errors').getByRole('link', { name: 'Name: at most 63 characters' }).waitFor();
    await expect.poll(() => focusedId(admin)).toBe('o-name');
    await admin.getByRole('button', { name: 'Cancel' }).click();

    await go(admin, 'My account');
    await admin.getByLabel('Current password').fill(adminP.password);
    await admin.getByLabel('New password', { exact: true }).fill(`pw-${randomUUID()}`);
    await admin.getByLabel('New password again').fill('something else entirely');
    await admin.getByRole('button', { name: 'Change password' }).click();
    await admin.getByTestId('form-errors').getByRole('link', { name: 'New password again: the new passwords differ' }).waitFor();
    expect(await focusedId(admin)).toBe('pw-again');
  });

  it('sign-in: the code step has focus, says who is signing in, and leads back to the password step', async () => {
    await ready();
    const b = await launchBrowser();
    try {
      const page = await b.newPage();
      await page.goto(`${base}/sign-in`);
      await page.getByLabel('Login').fill(adminP.login);
      await page.getByLabel('Password').fill(adminP.password);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByLabel('Authentication code').waitFor();
      expect(await focusedId(page)).toBe('totp');
      expect(await page.getByTestId('signing-in-as').textContent()).toContain(`Signing in as ${adminP.login}.`);
      await screenshot(page, 'sign-in-code-step');
      await page.getByRole('button', { name: 'Back to password' }).click();
      await page.getByLabel('Password').waitFor();
      expect(await page.getByLabel('Login').inputValue()).toBe(adminP.login);
      expect(await focusedId(page)).toBe('password');
      // the half-done sign-in was ended on the gateway, not just hidden
      expect(((await (await page.request.get(`${base}/api/v1/auth/me`)).json()) as { pending: unknown }).pending).toBeNull();
    } finally {
      await b.close();
    }
  });

  it('a technician who types an admin address is told the page is not for their role; the navigation offers only their pages', async () => {
    await ready();
    const nav = tech.getByRole('navigation', { name: 'Main' });
    expect(await nav.getByRole('link').allTextContents()).toEqual(['Sessions', 'My account']);
    for (const path of ['/admin/people', '/admin/computers', '/admin/organizations', '/admin/stores', '/admin/sign-ins', '/live', '/recordings', '/audit']) {
      await tech.goto(base + path);
      await tech.getByRole('heading', { level: 1, name: 'Not available for your role' }).waitFor();
      expect(await tech.getByTestId('not-available').textContent()).toContain('as a technician you cannot use it');
      expect(await tech.getByRole('button', { name: /^(Add|Create|Test|Revoke)/ }).count()).toBe(0);
    }
    await screenshot(tech, 'technician-not-available');
    await tech.getByRole('link', { name: 'Go to your home page' }).click();
    await tech.getByRole('heading', { level: 1, name: 'Sessions' }).waitFor();
  });

  it('access denied on the terminal page: said once, in words, with no button that only repeats the refusal', async () => {
    await ready();
    await tech.goto(`${base}/terminal/${randomUUID()}`);
    const reason = tech.getByTestId('close-reason');
    await reason.waitFor();
    expect(await reason.textContent()).toBe('You do not have access to this computer.');
    const text = await tech.evaluate<string>('document.body.innerText');
    expect(text.match(/do not have access/gi)).toHaveLength(1);
    expect(await tech.getByRole('button', { name: /Reconnect|Start a new session/ }).count()).toBe(0);
    await screenshot(tech, 'terminal-access-denied');
  });

  it('axe-core finds no serious or critical violation on any page, as an admin and as a technician', async () => {
    await ready();
    const problems: string[] = [];
    const visit = async (page: Page, who: string, path: string, heading: string | RegExp, then?: () => Promise<void>) => {
      await page.goto(base + path);
      await page.getByRole('heading', { level: 1, name: heading }).first().waitFor();
      await then?.();
      problems.push(...(await axeProblems(page, `${who} ${path}`)));
    };
    // sign-in and enrolment, as a new person signing in for the first time
    await createPerson(db, { login: `un${tag}`, displayName: 'Nia New', role: 'technician', organizationId: orgId, password: adminP.password });
    const b = await launchBrowser();
    try {
      const page = await b.newPage();
      await visit(page, 'new', '/sign-in', 'Sign in to jitgate');
      await page.getByLabel('Login').fill(`un${tag}`);
      await page.getByLabel('Password').fill(adminP.password);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByTestId('totp-secret').waitFor();
      await page.getByRole('img', { name: /QR code/ }).waitFor();
      problems.push(...(await axeProblems(page, 'new enrolment')));
      await enrollTotp(page, { login: `un${tag}`, password: adminP.password, displayName: 'Nia New' }, 'a11y-new');
      await page.getByRole('navigation', { name: 'Main' }).waitFor();
    } finally {
      await b.close();
    }

    // a computer for the editor and the lists
    const created = await admin.request.post(`${base}/api/v1/computers`, {
      headers: { 'x-csrf-token': await csrfOf(admin) },
      data: { organizationId: orgId, name: `a11y${tag}`, address: '192.0.2.40', protocols: ['ssh'], localStore: 'linux-ssh', jit: { enabled: true, deleteOnCheckIn: true, reuseExistingAccount: false, accountMode: 'named', accountType: 'local', adminGroups: ['sudo'], maxSessionMinutes: 60 } },
    });
    expect(created.status()).toBe(201);

    for (const [path, heading] of [
      ['/admin/computers', 'Computers'],
      ['/admin/people', 'People'],
      ['/admin/organizations', 'Organizations'],
      ['/admin/stores', 'Account stores'],
      ['/admin/sign-ins', 'Sign-ins'],
      ['/live', 'Live sessions'],
      ['/recordings', 'Recordings'],
      ['/audit', 'Audit'],
      ['/account', 'My account'],
    ] as const) {
      await visit(admin, 'admin', path, heading);
    }
    await visit(admin, 'admin', '/admin/computers', 'Computers', async () => {
      await admin.locator(`tr[data-computer="a11y${tag}"]`).getByRole('button', { name: 'Edit' }).click();
      await admin.locator('form.editor').waitFor();
    });
    await visit(admin, 'admin', '/admin/computers', 'Computers', async () => {
      // the editor with its error summary
      await admin.getByRole('button', { name: 'Add computer' }).click();
      await admin.locator('form.editor').getByRole('button', { name: 'Save' }).click();
      await admin.getByTestId('form-errors').waitFor();
    });
    await visit(admin, 'admin', '/', 'Sessions');

    await visit(tech, 'technician', '/', 'Sessions');
    await visit(tech, 'technician', '/account', 'My account');
    await visit(tech, 'technician', '/admin/people', 'Not available for your role');
    await tech.goto(`${base}/terminal/${randomUUID()}`);
    await tech.getByTestId('close-reason').waitFor();
    problems.push(...(await axeProblems(tech, 'technician /terminal')));

    expect(problems).toEqual([]);
    // and the check itself sees a violation when there is one (an image without a text alternative)
    await tech.evaluate(`document.getElementById('main').insertAdjacentHTML('beforeend', '<img src="/x.png">')`);
    expect((await axeProblems(tech, 'self-check')).join('\n')).toMatch(/image-alt \(critical\)/);
  }, 240_000);
}, 240_000);
