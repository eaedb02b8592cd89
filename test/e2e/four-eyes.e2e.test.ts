import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Page } from 'playwright-core';
import { createPerson } from '../../gateway/auth/index.js';
import { JIT_PRESETS } from '../../provisioner/jit-settings.js';
import { sshHostAvailable } from '../harness/ssh-host.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { startSshWebRig, waitFor, type SshWebRig } from './web-rig.js';
import { go, signIn, type Person } from './web-steps.js';

/**
 * Four-eyes sessions in a real chromium with two browser contexts: the
 * technician opens SSH on a computer that requires a moderator and sees
 * "waiting for a moderator"; the organization's admin finds the session under
 * Live sessions → Sessions to moderate and opens it; the technician's session
 * connects and runs; the moderator leaves and the technician sees the pause,
 * then the end after the grace period. Real sshd host, Redis, BullMQ, PGlite.
 */
const redisSocket = inject('redisSocket');
const why = [chromiumAvailable(), sshHostAvailable(), redisSocket ? { ok: true } : { ok: false, reason: 'no test Redis' }].find((a) => !a.ok)?.reason;
const STORE = 'e2e-ssh';

const terminalText = (page: Page): Promise<string> => page.locator('.xterm-rows').innerText().catch(() => '');
const banner = async (page: Page): Promise<{ state: string | null; text: string }> => {
  const el = page.getByTestId('moderation-banner');
  if ((await el.count()) === 0) return { state: null, text: '' };
  return { state: await el.getAttribute('data-state'), text: (await el.textContent()) ?? '' };
};

describe.skipIf(why !== undefined)(`four-eyes sessions in the browser${why ? ` (skipped: ${why})` : ''}`, () => {
  let rig: SshWebRig;
  let techB: BrowserHandle;
  let modB: BrowserHandle;

  beforeAll(async () => {
    rig = await startSshWebRig({ redisSocket, prefix: `jg-4e-${randomBytes(4).toString('hex')}`, store: STORE, moderation: true });
    techB = await launchBrowser();
    modB = await launchBrowser();
  }, 300_000);

  afterAll(async () => {
    await techB?.close();
    await modB?.close();
    await rig?.close();
  }, 60_000);

  it('technician waits for the moderator, runs while moderated, is paused when the moderator leaves and ended after the grace period', async () => {
    const { fx, db, host, base } = rig;
    const org = await fx.organization();
    const tag = randomBytes(2).toString('hex');
    const tech: Person = { login: `tina${tag}`, displayName: 'Tina Tech', password: `pw-${randomUUID()}` };
    const mod: Person = { login: `mona${tag}`, displayName: 'Mona Moderator', password: `pw-${randomUUID()}` };
    await createPerson(db, { login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: org.id, password: tech.password });
    await createPerson(db, { login: mod.login, displayName: mod.displayName, role: 'org_admin', organizationId: org.id, password: mod.password });
    const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' }, { orgId: org.id, localStore: STORE, domainStore: STORE });
    await db.query(
      "UPDATE computers SET address = $2, ssh_port = $3, protocols = '{ssh}', policy = jsonb_build_object('sshHostKeySha256', $4::text, 'requireModerator', true, 'moderatorGraceSeconds', 8) WHERE id = $1",
      [pc.id, host.address, host.port, host.hostKeySha256],
    );

    const page = await techB.newPage();
    await signIn(page, base, tech, 'four-eyes-technician');
    const row = page.locator(`tr[data-computer="${pc.name}"]`);
    await row.waitFor();
    // Shift+click: a window of its own (a plain click opens a tab of this window's session desk)
    const [term] = await Promise.all([techB.context.waitForEvent('page'), row.getByRole('link', { name: `Connect to ${pc.name} with SSH` }).click({ modifiers: ['Shift'] })]);
    await waitFor('waiting for a moderator', 120_000, async () => ((await banner(term)).state === 'waiting' ? true : undefined));
    expect((await banner(term)).text).toMatch(/waiting for a moderator/);
    expect(await term.getByTestId('jit-account').count()).toBe(0);
    await screenshot(term, 'four-eyes-waiting');

    const modPage = await modB.newPage();
    modPage.on('dialog', (d) => void d.accept());
    await signIn(modPage, base, mod, 'four-eyes-moderator');
    await go(modPage, 'Live sessions');
    const item = modPage.getByTestId('moderation-list').locator('li', { hasText: tech.login });
    await item.waitFor({ timeout: 30_000 });
    await item.getByRole('link', { name: 'Moderate' }).click();
    await modPage.getByText('watching (read-only)').waitFor({ timeout: 30_000 });

    const account = await waitFor('the JIT account', 60_000, async () => (await term.getByTestId('jit-account').textContent().catch(() => null)) || undefined);
    expect((await banner(term)).text).toContain(`moderated by ${mod.login}`);
    await term.locator('.xterm').click();
    await term.keyboard.type('echo moderated-$((6*7))\n');
    await waitFor('the moderator to see the output', 30_000, async () => ((await terminalText(modPage)).includes('moderated-42') ? true : undefined));

    // the moderator leaves: paused, typing has no effect, ended after the grace period
    await go(modPage, 'Live sessions');
    await waitFor('the pause', 20_000, async () => ((await banner(term)).state === 'paused' ? true : undefined));
    expect((await banner(term)).text).toMatch(/paused: the moderator left, input is blocked/);
    await screenshot(term, 'four-eyes-paused');
    await term.locator('.xterm').click();
    await term.keyboard.type('echo paused-$((5*5))\n');
    await waitFor('the end after the grace period', 30_000, async () => ((await banner(term)).state === 'ended' ? true : undefined));
    expect((await banner(term)).text).toMatch(/no moderator rejoined within 8 seconds/);
    expect(await terminalText(term)).not.toContain('paused-25');
    await waitFor('the JIT account to be removed', 60_000, async () => ((await host.exec(`getent passwd ${account}`)).code !== 0 ? true : undefined));
  }, 300_000);
});
