import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Locator, Page } from 'playwright-core';
import type { Database } from '../../core/db/database.js';
import type { Computer } from '../../core/domain.js';
import { silentLogger } from '../../core/logging.js';
import { Secret } from '../../core/secret.js';
import { checkCsrfQuery, createPerson } from '../../gateway/auth/index.js';
import type { Principal } from '../../gateway/auth/principal.js';
import { rdpRoutes } from '../../gateway/rdp/rdp-tunnel.js';
import { JIT_PRESETS } from '../../provisioner/jit-settings.js';
import type { JitFixture } from '../fixtures/jit-fixture.js';
import { FixedBroker, SlotRecorder, startGuacdPeer, type GuacdPeer, type PeerConnection } from '../harness/guacd-peer.js';
import { sshHostAvailable } from '../harness/ssh-host.js';
import { WsTerminal } from '../harness/ws-terminal.js';
import { axeProblems } from './axe.js';
import { chromiumAvailable, launchBrowser, screenshot, type BrowserHandle } from './browser.js';
import { startSshWebRig, waitFor, type SshWebRig } from './web-rig.js';
import { signIn, type Person } from './web-steps.js';

/**
 * Issue 17, the rest of "several sessions in tabs of one window" and "controls
 * where the computer's policy allows", in Debian's chromium on the real pieces
 * (sshd test host, JIT engine on the test Redis, terminal websocket) plus the
 * remote desktop tunnel over the Guacamole-protocol test peer:
 * - the Sessions page's Connect buttons open a tab of the session desk in the
 *   same window, and the home page keeps the desk's sessions connected; an RDP
 *   and an SSH session side by side, switched between without a reconnect;
 * - the remote desktop's "Clipboard and files" menu: only what the policy
 *   allows, Escape closes it and gives the focus back;
 * - the SSH terminal's clipboard follows the computer's policy, in the page and
 *   in the gateway (a forbidden paste is refused there too);
 * - at phone width the Menu button carries the waiting-requests count.
 */
const redisSocket = inject('redisSocket');
const why = [chromiumAvailable(), sshHostAvailable(), redisSocket ? { ok: true } : { ok: false, reason: 'no test Redis' }].find((a) => !a.ok)?.reason;
const STORE = 'e2e-desk-rdp';

const shown = (page: Page): Locator => page.locator('.desk-pane:not([hidden])');
const screenText = (pane: Locator): Promise<string> => pane.locator('.xterm-rows').innerText().catch(() => '');
const linesEqual = async (pane: Locator, line: string): Promise<number> => (await screenText(pane)).split('\n').filter((l) => l.trim() === line).length;
/** An attribute of the element that has the keyboard focus. */
const focused = (page: Page, attr: string): Promise<string | null> => page.evaluate<string | null>(`document.activeElement && document.activeElement.getAttribute(${JSON.stringify(attr)})`);
/** The desk's tabs, by their words (the strip's list; "All computers" is beside it). */
const tabNames = (page: Page): Promise<string[]> => page.getByRole('navigation', { name: 'Sessions in this window' }).getByRole('listitem').allTextContents();

