import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Page } from 'playwright-core';
import type { Database } from '../../core/db/database.js';
import { createPerson } from '../../gateway/auth/index.js';
import { axeProblems } from './axe.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { startWebRig, type WebRig } from './web-rig.js';
import { go, signIn, signOut, type Person } from './web-steps.js';

/**
 * A label-based grant in Chromium (issue 15, issue 17 "what technicians
 * miss"): an org admin labels a restricted computer in the editor, creates
 * a team, adds a technician and grants the team `env=prod`; that technician
 * sees the computer on their home page under their recent connections and
 * can search and filter the list by label; a technician not in the team
 * does not see it. axe-core checks the Teams page, the editor and the home
 * page. Real identity module, real API and web bundle, PGlite.
 */
const browserOk = chromiumAvailable();

describe.skipIf(!browserOk.ok)(`teams and labels in the web app${browserOk.ok ? '' : ` (skipped: ${browserOk.reason})`}`, () => {
  let rig: WebRig;
  let db: Database;
  let base = '';
  let bAdmin: BrowserHandle;
  let bTech: BrowserHandle;
  let admin: Page;
  let tech: Page;
  const tag = randomBytes(3).toString('hex');
  const orgId = randomUUID();
  const adminP: Person = { login: `ta${tag}`, displayName: 'Olga Admin', password: `pw-${randomUUID()}` };
  const inTeam: Person = { login: `ti${tag}`, displayName: 'Ivan Inteam', password: `pw-${randomUUID()}` };
  const outside: Person = { login: `to${tag}`, displayName: 'Otto Outside', password: `pw-${randomUUID()}` };
  const web = `web-${tag}`;
  const dev = `dev-${tag}`;
  const open = `open-${tag}`;
  const webId = randomUUID();

  beforeAll(async () => {
    rig = await startWebRig();
    ({ db, base } = rig);
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, `org${tag}`, '5432']);
    await createPerson(db, { login: adminP.login, displayName: adminP.displayName, role: 'org_admin', organizationId: orgId, password: adminP.password });
    const ivan = await createPerson(db, { login: inTeam.login, displayName: inTeam.displayName, role: 'technician', organizationId: orgId, password: inTeam.password });
    await createPerson(db, { login: outside.login, displayName: outside.displayName, role: 'technician', organizationId: orgId, password: outside.password });
    // Two restricted computers without labels, one open one labelled env=dev (everyone in the organization sees it).
    const computer = (id: string, name: string, restricted: boolean, labels: Record<string, string>) =>
      db.query("INSERT INTO computers (id, organization_id, name, address, protocols, jit, restricted, labels) VALUES ($1,$2,$3,'192.0.2.30','{ssh}','{\"enabled\":false}',$4,$5)", [id, orgId, name, restricted, JSON.stringify(labels)]);
    await computer(webId, web, true, {});
    await computer(randomUUID(), dev, true, {});
    await computer(randomUUID(), open, false, { env: 'dev' });
    // Ivan connected to web before (when it was shared with him by hand): a session in the sessions table.
    await db.query(
      "INSERT INTO sessions (id, person_id, person_login, computer_id, computer_name, protocol, account_type, state, lease_expires_at, ended_at) VALUES ($1,$2,$3,$4,$5,'ssh','existing','ended', now(), now())",
      [randomUUID(), ivan.id, inTeam.login, webId, web],
    );
    bAdmin = await launchBrowser();
    bTech = await launchBrowser();
    admin = await bAdmin.newPage();
    tech = await bTech.newPage();
  }, 300_000);

  afterAll(async () => {
    await bAdmin?.close();
    await bTech?.close();
    await rig?.close();
  });

  it('an admin labels a computer, creates a team, adds a technician and grants env=prod; only that technician sees it, searchable and filterable, recent on top', async () => {
    const problems: string[] = [];
    await signIn(admin, base, adminP);

    // Label the restricted computer in the editor; a malformed label is caught on the form first.
    await go(admin, 'Computers');
    await admin.locator(`tr[data-computer="${web}"]`).getByRole('button', { name: 'Edit' }).click();
    const form = admin.locator('form.editor');
    await form.getByLabel('Labels').fill('env');
    await form.getByRole('button', { name: 'Save' }).click();
    await form.getByTestId('form-errors').getByRole('link', { name: /^Labels: write labels as key=value/ }).waitFor();
    expect(await admin.evaluate<string>('document.activeElement ? document.activeElement.id : ""')).toBe('c-labels');
    await form.getByLabel('Labels').fill('env=prod, customer=acme');
    problems.push(...(await axeProblems(admin, 'admin computer editor')));
    await form.getByRole('button', { name: 'Save' }).click();
    const row = admin.locator(`tr[data-computer="${web}"]`);
    await row.getByText('customer=acme').waitFor();
    await row.getByText('env=prod').waitFor();

    // A team, a member, a grant by label.
    await go(admin, 'Teams');
    await admin.getByText('No teams yet').waitFor();
    await admin.getByRole('button', { name: 'Add team' }).click();
    await admin.getByLabel('Name').fill('Ops');
    await admin.getByLabel('Description').fill('Production on-call');
    await admin.getByRole('button', { name: 'Save' }).click();
    const detail = admin.locator('section.team-detail');
    await detail.getByRole('heading', { name: 'Team Ops' }).waitFor();
    const ivanOption = await admin.locator('#team-person option', { hasText: `${inTeam.login} (` }).getAttribute('value');
    await admin.getByLabel('Person to add').selectOption(ivanOption!);
    await admin.getByRole('button', { name: 'Add member' }).click();
    await detail.locator(`li[data-member="${inTeam.login}"]`).waitFor();
    await admin.getByLabel('Computers labelled').fill('env=prod');
    await admin.getByRole('button', { name: 'Grant', exact: true }).click();
    await detail.locator('li[data-grant="env=prod"]').waitFor();
    await admin.locator('tr[data-team="Ops"] td[data-label="Grants"]', { hasText: '1' }).waitFor();
    await screenshot(admin, 'teams-grant-by-label');
    problems.push(...(await axeProblems(admin, 'admin /admin/teams')));

    // The technician in the team: recent connections on top, then the list with search and label filter.
    await signIn(tech, base, inTeam);
    await tech.getByRole('heading', { name: 'Recent connections' }).waitFor();
    await tech.locator(`li[data-recent="${web}"]`).getByRole('link', { name: `Connect to ${web} with SSH` }).waitFor();
    await tech.locator(`tr[data-computer="${web}"]`).waitFor();
    await tech.locator(`tr[data-computer="${open}"]`).waitFor();
    const listed = () => tech.locator('table.list tbody tr[data-computer]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-computer')));
    expect((await listed()).sort()).toEqual([open, web].sort()); // dev: restricted, no matching label
    await tech.getByLabel('Filter by label').selectOption('env=prod');
    await expect.poll(listed).toEqual([web]);
    await tech.getByLabel('Filter by label').selectOption('env=dev');
    await expect.poll(listed).toEqual([open]);
    await tech.getByLabel('Filter by label').selectOption('');
    await tech.getByLabel('Search computers').fill('acme');
    await expect.poll(listed).toEqual([web]);
    await screenshot(tech, 'technician-home-recent-and-label-filter');
    problems.push(...(await axeProblems(tech, 'technician /')));

    // A technician of the same organization outside the team: the open computer only, and no recent connections.
    await signOut(tech);
    await signIn(tech, base, outside);
    await tech.locator(`tr[data-computer="${open}"]`).waitFor();
    expect(await listed()).toEqual([open]);
    await tech.getByText('Your recent connections appear here after your first session.').waitFor();
    expect((await tech.request.get(`${base}/api/v1/computers/${webId}`)).status()).toBe(404);

    expect(problems).toEqual([]);
    expect([...bAdmin.errors, ...bTech.errors].filter((e) => !/status of 40[34]/.test(e))).toEqual([]);
  }, 240_000);
});
