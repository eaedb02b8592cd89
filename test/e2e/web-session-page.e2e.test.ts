import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Database } from '../../core/db/database.js';
import { createPerson } from '../../gateway/auth/index.js';
import { JIT_PRESETS } from '../../provisioner/jit-settings.js';
import { JitFixture } from '../fixtures/jit-fixture.js';
import { sshHostAvailable, type SshHostHandle } from '../harness/ssh-host.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { startSshWebRig, waitFor, type SshWebRig } from './web-rig.js';
import { signIn, type Person } from './web-steps.js';

/**
 * Issue 17 (defects 3, 4, 5): the session page as people use it, on the same
 * real pieces as web-terminal.e2e.test.ts. Every provisioning step reaches
 * the page in order on every connect; Extend offers only what fits under the
 * computer's maximum; the page is focused (no navigation, End session), asks
 * before leaving, and Back/Forward never silently opens a new JIT account.
 *
 * The browser terminal page on the real pieces, wired here in-process the
 * way main.ts will wire them: the auth plugin (sign-in, CSRF), the admin API
 * (`GET /computers`), the terminal websocket (gateway/ssh) with the JIT engine
 * behind BullMQ on the real test Redis, the real recorder, and a real sshd
 * test host. A technician signs in with TOTP, opens SSH from the Sessions
 * page in a new tab, sees the provisioning progress and the JIT account,
 * runs `id`; an admin watches the session live (read-only xterm) and
 * terminates it; the account is gone from the host afterwards.
 */
const redisSocket = inject('redisSocket');
const why = [chromiumAvailable(), sshHostAvailable(), redisSocket ? { ok: true } : { ok: false, reason: 'no test Redis' }].find((a) => !a.ok)?.reason;
const STORE = 'e2e-ssh';

describe.skipIf(why !== undefined)(`session pages on the real gateway pieces${why ? ` (skipped: ${why})` : ''}`, () => {
  let rig: SshWebRig;
  let host: SshHostHandle;
  let db: Database;
  let fx: JitFixture;
  let b: BrowserHandle;
  let b2: BrowserHandle;
  let base = '';

  beforeAll(async () => {
    rig = await startSshWebRig({ redisSocket: redisSocket!, prefix: `jg-sp-${randomBytes(4).toString('hex')}`, store: STORE });
    ({ host, db, fx, base } = rig);
    b = await launchBrowser();
    b2 = await launchBrowser();
  }, 300_000);

  afterAll(async () => {
    await b?.close();
    await b2?.close();
    await rig?.close();
  }, 60_000);

  it('shows every provisioning step in order on each connect; Extend fits the maximum; focused page; Back/Forward offers a new session instead of opening one', async () => {
    const org = await fx.organization();
    const tech: Person = { login: `sam${randomBytes(2).toString('hex')}`, displayName: 'Sam Tech', password: `pw-${randomUUID()}` };
    await createPerson(db, { login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: org.id, password: tech.password });
    // 90-minute maximum, 60-minute default lease: about 30 minutes of room to extend
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local', maxSessionMinutes: 90 }, { orgId: org.id, localStore: STORE, domainStore: STORE });
    await db.query("UPDATE computers SET address = $2, ssh_port = $3, protocols = '{ssh}', policy = jsonb_build_object('sshHostKeySha256', $4::text) WHERE id = $1", [pc.id, host.address, host.port, host.hostKeySha256]);
    const sessions = async () => Number((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM sessions WHERE computer_id = $1', [pc.id]))[0]!.n);

    const page = await b.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.type());
      void d.accept();
    });
    await signIn(page, base, tech, 'session-page');
    const url = `${base}/terminal/${encodeURIComponent(pc.id)}`;

    // Defect 3: several connects, each with the exact ordered list of steps.
    for (let i = 0; i < 3; i++) {
      // from the Sessions page each time: Chromium turns a navigation to the URL it shows into a reload,
      // which keeps the entry's "session already ran" mark (that case is the Back/Forward one below)
      await page.goto(`${base}/`);
      await page.getByRole('navigation', { name: 'Main' }).waitFor();
      await page.goto(url);

      const account = await waitFor('the JIT account', 120_000, async () => (await page.getByTestId('jit-account').textContent().catch(() => null)) || undefined);
      const steps = await page.getByTestId('progress-steps').locator('li').allTextContents();
      const groupSteps = rig.store.groupsOnCreate ? ['added to admins…'] : ['adding to admins…'];
      expect(steps).toEqual(['creating account…', `account ${account} ready…`, ...groupSteps, `connecting to ${pc.name}…`]);
      // Defect 5: a focused page, no main navigation, an explicit End session
      expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0);
      await page.getByTestId('end-session').click();
      await page.getByTestId('terminal-status').getByText('You ended the session.').waitFor();
      await waitFor('the JIT account to be deleted', 120_000, async () => ((await host.exec(`id ${account}`)).code !== 0 ? true : undefined));
    }
    expect(dialogs.filter((d) => d === 'confirm')).toHaveLength(3);

    // Defect 4: only lengths that fit under the maximum; none once the lease is at it.
    await page.goto(`${base}/`);
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    await page.goto(url);
    await page.getByTestId('jit-account').waitFor({ timeout: 120_000 });
    const options = async () => (await page.getByTestId('extend-minutes').locator('option').evaluateAll((os) => os.map((o) => Number(o.getAttribute('value')))));
    const first = await options();
    expect(Math.max(...first)).toBeLessThanOrEqual(30);
    expect(Math.max(...first)).toBeGreaterThanOrEqual(29);
    await page.getByTestId('extend-minutes').selectOption(String(Math.max(...first)));
    await page.getByTestId('extend').click();
    await page.getByTestId('extend-max').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('extend').count()).toBe(0);
    await screenshot(page, 'session-page-at-maximum');

    // Defect 5: leaving asks first (beforeunload); Forward back to the page offers a new session, creates none.
    await page.locator('.xterm').click();
    await page.keyboard.type('true\n');
    const before = await sessions();
    await page.goBack();
    await page.getByRole('navigation', { name: 'Main' }).waitFor();
    expect(dialogs).toContain('beforeunload');
    await page.goForward();
    await page.getByTestId('session-ended').waitFor();
    await screenshot(page, 'session-page-ended');
    expect(await sessions()).toBe(before);
    await page.getByRole('button', { name: 'Start a new session' }).click();
    await page.getByTestId('jit-account').waitFor({ timeout: 120_000 });
    expect(await sessions()).toBe(before + 1);
    await page.getByTestId('end-session').click();
    await page.getByTestId('terminal-status').getByText('You ended the session.').waitFor();
    expect(b.errors).toEqual([]);
  }, 600_000);
});
