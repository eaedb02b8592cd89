import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Database } from '../../core/db/database.js';
import type { DirRecordingFiles } from '../fixtures/api-fixture.js';
import { startWebRig, type WebRig } from './web-rig.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { addComputer, addOrganization, addPerson, go, firstRunSetup, restrictAndShare, signIn, signOut, type Person } from './web-steps.js';

/**
 * The web app against the real identity module (gateway/auth) and the real
 * administration API (gateway/api) on PGlite, in a real chromium: first-run
 * setup with TOTP enrollment, organizations, computers with a server-side
 * validation error shown beside its field, people, restricted computer
 * shared with a technician who then signs in and sees it, a recording
 * replayed with asciinema-player under the CSP, and the audit trail.
 * Live sessions and recording files come from the API's in-memory test
 * doubles; the terminal itself is covered by web.e2e.test.ts against
 * `jitgate serve`.
 */
const browserOk = chromiumAvailable();

describe.skipIf(!browserOk.ok)(`web app on the real identity and admin API${browserOk.ok ? '' : ` (skipped: ${browserOk.reason})`}`, () => {
  let rig: WebRig;
  let db: Database;
  let files: DirRecordingFiles;
  let base = '';
  let setupPath = '';
  let b: BrowserHandle;
  const tag = randomBytes(3).toString('hex');

  beforeAll(async () => {
    rig = await startWebRig({ stores: [{ name: 'linux-ssh', type: 'ssh', url: 'ssh://192.0.2.10:22', organizations: null, groups: ['sudo'], allowedContainers: null }] });
    ({ db, files, base } = rig);
    setupPath = await rig.setupPath();
    b = await launchBrowser();
  }, 240_000);

  afterAll(async () => {
    await b?.close();
    await rig?.close();
  });

  it('admin sets up, configures a computer and shares it; the technician sees it; recordings replay; audit lists it all', async () => {
    const page = await b.newPage();
    const admin: Person = { login: `admin${tag}`, displayName: 'First Admin', password: `pw-${randomUUID()}` };
    const tech: Person = { login: `tech${tag}`, displayName: 'Tess Tech', password: `pw-${randomUUID()}` };
    const org = `acme${tag}`;
    const computer = `web${tag}`;

    expect(setupPath).toMatch(/^\/setup#/);
    await firstRunSetup(page, base + setupPath, admin);
    // the link works once
    const again = await b.newPage();
    await again.goto(base + setupPath);
    await again.getByText('This setup link is not valid').waitFor();
    await again.close();

    await addOrganization(page, org, String(1000 + Math.floor(Math.random() * 8999)));
    await screenshot(page, 'organizations');
    await go(page, 'Account stores');
    await page.getByRole('button', { name: 'Test connection' }).click();
    await page.getByText('reachable').waitFor();
    await screenshot(page, 'account-stores');
    await addComputer(page, { organization: org, name: computer, address: '192.0.2.10', localStore: 'linux-ssh', adminGroups: 'sudo', accountType: 'local' });
    await addPerson(page, { ...tech, role: 'technician', organization: org });
    await screenshot(page, 'people');
    await restrictAndShare(page, computer, tech.login);

    // four-eyes in the editor: the wait and grace fields appear with the checkbox; the API's words for a bad value show beside it
    await page.locator(`tr[data-computer="${computer}"]`).getByRole('button', { name: 'Edit' }).click();
    const editor = page.locator('form.editor');
    await editor.getByLabel(/^Require a moderator/).check();
    await editor.getByLabel('Wait for a first moderator (minutes)').fill('0');
    await editor.getByRole('button', { name: 'Save' }).click();
    await editor.getByTestId('form-errors').getByText(/at least 1 minute/).waitFor();
    await editor.getByLabel('Wait for a first moderator (minutes)').fill('7');
    await editor.getByRole('button', { name: 'Save' }).click();
    await editor.waitFor({ state: 'detached' });
    const [moderated] = await db.query<{ policy: unknown }>('SELECT policy FROM computers WHERE name = $1', [computer]);
    const pol = (typeof moderated!.policy === 'string' ? JSON.parse(moderated!.policy) : moderated!.policy) as Record<string, unknown>;
    expect(pol).toMatchObject({ requireModerator: true, moderatorWaitMinutes: 7 });
    expect(pol.moderatorGraceSeconds).toBeUndefined();

    // inventory as YAML (global admins): export, import a new computer from a file, a refused import changes nothing
    const imported = `yaml${tag}`;
    await go(page, 'Computers');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export YAML' }).click()]);
    expect(download.suggestedFilename()).toBe('jitgate-inventory.yaml');
    const exported = readFileSync((await download.path())!, 'utf8');
    expect(exported).toContain(`name: ${computer}`);
    expect(exported).toContain(`name: ${org}`);
    await page.getByRole('button', { name: 'Import YAML' }).click();
    const importForm = page.locator('#inventory-import');
    const newYaml = [
      'computers:',
      `  - organization: ${org}`,
      `    name: ${imported}`,
      '    address: 192.0.2.30',
      '    localStore: linux-ssh',
      '    jit: { adminGroups: [sudo], accountType: local }',
      '',
    ].join('\n');
    await importForm.getByLabel('YAML file').setInputFiles({ name: 'new.yaml', mimeType: 'application/yaml', buffer: Buffer.from(newYaml) });
    await expect.poll(() => importForm.getByLabel('Inventory YAML').inputValue()).toBe(newYaml);
    await importForm.getByRole('button', { name: 'Import', exact: true }).click();
    await importForm.getByRole('status').getByText('0 organizations and 1 computer applied').waitFor();
    await page.locator(`tr[data-computer="${imported}"]`).waitFor();
    await screenshot(page, 'computers-inventory-imported');
    const badYaml = [
      'computers:',
      `  - organization: ${org}`,
      `    name: bad name ${tag}`,
      '    address: 192.0.2.31',
      '    localStore: linux-ssh',
      '    jit: { accountType: local }',
      '',
    ].join('\n');
    await importForm.getByLabel('Inventory YAML').fill(badYaml);
    await importForm.getByRole('button', { name: 'Import', exact: true }).click();
    const importError = importForm.getByTestId('inventory-error');
    await importError.getByText('nothing changed').waitFor();
    expect(await importError.locator('li').allTextContents()).toEqual([
      expect.stringMatching(/^computers\.0\.name: letters, digits/),
      expect.stringMatching(/^computers\.0\.jit\.adminGroups: at least one JIT admin group/),
    ]);
    await screenshot(page, 'computers-inventory-refused');
    expect(await page.locator('tr[data-computer]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-computer')).sort())).toEqual([computer, imported].sort());
    await importForm.getByRole('button', { name: 'Close' }).click();

    // a recording of a session on that computer, as the recorder would leave it
    const [c] = await db.query<{ id: string; organization_id: string }>('SELECT id, organization_id FROM computers WHERE name = $1', [computer]);
    const [t] = await db.query<{ id: string }>('SELECT id FROM people WHERE login = $1', [tech.login]);
    const sessionId = randomUUID();
    await db.query(
      `INSERT INTO sessions (id, person_id, person_login, computer_id, computer_name, protocol, account_type, account_name, state, lease_expires_at, started_at, ended_at)
       VALUES ($1,$2,$3,$4,$5,'ssh','local',$6,'ended', now() + interval '1 hour', now(), now())`,
      [sessionId, t!.id, tech.login, c!.id, computer, `${tech.login}_k3x9q2`],
    );
    const cast = `{"version":2,"width":80,"height":24}\n[0.2,"o","$ id\\r\\n"]\n[0.4,"o","uid=1001(${tech.login}_k3x9q2) gid=1001\\r\\n"]\n`;
    const recId = randomUUID();
    await db.query('INSERT INTO recordings (id, session_id, kind, path, size_bytes, sha256, started_at) VALUES ($1,$2,$3,$4,$5,$6, now())', [
      recId, sessionId, 'asciicast', `/rec/${recId}.cast`, Buffer.byteLength(cast), 'ab'.repeat(32),
    ]);
    files.put(recId, cast);
    // and one that never started (guacd refused the connection): no file, nothing to replay
    const neverId = randomUUID();
    await db.query(
      "INSERT INTO recordings (id, session_id, kind, path, size_bytes, started_at, ended_at, never_started, manifest_seq) VALUES ($1,$2,'rdp',$3,0, now() - interval '1 minute', now(), true, 1)",
      [neverId, sessionId, `/rec/${neverId}.guac`],
    );

    await go(page, 'Recordings');
    const row = page.locator(`tr[data-recording="${recId}"]`);
    await row.waitFor();
    expect(await row.locator('[data-integrity]').getAttribute('data-integrity')).toBe('ok');
    const never = page.locator(`tr[data-recording="${neverId}"]`);
    await never.waitFor();
    expect(await never.locator('[data-state="never_started"]').textContent()).toBe('never started');
    expect(await never.getByRole('link', { name: 'Replay' }).count()).toBe(0);
    expect(await never.locator('td[data-label="Size"]').textContent()).toBe('—');
    expect(await page.locator('table.list').textContent()).not.toContain('null');
    await screenshot(page, 'recordings');
    await row.getByRole('link', { name: 'Replay' }).click();
    await page.locator('.ap-wrapper, .ap-player').first().waitFor();
    await page.locator('.ap-player').click(); // start playback
    await page.getByTestId('player').getByText(`${tech.login}_k3x9q2`).first().waitFor({ timeout: 30_000 });
    await screenshot(page, 'recording-replay');

    await go(page, 'Audit');
    await page.locator('tr[data-type="auth.bootstrap"]').first().waitFor();
    await page.locator('tr[data-type="recording.viewed"]').first().waitFor();
    await screenshot(page, 'audit');
    await page.getByLabel('Type').selectOption('recording.viewed');
    await page.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(async () => page.locator('tbody tr[data-type]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-type')))).toEqual(['recording.viewed']);
    const csvHref = await page.getByRole('link', { name: 'Export CSV' }).getAttribute('href');
    const csv = await page.request.get(base + csvHref!);
    expect(csv.status()).toBe(200);
    const csvText = await csv.text();
    expect(csvText).toContain('recording.viewed');
    expect(csvText).not.toContain('auth.bootstrap');

    await go(page, 'Live sessions');
    await screenshot(page, 'live-sessions');
    await go(page, 'My account');
    await screenshot(page, 'my-account');

    await signOut(page);
    await signIn(page, base, tech, 'technician');
    // a technician sees Sessions, not the administration pages
    const nav = page.getByRole('navigation', { name: 'Main' });
    expect(await nav.getByRole('link').allTextContents()).toEqual(['Sessions', 'My account']);
    const mine = page.locator(`tr[data-computer="${computer}"]`);
    await mine.waitFor();
    const ssh = mine.getByRole('link', { name: `Connect to ${computer} with SSH` });
    expect(await ssh.getAttribute('href')).toBe(`/terminal/${c!.id}`);
    await screenshot(page, 'technician-sessions');
    await page.setViewportSize({ width: 390, height: 844 });
    await screenshot(page, 'technician-sessions-390x844');
    expect(await page.evaluate<number>('document.documentElement.scrollWidth - document.documentElement.clientWidth')).toBeLessThanOrEqual(0);
    await page.setViewportSize({ width: 1280, height: 800 });
    // the gateway refuses what the UI hides
    const { csrfToken } = (await (await page.request.get(`${base}/api/v1/auth/me`)).json()) as { csrfToken: string };
    const forbidden = await page.request.post(`${base}/api/v1/organizations`, { headers: { 'x-csrf-token': csrfToken }, data: { name: `x${tag}`, sharedCode: '9999' } });
    expect(forbidden.status()).toBe(403);
    expect(((await forbidden.json()) as { code: string }).code).toBe('JIT_ERR_FORBIDDEN');

    // an admin revokes the technician's web sign-in on Sign-ins; the technician's next request is signed out
    const techCookie = `jitgate_session=${(await b.context.cookies(base)).find((k) => k.name === 'jitgate_session')!.value}`;
    const techMe = async () => (await (await fetch(`${base}/api/v1/auth/me`, { headers: { cookie: techCookie } })).json()) as { person: { login: string } | null };
    expect((await techMe()).person?.login).toBe(tech.login);
    await b.context.clearCookies(); // the admin signs in in this browser; the technician's session stays open on the gateway
    await signIn(page, base, admin);
    await go(page, 'Sign-ins');
    const techRow = page.locator(`tr[data-login="${tech.login}"]`);
    await techRow.waitFor();
    expect(await page.locator('tr[data-current]').getAttribute('data-login')).toBe(admin.login);
    await screenshot(page, 'sign-ins');
    page.once('dialog', (d) => void d.accept());
    await techRow.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('status').getByText(`${tech.login}'s sign-in was revoked`).waitFor();
    await techRow.waitFor({ state: 'detached' });
    await screenshot(page, 'sign-ins-revoked');
    expect((await techMe()).person).toBeNull();
    expect((await fetch(`${base}/api/v1/computers`, { headers: { cookie: techCookie } })).status).toBe(401);

    // the refused saves (no admin group; a moderator wait of 0 minutes) and the refused inventory import are the only failed requests the browser saw
    const refused = b.errors.filter((e) => e.includes('status of 400'));
    expect(refused).toHaveLength(3);
    expect(b.errors.filter((e) => !refused.includes(e))).toEqual([]);
   }, 420_000);
});
