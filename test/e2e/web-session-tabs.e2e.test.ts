import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import type { Locator, Page } from 'playwright-core';
import type { Database } from '../../core/db/database.js';
import { createPerson } from '../../gateway/auth/index.js';
import { JIT_PRESETS } from '../../provisioner/jit-settings.js';
import type { JitFixture } from '../fixtures/jit-fixture.js';
import { sshHostAvailable, type SshHostHandle } from '../harness/ssh-host.js';
import { axeProblems } from './axe.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { startSshWebRig, waitFor, type SshWebRig } from './web-rig.js';
import { signIn, type Person } from './web-steps.js';

/**
 * Issue 17, what technicians miss, on the real pieces (sshd test host, JIT
 * engine on the test Redis, terminal websocket, recorder): several sessions
 * in tabs of one window, each kept connected while another is shown, and
 * leaving them asks first; the side menu with the clipboard, and file
 * transfer only where the computer's policy allows it; at mobile width the
 * on-screen Ctrl (sticky), Tab and arrow keys reach the real shell, the
 * navigation folds behind a Menu button, and axe finds nothing serious.
 */
const redisSocket = inject('redisSocket');
const why = [chromiumAvailable(), sshHostAvailable(), redisSocket ? { ok: true } : { ok: false, reason: 'no test Redis' }].find((a) => !a.ok)?.reason;
const STORE = 'e2e-ssh-tabs';

/** The tab shown now (the others stay in the page, hidden). */
const shown = (page: Page): Locator => page.locator('.desk-pane:not([hidden])');
const screenText = (pane: Locator): Promise<string> => pane.locator('.xterm-rows').innerText().catch(() => '');
/** Lines of the shown terminal equal to `line` (output lines, not the command that printed them). */
const linesEqual = async (pane: Locator, line: string): Promise<number> => (await screenText(pane)).split('\n').filter((l) => l.trim() === line).length;
/** The highest `<prefix><n>` on the screen. */
const lastTick = async (pane: Locator, prefix: string): Promise<number> => Math.max(0, ...[...(await screenText(pane)).matchAll(new RegExp(`^${prefix}(\\d+)\\s*$`, 'gm'))].map((m) => Number(m[1])));

