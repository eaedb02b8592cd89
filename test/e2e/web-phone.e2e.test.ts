import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cookie, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../core/audit.js';
import { loadAuditKey } from '../../core/audit-key.js';
import type { Database } from '../../core/db/database.js';
import { CoreErrors, JitgateError } from '../../core/errors.js';
import { silentLogger } from '../../core/logging.js';
import { checkCsrfQuery, createPerson } from '../../gateway/auth/index.js';
import type { Principal } from '../../gateway/auth/principal.js';
import { terminalRoutes } from '../../gateway/ssh/terminal.route.js';
import { evidenceSource } from '../../recorder/evidence-export.js';
import { loadEvidenceSigner } from '../../recorder/evidence-key.js';
import { SearchIndexer } from '../../recorder/search-index.js';
import { createRecorder } from '../../recorder/session-recorder.js';
import { loadSigningKey } from '../../recorder/signing-key.js';
import type { MemoryLiveSessions } from '../fixtures/api-fixture.js';
import { databaseFactories } from '../harness/databases.js';
import { axeProblems } from './axe.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { layoutProblems } from './phone-layout.js';
import { startWebRig, type WebRig } from './web-rig.js';
import { changeAdminSetPassword, firstRunSetup, keepRecoveryCodes, signIn, totpCode, type Person } from './web-steps.js';

/**
 * Issue 17, "browser-tested at desktop and mobile width; axe-core on every
 * page": every routed page, for each role that may open it, at phone size
 * (390x844) and, for what web-usability.e2e.test.ts does not already walk,
 * at desktop size (1280x800), with data on them (a computer editor with an
 * error, a replay with its evidence controls, an audit trail, search hits, a
 * pending access request, a live session). On each: no serious or critical
 * axe-core violation, no sideways scrolling, every control reachable, tables
 * that fit or scroll in their own box (phone-layout.ts). One Chromium, one
 * profile: the roles' sign-ins are kept as cookie jars and swapped.
 */
const browserOk = chromiumAvailable();
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

