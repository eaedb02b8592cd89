import { randomBytes, randomUUID } from 'node:crypto';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../core/db/database.js';
import { isJitgateError } from '../../core/errors.js';
import type { AccessService } from '../../gateway/access-policy.js';
import type { AccessRequestService } from '../../gateway/access-requests/index.js';
import { createPerson } from '../../gateway/auth/index.js';
import type { Principal } from '../../gateway/auth/principal.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { signIn, totpCode, type Person } from './web-steps.js';
import { startWebRig, type WebRig } from './web-rig.js';

/**
 * Access requests in a real chromium with two browser contexts: the
 * technician at a desk and the approver on a phone-sized screen, against the
 * real identity module, administration API and access-request routes on
 * PGlite. The approver reaches the request from its link, which leads to the
 * sign-in first and approves only with a fresh TOTP code; both pages follow
 * each other without a reload (approved, denied, expired). The gateway's own
 * access check is asked after each step.
 */
const browserOk = chromiumAvailable();

describe.skipIf(!browserOk.ok)(`access requests in the browser${browserOk.ok ? '' : ` (skipped: ${browserOk.reason})`}`, () => {
  let rig: WebRig;
  let db: Database;
  let base = '';
  let techB: BrowserHandle;
  let approverB: BrowserHandle;
  let access: AccessService;
  let service: AccessRequestService;
  let offset = 0;
  const tag = randomBytes(3).toString('hex');
  const orgId = randomUUID();
  const tech: Person & { id?: string } = { login: `tess${tag}`, displayName: 'Tess Tech', password: `pw-${randomUUID()}` };
  const approver: Person = { login: `ada${tag}`, displayName: 'Ada Admin', password: `pw-${randomUUID()}` };
  const computers: string[] = [];

  async function computer(name: string): Promise<string> {
    const id = randomUUID();
    await db.query(
      `INSERT INTO computers (id, organization_id, name, address, protocols, local_store, jit, policy) VALUES ($1,$2,$3,'192.0.2.10','{ssh}','linux',$4,$5)`,
      [id, orgId, name, JSON.stringify({ enabled: true, deleteOnCheckIn: true, adminGroups: ['sudo'], accountType: 'local', maxSessionMinutes: 60 }), JSON.stringify({ requireApproval: true })],
    );
    return id;
  }

  async function connect(computerId: string): Promise<string> {
    const rows = await db.query<{ id: string }>('SELECT id FROM people WHERE login = $1', [tech.login]);
    const p: Principal = { personId: rows[0]!.id, login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: orgId, authSessionId: 'e2e' };
    try {
      return (await access.computerForConnect(p, computerId, 'ssh')).name;
    } catch (err) {
      if (isJitgateError(err)) return err.code;
      throw err;
    }
  }

  async function request(page: Page, computerName: string, reason: string): Promise<string> {
    await page.goto(`${base}/requests`);
    await page.getByRole('heading', { name: 'Request access' }).waitFor();
    await page.getByLabel('Computer').selectOption({ label: computerName });
    await page.getByLabel('Reason').fill(reason);
    await page.getByLabel('Duration (minutes)').fill('15');
    await page.getByLabel('Ticket (optional)').fill('INC-77');
    await page.getByRole('button', { name: 'Request access' }).click();
    const card = page.locator('section[aria-label="My requests"] article', { hasText: computerName }).first();
    await card.waitFor();
    return (await card.getAttribute('data-request'))!;
  }

  const statusOf = (page: Page, id: string) => page.locator(`article[data-request="${id}"] [data-testid="request-status"]`).first();

  beforeAll(async () => {
    rig = await startWebRig({
      stores: [{ name: 'linux', type: 'ssh', url: 'ssh://192.0.2.10:22', organizations: null, groups: ['sudo'], allowedContainers: null }],
      now: () => new Date(Date.now() + offset),
    });
    ({ db, access, requests: service, base } = rig);
    await db.query('INSERT INTO organizations (id, name, shared_code) VALUES ($1,$2,$3)', [orgId, `acme${tag}`, String(10_000_000 + Math.floor(Math.random() * 89_999_999))]);
    await createPerson(db, { login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: orgId, password: tech.password });
    await createPerson(db, { login: approver.login, displayName: approver.displayName, role: 'org_admin', organizationId: orgId, password: approver.password });
    for (const n of ['approve', 'deny', 'expire']) computers.push(await computer(`${n}${tag}`));
    techB = await launchBrowser();
    approverB = await launchBrowser({ width: 390, height: 844 });
  }, 240_000);

  afterAll(async () => {
    await techB?.close();
    await approverB?.close();
    await rig?.close();
  });

  it('technician asks, approver approves from the link after sign-in and MFA; then a denial and an expiry, each seen live', async () => {
    const t = await techB.newPage();
    const a = await approverB.newPage();
    await signIn(t, base, tech, 'req-tech');
    expect(await connect(computers[0]!)).toBe('JIT_ERR_APPROVAL_REQUIRED');

    // 1. Approved. The technician asks; the status waits.
    await t.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /^Requests/ }).waitFor();
    const r1 = await request(t, `approve${tag}`, 'rotate the TLS certificate');
    await expect.poll(() => statusOf(t, r1).textContent(), { timeout: 30_000 }).toBe('waiting for 1 of 1 approval…');
    await screenshot(t, 'access-request-waiting');
    // The approver follows the link from the notification: sign-in first (the link alone does nothing).
    await a.goto(`${base}/requests/${r1}`);
    await a.getByRole('heading', { name: 'Sign in to jitgate' }).waitFor();
    expect(new URL(a.url()).searchParams.get('next')).toBe(`/requests/${r1}`);
    await signIn(a, base, approver, 'req-approver');
    await a.goto(`${base}/requests/${r1}`);
    const card = a.locator(`article[data-request="${r1}"]`);
    await card.getByText('rotate the TLS certificate').waitFor();
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.getByRole('button', { name: 'Confirm approval' }).waitFor();
    await screenshot(a, 'access-request-approve-mobile');
    // A wrong code is refused and approves nothing.
    await card.getByLabel('Authentication code').fill('000000');
    await card.getByRole('button', { name: 'Confirm approval' }).click();
    await card.getByRole('alert').getByText(/authenticator app/).waitFor();
    expect(await connect(computers[0]!)).toBe('JIT_ERR_APPROVAL_REQUIRED');
    await card.getByLabel('Authentication code').fill(await totpCode(approver.secret!));
    await card.getByRole('button', { name: 'Confirm approval' }).click();
    await expect.poll(() => card.getAttribute('data-state'), { timeout: 30_000 }).toBe('approved');
    // The technician's page follows without a reload.
    await expect.poll(() => statusOf(t, r1).textContent(), { timeout: 30_000 }).toMatch(/^approved: sessions may start for 1[45] more minutes$/);
    expect(await connect(computers[0]!)).toBe(`approve${tag}`);
    await screenshot(t, 'access-request-approved');

    // 2. Denied: the approver, on the Requests page, sees the new request arrive (badge and card) without reloading.
    await a.goto(`${base}/requests`);
    await a.getByRole('heading', { name: /^Waiting for you/ }).waitFor();
    const r2 = await request(t, `deny${tag}`, 'curious about the logs');
    // The approver's window is phone-sized: the navigation (and its badge) is folded behind Menu, so the badge is attached, not visible.
    await a.getByTestId('requests-waiting').waitFor({ state: 'attached', timeout: 30_000 });
    const card2 = a.locator(`section[aria-label="Waiting for you"] article[data-request="${r2}"]`);
    await card2.waitFor({ timeout: 30_000 });
    await card2.getByRole('button', { name: 'Deny' }).click();
    await card2.getByLabel('Authentication code').fill(await totpCode(approver.secret!));
    await card2.getByLabel('Comment (optional)').fill('use the staging copy');
    await card2.getByRole('button', { name: 'Confirm denial' }).click();
    await expect.poll(() => statusOf(t, r2).textContent(), { timeout: 30_000 }).toBe('denied');
    await t.locator(`article[data-request="${r2}"]`).getByText('use the staging copy').waitFor();
    expect(await connect(computers[1]!)).toBe('JIT_ERR_APPROVAL_REQUIRED');
    await screenshot(t, 'access-request-denied');

    // 3. Expired: nobody answers in time (the gateway's clock moves past the wait); the technician sees it.
    const r3 = await request(t, `expire${tag}`, 'weekend maintenance');
    await expect.poll(() => statusOf(t, r3).textContent(), { timeout: 30_000 }).toBe('waiting for 1 of 1 approval…');
    offset = 61 * 60_000;
    expect((await service.sweep()).expired).toBeGreaterThanOrEqual(1);
    await expect.poll(() => statusOf(t, r3).textContent(), { timeout: 30_000 }).toBe('expired');
    // The approved window of step 1 has run out too: no session starts any more.
    expect(await connect(computers[0]!)).toBe('JIT_ERR_APPROVAL_REQUIRED');
    expect(await connect(computers[2]!)).toBe('JIT_ERR_APPROVAL_REQUIRED');
    await screenshot(t, 'access-request-expired');

    const types = (await db.query<{ type: string }>("SELECT type FROM audit_events WHERE type LIKE 'access_request.%'")).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['access_request.requested', 'access_request.decided', 'access_request.approved', 'access_request.denied', 'access_request.expired']));
    expect(techB.errors.filter((e) => !e.includes('403') && !e.includes('401'))).toEqual([]);
    expect(approverB.errors.filter((e) => !e.includes('403') && !e.includes('401'))).toEqual([]);
  }, 300_000);
});