describe.skipIf(why !== undefined)(`sessions in tabs, side menu and mobile keys${why ? ` (skipped: ${why})` : ''}`, () => {
  let rig: SshWebRig;
  let host: SshHostHandle;
  let db: Database;
  let fx: JitFixture;
  let b: BrowserHandle;
  let base = '';
  const tech: Person = { login: `tab${randomBytes(2).toString('hex')}`, displayName: 'Tia Tabs', password: `pw-${randomUUID()}` };
  let pcA: { id: string; name: string };
  let pcB: { id: string; name: string };

  beforeAll(async () => {
    rig = await startSshWebRig({ redisSocket: redisSocket!, prefix: `jg-tabs-${randomBytes(4).toString('hex')}`, store: STORE });
    ({ host, db, fx, base } = rig);
    const org = await fx.organization();
    await createPerson(db, { login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: org.id, password: tech.password });
    const computer = async (sftp: boolean) => {
      const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' }, { orgId: org.id, localStore: STORE, domainStore: STORE });
      await db.query("UPDATE computers SET address = $2, ssh_port = $3, protocols = '{ssh}', policy = jsonb_build_object('sshHostKeySha256', $4::text, 'sftp', $5::boolean, 'clipboard', 'both') WHERE id = $1", [pc.id, host.address, host.port, host.hostKeySha256, sftp]);
      return pc;
    };
    // two computers on the same test host: A allows file transfer, B does not
    pcA = await computer(true);
    pcB = await computer(false);
    b = await launchBrowser();
  }, 300_000);

  afterAll(async () => {
    await b?.close();
    await rig?.close();
  }, 60_000);

  const sessions = async () => Number((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM sessions WHERE computer_id = ANY($1)', [[pcA.id, pcB.id]]))[0]!.n);

  it('keeps two SSH sessions connected in tabs of one window, asks before leaving them, and offers file transfer only where allowed', async () => {
    const page = await b.newPage();
    const dialogs: string[] = [];
    let confirmAnswer = true;
    page.on('dialog', (d) => {
      dialogs.push(d.type());
      void (d.type() === 'confirm' && !confirmAnswer ? d.dismiss() : d.accept());
    });
    await signIn(page, base, tech, 'tabs');
    const before = await sessions();

    // Tab A: a loop printing a tick every half second, left running.
    await page.goto(`${base}/terminal/${encodeURIComponent(pcA.id)}`);
    const accountA = await waitFor('the JIT account of A', 120_000, async () => (await shown(page).getByTestId('jit-account').textContent().catch(() => null)) || undefined);
    await shown(page).locator('.xterm').click();
    await page.keyboard.type('for i in $(seq 1 600); do echo a-tick-$i; sleep 0.5; done\n');
    await waitFor('A to tick', 30_000, async () => ((await lastTick(shown(page), 'a-tick-')) >= 2 ? true : undefined));

    // Tab B, opened from the strip's list: in the same window, A stays in the strip.
    const seenA = await lastTick(shown(page), 'a-tick-');
    await page.getByTestId('open-another-toggle').click();
    await page.getByRole('link', { name: `Open ${pcB.name} with SSH in a tab here` }).click();
    await page.waitForURL(`**/terminal/${encodeURIComponent(pcB.id)}`);
    const accountB = await waitFor('the JIT account of B', 120_000, async () => (await shown(page).getByTestId('jit-account').textContent().catch(() => null)) || undefined);
    expect(accountB).not.toBe(accountA);
    const strip = page.getByRole('navigation', { name: 'Sessions in this window' });
    expect(await strip.getByRole('list').getByRole('link').allTextContents()).toEqual([`SSH · ${pcA.name}`, `SSH · ${pcB.name}`]);
    expect(await strip.getByRole('link', { name: `SSH · ${pcB.name}` }).getAttribute('aria-current')).toBe('page');
    await shown(page).locator('.xterm').click();
    await page.keyboard.type('echo b-$((20+2))\n');
    await waitFor('B to answer', 30_000, async () => ((await linesEqual(shown(page), 'b-22')) === 1 ? true : undefined));
    // B's side menu: the clipboard, no file transfer (its policy does not allow it)
    await shown(page).getByTestId('session-menu-toggle').click();
    await shown(page).getByTestId('menu-clipboard').waitFor();
    expect(await shown(page).getByTestId('menu-files').count()).toBe(0);
    await screenshot(page, 'session-tabs-b-menu');

    // Back to A: it kept receiving output while hidden (the loop went on), and still takes input.
    await strip.getByRole('link', { name: `SSH · ${pcA.name}` }).click();
    await page.waitForURL(`**/terminal/${encodeURIComponent(pcA.id)}`);
    expect(await shown(page).getByTestId('jit-account').textContent()).toBe(accountA);
    await waitFor('A to have ticked on while hidden', 30_000, async () => ((await lastTick(shown(page), 'a-tick-')) >= seenA + 4 ? true : undefined));
    await page.keyboard.press('Control+C');
    await page.keyboard.type('echo a-$((20+1))\n');
    await waitFor('A to answer', 30_000, async () => ((await linesEqual(shown(page), 'a-21')) === 1 ? true : undefined));
    // A's side menu: file transfer is allowed there; the clipboard's paste goes into the session as typed
    await shown(page).getByTestId('session-menu-toggle').click();
    await shown(page).getByTestId('menu-files').waitFor();
    await shown(page).getByLabel('Text to paste into the terminal').fill('echo pasted-$((5*5))');
    await shown(page).getByRole('button', { name: 'Paste into terminal' }).click();
    // bash takes a paste as text (bracketed paste), the person presses Enter; the terminal has the focus again
    await page.keyboard.press('Enter');
    await waitFor('the pasted command to run', 30_000, async () => ((await linesEqual(shown(page), 'pasted-25')) === 1 ? true : undefined));
    await screenshot(page, 'session-tabs-a-menu');

    // And B, switched to again, still answers: no reconnect, no new JIT account on either switch.
    await strip.getByRole('link', { name: `SSH · ${pcB.name}` }).click();
    await shown(page).locator('.xterm').click();
    await page.keyboard.type('echo b-$((30+3))\n');
    await waitFor('B to answer again', 30_000, async () => ((await linesEqual(shown(page), 'b-33')) === 1 ? true : undefined));
    expect(await shown(page).getByTestId('jit-account').textContent()).toBe(accountB);
    expect(await sessions()).toBe(before + 2);
    expect(dialogs).toEqual([]);

    // Leaving the desk for another page asks (it would end both); staying keeps both.
    await strip.getByRole('link', { name: `SSH · ${pcA.name}` }).click();
    confirmAnswer = false;
    await shown(page).getByRole('link', { name: 'My account' }).click();
    expect(dialogs).toEqual(['confirm']);
    expect(new URL(page.url()).pathname).toBe(`/terminal/${encodeURIComponent(pcA.id)}`);
    await shown(page).locator('.xterm').click();
    await page.keyboard.type('echo still-$((40+4))\n');
    await waitFor('A to answer after staying', 30_000, async () => ((await linesEqual(shown(page), 'still-44')) === 1 ? true : undefined));
    confirmAnswer = true;

    // End B; its tab says so and closes; A goes on.
    await strip.getByRole('link', { name: `SSH · ${pcB.name}` }).click();
    await shown(page).getByTestId('end-session').click();
    await shown(page).getByTestId('terminal-status').getByText('You ended the session.').waitFor();
    await strip.getByText('(ended)').waitFor();
    await strip.getByRole('button', { name: `Close SSH · ${pcB.name}` }).click();
    await page.waitForURL(`**/terminal/${encodeURIComponent(pcA.id)}`);
    expect(await strip.getByRole('list').getByRole('link').allTextContents()).toEqual([`SSH · ${pcA.name}`]);
    await shown(page).locator('.xterm').click();
    await page.keyboard.type('echo last-$((50+5))\n');
    await waitFor('A to answer after B closed', 30_000, async () => ((await linesEqual(shown(page), 'last-55')) === 1 ? true : undefined));
    await waitFor(`B's JIT account to be deleted`, 120_000, async () => ((await host.exec(`id ${accountB}`)).code !== 0 ? true : undefined));
    expect((await host.exec(`id ${accountA}`)).code).toBe(0);
    await shown(page).getByTestId('end-session').click();
    await shown(page).getByTestId('terminal-status').getByText('You ended the session.').waitFor();
    expect(b.errors).toEqual([]);
    await page.close();
  }, 600_000);

  it('at mobile width: compact navigation, on-screen Ctrl/Tab/arrow keys reach the shell, no serious axe violations', async () => {
    const page = await b.newPage();
    page.on('dialog', (d) => void d.accept());
    await page.setViewportSize({ width: 390, height: 844 });
    // signed in by the first test (same browser profile); home: the links fold behind Menu
    await page.goto(`${base}/`);
    const menu = page.getByRole('button', { name: 'Menu', exact: true });
    await menu.waitFor();
    expect(await page.getByRole('navigation', { name: 'Main' }).isVisible()).toBe(false);
    await menu.click();
    expect(await menu.getAttribute('aria-expanded')).toBe('true');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My account' }).waitFor();
    expect(await axeProblems(page, 'home at phone width, menu open')).toEqual([]);
    await screenshot(page, 'home-mobile-menu');

    await page.goto(`${base}/terminal/${encodeURIComponent(pcB.id)}`);
    await waitFor('the JIT account', 120_000, async () => (await shown(page).getByTestId('jit-account').textContent().catch(() => null)) || undefined);
    const keys = shown(page).getByRole('toolbar', { name: 'Terminal keys' });
    await keys.waitFor();
    await shown(page).locator('.xterm').click();

    // Ctrl (sticky) then c from the keyboard: the real shell's running sleep is interrupted.
    await page.keyboard.type('echo started-$((3*3)); sleep 300\n');
    await waitFor('the sleep to start', 30_000, async () => ((await linesEqual(shown(page), 'started-9')) === 1 ? true : undefined));
    const ctrl = keys.getByRole('button', { name: 'Ctrl' });
    await ctrl.click();
    expect(await ctrl.getAttribute('aria-pressed')).toBe('true');
    await page.keyboard.type('c');
    expect(await ctrl.getAttribute('aria-pressed')).toBe('false');
    // were the interrupt lost, this would wait behind a 300 s sleep
    await page.keyboard.type('echo done-$((6*7))\n');
    await waitFor('the interrupted sleep to give the prompt back', 30_000, async () => ((await linesEqual(shown(page), 'done-42')) === 1 ? true : undefined));
    expect(await screenText(shown(page))).toContain('^C');

    // Tab completes the command; the up arrow brings it back.
    await page.keyboard.type('ech');
    await keys.getByRole('button', { name: 'Tab' }).click();
    await page.keyboard.type(' tab-$((2+3))\n');
    await waitFor('the completed command to run', 30_000, async () => ((await linesEqual(shown(page), 'tab-5')) === 1 ? true : undefined));
    await keys.getByRole('button', { name: 'Up arrow' }).click();
    await page.keyboard.press('Enter');
    await waitFor('the recalled command to run again', 30_000, async () => ((await linesEqual(shown(page), 'tab-5')) === 2 ? true : undefined));

    // The session page at phone width: no sideways scrolling, nothing serious for axe (menu closed and open).
    expect(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth')).toBe(true);
    expect(await axeProblems(page, 'session page at phone width')).toEqual([]);
    await shown(page).getByTestId('session-menu-toggle').click();
    await shown(page).getByTestId('menu-clipboard').waitFor();
    expect(await axeProblems(page, 'session page at phone width, side menu open')).toEqual([]);
    await screenshot(page, 'session-mobile-keys');
    await shown(page).getByTestId('end-session').click();
    await shown(page).getByTestId('terminal-status').getByText('You ended the session.').waitFor();
    expect(b.errors).toEqual([]);
  }, 400_000);
});