describe.skipIf(!browserOk.ok)(`every page at phone and desktop width${browserOk.ok ? '' : ` (skipped: ${browserOk.reason})`}`, () => {
  let db: Database;
  let rig: WebRig;
  let b: BrowserHandle;
  let page: Page;
  let base = '';
  let dataDir = '';
  const tag = randomBytes(3).toString('hex');
  const orgId = randomUUID();
  const orgName = `Phone org ${tag}`;
  const web01 = { id: randomUUID(), name: `web01-${tag}` };
  const db01 = { id: randomUUID(), name: `db01-${tag}` };
  const sessionId = randomUUID();
  const liveId = randomUUID();
  let recordingId = '';
  let requestId = '';
  let teamName = '';
  const admin: Person = { login: `pa${tag}`, displayName: 'Ada Admin', password: `pw-${randomUUID()}` };
  const auditor: Person = { login: `pu${tag}`, displayName: 'Abe Auditor', password: `pw-${randomUUID()}` };
  const tech: Person = { login: `pt${tag}`, displayName: 'Tess Technician', password: `pw-${randomUUID()}` };
  const jars = new Map<string, Cookie[]>();
  const problems: string[] = [];

  beforeAll(async () => {
    db = await databaseFactories().find((f) => f.label === 'pglite')!.open();
    dataDir = mkdtempSync(join(tmpdir(), 'jg-phone-'));
    const auditKey = loadAuditKey({ dataDir });
    const recordingKey = loadSigningKey({ dataDir });
    const audit = new AuditLog(db, { key: auditKey });
    const rec = createRecorder({ db, audit, log: silentLogger(), dir: join(dataDir, 'recordings'), signingKey: recordingKey });
    const refuse = (computer: string) => Promise.reject(new JitgateError(CoreErrors.JIT_ERR_ACCESS_DENIED, { computer }));
    rig = await startWebRig({
      db, audit,
      stores: [{ name: 'linux-ssh', type: 'ssh', url: 'ssh://192.0.2.10:22', organizations: null, groups: ['sudo'], allowedContainers: null }],
      api: { recordingFiles: rec, evidence: evidenceSource({ db, store: rec.store, recordingKey, auditKey, signer: loadEvidenceSigner({ dataDir }) }) },
      apiPlugins: ({ log }) => [terminalRoutes({ broker: { open: (req) => refuse(req.computerRef) }, recorder: rec, audit, checkCsrf: checkCsrfQuery, log })],
    });
    base = rig.base;

    // An organization with two computers: one a technician connects to, one that needs an approved request.
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1, $2, $3)', [orgId, orgName, String(10_000_000 + randomBytes(3).readUIntBE(0, 3))]);
    const jit = JSON.stringify({ enabled: true, deleteOnCheckIn: true, adminGroups: ['sudo'], accountType: 'local', maxSessionMinutes: 60 });
    await db.query(`INSERT INTO computers (id, organization_id, name, address, protocols, local_store, jit, labels) VALUES ($1,$2,$3,'192.0.2.21','{ssh,rdp}','linux-ssh',$4,$5)`, [
      web01.id, orgId, web01.name, jit, JSON.stringify({ env: 'production', team: 'web' }),
    ]);
    await db.query(`INSERT INTO computers (id, organization_id, name, address, protocols, local_store, jit, policy) VALUES ($1,$2,$3,'192.0.2.22','{ssh}','linux-ssh',$4,$5)`, [
      db01.id, orgId, db01.name, jit, JSON.stringify({ requireApproval: true }),
    ]);

    // An ended SSH session with its recording (long lines, as terminals print them), indexed for search.
    await db.query(
      "INSERT INTO sessions (id, person_login, computer_id, computer_name, protocol, account_type, account_name, state, lease_expires_at, started_at) VALUES ($1,$2,$3,$4,'ssh','local',$5,'active', now() + interval '1 hour', now())",
      [sessionId, tech.login, web01.id, web01.name, `${tech.login}_k3x9q2`],
    );
    const term = await rec.startTerminal({ sessionId, personLogin: tech.login, computerName: web01.name, account: `${tech.login}_k3x9q2`, protocol: 'ssh', startedAt: new Date() }, { cols: 160, rows: 24, recordInput: false });
    term.output(Buffer.from(`${tech.login}_k3x9q2@${web01.name}:~$ sudo systemctl restart nginx-phone-${tag} && journalctl -u nginx --since today --no-pager | grep -E 'error|warn' | tail -n 50\r\n`));
    term.output(Buffer.from(`${'x'.repeat(150)}\r\n${tech.login}_k3x9q2@${web01.name}:~$ `));
    recordingId = term.recordingId;
    await term.close();
    await db.query("UPDATE sessions SET state = 'ended', ended_at = now(), end_reason = 'closed' WHERE id = $1", [sessionId]);
    await new SearchIndexer({ db, store: rec.store, log: silentLogger() }).index(recordingId);

    // A session someone is in right now.
    await db.query(
      "INSERT INTO sessions (id, person_login, computer_id, computer_name, protocol, account_type, account_name, state, lease_expires_at, started_at) VALUES ($1,$2,$3,$4,'ssh','local',$5,'active', now() + interval '1 hour', now())",
      [liveId, tech.login, web01.id, web01.name, `${tech.login}_m2p7d1`],
    );
    (rig.live as MemoryLiveSessions).live.set(liveId, {
      sessionId: liveId, personLogin: tech.login, computerName: web01.name, protocol: 'ssh', account: `${tech.login}_m2p7d1`, startedAt: new Date().toISOString(), gateway: `gw-${tag}`,
    });

    b = await launchBrowser(PHONE);
    page = await b.newPage();
    page.on('dialog', (d) => void d.dismiss());
  }, 300_000);

  afterAll(async () => {
    await b?.close();
    await rig?.close();
    await db?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  /** Axe and the layout checks on the page as it is now. */
  async function check(where: string): Promise<void> {
    const size = page.viewportSize()!;
    const label = `${where} @${size.width}`;
    problems.push(...(await axeProblems(page, label)), ...(await layoutProblems(page, label)));
    await screenshot(page, `phone-${size.width}-${where.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '')}`);
  }

  /** Open `path` as the signed-in person, wait for its heading (and `ready`), check it. */
  async function visit(who: string, path: string, heading: string | RegExp, ready?: () => Promise<unknown>): Promise<void> {
    await page.goto(base + path);
    await page.getByRole('heading', { level: 1, name: heading }).first().waitFor();
    await ready?.();
    await check(`${who} ${path}`);
  }

  async function as(who: string): Promise<void> {
    await b.context.clearCookies();
    await b.context.addCookies(jars.get(who)!);
  }
  const keep = async (who: string) => jars.set(who, await b.context.cookies());
  const csrf = async () => ((await (await page.request.get(`${base}/api/v1/auth/me`)).json()) as { csrfToken: string }).csrfToken;
  const personId = async (login: string) => (await db.query<{ id: string }>('SELECT id FROM people WHERE login = $1', [login]))[0]!.id;
  const drain = () => problems.splice(0, problems.length);

  it('first run, an invitation, enrolment, recovery codes and a forced password change, at phone width', async () => {
    await page.goto(base + (await rig.setupPath()));
    await page.getByRole('heading', { level: 1, name: 'Set up jitgate' }).waitFor();
    await check('setup');
    await firstRunSetup(page, base + (await rig.setupPath()), admin);
    await keep('admin');

    // the people the other tests sign in as; the technician must choose their own password
    await createPerson(db, { login: auditor.login, displayName: auditor.displayName, role: 'auditor', organizationId: orgId, password: auditor.password });
    await createPerson(db, { login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: orgId, password: tech.password });
    await db.query('UPDATE people SET must_change_password = true WHERE login = $1', [tech.login]);
    // the organization's admin approves access requests (a global admin is no approver of an organization's requests)
    await createPerson(db, { login: `po${tag}`, displayName: 'Olga Org-Admin', role: 'org_admin', organizationId: orgId, password: `pw-${randomUUID()}` });
    await db.query('UPDATE sessions SET person_id = $2 WHERE id = $1', [sessionId, await personId(tech.login)]);

    // an invitation link, opened by someone without a sign-in
    const inv = await page.request.post(`${base}/api/v1/invitations`, { headers: { 'x-csrf-token': await csrf() }, data: { login: `pi${tag}`, displayName: 'Ivy Invited', role: 'technician', organizationId: orgId } });
    expect(inv.status()).toBe(201);
    const invPath = ((await inv.json()) as { path: string }).path;
    await b.context.clearCookies();
    await page.goto(base + invPath);
    await page.getByRole('heading', { level: 1, name: 'Join jitgate' }).waitFor();
    await page.getByTestId('invitation').waitFor();
    await check('invite');

    // the technician: sign-in, TOTP enrolment, recovery codes, the forced password change
    await b.context.clearCookies();
    await page.goto(`${base}/sign-in`);
    await page.getByRole('heading', { level: 1, name: 'Sign in to jitgate' }).waitFor();
    await check('sign-in');
    await page.getByLabel('Login').fill(tech.login);
    await page.getByLabel('Password').fill(tech.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    const secretEl = page.getByTestId('totp-secret');
    await expect.poll(async () => (await secretEl.textContent())?.replace(/\s/g, '') ?? '', { timeout: 30_000 }).toMatch(/^[A-Z2-7]{16,}$/);
    await page.getByRole('img', { name: /QR code/ }).waitFor();
    await check('totp-enrolment');
    tech.secret = (await secretEl.textContent())!.replace(/\s/g, '');
    await page.getByLabel('Code from your app').fill(await totpCode(tech.secret));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByTestId('recovery-codes').locator('li').first().waitFor();
    await check('recovery-codes');
    await keepRecoveryCodes(page, 'phone-tech');
    await page.getByTestId('must-change-password').waitFor();
    await check('change-password');
    await changeAdminSetPassword(page, tech);
    await page.locator('nav[aria-label="Main"]').waitFor({ state: 'attached' });
    await keep('tech');

    await b.context.clearCookies();
    await signIn(page, base, auditor);
    await keep('auditor');
    expect(drain()).toEqual([]);
  }, 240_000);

  it('every admin page at phone width, with data on it', async () => {
    await as('admin');
    // a team with a member, and a technician's pending access request
    const team = await page.request.post(`${base}/api/v1/teams`, { headers: { 'x-csrf-token': await csrf() }, data: { organizationId: orgId, name: (teamName = `Night shift ${tag}`), description: 'Weekend and night on-call for the web servers' } });
    expect(team.status()).toBe(201);
    const techId = await personId(tech.login);
    const p: Principal = { personId: techId, login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: orgId, authSessionId: 'e2e' };
    requestId = (await rig.requests.create(p, { computerId: db01.id, reason: 'Rotate the database TLS certificate before it expires tonight (INC-4711)', minutes: 30, ticket: 'INC-4711' })).id;

    await visit('admin', '/', 'Sessions', () => page.locator(`tr[data-computer="${web01.name}"]`).waitFor());
    // the folded navigation, open
    await page.getByRole('button', { name: 'Menu', exact: true }).click();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit' }).waitFor();
    await check('admin menu open');

    await visit('admin', '/admin/computers', 'Computers', () => page.locator(`tr[data-computer="${web01.name}"]`).waitFor());
    // the editor of a new computer after a Save with errors: the summary on top
    await page.getByRole('button', { name: 'Add computer' }).click();
    const form = page.locator('form.editor');
    await form.getByLabel('Address (host name or IP)').fill('192.0.2.30');
    await form.getByRole('button', { name: 'Save' }).click();
    await form.getByTestId('form-errors').waitFor();
    await check('admin computer editor with errors');
    await form.getByRole('button', { name: 'Cancel' }).click();
    await page.locator(`tr[data-computer="${web01.name}"]`).getByRole('button', { name: 'Edit' }).click();
    await page.locator('form.editor').waitFor();
    await check('admin computer editor');

    await visit('admin', '/admin/stores', 'Account stores');
    await visit('admin', '/admin/people', 'People', () => page.locator(`tr[data-login="${tech.login}"]`).waitFor());
    await page.locator(`tr[data-login="${tech.login}"]`).getByRole('button', { name: 'Edit' }).click();
    await check('admin people edit row');
    await page.locator(`tr[data-login="${tech.login}"]`).getByRole('button', { name: 'Existing accounts' }).click();
    await page.getByRole('heading', { name: new RegExp(`accounts`, 'i') }).first().waitFor();
    await check('admin person accounts');
    await page.goto(`${base}/admin/people`);
    await page.getByRole('button', { name: 'Add person' }).click();
    await page.locator('form.editor').waitFor();
    await check('admin add person');
    await page.goto(`${base}/admin/people`);
    await page.getByRole('button', { name: 'Invite person' }).click();
    await page.locator('form[aria-labelledby="invite-title"]').waitFor();
    await check('admin invite person');

    await visit('admin', '/admin/teams', 'Teams', () => page.getByRole('button', { name: `Members and grants of ${teamName}` }).waitFor());
    await page.getByRole('button', { name: `Members and grants of ${teamName}` }).click();
    await page.locator('.team-detail').waitFor();
    await check('admin team detail');
    await visit('admin', '/admin/organizations', 'Organizations', () => page.getByRole('cell', { name: orgName }).waitFor());
    await page.getByRole('button', { name: 'Add organization' }).click();
    await page.locator('form.editor').waitFor();
    await check('admin organization editor');
    await visit('admin', '/admin/sign-ins', 'Sign-ins');
    await visit('admin', '/requests', 'Requests', () => page.locator(`article[data-request="${requestId}"]`).first().waitFor());
    await visit('admin', `/requests/${requestId}`, 'Access request', () => page.getByText('Rotate the database TLS certificate').first().waitFor());
    await visit('admin', '/live', 'Live sessions', () => page.locator('tbody tr', { hasText: tech.login }).waitFor());
    await visit('admin', `/live/${liveId}/watch`, 'Watching a session');
    await visit('admin', '/recordings', 'Recordings', () => page.locator('tbody tr', { hasText: web01.name }).waitFor());
    await visit('admin', `/recordings/${recordingId}`, 'Replay', () => page.getByTestId('session-evidence').waitFor());
    await visit('admin', '/search', 'Search');
    await page.getByLabel('Search for').fill(`nginx-phone-${tag}`);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByTestId('hits').locator('li').first().waitFor();
    await check('admin search hits');
    await visit('admin', '/audit', 'Audit', () => page.locator('tbody tr').first().waitFor());
    await visit('admin', '/account', 'My account');
    await visit('admin', '/no/such/page', 'Not found');
    expect(drain()).toEqual([]);
  }, 300_000);

  it('every auditor page at phone width', async () => {
    await as('auditor');
    await visit('auditor', '/', 'Recordings', () => page.locator('tbody tr', { hasText: web01.name }).waitFor());
    await visit('auditor', `/recordings/${recordingId}`, 'Replay', () => page.getByTestId('session-evidence').waitFor());
    await visit('auditor', '/search', 'Search');
    await page.getByLabel('Search for').fill(`nginx-phone-${tag}`);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByTestId('hits').locator('li').first().waitFor();
    await check('auditor search hits');
    await visit('auditor', '/audit', 'Audit', () => page.locator('tbody tr').first().waitFor());
    await visit('auditor', '/live', 'Live sessions', () => page.locator('tbody tr', { hasText: tech.login }).waitFor());
    await visit('auditor', '/requests', 'Requests', () => page.locator(`article[data-request="${requestId}"]`).first().waitFor());
    await visit('auditor', '/account', 'My account');
    await visit('auditor', '/admin/computers', 'Not available for your role');
    expect(drain()).toEqual([]);
  }, 240_000);

  it('every technician page at phone width, and the sign-in code step', async () => {
    await as('tech');
    await visit('technician', '/', 'Sessions', () => page.locator(`[data-recent="${web01.name}"]`).waitFor());
    await visit('technician', '/requests', 'Requests', () => page.locator(`article[data-request="${requestId}"]`).first().waitFor());
    await visit('technician', `/requests/${requestId}`, 'Access request');
    await visit('technician', '/account', 'My account');
    await visit('technician', '/recordings', 'Not available for your role');
    // the session pages (the broker refuses: the page says so in words)
    await page.goto(`${base}/terminal/${web01.id}`);
    await page.getByTestId('close-reason').waitFor();
    await check('technician /terminal');
    await page.goto(`${base}/rdp/${web01.id}`);
    await page.getByRole('heading', { level: 1 }).first().waitFor();
    await page.getByRole('button', { name: 'End session' }).or(page.getByTestId('close-reason')).first().waitFor();
    await check('technician /rdp');

    // the admin signs in again: the code step
    await b.context.clearCookies();
    await page.goto(`${base}/sign-in`);
    await page.getByLabel('Login').fill(admin.login);
    await page.getByLabel('Password').fill(admin.password);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByLabel('Authentication code').waitFor();
    await check('sign-in code step');
    await page.getByLabel('Authentication code').fill(await totpCode(admin.secret!));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('nav[aria-label="Main"]').waitFor({ state: 'attached' });
    await keep('admin');
    expect(drain()).toEqual([]);
  }, 240_000);

  it('at desktop width, the pages web-usability does not walk', async () => {
    await page.setViewportSize(DESKTOP);
    await as('admin');
    await visit('admin', '/admin/teams', 'Teams', () => page.getByRole('button', { name: `Members and grants of ${teamName}` }).waitFor());
    await page.getByRole('button', { name: `Members and grants of ${teamName}` }).click();
    await page.locator('.team-detail').waitFor();
    await check('admin team detail');
    await visit('admin', '/admin/people', 'People', () => page.locator(`tr[data-login="${tech.login}"]`).waitFor());
    await page.locator(`tr[data-login="${tech.login}"]`).getByRole('button', { name: 'Existing accounts' }).click();
    await page.getByRole('heading', { name: /accounts/i }).first().waitFor();
    await check('admin person accounts');
    await visit('admin', '/requests', 'Requests', () => page.locator(`article[data-request="${requestId}"]`).first().waitFor());
    await visit('admin', `/requests/${requestId}`, 'Access request', () => page.getByText('Rotate the database TLS certificate').first().waitFor());
    await visit('admin', `/recordings/${recordingId}`, 'Replay', () => page.getByTestId('session-evidence').waitFor());
    await visit('admin', '/search', 'Search');
    await page.getByLabel('Search for').fill(`nginx-phone-${tag}`);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByTestId('hits').locator('li').first().waitFor();
    await check('admin search hits');
    await visit('admin', '/no/such/page', 'Not found');
    await as('auditor');
    await visit('auditor', '/', 'Recordings', () => page.locator('tbody tr', { hasText: web01.name }).waitFor());
    await visit('auditor', '/audit', 'Audit', () => page.locator('tbody tr').first().waitFor());
    await visit('auditor', '/requests', 'Requests', () => page.locator(`article[data-request="${requestId}"]`).first().waitFor());
    await as('tech');
    await visit('technician', '/requests', 'Requests', () => page.locator(`article[data-request="${requestId}"]`).first().waitFor());
    await visit('technician', `/requests/${requestId}`, 'Access request');
    expect(drain()).toEqual([]);
    expect(b.errors.filter((e) => !/WebSocket|websocket|Failed to load resource/.test(e))).toEqual([]);
  }, 240_000);
}, 300_000);