describe.skipIf(why !== undefined)(`session desk with RDP, clipboard policy, Menu badge${why ? ` (skipped: ${why})` : ''}`, () => {
  let rig: SshWebRig;
  let db: Database;
  let fx: JitFixture;
  let b: BrowserHandle;
  let peer: GuacdPeer;
  let broker: FixedBroker;
  let dir = '';
  let base = '';
  let orgId = '';
  const tag = randomBytes(2).toString('hex');
  const tech: Person = { login: `desk${tag}`, displayName: 'Dana Desk', password: `pw-${randomUUID()}` };
  const approver: Person = { login: `appr${tag}`, displayName: 'Abe Approver', password: `pw-${randomUUID()}` };
  /** SSH, clipboard both ways. */
  let pcBoth: Computer;
  /** SSH, clipboard remote → local only (copy out, no paste). */
  let pcCopy: Computer;
  /** RDP through the test peer: paste and upload allowed, copy and download not. */
  let pcRdp: Computer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'jg-desk-rdp-'));
    peer = await startGuacdPeer({ image: { width: 64, height: 48, rgb: [20, 90, 160] } });
    // the broker stands in for provisioning on the RDP side (tested elsewhere); its computer is set once the row exists
    const holder: { broker: FixedBroker | null } = { broker: null };
    rig = await startSshWebRig({
      redisSocket: redisSocket!, prefix: `jg-desk-${randomBytes(4).toString('hex')}`, store: STORE,
      apiPlugins: () => [
        rdpRoutes({
          log: silentLogger(), recorder: new SlotRecorder(dir), guacd: { host: peer.host, port: peer.port }, guacdTimeoutMs: 10_000, checkCsrf: checkCsrfQuery,
          // the broker is made below, once the computer row exists
          broker: { open: (req, onProgress) => holder.broker!.open(req, onProgress) },
        }),
      ],
    });
    ({ db, fx, base } = rig);
    const { host } = rig;
    const org = await fx.organization();
    orgId = org.id;
    await createPerson(db, { login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: org.id, password: tech.password });
    await createPerson(db, { login: approver.login, displayName: approver.displayName, role: 'org_admin', organizationId: org.id, password: approver.password });
    const ssh = async (clipboard: string) => {
      const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' }, { orgId: org.id, localStore: STORE, domainStore: STORE });
      await db.query("UPDATE computers SET address = $2, ssh_port = $3, protocols = '{ssh}', policy = jsonb_build_object('sshHostKeySha256', $4::text, 'clipboard', $5::text) WHERE id = $1", [pc.id, host.address, host.port, host.hostKeySha256, clipboard]);
      return { ...pc, protocols: ['ssh' as const] };
    };
    pcBoth = await ssh('both');
    pcCopy = await ssh('remote-to-local');
    const r = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'domain' }, { orgId: org.id, localStore: STORE, domainStore: STORE });
    const policy = { clipboard: 'local-to-remote', drive: 'upload' };
    await db.query("UPDATE computers SET protocols = '{rdp}', policy = $2 WHERE id = $1", [r.id, JSON.stringify(policy)]);
    pcRdp = { ...r, protocols: ['rdp'], policy };
    broker = new FixedBroker(pcRdp, { username: `${tech.login}_r1dp2q`, password: new Secret('Pw-rdp-1'), domain: 'CORP' });
    holder.broker = broker;
    b = await launchBrowser();
  }, 300_000);

  afterAll(async () => {
    await b?.close();
    await rig?.close();
    await peer?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  /** The remote desktop sessions guacd (the peer) saw: connections of their own, capability probes left out. */
  const rdpSessions = (): PeerConnection[] => peer.connections.filter((c) => c.joined === null && c.selected === 'rdp' && c.version !== null);

  it('Connect opens tabs of one window; an RDP and an SSH session side by side keep their connections; the RDP menu shows what the policy allows and closes with Escape', async () => {
    const page = await b.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(`${d.type()}: ${d.message()}`);
      void d.accept();
    });
    await signIn(page, base, tech, 'desk-rdp');
    const pages = b.context.pages().length;

    // 1. Connect, RDP: a tab of the desk in this window, not a new window.
    await page.locator(`tr[data-computer="${pcRdp.name}"]`).getByRole('link', { name: `Connect to ${pcRdp.name} with RDP` }).click();
    await page.waitForURL(`**/rdp/${encodeURIComponent(pcRdp.id)}`);
    await shown(page).getByText(`connected to ${pcRdp.name}`).waitFor({ timeout: 60_000 });
    const rdp = await waitFor('the remote desktop at guacd', 30_000, () => rdpSessions()[0]);
    expect(b.context.pages().length).toBe(pages);

    // 2. Its side menu: paste and upload (allowed), no copy-out or download controls; the first control takes the keys.
    const toggle = shown(page).getByRole('button', { name: 'Clipboard and files' });
    await toggle.click();
    const menu = shown(page).getByRole('complementary', { name: 'Clipboard and files' });
    await menu.waitFor();
    expect(await toggle.getAttribute('aria-expanded')).toBe('true');
    const send = menu.getByRole('textbox', { name: 'Text to send to the remote clipboard' });
    await send.waitFor();
    expect(await focused(page, 'aria-label')).toBe('Text to send to the remote clipboard');
    expect(await menu.getByLabel('Upload files to the remote drive').count()).toBe(1);
    await menu.getByText('Copying from this computer is not allowed.').waitFor();
    expect(await menu.getByRole('status', { name: 'Remote clipboard' }).count()).toBe(0);
    expect(await menu.locator('output').count()).toBe(0);
    expect(await menu.getByText(/Download folder/).count()).toBe(0);
    expect(await axeProblems(page, 'remote desktop tab, side menu open')).toEqual([]);
    await screenshot(page, 'desk-rdp-menu');
    // Escape closes it and gives the focus back to its button
    await page.keyboard.press('Escape');
    await menu.waitFor({ state: 'hidden' });
    expect(await toggle.getAttribute('aria-expanded')).toBe('false');
    expect(await focused(page, 'data-testid')).toBe('session-menu-toggle');

    // 3. Home ("All computers") keeps the desk: the remote desktop stays connected, nothing asked.
    await page.getByRole('navigation', { name: 'Sessions in this window' }).getByRole('link', { name: 'All computers' }).click();
    await page.waitForURL(`${base}/`);
    await page.getByRole('heading', { name: 'Sessions', level: 1 }).waitFor();
    expect(await tabNames(page)).toEqual([`Remote desktop · ${pcRdp.name}`]);
    expect(await axeProblems(page, 'home page with the desk strip')).toEqual([]);
    await screenshot(page, 'desk-home-strip');

    // 4. Connect, SSH: a second tab of the same window.
    await page.locator(`tr[data-computer="${pcBoth.name}"]`).getByRole('link', { name: `Connect to ${pcBoth.name} with SSH` }).click();
    await page.waitForURL(`**/terminal/${encodeURIComponent(pcBoth.id)}`);
    await waitFor('the JIT account', 120_000, async () => (await shown(page).getByTestId('jit-account').textContent().catch(() => null)) || undefined);
    expect(await tabNames(page)).toEqual([`Remote desktop · ${pcRdp.name}`, `SSH · ${pcBoth.name}`]);
    await shown(page).locator('.xterm').click();
    await page.keyboard.type('echo s-$((11+1))\n');
    await waitFor('the shell to answer', 30_000, async () => ((await linesEqual(shown(page), 's-12')) === 1 ? true : undefined));
    expect(b.context.pages().length).toBe(pages);

    // 5. Back to the remote desktop: the same guacd connection (no reconnect), and it still works (clipboard to the remote side).
    const strip = page.getByRole('navigation', { name: 'Sessions in this window' });
    await strip.getByRole('link', { name: `Remote desktop · ${pcRdp.name}` }).click();
    await page.waitForURL(`**/rdp/${encodeURIComponent(pcRdp.id)}`);
    await toggle.click();
    await send.fill('sent after switching');
    await menu.getByRole('button', { name: 'Send to remote clipboard' }).click();
    await menu.getByText('Sent.').waitFor();
    await waitFor('the clipboard at guacd', 30_000, () => (rdp.received.some((i) => i[0] === 'clipboard') ? true : undefined));
    expect(rdpSessions()).toHaveLength(1);
    expect(rdp.closed).toBe(false);
    expect(broker.provisioned).toBe(1);

    // 6. And the terminal, switched to again, still answers.
    await strip.getByRole('link', { name: `SSH · ${pcBoth.name}` }).click();
    await shown(page).locator('.xterm').click();
    await page.keyboard.type('echo s-$((20+2))\n');
    await waitFor('the shell to answer again', 30_000, async () => ((await linesEqual(shown(page), 's-22')) === 1 ? true : undefined));
    expect(rdpSessions()).toHaveLength(1);
    expect(rdp.closed).toBe(false);
    expect(dialogs).toEqual([]);
    expect(b.context.pages().length).toBe(pages);

    // End both.
    await shown(page).getByTestId('end-session').click();
    await shown(page).getByTestId('terminal-status').getByText('You ended the session.').waitFor();
    await strip.getByRole('link', { name: `Remote desktop · ${pcRdp.name}` }).click();
    await shown(page).getByTestId('end-session').click();
    await waitFor('the remote desktop to close at guacd', 30_000, () => (rdp.closed ? true : undefined));
    expect(b.errors).toEqual([]);
    await page.close();
  }, 400_000);

  it('the SSH terminal offers and lets through only the clipboard direction its policy allows; the gateway refuses a forbidden paste', async () => {
    const page = await b.newPage();
    page.on('dialog', (d) => void d.accept());
    // signed in by the first test (same browser profile)
    await page.goto(`${base}/terminal/${encodeURIComponent(pcCopy.id)}`);
    await waitFor('the JIT account', 120_000, async () => (await shown(page).getByTestId('jit-account').textContent().catch(() => null)) || undefined);
    await shown(page).getByTestId('session-menu-toggle').click();
    const menu = shown(page).getByTestId('menu-clipboard');
    await menu.waitFor();
    // copy out: offered; paste in: not
    await menu.getByRole('button', { name: 'Copy selection' }).waitFor();
    expect(await menu.getByRole('button', { name: 'Paste into terminal' }).count()).toBe(0);
    expect(await menu.getByLabel('Text to paste into the terminal').count()).toBe(0);
    await menu.getByText('Pasting into this computer is not allowed.').waitFor();
    expect(await axeProblems(page, 'terminal, copy-only side menu')).toEqual([]);
    await screenshot(page, 'desk-ssh-copy-only-menu');
    await page.keyboard.press('Escape');
    await menu.waitFor({ state: 'hidden' });

    // The browser's own paste (Ctrl+V) into the terminal is held back too.
    await shown(page).locator('.xterm').click();
    // as the browser delivers Ctrl+V: a paste event with the text on xterm.js's input element
    await page.evaluate(`(() => {
      const data = new DataTransfer();
      data.setData('text/plain', 'echo leaked-$((6*7))');
      document.querySelector('.desk-pane:not([hidden]) .xterm-helper-textarea').dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
    })()`);
    await shown(page).getByTestId('clipboard-note').getByText('Pasting into this computer is not allowed.').waitFor();
    await page.keyboard.type('echo typed-$((6*7))\n');
    await waitFor('the typed command', 30_000, async () => ((await linesEqual(shown(page), 'typed-42')) === 1 ? true : undefined));
    expect(await screenText(shown(page))).not.toContain('leaked');

    // The gateway: another client (same sign-in) that sends a bracketed paste anyway gets it refused; typing goes on.
    const cookie = (await b.context.cookies(base)).find((k) => k.name === 'jitgate_session')!.value;
    const me = (await (await fetch(`${base}/api/v1/auth/me`, { headers: { cookie: `jitgate_session=${cookie}` } })).json()) as { csrfToken: string };
    const ws = (pc: Computer) =>
      new WsTerminal(`${base.replace(/^http/, 'ws')}/api/v1/terminal?computer=${pc.id}&cols=100&rows=30&csrf=${encodeURIComponent(me.csrfToken)}`, {
        headers: { cookie: `jitgate_session=${cookie}` }, timeoutMs: 120_000,
      });
    for (const [pc, allowed] of [[pcCopy, false], [pcBoth, true]] as const) {
      const t = ws(pc);
      const ready = await t.waitForMessage('ready');
      expect(ready.clipboard).toEqual({ copy: true, paste: allowed });
      t.send('\x1b[200~echo pasted-$((6*7))\x1b[201~');
      if (!allowed) expect((await t.waitForMessage('refused', 30_000)).code).toBe('JIT_ERR_SSH_PASTE_NOT_ALLOWED');
      t.send(allowed ? '\r' : 'echo typed-$((6*7))\r');
      await t.waitForOutput(allowed ? /pasted-42/ : /typed-42/, 0, 30_000);
      if (!allowed) expect(t.text).not.toContain('pasted-42');
      t.close();
      await t.waitClosed();
    }
    await shown(page).getByTestId('end-session').click();
    await shown(page).getByTestId('terminal-status').getByText('You ended the session.').waitFor();
    expect(b.errors).toEqual([]);
    await page.close();
  }, 400_000);

  it('at phone width the Menu button carries the count of requests waiting for the approver, updated without a reload', async () => {
    const phone = await launchBrowser({ width: 390, height: 844 });
    try {
      const page = await phone.newPage();
      await signIn(page, base, approver, 'desk-approver');
      const principal: Principal = { personId: (await db.query<{ id: string }>('SELECT id FROM people WHERE login = $1', [tech.login]))[0]!.id, login: tech.login, displayName: tech.displayName, role: 'technician', organizationId: orgId, authSessionId: 'e2e' };
      const asking = async () => {
        const pc = await fx.computer({ ...JIT_PRESETS.maximumSecurity, adminGroups: ['admins'], accountType: 'local' }, { orgId, localStore: STORE, domainStore: STORE });
        await db.query(`UPDATE computers SET protocols = '{ssh}', policy = '{"requireApproval": true}' WHERE id = $1`, [pc.id]);
        await rig.web.requests.create(principal, { computerId: pc.id, reason: 'patch the kernel', minutes: 15 });
      };
      await page.goto(`${base}/account`);
      const plain = page.getByRole('button', { name: 'Menu', exact: true });
      await plain.waitFor();
      await asking();
      // the navigation polls every 5 s: the count arrives on the button by itself
      const one = page.getByRole('button', { name: 'Menu 1 request waiting', exact: true });
      await one.waitFor({ timeout: 30_000 });
      expect(await one.getByTestId('menu-requests-waiting').textContent()).toBe('1');
      await asking();
      const two = page.getByRole('button', { name: 'Menu 2 requests waiting', exact: true });
      await two.waitFor({ timeout: 30_000 });
      expect(await two.getByTestId('menu-requests-waiting').isVisible()).toBe(true);
      expect(await page.getByRole('navigation', { name: 'Main' }).isVisible()).toBe(false);
      expect(await axeProblems(page, 'phone width, requests waiting, menu closed')).toEqual([]);
      await screenshot(page, 'menu-requests-waiting-mobile');
      // opened: the same count beside Requests
      await two.click();
      expect(await page.getByRole('navigation', { name: 'Main' }).getByTestId('requests-waiting').textContent()).toBe('2');
      expect(await axeProblems(page, 'phone width, requests waiting, menu open')).toEqual([]);
      expect(phone.errors).toEqual([]);
    } finally {
      await phone.close();
    }
  }, 300_000);
});
